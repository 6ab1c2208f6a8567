"""The downtime and energy answers: stops, their Pareto, MTBF and MTTR; a line's energy and
each machine's.
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired[...] at class creation
# (``__required_keys__``), which string annotations would hide
from typing import Annotated, NotRequired

from typing_extensions import TypedDict

from domain.answers.common import Coverage, Doc, Epoch, Window
from domain.answers.kpi_reports import EnergyKpis

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
    """``domain.stop_report.downtime_report``: the answer before the reader adds the line and
    its window."""

    window: Span
    micro_stop_threshold_s: float
    events: list[StopEvent]
    pareto: Pareto
    by_machine: list[MachineDowntime]
    summary: DowntimeSummary


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
