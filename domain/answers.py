"""The product's answers, typed once: what ``store.reader.PlantReader`` returns, what the
HTTP API serialises (``api.openapi`` generates its OpenAPI schemas from these types),
what the screens read and what the tests' sample reader builds.

They are ``TypedDict``s: plain JSON-ready dicts at run time (nothing changes on the wire),
checked by mypy where they are built and read. Every key is required unless marked
``NotRequired``; an answer has no keys beyond its type's (the OpenAPI schemas are closed:
``additionalProperties: false``, and the API test validates every answer against them).
``Doc`` annotates a field with its description in the OpenAPI document.

Times are epoch seconds (UTC) unless a name says ``_iso``; durations are seconds (``_s``);
ratios are 0..1 (performance may exceed 1: see ``flags``); a ratio is None when it is
undefined (nothing to divide by) and any number None when it is not finite.
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired[...] at class creation
# (``__required_keys__``), which string annotations would hide
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired

from typing_extensions import TypedDict


@dataclass(frozen=True, slots=True)
class Doc:
    """A field's description in the OpenAPI document (``Annotated[float, Doc("...")]``)."""

    text: str


Epoch = Annotated[float, Doc("epoch seconds, UTC")]
HealthStatus = Literal["ok", "data_lost", "degraded", "redis_down"]
LineStatus = Literal["ok", "data_lost", "no_data", "stale", "worker_behind"]
MachineState = Literal["running", "idle", "starved", "blocked", "fault", "changeover", "planned_stop", "unknown"]


class Error(TypedDict):
    """Every error answer (4xx, 5xx): the message names the bad parameter or what is missing."""

    error: str


# --- windows and KPIs ---------------------------------------------------------------------

class Window(TypedDict):
    """The window the numbers are for: start floored to the minute; end capped at now (exact when the
    window reaches into the last open minute, else floored to the minute)."""

    start: Epoch
    end: Epoch
    now: Epoch
    live: Annotated[bool, Doc("the window reaches now")]
    start_iso: Annotated[str, Doc("ISO 8601 in the plant's time zone")]
    end_iso: str
    label: NotRequired[Annotated[str, Doc("the named range's label, e.g. '2026-11-25 A' for a shift "
                                          "(HTTP API only)")]]


class WaterfallStep(TypedDict):
    step: Literal["planned_busy_time", "unknown", "availability_losses", "performance_losses", "quality_losses",
                  "fully_productive_time"]
    kind: Literal["total", "excluded", "loss"]
    seconds: float


class Losses(TypedDict):
    """Six Big Losses (and the rest of the not-productive time) in seconds, and a waterfall."""

    equipment_failure: float
    setup_adjustment: float
    small_stops: float
    reduced_speed: float
    production_rejects: float
    startup_rejects: float
    starved_blocked: float
    unexplained: float
    unknown: float
    waterfall: list[WaterfallStep]


class EnergyKpis(TypedDict):
    kwh: float
    avg_kw: float | None
    peak_kw: Annotated[float | None, Doc("highest 15-minute average kW")]
    kwh_per_unit: float | None
    kwh_per_good_unit: float | None
    not_running_kwh: float
    not_running_share: float | None
    cost: float
    currency: str
    co2_kg: float


class KpiFlags(TypedDict):
    performance_over_100: Annotated[bool, Doc("the ideal cycle time is probably wrong")]
    micro_stop_threshold_s: float


class Flag(TypedDict):
    """An implausible reading: a counter or meter delta above what the machine can make in the time since
    the previous reading, or a kW reading above its maximum power. Not counted."""

    machine: str
    signal: Annotated[str, Doc("good, reject, energy_kwh, power_kw (any for timestamps)")]
    time: Annotated[str, Doc("event time (a timestamp flag: arrival), ISO 8601 in the plant's time zone")]
    ts: Epoch
    kind: Annotated[str, Doc("implausible_delta, implausible_power, or a timestamp flag")]
    value: Annotated[float | str | None, Doc("the rejected delta (parts, kWh) or reading (kW); for a timestamp "
                                             "flag the event's bad timestamp")]


