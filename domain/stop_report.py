"""The downtime report of a window's stops (``downtime_report``): the list of stops, Pareto
by reason (duration and count), per machine, MTBF and MTTR. How each stop counts:
``domain.downtime``."""

from __future__ import annotations

from collections.abc import Sequence
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
    claimed_spans,
    classify_stop,
)
from domain.plant import LossCategory, Plant

# per (stop object, its span): the plant, the stop and its event (a caller's cache: ``downtime_report``)
KeptEvents = dict[tuple[int, float, float], tuple[Plant, Stop, StopEvent]]
MAX_KEPT_EVENTS = 100_000  # events kept in such a cache (about 1 kB each; then it starts again): 50 lines of 1,500


def downtime_report(stops: Sequence[Stop], plant: Plant, start: float, end: float, now: float,
                    run_s: float | None = None, kept: KeptEvents | None = None, *,
                    listed: bool = True) -> DowntimeReport:
    """Downtime list, Pareto by reason (duration and count), per machine, MTBF and MTTR,
    and how much of the down time has a reason (``classification.coverage``'s figures).

    ``lost_s`` of a stop is its time inside planned operation time and inside the window
    (the loss it caused there); Pareto, per-machine sums and MTTR use it. Planned stops
    are listed but are not losses. ``run_s`` (from the window's Totals) gives MTBF.
    Definitions: README "Definitions" and ``reliability``.

    ``kept``: the events of ended stops made before, by stop object and span (an ended
    stop's event does not depend on ``now``), for a caller that asks again with the same
    stop objects (a reader: late in a shift a line has over a thousand stops).
    ``listed=False``: without the list (``events`` empty): the figures only.
    """
    edge = min(end, now)
    planned = PlannedIndex(plant, start, edge)
    events = [_kept_event(stop, span, plant, planned, now, kept, listed)
              for stop, span in claimed_spans(stops, start, edge, now)]
    losses: list[StopEvent] = []
    stops_n = micro_n = planned_n = untagged_n = 0
    down_s: float = 0  # summed in the events' order, from 0 (as ``sum`` would)
    micro_s: float = 0
    planned_s: float = 0
    tagged_s = 0.0  # the part of ``down_s`` with a reason
    for event in events:
        lost = event["lost_s"]
        if event["planned"]:
            planned_n += 1
            planned_s += lost
        elif lost > 0:
            losses.append(event)
            if event["micro"]:
                micro_n += 1
                micro_s += lost
            else:
                stops_n += 1
                down_s += lost
                if event["reason"]:
                    tagged_s += lost
                else:
                    untagged_n += 1
    # the untagged figures (``classification.coverage``'s) from the same events
    tagged = Coverage(down_s=float(down_s), tagged_s=tagged_s, untagged_stops=untagged_n)
    groups = _groups(losses, plant)
    return {
        "window": {"start": start, "end": end},
        "micro_stop_threshold_s": plant.micro_stop_threshold_s,
        "events": events if listed else [],
        "pareto": {"by_duration": _ranked(groups, "duration"), "by_count": _ranked(groups, "count")},
        "by_machine": _by_machine(losses),
        "summary": {"stops": stops_n, "micro_stops": micro_n, "planned_stops": planned_n, "down_s": down_s,
                    "micro_stop_s": micro_s, "planned_down_s": planned_s, **tagged.to_dict()},
        **reliability(losses, run_s),
    }


def _kept_event(stop: Stop, span: Interval, plant: Plant, planned: PlannedIndex, now: float,
                kept: KeptEvents | None, copy: bool = True) -> StopEvent:
    """``_event``, from ``kept`` for an ended stop made into an event before (``copy``: a
    copy, which the caller may add to)."""
    if kept is None or stop.end is None:
        return _event(stop, span, plant, planned, now)
    key = (id(stop), span[0], span[1])
    got = kept.get(key)
    if got is not None and got[0] is plant and got[1] is stop:
        return cast(StopEvent, dict(got[2])) if copy else got[2]
    event = _event(stop, span, plant, planned, now)
    if len(kept) >= MAX_KEPT_EVENTS:
        kept.clear()
    kept[key] = (plant, stop, cast(StopEvent, dict(event)) if copy else event)  # holds the stop: its id stays its
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


def _group(event: StopEvent) -> str:
    if event["reason"]:
        return str(event["reason"])
    return SMALL_STOP_GROUP if event["micro"] else NO_REASON_GROUP


def _group_label(group: str, event: StopEvent, plant: Plant) -> str:
    if group == SMALL_STOP_GROUP:
        return f"Small stops (no reason, < {plant.micro_stop_threshold_s:g} s)"
    if group == NO_REASON_GROUP:
        return NO_REASON_TEXT
    return str(event["reason_text"])


def _groups(losses: Sequence[StopEvent], plant: Plant) -> list[ParetoRow]:
    """The loss events' Pareto rows, grouped by reason code ('no_reason' and 'small_stops'
    for stops without a code): count and lost time per group, shares not set yet."""
    groups: dict[str, ParetoRow] = {}
    for event in losses:
        key = _group(event)
        row = groups.get(key)
        if row is None:
            row = groups[key] = {
                "group": key,
                "reason": event["reason"] or None,
                "label": _group_label(key, event, plant),
                "category": event["category"],
                "count": 0,
                "duration_s": 0.0,
                "share": 0.0,
                "cumulative_share": 0.0,
            }
        row["count"] += 1
        row["duration_s"] += event["lost_s"]
    return list(groups.values())


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


def _by_machine(losses: Sequence[StopEvent]) -> list[MachineDowntime]:
    rows: dict[tuple[str, str], MachineDowntime] = {}
    for event in losses:
        key = (event["line"], event["machine"])
        row = rows.get(key)
        if row is None:
            row = rows[key] = {"line": event["line"], "machine": event["machine"], "count": 0, "duration_s": 0.0}
        row["count"] += 1
        row["duration_s"] += event["lost_s"]
    return sorted(rows.values(), key=lambda r: (-r["duration_s"], -r["count"], r["line"], r["machine"]))


def reliability(losses: Sequence[StopEvent], run_s: float | None) -> Reliability:
    """MTBF = run time / failures, MTTR = failure down time / failures.

    Failures: equipment-failure stops (not planned, not micro) with lost time in the
    window; their down time is clipped to the window and to planned operation time.
    """
    failures = [e for e in losses if e["category"] == LossCategory.EQUIPMENT_FAILURE and not e["micro"]]
    failure_down_s = sum(e["lost_s"] for e in failures)
    n = len(failures)
    return {
        "failures": n,
        "failure_down_s": failure_down_s,
        "run_s": run_s,
        "mtbf_s": run_s / n if n and run_s is not None else None,
        "mttr_s": failure_down_s / n if n else None,
    }
