"""The shift calendar: shifts are defined in plant local time, everything else is UTC.

A shift instance starts on a local date at its local start time; a shift whose end is
not after its start crosses midnight. Breaks belong to their shift: a break whose time
of day is before the shift's start lies on the next day. Local times are converted to
UTC with zoneinfo, so daylight-saving days are as long as they really are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from domain.plant import Shift

Interval = tuple[float, float]  # [start, end) epoch seconds


def minutes_of_day(t: time) -> int:
    return t.hour * 60 + t.minute


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    """One occurrence of a shift: [start, end) UTC epoch seconds, breaks inside it."""

    name: str
    local_date: date  # the local date the shift starts on
    start: float
    end: float
    breaks: tuple[Interval, ...]

    @property
    def label(self) -> str:
        return f"{self.local_date.isoformat()} {self.name}"

    def planned_busy(self) -> list[Interval]:
        """The shift minus its breaks."""
        return subtract([(self.start, self.end)], self.breaks)


def _local_epoch(day: date, t: time, tz: ZoneInfo, extra_days: int = 0) -> float:
    local = datetime.combine(day + timedelta(days=extra_days), t, tzinfo=tz)
    return local.timestamp()


def shift_instance(shift: Shift, day: date, tz: ZoneInfo) -> ShiftInstance:
    start_min = minutes_of_day(shift.start)
    crosses = minutes_of_day(shift.end) <= start_min
    start = _local_epoch(day, shift.start, tz)
    end = _local_epoch(day, shift.end, tz, 1 if crosses else 0)
    breaks = []
    for brk in shift.breaks:
        b_day = 1 if minutes_of_day(brk.start) < start_min else 0
        b_end_day = b_day + (1 if minutes_of_day(brk.end) <= minutes_of_day(brk.start) else 0)
        breaks.append((_local_epoch(day, brk.start, tz, b_day), _local_epoch(day, brk.end, tz, b_end_day)))
    return ShiftInstance(shift.name, day, start, end, tuple(sorted(breaks)))


def shifts_overlapping(shifts: Sequence[Shift], tz: ZoneInfo, start: float, end: float) -> list[ShiftInstance]:
    """All shift instances that overlap [start, end), in time order."""
    first = datetime.fromtimestamp(start, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end, tz).date()
    out = []
    day = first
    while day <= last:
        for shift in shifts:
            if day.weekday() in shift.weekdays:
                inst = shift_instance(shift, day, tz)
                if inst.start < end and inst.end > start:
                    out.append(inst)
        day += timedelta(days=1)
    return sorted(out, key=lambda s: s.start)


def shift_at(shifts: Sequence[Shift], tz: ZoneInfo, at: float) -> ShiftInstance | None:
    """The shift instance running at ``at`` (None between shifts)."""
    for inst in shifts_overlapping(shifts, tz, at, at + 1e-3):
        if inst.start <= at < inst.end:
            return inst
    return None


def current_or_last_shift(shifts: Sequence[Shift], tz: ZoneInfo, at: float) -> ShiftInstance:
    """The shift at ``at``, or, between shifts, the last one that ended.

    Remembered per calendar for the last second asked (live views ask many times a second;
    finding it takes about 80 µs): when every shift and break time is a whole second, so
    is every boundary (zoneinfo's offsets are whole seconds), and the answer is the same
    for every ``at`` strictly inside one second, and for the whole second itself."""
    key = _named_key(shifts)
    if key is None:
        return _current_or_last_shift(shifts, tz, at)
    second = (math.floor(at), float(at).is_integer())
    got = _last_asked.get((key, tz))
    if got is not None and got[0] == second:
        return got[1]
    inst = _current_or_last_shift(shifts, tz, at)
    if len(_last_asked) >= 64:  # calendars of tests and edits: not many
        _last_asked.clear()
    _last_asked[(key, tz)] = (second, inst)
    return inst


_last_asked: dict[tuple[tuple[object, ...], ZoneInfo], tuple[tuple[int, bool], ShiftInstance]] = {}


def _named_key(shifts: Sequence[Shift]) -> tuple[object, ...] | None:
    """``shifts`` as a hashable key (names too: an instance carries its shift's); None when
    a time is not a whole second."""
    key = tuple((s.name, s.start, s.end, tuple((b.start, b.end) for b in s.breaks), tuple(s.weekdays))
                for s in shifts)
    whole = all(not (start.microsecond or end.microsecond) and all(not (a.microsecond or b.microsecond) for a, b in bs)
                for _name, start, end, bs, _days in key)
    return key if whole else None


def _current_or_last_shift(shifts: Sequence[Shift], tz: ZoneInfo, at: float) -> ShiftInstance:
    now = shift_at(shifts, tz, at)
    if now is not None:
        return now
    past = shifts_overlapping(shifts, tz, at - 8 * 86400, at)
    if not past:
        raise ValueError("no shift in the last 8 days: the calendar has no shifts on these weekdays")
    return past[-1]


def previous_shift(shifts: Sequence[Shift], tz: ZoneInfo, at: float) -> ShiftInstance:
    """The last shift instance that started before the current (or last) one (found, not
    remembered: the time before the current shift would take the live views' second's place)."""
    current = current_or_last_shift(shifts, tz, at)
    return _current_or_last_shift(shifts, tz, current.start - 1e-3)


def local_day(tz: ZoneInfo, at: float, offset_days: int = 0) -> Interval:
    """[start, end) of the plant-local calendar day containing ``at`` (+ offset days)."""
    day = datetime.fromtimestamp(at, tz).date() + timedelta(days=offset_days)
    return _local_epoch(day, time(0), tz), _local_epoch(day, time(0), tz, 1)


def planned_busy_intervals(shifts: Sequence[Shift], tz: ZoneInfo, start: float, end: float) -> list[Interval]:
    """Planned busy time within [start, end): shift time minus breaks, merged, clipped.

    The merged busy time of the local days the span touches is computed once per calendar
    and days (live views ask for the same shift many times a second) and clipped to the
    span: the same intervals as merging only the instances overlapping it (the others lie
    outside it, so they change nothing inside)."""
    first = datetime.fromtimestamp(start, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end, tz).date()
    return clip(_busy_of_days(_calendar_key(shifts), tz, first, last), start, end)


CalendarKey = tuple[tuple[time, time, tuple[tuple[time, time], ...], tuple[int, ...]], ...]


def _calendar_key(shifts: Sequence[Shift]) -> CalendarKey:
    """What planned time depends on, hashable (a plant's shifts are lists of models)."""
    return tuple((s.start, s.end, tuple((b.start, b.end) for b in s.breaks), tuple(s.weekdays)) for s in shifts)


@lru_cache(maxsize=4096)
def _busy_of_days(calendar: CalendarKey, tz: ZoneInfo, first: date, last: date) -> tuple[Interval, ...]:
    """The merged planned busy time of every shift instance starting on ``first`` .. ``last``."""
    shifts = [Shift(name="s", start=start, end=end, breaks=[{"start": a, "end": b} for a, b in breaks],
                    weekdays=list(weekdays)) for start, end, breaks, weekdays in calendar]
    out: list[Interval] = []
    day = first
    while day <= last:
        for shift in shifts:
            if day.weekday() in shift.weekdays:
                out.extend(shift_instance(shift, day, tz).planned_busy())
        day += timedelta(days=1)
    return tuple(merge(out))


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of intervals (overlapping shifts or stops merge)."""
    out: list[list[float]] = []
    for s, e in sorted(i for i in intervals if i[1] > i[0]):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def clip(intervals: Iterable[Interval], start: float, end: float) -> list[Interval]:
    """The parts of ``intervals`` inside [start, end); never an empty interval."""
    return [(max(s, start), min(e, end)) for s, e in intervals if max(s, start) < min(e, end)]


def subtract(base: Iterable[Interval], cut: Iterable[Interval]) -> list[Interval]:
    """``base`` minus ``cut``; both may be unsorted."""
    cuts = merge(cut)
    out: list[Interval] = []
    for s, e in merge(base):
        cur = s
        for cs, ce in cuts:
            if ce <= cur or cs >= e:
                continue
            if cs > cur:
                out.append((cur, cs))
            cur = max(cur, ce)
        if cur < e:
            out.append((cur, e))
    return out


def total(intervals: Iterable[Interval]) -> float:
    return sum(e - s for s, e in intervals)


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two sorted, merged interval lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        s = max(a[i][0], b[j][0])
        e = min(a[i][1], b[j][1])
        if s < e:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
