"""Additive per-machine totals: the unit of rollups and of every KPI.

Times and counts add up across minutes, hours, machines and lines; ratios are taken
only at the end (``domain.kpi.kpis``), so combining never averages percentages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(slots=True)
class Totals:
    """Sums over an interval for one machine (or a sum of machines).

    Definitions (see README "Definitions"):
    * ``calendar_s``: all time in the window.
    * ``planned_operation_s``: shift time minus breaks (planned busy time before
      planned stops taken at the machine).
    * ``planned_down_s``: planned stops inside planned operation time (PLANNED_STOP
      state, or a stop whose reason is marked planned).
    * ``planned_busy_s`` = planned_operation_s - planned_down_s  (ISO 22400 PBT).
    * ``run_s``: RUNNING inside planned busy time.
    * ``micro_stop_s``: unplanned stops shorter than the micro-stop threshold and
      without a reason: a performance loss, so part of actual production time.
    * ``down_s``: other unplanned stops inside planned busy time (availability loss).
    * ``unknown_s``: no data inside planned busy time; neither run nor down.
      planned_busy_s = run_s + micro_stop_s + down_s + unknown_s.
    * ``unplanned_run_s``: running outside planned busy time (shown, not counted).
    * ``*_count``: parts counted inside planned busy time; ``ideal_time_s`` is the
      sum of ideal cycle time x total count (so machines with different cycle times add).
    * energy over the whole window (a machine draws power on breaks too).
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
    stops: int = 0  # unplanned stops (not micro-stops) that started in the interval
    state_s: dict[str, float] = field(default_factory=dict)  # seconds per canonical state
    # kWh per quarter hour (key: quarter start, epoch seconds) for peak demand, the
    # highest 15-minute average kW = max(kWh) * 4; summing machines sums per quarter.
    quarter_kwh: dict[float, float] = field(default_factory=dict)

    def __add__(self, other: Totals) -> Totals:
        out = Totals()
        for f in fields(Totals):
            if f.name in ("state_s", "quarter_kwh"):
                merged = dict(getattr(self, f.name))
                for k, v in getattr(other, f.name).items():
                    merged[k] = merged.get(k, 0.0) + v
                setattr(out, f.name, merged)
            else:
                setattr(out, f.name, getattr(self, f.name) + getattr(other, f.name))
        return out

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Totals:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]
