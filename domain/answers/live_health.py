"""The live answers: the lines' live state with each line's andon status and pace, and
health (Redis, the collectors' last data, the rollup worker).
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired[...] at class creation
# (``__required_keys__``), which string annotations would hide
from typing import Annotated, Literal, NotRequired

from typing_extensions import TypedDict

from domain.answers.common import Doc, Epoch

HealthStatus = Literal["ok", "data_lost", "degraded", "redis_down"]
LineStatus = Literal["ok", "data_lost", "no_data", "stale", "worker_behind"]
MachineState = Literal["running", "idle", "starved", "blocked", "fault", "changeover", "planned_stop", "unknown"]


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
