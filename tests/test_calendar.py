"""The shift calendar: midnight-crossing shifts, breaks after midnight, time zones, DST."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import calendar
from domain.calendar import (
    Interval,
    clip,
    current_or_last_shift,
    intersect,
    local_day,
    merge,
    planned_busy_intervals,
    previous_shift,
    shift_at,
    shift_instance,
    shifts_overlapping,
    subtract,
    total,
)
from domain.energy import zone
from domain.plant import Shift
from tests.core_support import local

BERLIN = "Europe/Berlin"
SHANGHAI = "Asia/Shanghai"
HOUR = 3600.0


def shift(name: str, start: str, end: str, breaks: Sequence[tuple[str, str]] = (),
          weekdays: list[int] | None = None) -> Shift:
    data: dict[str, object] = {"name": name, "start": start, "end": end,
                               "breaks": [{"start": a, "end": b} for a, b in breaks]}
    if weekdays is not None:
        data["weekdays"] = weekdays
    return Shift.model_validate(data)


A = shift("A", "07:00", "15:00", [("09:30", "09:45"), ("11:30", "12:00"), ("13:30", "13:45")])
B = shift("B", "15:00", "23:00", [("17:30", "17:45"), ("19:00", "19:30"), ("21:00", "21:15")])
C = shift("C", "23:00", "07:00", [("01:00", "01:15"), ("03:00", "03:30"), ("05:00", "05:15")])
NIGHT = shift("N", "22:00", "06:00", [("23:30", "23:45"), ("00:00", "00:15"), ("02:00", "02:30")])


# --- shift instances -----------------------------------------------------------------

def test_a_shift_crossing_midnight_ends_the_next_day_with_its_breaks_after_midnight() -> None:
    inst = shift_instance(C, date(2024, 5, 6), zone(SHANGHAI))
    assert (inst.start, inst.end) == (local(SHANGHAI, "2024-05-06T23:00"), local(SHANGHAI, "2024-05-07T07:00"))
    assert inst.breaks == (
        (local(SHANGHAI, "2024-05-07T01:00"), local(SHANGHAI, "2024-05-07T01:15")),
        (local(SHANGHAI, "2024-05-07T03:00"), local(SHANGHAI, "2024-05-07T03:30")),
        (local(SHANGHAI, "2024-05-07T05:00"), local(SHANGHAI, "2024-05-07T05:15")),
    )
    assert total(inst.planned_busy()) == 7 * HOUR
    assert inst.label == "2024-05-06 C"


def test_a_break_at_midnight_belongs_to_the_next_day() -> None:
    inst = shift_instance(NIGHT, date(2024, 5, 4), zone(BERLIN))
    assert local(BERLIN, "2024-05-05T00:00") in [b[0] for b in inst.breaks]
    assert total(inst.planned_busy()) == 8 * HOUR - 60 * 60


@pytest.mark.parametrize("day, shift_hours, busy_hours", [
    (date(2024, 3, 30), 7, 6),  # clocks go forward during the night: one hour less
    (date(2024, 10, 26), 9, 8),  # clocks go back: one hour more
    (date(2024, 5, 4), 8, 7),
])
def test_night_shifts_over_a_daylight_saving_change_are_as_long_as_they_really_are(
        day: date, shift_hours: float, busy_hours: float) -> None:
    inst = shift_instance(NIGHT, day, zone(BERLIN))
    assert inst.end - inst.start == shift_hours * HOUR
    assert total(inst.planned_busy()) == busy_hours * HOUR


def test_a_break_at_a_local_time_that_does_not_exist_keeps_its_length() -> None:
    """02:00-02:30 does not exist on 2024-03-31 in Berlin; zoneinfo reads it with the
    offset before the change, so the break starts when the clocks jump and lasts 30 min."""
    inst = shift_instance(NIGHT, date(2024, 3, 30), zone(BERLIN))
    jump = local(BERLIN, "2024-03-31T03:00")
    assert (jump, jump + 1800) in inst.breaks


def test_weekdays_belong_to_the_day_a_shift_starts() -> None:
    friday_night = shift("F", "22:00", "06:00", weekdays=[4])
    tz = zone(BERLIN)
    saturday_early = local(BERLIN, "2024-05-04T03:00")
    inst = shift_at([friday_night], tz, saturday_early)
    assert inst is not None and inst.local_date == date(2024, 5, 3)
    assert shift_at([friday_night], tz, local(BERLIN, "2024-05-05T03:00")) is None  # no Saturday night shift


# --- which shift -----------------------------------------------------------------------

@pytest.mark.parametrize("when, current, previous", [
    ("2024-05-07T08:00", "2024-05-07 A", "2024-05-06 C"),
    ("2024-05-07T15:00", "2024-05-07 B", "2024-05-07 A"),  # the boundary belongs to the next shift
    ("2024-05-07T02:00", "2024-05-06 C", "2024-05-06 B"),
    ("2024-05-06T23:59", "2024-05-06 C", "2024-05-06 B"),
])
def test_current_and_previous_shift(when: str, current: str, previous: str) -> None:
    tz = zone(SHANGHAI)
    at = local(SHANGHAI, when)
    assert current_or_last_shift([A, B, C], tz, at).label == current
    assert previous_shift([A, B, C], tz, at).label == previous


def test_between_shifts_the_last_one_that_ended_is_current() -> None:
    tz = zone(SHANGHAI)
    at = local(SHANGHAI, "2024-05-07T16:00")
    assert shift_at([A], tz, at) is None
    assert current_or_last_shift([A], tz, at).label == "2024-05-07 A"
    assert previous_shift([A], tz, at).label == "2024-05-06 A"


def test_no_shift_at_all_is_an_error_not_a_hang() -> None:
    with pytest.raises(ValueError):
        current_or_last_shift([shift("X", "07:00", "15:00", weekdays=[])], zone(SHANGHAI), 1.7e9)


@pytest.mark.parametrize("when, hours", [("2024-03-31T12:00", 23), ("2024-10-27T12:00", 25), ("2024-05-06T00:00", 24)])
def test_local_days_are_as_long_as_they_really_are(when: str, hours: int) -> None:
    start, end = local_day(zone(BERLIN), local(BERLIN, when))
    assert end - start == hours * HOUR
    assert start == local(BERLIN, when[:10] + "T00:00")


# --- planned busy time -----------------------------------------------------------------

def test_planned_busy_time_of_a_day_with_three_shifts() -> None:
    tz = zone(SHANGHAI)
    start, end = local(SHANGHAI, "2024-05-07T00:00"), local(SHANGHAI, "2024-05-08T00:00")
    intervals = planned_busy_intervals([A, B, C], tz, start, end)
    assert total(intervals) == 24 * HOUR - 3 * HOUR  # three shifts with an hour of breaks each
    assert intervals[0][0] == start  # yesterday's night shift carries over midnight
    assert intervals == merge(intervals)


def test_planned_busy_time_is_clipped_to_the_window() -> None:
    tz = zone(SHANGHAI)
    start, end = local(SHANGHAI, "2024-05-07T09:00"), local(SHANGHAI, "2024-05-07T10:00")
    assert planned_busy_intervals([A], tz, start, end) == [(start, start + 1800), (start + 2700, end)]


def test_shifts_overlapping_finds_yesterdays_night_shift() -> None:
    tz = zone(SHANGHAI)
    at = local(SHANGHAI, "2024-05-07T05:00")
    assert [s.label for s in shifts_overlapping([A, B, C], tz, at, at + 60)] == ["2024-05-06 C"]


# Brute force: sample every minute's local wall-clock time and ask whether a shift (minus
# its breaks) covers it. Shift and break times avoid 01:00-02:59, the hours that are
# skipped or repeated on DST days in Europe and North America (where a boundary inside
# them is a matter of convention); everything else, DST nights included, must agree to
# the minute with the calendar's UTC intervals.

def _covers(day: date, start: time, end: time, local_day_: date, local_time: time) -> bool:
    crosses = (end.hour, end.minute) <= (start.hour, start.minute)
    return (day, start) <= (local_day_, local_time) < (day + timedelta(days=1 if crosses else 0), end)


def _planned_at(shifts: list[Shift], tz_name: str, at: float) -> bool:
    local_dt = datetime.fromtimestamp(at, zone(tz_name))
    d, t = local_dt.date(), local_dt.time()
    for s in shifts:
        for day in (d - timedelta(days=1), d):
            if day.weekday() not in s.weekdays or not _covers(day, s.start, s.end, d, t):
                continue
            on_break = False
            for brk in s.breaks:
                after_midnight = (brk.start.hour, brk.start.minute) < (s.start.hour, s.start.minute)
                b_day = day + timedelta(days=1 if after_midnight else 0)
                on_break = on_break or _covers(b_day, brk.start, brk.end, d, t)
            if not on_break:
                return True
    return False


@st.composite
def shifts_strategy(draw: st.DrawFn) -> Shift:
    minutes_allowed = [m for m in range(0, 1440, 15) if not 60 <= m < 180]
    start = draw(st.sampled_from(minutes_allowed))
    length = draw(st.integers(4, 96)) * 15
    end = (start + length) % 1440
    breaks = []
    for _ in range(draw(st.integers(0, 2))):
        offset = draw(st.integers(0, length // 15 - 1)) * 15
        b_len = draw(st.integers(1, 4)) * 15
        b_start, b_end = (start + offset) % 1440, (start + min(offset + b_len, length)) % 1440
        if b_end == b_start or offset + b_len > length:
            continue
        breaks.append((b_start, b_end))
    times = [start, end, *[m for b in breaks for m in b]]
    if any(60 <= m < 180 for m in times):
        end = start = 0  # rare: fall back to a 24 h shift
        breaks = []

    def hhmm(m: int) -> str:
        return f"{m // 60:02d}:{m % 60:02d}"

    weekdays = draw(st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True))
    return shift("S", hhmm(start), hhmm(end), [(hhmm(a), hhmm(b)) for a, b in breaks], weekdays)


@settings(max_examples=60, deadline=None)
@given(
    shifts=st.lists(shifts_strategy(), min_size=1, max_size=3),
    tz_name=st.sampled_from([BERLIN, SHANGHAI, "America/New_York", "Asia/Kolkata"]),
    around=st.sampled_from(["2024-03-30T18:00", "2024-10-26T18:00", "2024-03-09T18:00", "2024-11-02T18:00",
                            "2024-05-06T00:00"]),
    offset_h=st.integers(-30, 30),
    hours=st.integers(0, 40),
)
def test_planned_busy_time_agrees_with_the_local_wall_clock(shifts: list[Shift], tz_name: str, around: str,
                                                           offset_h: int, hours: int) -> None:
    start = local(tz_name, around) + offset_h * HOUR
    start -= start % 60
    end = start + hours * HOUR
    intervals = planned_busy_intervals(shifts, zone(tz_name), start, end)
    sampled = sum(_planned_at(shifts, tz_name, t + 30) for t in range(int(start), int(end), 60))
    assert total(intervals) == sampled * 60
    assert intervals == merge(intervals)


@settings(max_examples=60, deadline=None)
@given(
    shifts=st.lists(shifts_strategy(), min_size=1, max_size=3),
    tz_name=st.sampled_from([BERLIN, SHANGHAI, "America/New_York"]),
    around=st.sampled_from(["2024-03-30T18:00", "2024-10-26T18:00", "2024-05-06T00:00"]),
    offset_s=st.floats(-30 * HOUR, 30 * HOUR),
    length_s=st.floats(0.001, 60 * HOUR),
)
def test_planned_busy_time_of_the_days_kept_is_bit_for_bit_that_of_the_overlapping_shifts(
        shifts: list[Shift], tz_name: str, around: str, offset_s: float, length_s: float) -> None:
    """The merged busy time kept per calendar and days, clipped to a span, is exactly the
    merged busy time of the shift instances overlapping that span (what was computed per
    call before it was kept)."""
    start = local(tz_name, around) + offset_s
    end = start + length_s
    overlapping = [i for inst in shifts_overlapping(shifts, zone(tz_name), start, end) for i in inst.planned_busy()]
    assert planned_busy_intervals(shifts, zone(tz_name), start, end) == clip(merge(overlapping), start, end)
    assert planned_busy_intervals(shifts, zone(tz_name), start, end) == clip(merge(overlapping), start, end)  # kept


@settings(max_examples=80, deadline=None)
@given(
    shifts=st.lists(shifts_strategy(), min_size=1, max_size=3),
    tz_name=st.sampled_from([BERLIN, SHANGHAI, "America/New_York", "Asia/Kolkata"]),
    around=st.sampled_from(["2024-03-30T18:00", "2024-10-26T18:00", "2024-11-02T18:00", "2024-05-06T00:00"]),
    offset_s=st.floats(-30 * HOUR, 30 * HOUR),
    end_seconds=st.sampled_from([0, 1, 59]),
    microsecond=st.sampled_from([0, 0, 0, 250_000]),
    pick=st.integers(0, 1_000),
    fractions=st.lists(st.sampled_from([-1.0, -0.5, -1e-6, 0.0, 1e-6, 0.25, 0.999999, 1.0]), min_size=1, max_size=8),
)
def test_the_shift_remembered_for_a_second_is_the_shift_found(
        shifts: list[Shift], tz_name: str, around: str, offset_s: float, end_seconds: int, microsecond: int,
        pick: int, fractions: list[float]) -> None:
    """``current_or_last_shift`` remembers its answer for the second asked: asked around a
    boundary (a shift's or a break's start or end, a second before and after, exactly on
    it, a microsecond either side), in any order, it answers what finding it again does.
    Shifts are named apart; some end a few seconds past the minute, and a time that is
    not a whole second is never remembered."""
    named = [s.model_copy(update={"name": f"S{i}", "end": s.end.replace(second=end_seconds,
                                                                         microsecond=microsecond if i == 0 else 0)})
             for i, s in enumerate(shifts)]
    tz = zone(tz_name)
    near = local(tz_name, around) + offset_s
    instances = shifts_overlapping(named, tz, near - 2 * 86400, near + 2 * 86400)
    bounds = sorted({b for inst in instances for b in (inst.start, inst.end, *(x for br in inst.breaks for x in br))})
    boundary = bounds[pick % len(bounds)] if bounds else near
    for fraction in fractions:
        at = boundary + fraction
        assert current_or_last_shift(named, tz, at) == calendar._current_or_last_shift(named, tz, at), at


def test_asking_for_the_previous_shift_keeps_the_second_the_live_views_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    """``previous_shift`` (the handover, the "last shift" range) finds the shift before
    without taking the place of the second remembered for the current one."""
    shifts = [Shift(name="day", start="06:00", end="18:00"), Shift(name="night", start="18:00", end="06:00")]
    tz = zone(SHANGHAI)
    at = local(SHANGHAI, "2024-05-06T10:00") + 0.25
    current = current_or_last_shift(shifts, tz, at)
    assert calendar.previous_shift(shifts, tz, at).name == "night" and current.name == "day"
    monkeypatch.setattr(calendar, "_current_or_last_shift", None)  # the same second again: remembered, not found
    assert current_or_last_shift(shifts, tz, at + 0.5) == current


# --- interval arithmetic ---------------------------------------------------------------

@pytest.mark.parametrize("intervals, merged", [
    ([], []),
    ([(5, 6), (1, 2)], [(1, 2), (5, 6)]),
    ([(1, 3), (2, 5)], [(1, 5)]),
    ([(1, 3), (3, 5)], [(1, 5)]),  # touching intervals merge
    ([(1, 10), (2, 3)], [(1, 10)]),
    ([(4, 4), (2, 1)], []),  # empty and reversed intervals vanish
])
def test_merge(intervals: list[tuple[float, float]], merged: list[tuple[float, float]]) -> None:
    assert merge(intervals) == merged


@pytest.mark.parametrize("base, cut, result", [
    ([(0, 10)], [(2, 3), (5, 6)], [(0, 2), (3, 5), (6, 10)]),
    ([(0, 10)], [(-5, 2), (8, 20)], [(2, 8)]),
    ([(0, 10)], [(0, 10)], []),
    ([(0, 2), (4, 6)], [(1, 5)], [(0, 1), (5, 6)]),
    ([(0, 10)], [], [(0, 10)]),
])
def test_subtract(base: list[Interval], cut: list[Interval], result: list[Interval]) -> None:
    assert subtract(base, cut) == result


@pytest.mark.parametrize("a, b, result", [
    ([(0, 10)], [(2, 3), (5, 6)], [(2, 3), (5, 6)]),
    ([(0, 5), (7, 9)], [(4, 8)], [(4, 5), (7, 8)]),
    ([(0, 5)], [(5, 9)], []),  # touching is not overlapping
    ([], [(0, 1)], []),
])
def test_intersect(a: list[Interval], b: list[Interval], result: list[Interval]) -> None:
    assert intersect(a, b) == result


def test_clip() -> None:
    assert clip([(0, 5), (6, 9), (10, 12)], 3, 10) == [(3, 5), (6, 9)]


def test_an_empty_window_has_no_planned_time() -> None:
    """Regression: clip() used to return a zero-length interval for an empty window."""
    assert clip([(0, 10)], 4, 4) == []
    at = local(SHANGHAI, "2024-05-07T08:00")
    assert planned_busy_intervals([A], zone(SHANGHAI), at, at) == []


def _points(intervals: list[tuple[int, int]]) -> set[int]:
    return {p for s, e in intervals for p in range(s, e)}


interval_lists = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)).map(lambda t: (min(t), max(t))), max_size=6)


@given(a=interval_lists, b=interval_lists)
def test_interval_operations_match_sets_of_points(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    assert _points(merge(a)) == _points(a)
    assert _points(subtract(a, b)) == _points(a) - _points(b)
    assert _points(intersect(merge(a), merge(b))) == _points(a) & _points(b)
    assert total(merge(a)) == len(_points(a))


@settings(max_examples=80, deadline=None)
@given(
    shifts=st.lists(shifts_strategy(), min_size=1, max_size=3),
    tz_name=st.sampled_from([BERLIN, SHANGHAI, "America/New_York"]),
    around=st.sampled_from(["2024-03-30T18:00", "2024-10-26T18:00", "2024-05-06T00:00"]),
    offset_s=st.floats(-30 * HOUR, 30 * HOUR),
    length_s=st.one_of(st.floats(0.0, 120.0), st.floats(0.0, 13 * HOUR)),
)
def test_planned_seconds_of_a_span_are_bit_for_bit_the_sum_of_its_intervals(
        shifts: list[Shift], tz_name: str, around: str, offset_s: float, length_s: float) -> None:
    """``PlannedCalendar.seconds`` (summed in place for a span within one block) is exactly
    ``total(intervals(...))``, spans across blocks included."""
    from types import SimpleNamespace

    from domain.accounting import PlannedCalendar

    calendar = PlannedCalendar(SimpleNamespace(shifts=shifts, timezone=tz_name))  # type: ignore[arg-type]
    start = local(tz_name, around) + offset_s
    end = start + length_s
    got, expected = calendar.seconds(start, end), total(calendar.intervals(start, end))
    assert got == expected and type(got) is type(expected)
