"""Stops classified with the plant config: how each counts, merged per machine, loss buckets
(the downtime list, Pareto, MTBF/MTTR: ``domain.stop_report``).

Classification of one stop (``classify_stop``), in this order:

1. **Planned**: the stop's state is PLANNED_STOP, or its reason is marked ``planned``
   (or has category ``planned``). Planned down time leaves planned busy time.
2. **Performance loss by reason**: a reason with category ``small_stop`` or
   ``reduced_speed`` makes the stop a performance loss (counted with micro-stops).
3. **Micro-stop (small stop)**: no reason code, not a CHANGEOVER, and shorter than
   ``plant.micro_stop_threshold_s`` (wall-clock duration of the whole stop; an ongoing
   stop counts as if it ended at ``now``, so it turns from micro-stop into down time
   when it outlasts the threshold). A performance loss, part of actual production time.
4. **Availability loss** (down time), category from the reason if the code is in the
   plant file, else from the state: FAULT -> equipment_failure, CHANGEOVER ->
   setup_adjustment, STARVED/BLOCKED -> starved_blocked, IDLE -> unexplained.
   A code missing from the plant file is kept and shown as "Unknown reason <code>".

Only a stop's time inside planned operation time (shifts minus breaks) is a loss: a
machine standing still on a break or between shifts loses nothing. Stop records of one
machine that overlap (duplicates, a stale "ongoing" copy) are merged first: each second
belongs to the earliest stop that covers it, and an ongoing stop ends at the latest
where the machine's next stop starts. So losses never exceed the time they occur in.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from domain.accounting import Stop
from domain.calendar import Interval, planned_busy_intervals, total
from domain.energy import zone
from domain.model import State
from domain.plant import LossCategory, Plant
from domain.stop_groups import stops_by_machine
from domain.totals import Totals

# Where the seconds of a stop go in Totals, by loss category.
_FIELD_OF = {
    LossCategory.PLANNED: "planned_down_s",
    LossCategory.SMALL_STOP: "micro_stop_s",
    LossCategory.REDUCED_SPEED: "micro_stop_s",
    LossCategory.EQUIPMENT_FAILURE: "failure_s",
    LossCategory.SETUP_ADJUSTMENT: "setup_s",
    LossCategory.STARVED_BLOCKED: "starved_blocked_s",
    LossCategory.UNEXPLAINED: "unexplained_s",
}
LOSS_FIELDS = ("planned_down_s", "micro_stop_s", "failure_s", "setup_s", "starved_blocked_s", "unexplained_s")
AVAILABILITY_FIELDS = ("failure_s", "setup_s", "starved_blocked_s", "unexplained_s")
_PERFORMANCE = (LossCategory.SMALL_STOP, LossCategory.REDUCED_SPEED)
_STATE_CATEGORY = {
    State.FAULT: LossCategory.EQUIPMENT_FAILURE,
    State.CHANGEOVER: LossCategory.SETUP_ADJUSTMENT,
    State.STARVED: LossCategory.STARVED_BLOCKED,
    State.BLOCKED: LossCategory.STARVED_BLOCKED,
    State.PLANNED_STOP: LossCategory.PLANNED,
}
NO_REASON_TEXT = "No reason"
SMALL_STOP_GROUP = "small_stops"
NO_REASON_GROUP = "no_reason"


@dataclass(frozen=True, slots=True)
class StopClass:
    """How one stop counts: category, planned, micro-stop (performance loss), reason text."""

    category: LossCategory
    planned: bool
    micro: bool
    reason_text: str

    @property
    def loss_field(self) -> str:
        return _FIELD_OF[self.category]

    @property
    def is_availability_loss(self) -> bool:
        return not self.planned and not self.micro


def reason_text(plant: Plant, code: int) -> str:
    if not code:
        return NO_REASON_TEXT
    reason = plant.reasons.get(code)
    return reason.text if reason is not None else f"Unknown reason {code}"


def classify_stop(stop: Stop, plant: Plant, now: float) -> StopClass:
    """Rules: module docstring."""
    reason = plant.reasons.get(stop.reason) if stop.reason else None
    text = reason_text(plant, stop.reason)
    planned_reason = reason is not None and (reason.planned or reason.category == LossCategory.PLANNED)
    if stop.state == State.PLANNED_STOP or planned_reason:
        return StopClass(LossCategory.PLANNED, True, False, text)
    if reason is not None and reason.category in _PERFORMANCE:
        return StopClass(reason.category, False, True, text)
    if not stop.reason and stop.state != State.CHANGEOVER and stop.duration(now) < plant.micro_stop_threshold_s:
        return StopClass(LossCategory.SMALL_STOP, False, True, text)
    category = reason.category if reason is not None else _STATE_CATEGORY.get(stop.state, LossCategory.UNEXPLAINED)
    return StopClass(category, False, False, text)


def stop_end(stop: Stop, now: float) -> float:
    return stop.end if stop.end is not None else max(now, stop.start)


def planned_intervals(plant: Plant, start: float, end: float) -> list[Interval]:
    return planned_busy_intervals(plant.shifts, zone(plant.timezone), start, end) if end > start else []


def has_planned_time(stop: Stop, plant: Plant, now: float) -> bool:
    """Whether any of the stop's life lies in planned operation time (counted as a stop)."""
    return total(planned_intervals(plant, stop.start, stop_end(stop, now))) > 0