class MachineKpiFlags(KpiFlags):
    implausible: Annotated[list[Flag], Doc("readings not counted because the machine cannot have made them, in "
                                           "the window, newest first, at most 100")]


class _KpiFigures(TypedDict):
    """ISO 22400 KPIs and the times and counts they come from (``domain.kpi.KpiReport``)."""

    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    teep: float | None
    calendar_s: float
    planned_operation_s: float
    planned_down_s: float
    planned_busy_s: float
    known_planned_busy_s: float
    run_s: float
    down_s: float
    unknown_s: float
    micro_stop_s: float
    unplanned_run_s: float
    stops: int
    total_count: int
    good_count: int
    reject_count: int
    unplanned_good_count: int
    unplanned_reject_count: int
    ideal_time_s: float
    losses: Losses
    energy: EnergyKpis


class Kpis(_KpiFigures):
    """ISO 22400 KPIs; ratios are 0..1 (performance may exceed 1: see flags), null when undefined."""

    flags: KpiFlags


class Coverage(TypedDict):
    """How much of the unplanned down time has a reason (a person's or the PLC's)."""

    untagged_coverage: Annotated[float | None, Doc("share of unplanned down time with a reason")]
    tagged_down_s: float
    untagged_down_s: float
    untagged_stops: int


class MachineKpis(_KpiFigures, Coverage):
    """KPIs of one machine over a window."""

    line: str
    machine: str
    window: Window
    flags: MachineKpiFlags


class LineMachineKpis(Kpis, Coverage):
    """One machine's own KPIs inside a line's answer."""

    id: str
    name: str


class LineKpis(Kpis, Coverage):
    """KPIs of a line: its output machine's time and counts, all its machines' energy."""

    line: str
    output_machine: Annotated[str, Doc("time and counts of the line come from it")]
    target_oee: float
    window: Window
    machines: NotRequired[Annotated[list[LineMachineKpis], Doc("each machine's own KPIs")]]


class KpiBucket(Kpis):
    start: Epoch
    end: Epoch


class KpiSeries(TypedDict):
    """KPIs per bucket (the charts): the line's, or one machine's."""

    line: str
    machine: str | None
    step_s: float
    window: Window
    buckets: list[KpiBucket]


# --- downtime ------------------------------------------------------------------------------

class StopEvent(TypedDict):
    """A stop (clipped to the window for ``in_window_s`` and ``lost_s``)."""

    line: str
    machine: str
    start: Epoch
    end: float | None
    ongoing: bool
    duration_s: float
    in_window_s: float
    lost_s: Annotated[float, Doc("inside the window and inside planned operation time")]
    state: str
    reason: Annotated[int, Doc("the reason the figures use (a person's, else the PLC's); 0: none")]
    reason_text: str
    category: str
    planned: bool
    micro: bool
    id: NotRequired[Annotated[str, Doc("stable stop id <line>~<machine>~<start epoch ms>")]]
    plc_reason: NotRequired[int]
    plc_reason_text: NotRequired[str | None]
    classified: NotRequired[bool]
    classified_by: NotRequired[str | None]
    comment: NotRequired[str]
    piece: NotRequired[Annotated[int, Doc("0, or 1, 2 for the parts of a split stop")]]


class ParetoRow(TypedDict):
    group: Annotated[str, Doc("the reason code, or no_reason / small_stops")]
    reason: int | None
    label: str
    category: str
    count: int
    duration_s: float
    share: float
    cumulative_share: float


class Pareto(TypedDict):
    by_duration: list[ParetoRow]
    by_count: list[ParetoRow]


class MachineDowntime(TypedDict):
    line: str
    machine: str
    count: int
    duration_s: float


class DowntimeCounts(TypedDict):
    stops: int
    micro_stops: int
    planned_stops: int
    down_s: float
    micro_stop_s: float
    planned_down_s: float


class DowntimeSummary(DowntimeCounts, Coverage):
    pass


class Reliability(TypedDict):
    failures: Annotated[int, Doc("equipment-failure stops (not planned, not micro) with lost time in the window")]
    failure_down_s: float
    run_s: float | None
    mtbf_s: float | None
    mttr_s: float | None


