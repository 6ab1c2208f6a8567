"""The downtime report of a window's stops (``downtime_report``): the list of stops, Pareto
by reason (duration and count), per machine, MTBF and MTTR. How each stop counts:
``domain.downtime``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from domain.accounting import Stop
from domain.answers import DowntimeReport, MachineDowntime, ParetoRow, Reliability, StopEvent
from domain.calendar import Interval
from domain.classification import Coverage
from domain.downtime import (
    NO_REASON_GROUP,
    NO_REASON_TEXT,
    SMALL_STOP_GROUP,
    PlannedIndex,
    PlannedIndexes,
    claimed_spans,
    classify_stop,
)
from domain.plant import Plant
from domain.stop_sums import GroupSums, KeptSums, MachineSums, added, sums_by_machine

# per (stop object, its span): the plant, the stop and its event (a caller's cache: ``downtime_report``)
KeptEvents = dict[tuple[int, float, float], tuple[Plant, Stop, StopEvent]]
MAX_KEPT_EVENTS = 100_000  # events kept in such a cache (about 1 kB each; then it starts again): 50 lines of 1,500


@dataclass(slots=True)
class Kept:
    """What a caller that asks again with the same stop objects (a reader) keeps between
    reports: ended stops' events (the list), machines' settled sums (``domain.stop_sums``)."""

    events: KeptEvents = field(default_factory=dict)
    sums: KeptSums = field(default_factory=dict)
    planned: PlannedIndexes = field(default_factory=PlannedIndexes)  # the windows' planned time

    def clear(self) -> None:
        self.events.clear()
        self.sums.clear()


def downtime_report(stops: Sequence[Stop], plant: Plant, start: float, end: float, now: float,
                    run_s: float | None = None, kept: Kept | None = None, *,
                    listed: bool = True) -> DowntimeReport:
    """Downtime list, Pareto by reason (duration and count), per machine, MTBF and MTTR,
    and how much of the down time has a reason (``classification.coverage``'s figures).

    ``lost_s`` of a stop is its time inside planned operation time and inside the window
    (the loss it caused there); Pareto, per-machine sums and MTTR use it. Planned stops
    are listed but are not losses. ``run_s`` (from the window's Totals) gives MTBF.
    Definitions: README "Definitions" and ``reliability``. The figures are summed per
    machine, in start order (``domain.stop_sums``), then over the machines in order.

    ``kept``: what was made before of the same stop objects (an ended stop's event and a
    machine's settled sums do not depend on ``now``), for a caller that asks again with
    them (a reader: late in a shift a line has over a thousand stops).
    ``listed=False``: without the list (``events`` empty): the figures only.
    """
    edge = min(end, now)
    planned = kept.planned.covering(plant, start, edge) if kept is not None else PlannedIndex(plant, start, edge)
    sums = sums_by_machine(stops, plant, start, end, now, kept.sums if kept is not None else None, planned)
    if listed:
        events = [_kept_event(stop, span, plant, planned, now, kept.events if kept is not None else None)
                  for stop, span in claimed_spans(stops, start, edge, now)]
    else:
        events = []
    total = added(part for _, part in sums)
    tagged = Coverage.of(total)
    groups = _groups(sums, plant)
    return {
        "window": {"start": start, "end": end},
        "micro_stop_threshold_s": plant.micro_stop_threshold_s,
        "events": events,
        "pareto": {"by_duration": _ranked(groups, "duration"), "by_count": _ranked(groups, "count")},
        "by_machine": _by_machine(sums),
        "summary": {"stops": total.stops, "micro_stops": total.micro_stops, "planned_stops": total.planned_stops,
                    "down_s": total.down_s, "micro_stop_s": total.micro_stop_s,
                    "planned_down_s": total.planned_down_s, **tagged.to_dict()},
        **reliability(total.failures, total.failure_down_s, run_s),
    }


def _kept_event(stop: Stop, span: Interval, plant: Plant, planned: PlannedIndex, now: float,
                kept: KeptEvents | None) -> StopEvent:
    """``_event``, from ``kept`` (a copy, which the caller may add to) for an ended stop made
    into an event before."""
    if kept is None or stop.end is None:
        return _event(stop, span, plant, planned, now)
    key = (id(stop), span[0], span[1])
    got = kept.get(key)
    if got is not None and got[0] is plant and got[1] is stop:
        return cast(StopEvent, dict(got[2]))
    event = _event(stop, span, plant, planned, now)
    if len(kept) >= MAX_KEPT_EVENTS:
        kept.clear()
    kept[key] = (plant, stop, cast(StopEvent, dict(event)))  # holds the stop: its id stays its
    return event


def _event(stop: Stop, span: Interval, plant: Plant, planned: PlannedIndex, now: float) -> StopEvent:
    cls = classify_stop(stop, plant, now)
    return {
        "line": stop.line,
        "machine": stop.machine,
        "start": stop.start,
        "end": stop.end,
        "ongoing": stop.end is None,
        "duration_s": stop.duration(now),
        "in_window_s": span[1] - span[0],
        "lost_s": planned.seconds(*span),
        "state": str(stop.state),
        "reason": stop.reason,
        "reason_text": cls.reason_text,
        "category": str(cls.category),
        "planned": cls.planned,
        "micro": cls.micro,
    }


def _groups(sums: Sequence[tuple[tuple[str, str], MachineSums]], plant: Plant) -> list[ParetoRow]:
    """The machines' Pareto groups added up (in the machines' order): count and lost time per
    group ('no_reason' and 'small_stops' for stops without a code), reason, label and
    category of its first stop (by start; the first machine's, of stops that start together);
    shares not set yet."""
    firsts: dict[str, GroupSums] = {}
    groups: dict[str, ParetoRow] = {}
    for _, part in sums:
        for key, group in part.groups.items():
            row = groups.get(key)
            if row is None:
                row = groups[key] = {"group": key, "reason": None, "label": "", "category": "", "count": 0,
                                     "duration_s": 0.0, "share": 0.0, "cumulative_share": 0.0}
            first = firsts.get(key)
            if first is None or group.first < first.first:
                firsts[key] = group
            row["count"] += group.count
            row["duration_s"] += group.duration_s
    for key, row in groups.items():
        first = firsts[key]
        row["reason"] = first.reason or None
        row["category"] = first.category
        row["label"] = _group_label(key, first.reason_text, plant)
    return list(groups.values())


def _group_label(group: str, reason_text: str, plant: Plant) -> str:
    if group == SMALL_STOP_GROUP:
        return f"Small stops (no reason, < {plant.micro_stop_threshold_s:g} s)"
    if group == NO_REASON_GROUP:
        return NO_REASON_TEXT
    return reason_text


def _ranked(groups: Sequence[ParetoRow], by: str) -> list[ParetoRow]:
    """Copies of the rows, sorted by lost time (``by="duration"``) or count, with their shares."""

    def metric(r: ParetoRow) -> float:
        return r["duration_s"] if by == "duration" else r["count"]

    def other(r: ParetoRow) -> float:
        return r["count"] if by == "duration" else r["duration_s"]

    rows = sorted((cast(ParetoRow, dict(r)) for r in groups), key=lambda r: (-metric(r), -other(r), r["group"]))
    grand = sum(metric(r) for r in rows)
    running = 0.0
    for row in rows:
        running += metric(row)
        row["share"] = metric(row) / grand if grand else 0.0
        row["cumulative_share"] = running / grand if grand else 0.0
    return rows


def _by_machine(sums: Sequence[tuple[tuple[str, str], MachineSums]]) -> list[MachineDowntime]:
    rows: list[MachineDowntime] = [{"line": line, "machine": machine, "count": part.losses, "duration_s": part.lost_s}
                                   for (line, machine), part in sums if part.losses]
    return sorted(rows, key=lambda r: (-r["duration_s"], -r["count"], r["line"], r["machine"]))


def reliability(failures: int, failure_down_s: float, run_s: float | None) -> Reliability:
    """MTBF = run time / failures, MTTR = failure down time / failures.

    Failures: equipment-failure stops (not planned, not micro) with lost time in the
    window; their down time is clipped to the window and to planned operation time.
    """
    return {
        "failures": failures,
        "failure_down_s": failure_down_s,
        "run_s": run_s,
        "mtbf_s": run_s / failures if failures and run_s is not None else None,
        "mttr_s": failure_down_s / failures if failures else None,
    }
