"""Additive per-machine totals: the unit of rollups and of every KPI.

Times and counts add up across minutes, hours, machines and lines; ratios are taken
only at the end (``domain.kpi.kpis``), so combining never averages percentages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

# Filled from Stop records for a whole window (``domain.downtime.classify_totals``);
# 0 in the raw minute rollups the engine closes. See ``domain.engine`` for why.
CLASSIFIED_FIELDS = (
    "planned_down_s",
    "planned_busy_s",
    "micro_stop_s",
    "down_s",
    "failure_s",
    "setup_s",
    "starved_blocked_s",
    "unexplained_s",
    "stops",
)


@dataclass(slots=True)
class Totals:
    """Sums over an interval for one machine (or a sum of machines).

    Definitions (see README "Definitions"):
    * ``calendar_s``: all time in the window.
    * ``planned_operation_s``: shift time minus breaks, from the shift calendar.
    * ``stopped_s``: known not-running time (any state but RUNNING and UNKNOWN) inside
      planned operation time. Raw: the engine knows it the moment it happens.
    * ``planned_down_s``: planned stops inside planned operation time (PLANNED_STOP
      state, or a stop whose reason is marked planned).
    * ``planned_busy_s`` = planned_operation_s - planned_down_s  (ISO 22400 PBT).
    * ``run_s``: RUNNING inside planned operation time.
    * ``micro_stop_s``: unplanned stops shorter than the micro-stop threshold and
      without a reason (or with a performance-loss reason): a performance loss, so part
      of actual production time.
    * ``down_s``: other unplanned stops inside planned busy time (availability loss)
      = failure_s + setup_s + starved_blocked_s + unexplained_s.
    * ``unknown_s``: no data inside planned operation time; neither run nor down.
      planned_operation_s = run_s + stopped_s + unknown_s;
      stopped_s = planned_down_s + micro_stop_s + down_s;
      planned_busy_s = run_s + micro_stop_s + down_s + unknown_s.
    * ``unplanned_run_s``: running outside planned operation time (shown, not counted).
    * ``*_count``: parts counted inside planned operation time; ``ideal_time_s`` is the
      sum of ideal cycle time x total count (so machines with different cycle times add).
      Parts counted outside it (no shift, breaks) go to ``unplanned_*_count`` only.
    * energy over the whole window (a machine draws power on breaks too).

    The fields in ``CLASSIFIED_FIELDS`` depend on whole stops (their end and reason);
    the engine's minute rollups leave them 0 and ``domain.downtime.classify_totals``
    fills them for a window from the Stop records overlapping it.
    """

    calendar_s: float = 0.0
    planned_operation_s: float = 0.0
    planned_down_s: float = 0.0
    planned_busy_s: float = 0.0
    run_s: float = 0.0
    micro_stop_s: float = 0.0
    down_s: float = 0.0
    unknown_s: float = 0.0
    unplanned_run_s: float = 0.0
    # availability losses split (seconds): equipment failure vs setup/changeover vs
    # starved/blocked vs unexplained stops
    failure_s: float = 0.0
    setup_s: float = 0.0
    starved_blocked_s: float = 0.0
    unexplained_s: float = 0.0
    total_count: int = 0
    good_count: int = 0
    reject_count: int = 0
    ideal_time_s: float = 0.0  # sum of ideal_cycle_time_s * total_count
    reject_ideal_time_s: float = 0.0  # sum of ideal_cycle_time_s * reject_count
    energy_kwh: float = 0.0
    energy_not_running_kwh: float = 0.0
    energy_cost: float = 0.0
    co2_kg: float = 0.0
    stops: int = 0  # unplanned stops (not micro-stops) that started in the interval and lost planned time
    stopped_s: float = 0.0  # raw: known not-running time inside planned operation time
    unplanned_good_count: int = 0  # good parts counted outside planned operation time
    unplanned_reject_count: int = 0  # rejects counted outside planned operation time
    state_s: dict[str, float] = field(default_factory=dict)  # seconds per canonical state
    # kWh per quarter hour (key: quarter start, epoch seconds) for peak demand, the
    # highest 15-minute average kW = max(kWh) * 4; summing machines sums per quarter.
    quarter_kwh: dict[float, float] = field(default_factory=dict)

    def __add__(self, other: Totals) -> Totals:
        out = Totals()
        for name in _NUMBERS:
            setattr(out, name, getattr(self, name) + getattr(other, name))
        for name in _MAPS:
            merged = dict(getattr(self, name))
            for k, v in getattr(other, name).items():
                merged[k] = merged.get(k, 0.0) + v
            setattr(out, name, merged)
        return out

    def copy(self) -> Totals:
        return Totals() + self

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: quarter keys become text (JSON object keys are always strings)."""
        data: dict[str, object] = {name: getattr(self, name) for name in _NUMBERS}  # what asdict gave, faster
        data["state_s"] = dict(self.state_s)
        data["quarter_kwh"] = {_quarter_key(q): kwh for q, kwh in self.quarter_kwh.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Totals:
        """Inverse of ``to_dict`` (also after a JSON round trip); unknown keys are ignored."""
        known = _NAMES
        values = {k: v for k, v in data.items() if k in known}
        quarters = values.pop("quarter_kwh", None) or {}
        states = values.pop("state_s", None) or {}
        out = cls(**values)  # type: ignore[arg-type]
        out.quarter_kwh = {float(q): float(kwh) for q, kwh in quarters.items()}  # type: ignore[attr-defined]
        out.state_s = {str(s): float(sec) for s, sec in states.items()}  # type: ignore[attr-defined]
        return out


_MAPS = ("state_s", "quarter_kwh")
_NUMBERS = tuple(f.name for f in fields(Totals) if f.name not in _MAPS)  # in field order
_NAMES = frozenset((*_NUMBERS, *_MAPS))


def sum_totals(items: Iterable[Totals]) -> Totals:
    """Sum of many totals (an empty iterable gives zeros)."""
    out = Totals()
    for item in items:
        out = out + item
    return out


def _quarter_key(quarter: float) -> str:
    return str(int(quarter)) if float(quarter).is_integer() else repr(float(quarter))
