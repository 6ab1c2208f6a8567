"""A window's stops carried grouped by machine (``domain.stop_groups.GroupedStops``): the
groups always equal grouping the list again, through adding stops, classifying them and
summing them; a reader's live window hands them on."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import stop_report
from domain.accounting import Stop
from domain.classification import Classification, ClassifiedStop, apply, stop_id, unclassified
from domain.model import State
from domain.stop_groups import GroupedStops, machine_stops, stops_by_machine
from domain.stop_sums import sums_by_machine
from tests.core_support import make_plant

T0 = 1_760_000_000.0
MACHINES = ["M1", "M2", "M3"]
PLANT = make_plant()  # planned 24/7 (UTC), micro-stops under 120 s


def same_groups(got: dict[Any, list[Stop]], expected: dict[Any, list[Stop]]) -> bool:
    """Equal groups, keys in the same order, each holding the same objects."""
    return list(got) == list(expected) and all(
        len(got[k]) == len(v) and all(a is b for a, b in zip(got[k], v, strict=True)) for k, v in expected.items())


stop_rows = st.lists(st.tuples(st.sampled_from(["L1", "L2"]), st.sampled_from(MACHINES), st.integers(0, 40),
                               st.one_of(st.none(), st.integers(1, 30)), st.booleans()), max_size=30)


def make(rows: list[tuple[str, str, int, int | None, bool]]) -> list[Stop]:
    """Stops (some already in the form a reader parses stored stops into)."""
    out: list[Stop] = []
    for line, machine, start, length, parsed in rows:
        stop = Stop(line, machine, T0 + 60 * start, None if length is None else T0 + 60 * start + 10 * length,
                    State.FAULT, 0)
        out.append(unclassified(stop) if parsed else stop)
    return out


@settings(max_examples=300, deadline=None)
@given(rows=stop_rows, more=stop_rows)
def test_grouped_stops_keep_the_groups_of_their_list(rows: list[Any], more: list[Any]) -> None:
    """Made, then with stops added: the groups are the list's, grouped again; a
    ``stops_by_machine`` of them gives lists of their own (a caller may sort them)."""
    stops, extra = make(rows), make(more)
    grouped = GroupedStops(stops)
    assert list(grouped) == stops and same_groups(grouped.groups, stops_by_machine(stops))
    both = grouped.plus(extra)
    assert all(a is b for a, b in zip(both, [*stops, *extra], strict=True))
    assert same_groups(both.groups, stops_by_machine([*stops, *extra]))
    assert same_groups(grouped.groups, stops_by_machine(stops))  # the first ones' groups unchanged
    assert grouped.low == min((s.start for s in stops), default=math.inf)  # their earliest start
    assert both.low == min((s.start for s in both), default=math.inf)
    copied = stops_by_machine(both)
    for group in copied.values():
        group.reverse()
    assert same_groups(both.groups, stops_by_machine(list(both)))
    for stop in both:
        assert list(machine_stops(both, stop.line, stop.machine)) == \
            [s for s in both if s.line == stop.line and s.machine == stop.machine]


@settings(max_examples=300, deadline=None)
@given(rows=stop_rows, picks=st.lists(st.tuples(st.integers(0, 29), st.integers(1, 9),
                                               st.one_of(st.none(), st.integers(1, 9)), st.integers(-30, 30)),
                                     max_size=6))
def test_classified_grouped_stops_are_grouped_as_their_list(rows: list[Any], picks: list[Any]) -> None:
    """People's classifications (some split, some made for a start late data moved) over grouped
    stops: the same stops as over a plain list, grouped as that list is."""
    stops = make(rows)
    classifications: dict[str, Classification] = {}
    for k, (index, reason, split, moved_s) in enumerate(picks):
        if not stops:
            break
        stop = stops[index % len(stops)]
        splits = ((stop.start + 5.0, split),) if split is not None else ()
        classifications[stop_id(stop.line, stop.machine, stop.start + moved_s)] = Classification(
            reason, by="op", at=T0 + k, splits=splits, end=stop.end)
    pieces: dict[Any, Any] = {}
    got = apply(GroupedStops(stops), classifications, pieces=pieces)
    expected = apply(list(stops), classifications, pieces=pieces)
    assert isinstance(got, GroupedStops) and list(got) == expected
    assert same_groups(got.groups, stops_by_machine(list(got)))
    assert got.low <= min((s.start for s in got), default=math.inf)  # (a bound below the earliest start)
    assert all(s.__class__ is ClassifiedStop for s in got)


@settings(max_examples=150, deadline=None)
@given(rows=stop_rows, more=stop_rows, now_min=st.integers(0, 80))
def test_sums_of_grouped_stops_equal_those_of_the_list(rows: list[Any], more: list[Any], now_min: int) -> None:
    """The per-machine sums and the downtime report read the carried groups: the same figures
    as from the plain list, kept sums or not."""
    stops = GroupedStops(make([("L1", *r[1:]) for r in rows])).plus(make([("L1", *r[1:]) for r in more]))
    start, end, now = T0, T0 + 3600, T0 + 60 * now_min
    assert sums_by_machine(stops, PLANT, start, end, now) == \
        sums_by_machine(list(stops), PLANT, start, end, now)
    kept = stop_report.Kept()
    for _ in range(2):  # (the second time with the machines' settled sums kept)
        got = stop_report.downtime_report(stops, PLANT, start, end, now, run_s=1800.0, kept=kept)
        assert got == stop_report.downtime_report(list(stops), PLANT, start, end, now, run_s=1800.0)