class Span(TypedDict):
    start: float
    end: float


class DowntimeReport(Reliability):
    """``domain.downtime.downtime_report``: the answer before the reader adds the line, its
    window and the coverage."""

    window: Span
    micro_stop_threshold_s: float
    events: list[StopEvent]
    pareto: Pareto
    by_machine: list[MachineDowntime]
    summary: DowntimeCounts


class Downtime(Reliability):
    """Stops of a line's machines, Pareto by duration and count, per machine, MTBF and MTTR."""

    line: str
    window: Window
    micro_stop_threshold_s: float
    events: list[StopEvent]
    pareto: Pareto
    by_machine: list[MachineDowntime]
    summary: DowntimeSummary


# --- energy --------------------------------------------------------------------------------

class MachineEnergy(EnergyKpis):
    id: str
    name: str


class Energy(EnergyKpis):
    """Energy of a line (all its machines) and per machine."""

    line: str
    window: Window
    co2_kg_per_kwh: float
    good_count: int
    total_count: int
    quarters: Annotated[list[tuple[float, float]], Doc("[quarter start (epoch s), average kW]")]
    machines: list[MachineEnergy]


class PowerSeries(TypedDict):
    """Average kW per machine per bucket (None: an empty bucket)."""

    line: str
    step_s: float
    window: Window
    starts: list[float]
    machines: dict[str, list[float | None]]


# --- timeline ------------------------------------------------------------------------------

Segment = Annotated[tuple[float, float, str, int], Doc("[start, end, state, reason code (0: none)]")]


class MachineTimeline(TypedDict):
    id: str
    segments: list[Segment]


class Timeline(TypedDict):
    """Per machine, the effective-state segments of the window."""

    line: str
    window: Window
    machines: list[MachineTimeline]


# --- live state ----------------------------------------------------------------------------

class LiveReason(TypedDict):
    code: int
    text: str
    category: str | None
    planned: bool


class MachineBadNode(TypedDict):
    signal: str
    endpoint: str
    node_id: str
    status: str
    since: float | None


class MachineLive(TypedDict):
    id: str
    name: str
    state: MachineState
    since: Annotated[float | None, Doc("when the state began (epoch s)")]
    reason: LiveReason | None
    good: float | None
    reject: float | None
    power_kw: float | None
    energy_kwh: float | None
    last_data: float | None
    stale: Annotated[bool, Doc("no data for longer than gap_timeout_s")]
    link: str | None
    bad_nodes: Annotated[list[MachineBadNode], Doc("this machine's nodes the OPC UA server refuses: those signals "
                                                   "are not collected")]


class LineLive(TypedDict):
    id: str
    name: str
    output_machine: str
    target_oee: float
    last_data: float | None
    machines: list[MachineLive]


class Lines(TypedDict):
    """Lines with their machines' live state."""

    now: Epoch
    gap_timeout_s: float
    lines: list[LineLive]


class ShiftContext(TypedDict):
    """The current shift (the last one between shifts): the andon's pace is for it."""

    name: str
    label: str
    start: Epoch
    end: Epoch
    planned_s: Annotated[float, Doc("the shift's planned time: shift minus breaks")]
    planned_elapsed_s: Annotated[float, Doc("of that, the part up to now")]
    planned_now: Annotated[bool, Doc("inside the shift and not on a break")]


AndonStatus = Literal["running", "poor", "down", "changeover", "planned", "nodata"]


