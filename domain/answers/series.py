"""The charts' series: KPIs per bucket, average power per bucket, the state timeline.
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired[...] at class creation
# (``__required_keys__``), which string annotations would hide
from typing import Annotated

from typing_extensions import TypedDict

from domain.answers.common import Doc, Epoch, Window
from domain.answers.kpi_reports import Kpis


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


class PowerSeries(TypedDict):
    """Average kW per machine per bucket (None: an empty bucket)."""

    line: str
    step_s: float
    window: Window
    starts: list[float]
    machines: dict[str, list[float | None]]


Segment = Annotated[tuple[float, float, str, int], Doc("[start, end, state, reason code (0: none)]")]


class MachineTimeline(TypedDict):
    id: str
    segments: list[Segment]


class Timeline(TypedDict):
    """Per machine, the effective-state segments of the window."""

    line: str
    window: Window
    machines: list[MachineTimeline]