class PlannedIndex:
    """Planned operation time of one span of time, built once and asked for many stops.

    The calendar walks days and time-zone conversions, and a month has thousands of
    stops: each lookup here is a bisect into the span's planned intervals instead.
    ``seconds(a, b)`` adds the same pieces, in the same order, as intersecting [a, b)
    with ``planned_intervals(plant, a, b)`` (the union of planned intervals is the same
    whatever span it was computed over), so the sums are bit for bit the same.
    """

    __slots__ = ("_intervals", "_ends", "start", "end")

    def __init__(self, plant: Plant, start: float, end: float) -> None:
        self._intervals = planned_intervals(plant, start, end)
        self._ends = [e for _, e in self._intervals]
        self.start = start  # the span
        self.end = end

    def covers(self, start: float, end: float) -> bool:
        return self.start <= start and end <= self.end

    def seconds(self, a: float, b: float) -> float:
        """Planned seconds in [a, b) (which must lie inside the span the index covers)."""
        intervals = self._intervals
        out: float = 0  # as sum(): an int 0 when nothing is planned
        for i in range(bisect_right(self._ends, a), len(intervals)):
            s, e = intervals[i]
            if s >= b:
                break
            lo, hi = max(a, s), min(b, e)
            if lo < hi:
                out += hi - lo
        return out

    def any_in(self, a: float, b: float) -> bool:
        return self.seconds(a, b) > 0


class PlannedIndexes:
    """Planned indexes kept by a caller that asks about the same span start again and again
    (a reader's live views: the shift's start, an end that moves with the clock): an index
    covering [start, end) is built over ``ahead_s`` more, and answers bit for bit as one built
    over [start, end) (``PlannedIndex``), so the next views use it. Per plant object."""

    def __init__(self, ahead_s: float = 3600.0, size: int = 256) -> None:
        self.ahead_s = ahead_s
        self.size = size
        self._kept: dict[float, tuple[Plant, PlannedIndex]] = {}

    def covering(self, plant: Plant, start: float, end: float) -> PlannedIndex:
        got = self._kept.get(start)
        if got is not None and got[0] is plant and got[1].covers(start, end):
            return got[1]
        index = PlannedIndex(plant, start, end + self.ahead_s)
        if len(self._kept) >= self.size:
            self._kept.clear()
        self._kept[start] = (plant, index)
        return index


def _counted_index(spans: Sequence[tuple[Stop, Interval]], plant: Plant, start: float, edge: float,
                   now: float) -> PlannedIndex:
    """Planned time from ``start`` to the end of the last stop that may be counted (a stop
    that started in the window counts if any of its life, also after the window, is planned)."""
    ends = [stop_end(stop, now) for stop, _ in spans if start <= stop.start < edge]
    return PlannedIndex(plant, start, max([edge, *ends]))


_start = attrgetter("start")


def claimed_spans(stops: Iterable[Stop], start: float, end: float, now: float) -> list[tuple[Stop, Interval]]:
    """Each stop with the part of [start, end) it alone covers (overlaps merged per machine:
    ``machine_claims``), by start (then machine). Late in a shift a line has over a thousand
    stops and every live view asks this of all of them: one pass to group, then each
    machine's in order."""
    ordered: list[tuple[float, str, int, Stop, Interval]] = []
    for machine_stops in stops_by_machine(stops).values():
        machine_stops.sort(key=_start)  # stable: copies of one stop stay in their order
        for _, stop, _, span in machine_claims(machine_stops, 0, -math.inf, start, end, now):
            if span is not None:
                ordered.append((stop.start, stop.machine, len(ordered), stop, span))
    ordered.sort()  # by start, then machine (then the order found: no two entries compare their stops)
    return [(stop, span) for _, _, _, stop, span in ordered]