class LineAndon(TypedDict):
    """A line's andon status and pace this shift (``domain.andon.LineAndon``): what the wall shows."""

    status: Annotated[AndonStatus, Doc(
        "andon status: the worst live machine decides (fault first, then changeover, idle, blocked, starved, "
        "planned stop; the longest stopped); all running: poor when the shift's performance is below 80 %; a stop "
        "outside planned time or with a planned reason is planned (and does not stop a line whose other machines "
        "run); no machine with live data: nodata")]
    status_machine: Annotated[str | None, Doc("the machine that decides the status (the blamed stopped machine, "
                                              "else the running output machine)")]
    status_state: Annotated[str | None, Doc("that machine's state")]
    status_since: Annotated[float | None, Doc("since when (epoch s); nodata: the line's last data")]
    status_reason: Annotated[LiveReason | None, Doc("the blamed machine's reason, as MachineLive's")]
    planned_now: Annotated[bool, Doc("inside the shift and not on a break")]
    stale: Annotated[bool, Doc("no machine of the line has live data (all silent for longer than gap_timeout_s, "
                               "link down or state unknown): the screens say 'no data since' last_data")]
    stale_machines: Annotated[list[str], Doc("the machines without live data")]
    output: Annotated[int | None, Doc("good parts this shift (the output machine's)")]
    target_so_far: Annotated[int | None, Doc("planned time elapsed this shift x target_oee / the output machine's "
                                             "ideal cycle time, whole parts")]
    target_shift: Annotated[int | None, Doc("the same over the whole shift's planned time")]
    pace: Annotated[int | None, Doc("output - target_so_far: ahead (+) or behind (-)")]
    behind_by: Annotated[int | None, Doc("parts short of target_so_far (0 on or ahead)")]


class LineWithAndon(LineLive, LineAndon):
    """A line's live state with its andon status and pace."""


class LinesWithAndon(TypedDict):
    """Lines with their machines' live state, each with its andon status and pace this shift (/api/lines)."""

    now: Epoch
    gap_timeout_s: float
    shift: ShiftContext
    lines: list[LineWithAndon]


# --- health --------------------------------------------------------------------------------

class RedisHealth(TypedDict):
    ok: bool
    latency_ms: NotRequired[float]
    error: NotRequired[str]


class Durability(TypedDict):
    """Does Redis keep its data (not part of ok)."""

    ok: bool
    checked: bool
    source: Literal["config", "info", "none"]
    persistent: bool | None
    aof: bool | None
    aof_fsync: str | None
    rdb_save: str | None
    eviction_policy: str | None
    maxmemory_bytes: int | None
    error: str | None
    warnings: list[str]


DataLoss = TypedDict("DataLoss", {"from": float | None, "to": float | None, "detected": float | None})
DataLoss.__doc__ = "The rollup worker found its bookkeeping gone while data existed: figures in [from, to] " \
                   "are incomplete."


class WorkerHealth(TypedDict):
    ok: bool
    beat: float | None
    beat_age_s: float | None
    pending: int | None
    undelivered_s: Annotated[float, Doc("age of the oldest entry not yet delivered (0: none)")]
    closed_until: float | None
    closed_lag_s: float | None


class BadNode(MachineBadNode):
    machine: str


class RefusedEndpoint(TypedDict):
    """An endpoint whose server certificate the trust list refused: SHA-256 thumbprint and how to trust it."""

    endpoint: str
    status: str
    thumbprint: str
    hint: str
    since: float | None


class CollectorProblems(TypedDict):
    bad_nodes: Annotated[list[BadNode], Doc("nodes the OPC UA server refused (the rest is collected)")]
    refused_endpoints: list[RefusedEndpoint]


class LineHealth(CollectorProblems):
    id: str
    ok: bool
    status: LineStatus
    data_loss: DataLoss | None
    last_data: float | None
    last_data_age_s: float | None
    stream_length: int | None
    worker: WorkerHealth


class Health(TypedDict):
    """Redis reachable, collectors' last data, rollup worker lag."""

    ok: bool
    status: HealthStatus
    now: Epoch
    redis: RedisHealth
    lines: list[LineHealth]
    durability: Durability | None


# --- the operator loop ---------------------------------------------------------------------

class Stops(TypedDict):
    """Stops of a window with stable ids, the PLC's and a person's reason."""

    line: str
    window: Window
    stops: list[StopEvent]
    untagged_coverage: Annotated[float | None, Doc("share of unplanned down time with a reason")]
    untagged_stops: int
    untagged_down_s: float
    tagged_down_s: float


ReasonSource = Annotated[Literal["managed", "plant file"], Doc("managed in the data store, else the plant file's")]


