"""OEE, TEEP, Six Big Losses and energy KPIs from additive Totals (ISO 22400-2).

Definitions (README "Definitions"):

* PBT (planned busy time) = planned operation time (shifts minus breaks) - planned
  down time. Unknown time (no data) is part of PBT but neither running nor down, so
  ratios use the **known** planned busy time KPBT = PBT - unknown; unknown time is
  reported next to them. APT (actual production time) = run time + micro-stop time
  (small stops are a performance loss, not an availability loss).
* Availability A = APT / KPBT. Performance P = ideal time / APT, with ideal time = sum
  of ideal cycle time x total count; reported as measured, never clamped: P > 1 means
  the ideal cycle time is wrong, and ``flags.performance_over_100`` says so.
  Quality Q = good / total; for sums over machines with different ideal cycle times it
  is weighted by ideal cycle time (good ideal time / ideal time), which is the same for
  one machine and keeps A x P x Q = OEE for lines and the plant.
* OEE = good ideal time / KPBT (= good x ideal cycle time / KPBT for one machine)
  = A x P x Q. TEEP = OEE x KPBT / calendar time = good ideal time / calendar time.
* A ratio whose denominator is 0 is None (undefined): A and OEE without known planned
  busy time, P without production time, Q without parts, TEEP for an empty window. OEE
  is 0 (not None) when there was known planned time but no output.
* Six Big Losses in seconds: equipment_failure, setup_adjustment (availability);
  small_stops = micro-stop time, reduced_speed = run time - ideal time (performance;
  negative exactly when P > 1); production_rejects = ideal time of rejects;
  startup_rejects = 0: telling startup scrap apart needs a signal the product does not
  read (a warm-up flag or a separate counter), so all rejects are production rejects.
  starved_blocked and unexplained are the other availability losses (so availability
  losses add up to down time).
* Lines: times, counts and ideal time come from the line's output machine (what the
  line delivers, and the time it could deliver), energy from all its machines. The
  plant: the sum of its lines (times and counts first, ratios last, never averaged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.accounting import Stop
from domain.answers import EnergyKpis, Losses
from domain.downtime import classified as classified_totals
from domain.downtime import classify_totals, loss_buckets
from domain.energy import peak_kw
from domain.plant import Line, Plant
from domain.totals import Totals, sum_totals

ENERGY_FIELDS = ("energy_kwh", "energy_not_running_kwh", "energy_cost", "co2_kg")
_OVER_100_TOLERANCE = 1e-9


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def known_planned_busy_s(t: Totals) -> float:
    """PBT - unknown, added up from its parts (so A = APT / KPBT cannot exceed 1 by
    rounding, as PBT - unknown can)."""
    return t.run_s + t.micro_stop_s + t.down_s


@dataclass(frozen=True, slots=True)
class KpiReport:
    """KPIs of one machine, line or the plant over a window. ``totals`` are classified."""

    start: float
    end: float
    totals: Totals
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    teep: float | None
    window_s: float  # the part of the window that has passed: [start, min(end, now))
    currency: str
    micro_stop_threshold_s: float

    @property
    def known_planned_busy_s(self) -> float:
        return known_planned_busy_s(self.totals)

    @property
    def actual_production_s(self) -> float:
        return self.totals.run_s + self.totals.micro_stop_s

    @property
    def good_ideal_time_s(self) -> float:
        return self.totals.ideal_time_s - self.totals.reject_ideal_time_s

    @property
    def performance_over_100(self) -> bool:
        return self.performance is not None and self.performance > 1 + _OVER_100_TOLERANCE

    def losses(self) -> Losses:
        t = self.totals
        performance_loss = self.actual_production_s - t.ideal_time_s
        return {
            "equipment_failure": t.failure_s,
            "setup_adjustment": t.setup_s,
            "small_stops": t.micro_stop_s,
            "reduced_speed": t.run_s - t.ideal_time_s,
            "production_rejects": t.reject_ideal_time_s,
            "startup_rejects": 0.0,
            "starved_blocked": t.starved_blocked_s,
            "unexplained": t.unexplained_s,
            "unknown": t.unknown_s,
            "waterfall": [
                {"step": "planned_busy_time", "kind": "total", "seconds": t.planned_busy_s},
                {"step": "unknown", "kind": "excluded", "seconds": t.unknown_s},
                {"step": "availability_losses", "kind": "loss", "seconds": t.down_s},
                {"step": "performance_losses", "kind": "loss", "seconds": performance_loss},
                {"step": "quality_losses", "kind": "loss", "seconds": t.reject_ideal_time_s},
                {"step": "fully_productive_time", "kind": "total", "seconds": self.good_ideal_time_s},
            ],
        }

    def energy(self) -> EnergyKpis:
        t = self.totals
        return {
            "kwh": t.energy_kwh,
            "avg_kw": ratio(t.energy_kwh, self.window_s / 3600.0),
            "peak_kw": peak_kw(t.quarter_kwh),
            "kwh_per_unit": ratio(t.energy_kwh, t.total_count),
            "kwh_per_good_unit": ratio(t.energy_kwh, t.good_count),
            "not_running_kwh": t.energy_not_running_kwh,
            "not_running_share": ratio(t.energy_not_running_kwh, t.energy_kwh),
            "cost": t.energy_cost,
            "currency": self.currency,
            "co2_kg": t.co2_kg,
        }

    def to_dict(self) -> dict[str, Any]:
        t = self.totals
        return {
            "window": {"start": self.start, "end": self.end},
            "availability": self.availability,
            "performance": self.performance,
            "quality": self.quality,
            "oee": self.oee,
            "teep": self.teep,
            "calendar_s": t.calendar_s,
            "planned_operation_s": t.planned_operation_s,
            "planned_down_s": t.planned_down_s,
            "planned_busy_s": t.planned_busy_s,
            "known_planned_busy_s": self.known_planned_busy_s,
            "run_s": t.run_s,
            "down_s": t.down_s,
            "unknown_s": t.unknown_s,
            "micro_stop_s": t.micro_stop_s,
            "unplanned_run_s": t.unplanned_run_s,
            "stops": t.stops,
            "total_count": t.total_count,
            "good_count": t.good_count,
            "reject_count": t.reject_count,
            "unplanned_good_count": t.unplanned_good_count,
            "unplanned_reject_count": t.unplanned_reject_count,
            "ideal_time_s": t.ideal_time_s,
            "losses": self.losses(),
            "energy": self.energy(),
            "flags": {
                "performance_over_100": self.performance_over_100,
                "micro_stop_threshold_s": self.micro_stop_threshold_s,
            },
        }


def kpis(totals: Totals, stops: Sequence[Stop], plant: Plant, start: float, end: float, now: float) -> KpiReport:
    """KPIs of a window from its totals (raw sums of minute rollups, or already classified:
    the stop-dependent fields are recomputed) and the Stop records overlapping it.

    ``stops`` must be those of the machine(s) whose totals these are: a stop of another
    machine would be counted against this one."""
    classified = classify_totals(totals, stops, plant, start, end, now)
    return report(classified, plant, start, end, now)


def report(classified: Totals, plant: Plant, start: float, end: float, now: float) -> KpiReport:
    """KPIs from classified totals (definitions: module docstring)."""
    t = classified
    known = known_planned_busy_s(t)
    apt = t.run_s + t.micro_stop_s
    good_ideal = t.ideal_time_s - t.reject_ideal_time_s
    oee = ratio(good_ideal, known)
    return KpiReport(
        start=start,
        end=end,
        totals=t,
        availability=ratio(apt, known),
        performance=ratio(t.ideal_time_s, apt),
        quality=ratio(good_ideal, t.ideal_time_s),
        oee=oee,
        teep=ratio(good_ideal, t.calendar_s),
        window_s=max(0.0, min(end, now) - start),
        currency=plant.tariff.currency,
        micro_stop_threshold_s=plant.micro_stop_threshold_s,
    )


def with_energy_of(production: Totals, machines: Sequence[Totals]) -> Totals:
    """``production`` totals with the energy of ``machines`` (all of a line's machines)."""
    out = production.copy()
    for name in ENERGY_FIELDS:
        setattr(out, name, sum(getattr(m, name) for m in machines))
    quarters: dict[float, float] = {}
    for m in machines:
        for q, kwh in m.quarter_kwh.items():
            quarters[q] = quarters.get(q, 0.0) + kwh
    out.quarter_kwh = quarters
    return out


def line_totals(totals_by_machine: Mapping[str, Totals], stops: Sequence[Stop], plant: Plant, line: Line,
                start: float, end: float, now: float) -> Totals:
    """Classified totals of a line: the output machine's time and counts, all machines' energy."""
    output = line.output_machine
    own_stops = [s for s in stops if s.machine == output and s.line == line.id]
    return line_totals_of(totals_by_machine, line, *loss_buckets(own_stops, plant, start, end, now))


def line_totals_of(totals_by_machine: Mapping[str, Totals], line: Line, buckets: dict[str, float],
                   counted: int) -> Totals:
    """``line_totals`` from its output machine's ``downtime.loss_buckets`` (a reader keeps
    them with the machine's settled stops: ``domain.stop_sums``)."""
    production = classified_totals(totals_by_machine.get(line.output_machine, Totals()), buckets, counted)
    machines = [totals_by_machine[m.id] for m in line.machines if m.id in totals_by_machine]
    return with_energy_of(production, machines)


def line_kpis(totals_by_machine: Mapping[str, Totals], stops: Sequence[Stop], plant: Plant, line: Line,
              start: float, end: float, now: float) -> KpiReport:
    """A line's KPIs: see ``line_totals``. ``stops``: the line's stops (others are ignored)."""
    return report(line_totals(totals_by_machine, stops, plant, line, start, end, now), plant, start, end, now)


def plant_kpis(totals_by_line: Mapping[str, Mapping[str, Totals]], stops: Sequence[Stop], plant: Plant,
               start: float, end: float, now: float) -> KpiReport:
    """The plant's KPIs: line totals summed (times and counts first), then ratios.

    ``totals_by_line``: line id -> machine id -> totals (raw or classified)."""
    per_line = [
        line_totals(totals_by_line[line.id], stops, plant, line, start, end, now)
        for line in plant.lines
        if line.id in totals_by_line
    ]
    return report(sum_totals(per_line), plant, start, end, now)
