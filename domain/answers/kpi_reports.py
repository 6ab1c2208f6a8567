"""The KPI answers: a line's and a machine's ISO 22400 figures over a window, their losses,
energy and flags (``domain.kpi.KpiReport``).
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired[...] at class creation
# (``__required_keys__``), which string annotations would hide
from typing import Annotated, Literal, NotRequired

from typing_extensions import TypedDict

from domain.answers.common import Coverage, Doc, Epoch, Window


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