class Reasons(TypedDict):
    """The reasons a person may pick on a line (retired ones left out)."""

    line: str
    by_category: Annotated[dict[str, list[tuple[int, str]]], Doc("loss category -> [[code, text], ...]")]
    codes: Annotated[list[int] | None, Doc("the line's own list; null: the plant-wide list")]
    source: ReasonSource


class ReasonEntry(TypedDict):
    """One reason of the plant-wide list."""

    code: int
    text: Annotated[str | dict[str, str], Doc("a text, or one per language {en, zh-CN}")]
    category: str
    planned: bool
    retired: Annotated[bool, Doc("kept for the stops that carry it (figures), no longer offered to pick")]


class LineReasonList(TypedDict):
    codes: Annotated[list[int] | None, Doc("the line's own list; null: the plant-wide list")]
    source: ReasonSource


class ReasonLists(TypedDict):
    """The plant-wide reason list and each line's."""

    reasons: list[ReasonEntry]
    source: ReasonSource
    lines: dict[str, LineReasonList]


class Classification(TypedDict):
    """A person's classification of a stop."""

    id: str
    plc_reason: int
    reason: int
    comment: str
    by: str
    at: Epoch
    splits: Annotated[list[tuple[float, int]], Doc("[time, reason] from which a later part of the stop has "
                                                   "that reason")]
    end: Annotated[float | None, Doc("the stop's end when classified (null: it was ongoing); a stop that late "
                                     "data moves keeps the classification covering most of it")]


class HandoverFigures(TypedDict):
    """The shift's line KPIs frozen at sign-off."""

    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    good_count: int
    reject_count: int
    down_s: float
    planned_busy_s: float
    untagged_coverage: float | None
    window: Window


class Handover(TypedDict):
    line: str
    shift: str
    shift_start: Epoch
    shift_end: Epoch
    note: str
    open_issues: str
    note_by: NotRequired[str]
    note_at: NotRequired[float]
    signed_by: str | None
    signed_at: float | None
    figures: HandoverFigures | None
    acknowledged_by: str | None
    acknowledged_at: float | None


class Handovers(TypedDict):
    line: str
    handovers: list[Handover]


class AuditEntry(TypedDict):
    seq: int
    ts: Epoch
    actor: str
    kind: str
    role: str
    addr: str | None
    action: str
    line: str | None
    target: str | None
    before: Any
    after: Any
    ok: bool
    prev: str
    hash: str


class Audit(TypedDict):
    entries: list[AuditEntry]


class Login(TypedDict):
    user: str
    role: str
    lines: list[str]
    csrf: Annotated[str, Doc("send it as X-CSRF-Token with every write")]


class Logout(TypedDict):
    user: None


class Session(TypedDict):
    """Who is logged in (``user`` null: nobody), with the CSRF token for writes."""

    user: str | None
    require_login: NotRequired[bool]
    role: NotRequired[str]
    lines: NotRequired[list[str]]
    kind: NotRequired[str]
    csrf: NotRequired[str]


class User(TypedDict):
    name: str
    role: str
    lines: list[str]
    disabled: bool


class Users(TypedDict):
    users: list[User]


# --- alerts --------------------------------------------------------------------------------

class AlertAck(TypedDict):
    by: str
    role: str
    at: Epoch
    comment: str


class Alert(TypedDict):
    id: Annotated[str, Doc("<rule>|<line>|<machine>|<condition start, epoch ms>")]
    key: str
    rule: str
    line: str
    machine: str | None
    severity: Literal["info", "warning", "urgent"]
    text: str
    since: Annotated[float, Doc("data time the condition began")]
    raised_at: Epoch
    level: Annotated[int, Doc("index of the last channel told (-1: none)")]
    notified_at: float | None
    cleared_at: float | None
    late: Annotated[bool, Doc("found only in late data, its condition had ended: sent nowhere")]
    message: Annotated[dict[str, Any] | None, Doc("the text as a message key and its values (for translation)")]
    ack: AlertAck | None
    flashing: bool


class Alerts(TypedDict):
    now: Epoch
    alerts: list[Alert]


class AlertAcknowledged(TypedDict):
    id: str
    ack: AlertAck