def machine_claims(stops: Sequence[Stop], first: int, claimed_until: float, start: float, end: float, now: float
                   ) -> Iterator[tuple[int, Stop, float, Interval | None]]:
    """One machine's stops (sorted by start) from index ``first`` on, after claims up to
    ``claimed_until``: for each stop (of copies of one stop, with the same start: the most
    final one), the index after its copies, the stop, where the claims end with it (an
    ongoing stop claims up to ``now``, at most up to where the next stop starts) and the
    part of [start, end) it alone covers (None: none; each second belongs to the earliest
    stop that claims it)."""
    n = len(stops)
    i = first
    while i < n:
        stop = stops[i]
        j = i + 1
        while j < n and stops[j].start == stop.start:
            if more_final(stops[j], stop):
                stop = stops[j]
            j += 1
        stop_start, stop_to = stop.start, stop.end
        if stop_to is None:
            stop_to = now if now > stop_start else stop_start
            if j < n and stops[j].start < stop_to:
                stop_to = stops[j].start
        a = stop_start if stop_start > claimed_until else claimed_until
        if start > a:
            a = start
        b = stop_to if stop_to < end else end
        if stop_to > claimed_until:
            claimed_until = stop_to
        yield j, stop, claimed_until, ((a, b) if b > a else None)
        i = j


def more_final(candidate: Stop, known: Stop) -> bool:
    if known.end is None:
        return True
    return candidate.end is not None and candidate.end > known.end


def set_classified(raw: Totals, buckets: dict[str, float], stops: int) -> Totals:
    """Totals with the stop-dependent fields set from loss buckets (seconds per field)."""
    out = raw.copy()
    for name in LOSS_FIELDS:
        setattr(out, name, buckets.get(name, 0.0))
    out.down_s = sum(buckets.get(name, 0.0) for name in AVAILABILITY_FIELDS)
    out.planned_busy_s = out.planned_operation_s - out.planned_down_s
    out.stops = stops
    return out


def classify_totals(raw: Totals, stops: Iterable[Stop], plant: Plant, start: float, end: float,
                    now: float) -> Totals:
    """Splits the window's known not-running time (``stopped_s``) into loss buckets.

    ``raw``: sums of raw minute rollups of the window (classified fields in it are
    ignored and recomputed, so classifying twice with the same stops is harmless).
    ``stops``: the Stop records of the same machine(s) overlapping [start, end).
    The minutes are the truth for how long the machine stood; the stops say how to split
    it: time no stop record claims counts as unexplained down time, and if the records
    claim more than the minutes saw (inconsistent data), their split is scaled down.
    """
    return classified(raw, *loss_buckets(stops, plant, start, end, now))


def loss_buckets(stops: Iterable[Stop], plant: Plant, start: float, end: float, now: float
                 ) -> tuple[dict[str, float], int]:
    """``classify_totals``' loss buckets (the planned seconds each stop claims, by its loss
    field) and its count of availability-loss stops (started in the window, with planned
    time in their life), before they are reconciled with the minutes."""
    edge = min(end, now)
    spans = claimed_spans(stops, start, edge, now)
    planned = _counted_index(spans, plant, start, edge, now)
    buckets = dict.fromkeys(LOSS_FIELDS, 0.0)
    counted = 0
    for stop, (a, b) in spans:
        cls = classify_stop(stop, plant, now)
        buckets[cls.loss_field] += planned.seconds(a, b)
        if is_counted(cls, stop, plant, planned, start, edge, now):
            counted += 1
    return buckets, counted


def is_counted(cls: StopClass, stop: Stop, plant: Plant, planned: PlannedIndex, start: float, edge: float,
               now: float) -> bool:
    """Whether a stop counts in the number of stops: an availability loss that began in
    [start, edge) with planned time anywhere in its life, also after ``edge`` (``planned``:
    the window's planned time from ``start``; a life beyond its end is asked of its own)."""
    if not (cls.is_availability_loss and start <= stop.start < edge):
        return False
    end = stop_end(stop, now)
    return (planned if end <= planned.end else PlannedIndex(plant, stop.start, end)).any_in(stop.start, end)


def classified(raw: Totals, buckets: dict[str, float], counted: int) -> Totals:
    """``raw`` classified with ``loss_buckets``' buckets (reconciled with its stopped time:
    a copy) and count."""
    buckets = dict(buckets)
    _reconcile(buckets, raw.stopped_s)
    return set_classified(raw, buckets, counted)


def _reconcile(buckets: dict[str, float], stopped_s: float) -> None:
    claimed = sum(buckets.values())
    if claimed > stopped_s:
        factor = stopped_s / claimed if claimed > 0 else 0.0
        for name in buckets:
            buckets[name] *= factor
    else:
        buckets["unexplained_s"] += stopped_s - claimed
