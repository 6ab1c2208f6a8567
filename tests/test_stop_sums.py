"""The downtime report's figures summed per machine, its settled stops summed once
(``domain.stop_sums``): the same figures whatever was kept, the events' figures."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import domain.stop_sums as stop_sums
from domain.downtime import loss_buckets
from domain.engine import Stop
from domain.model import State
from domain.stop_report import Kept, downtime_report
from tests.core_support import T0, make_plant

PLANT = make_plant()  # planned 24/7 (UTC), threshold 120 s, reasons 1-6
WITH_BREAK = make_plant(shifts=[{"name": "s", "start": "00:00", "end": "00:00",
                                 "breaks": [{"start": "00:20", "end": "00:35"}]}])

# per machine: (gap before it, length (None: still going when the plant's day ends), state, reason,
# a stale ongoing copy of it is read too)
_machine = st.lists(st.tuples(st.integers(0, 400).map(lambda t: t / 4), st.one_of(st.none(), st.integers(1, 900).map(
    lambda t: t / 3)), st.sampled_from([State.FAULT, State.IDLE, State.CHANGEOVER, State.PLANNED_STOP]),
    st.sampled_from([0, 0, 1, 2, 4, 5, 99]), st.booleans()), max_size=12)


def _timeline(machines: dict[str, list[Any]]) -> list[tuple[Stop, float | None, bool]]:
    """(the stop as stored once it ended, its end, a stale copy is read) for every machine."""
    out = []
    for machine, raw in machines.items():
        t = T0
        for gap, length, state, reason, copy in raw:
            t += gap
            end = None if length is None else t + length
            out.append((Stop("L1", machine, t, end, state, reason), end, copy))
            t = end if end is not None else t + 10_000
    return out


def _seen(timeline: list[tuple[Stop, float | None, bool]], now: float) -> list[Stop]:
    """The stops a reader gives at ``now``: an ended one is the same object every time (as the
    reader's stored stops), an ongoing one a new object each time, with stale copies."""
    out: list[Stop] = []
    for stop, end, copy in timeline:
        if stop.start >= now:
            continue
        if end is not None and end <= now:
            out.append(stop)
            if copy:
                out.append(Stop(stop.line, stop.machine, stop.start, None, stop.state, stop.reason))
        else:
            out.append(Stop(stop.line, stop.machine, stop.start, None, stop.state, stop.reason))
    return out


@settings(max_examples=300, deadline=None)
@given(machines=st.fixed_dictionaries({"M1": _machine, "M2": _machine, "M3": _machine}),
       views=st.lists(st.tuples(st.integers(0, 3 * 3600), st.sampled_from([(0, 3600), (0, 7200), (600, 3000)]),
                                st.sampled_from([PLANT, WITH_BREAK]), st.sampled_from([0, 0, 0, 500])),
                      min_size=1, max_size=8))
def test_the_figures_do_not_depend_on_what_was_kept(machines: dict[str, list[Any]],
                                                    views: list[tuple[int, tuple[int, int], Any, int]]) -> None:
    """Views in any order of their ``now`` (mostly forward), of several windows and plants,
    some of stops read after ``now``, with one ``Kept``: each report equals the one made
    without it, bit for bit; its figures are its events' (summed in another order:
    approximately)."""
    _check_views(machines, views)


@settings(max_examples=300, deadline=None)
@given(machines=st.fixed_dictionaries({"M1": _machine, "M2": _machine}),
       start=st.integers(0, 2 * 3600), steps=st.lists(st.tuples(st.integers(-60, 400), st.sampled_from([0, 120, 600])),
                                                      min_size=2, max_size=10),
       window=st.sampled_from([(0, 3600), (0, 7200)]), plant=st.sampled_from([PLANT, WITH_BREAK]))
def test_the_figures_do_not_depend_on_what_was_kept_in_a_live_window(
        machines: dict[str, list[Any]], start: int, steps: list[tuple[int, int]], window: tuple[int, int],
        plant: Any) -> None:
    """As a live view asks: one window, ``now`` moving forward a few minutes at a time (now
    and then back a little), the stops often read after ``now`` (a stop that ended after it,
    its claim cut there, must not be kept so)."""
    views, now_s = [], start
    for step, read_after in steps:
        now_s = max(0, now_s + step)
        views.append((now_s, window, plant, read_after))
    _check_views(machines, views)


def _check_views(machines: dict[str, list[Any]], views: list[tuple[int, tuple[int, int], Any, int]]) -> None:
    timeline = _timeline(machines)
    kept = Kept()
    for now_s, (a, b), plant, read_after in views:
        now, start, end = T0 + now_s, T0 + a, T0 + b
        stops = _seen(timeline, now + read_after)
        got = downtime_report(stops, plant, start, end, now, run_s=1800.0, kept=kept)
        assert got == downtime_report(stops, plant, start, end, now, run_s=1800.0), (now_s, a, b)
        for machine in machines:  # a machine's loss buckets and counted stops: classify_totals', bit for bit
            own = [s for s in stops if s.machine == machine]
            buckets, counted = loss_buckets(own, plant, start, end, now)
            for sums in (stop_sums.machine_of(own, plant, start, end, now, kept.sums),
                         stop_sums.machine_of(own, plant, start, end, now)):
                assert {k: v.hex() for k, v in sums.buckets.items()} == {k: v.hex() for k, v in buckets.items()}
                assert sums.counted == counted, (machine, now_s, a, b)
        events = got["events"]
        losses = [e for e in events if not e["planned"] and e["lost_s"] > 0]
        down = [e for e in losses if not e["micro"]]
        summary = got["summary"]
        assert (summary["stops"], summary["micro_stops"], summary["planned_stops"], summary["untagged_stops"]) == (
            len(down), len(losses) - len(down), sum(e["planned"] for e in events),
            sum(not e["reason"] for e in down))
        assert summary["down_s"] == pytest.approx(sum(e["lost_s"] for e in down))
        assert summary["planned_down_s"] == pytest.approx(sum(e["lost_s"] for e in events if e["planned"]))
        assert sum(r["count"] for r in got["pareto"]["by_count"]) == len(losses)
        assert sum(r["duration_s"] for r in got["pareto"]["by_duration"]) == pytest.approx(
            sum(e["lost_s"] for e in losses))
        for row in got["pareto"]["by_duration"]:  # a group's reason, label and category: its first stop's
            first = next(e for e in losses if (str(e["reason"]) if e["reason"] else
                                               "small_stops" if e["micro"] else "no_reason") == row["group"])
            assert (row["reason"], row["category"]) == (first["reason"] or None, first["category"])


def test_a_stop_counts_by_its_whole_life_also_beyond_the_window() -> None:
    """A stop that began in a break, asked about while the break lasts, and ran on into the
    shift (read after that ``now``): it counts, as ``classify_totals`` counts it, although the
    window up to ``now`` holds no planned second of it."""
    stop = Stop("L1", "M1", T0 + 25 * 60, T0 + 40 * 60, State.FAULT, 1)  # the break: 00:20-00:35 (UTC, T0 midnight)
    now = T0 + 30 * 60
    assert loss_buckets([stop], WITH_BREAK, T0, T0 + 3600, now)[1] == 1
    assert stop_sums.machine_of([stop], WITH_BREAK, T0, T0 + 3600, now).counted == 1
    assert stop_sums.machine_of([stop], WITH_BREAK, T0, T0 + 3600, T0 + 24 * 60).counted == 0, "not begun yet"


def test_a_view_sums_only_the_stops_after_the_settled_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ended stops are summed once (the last one too); what may still change (the ongoing
    one, one whose claim reaches past the window's edge) at every view; nothing kept for another plant or window,
    when a settled stop is not the same object any more or another has its start, or when
    asked at a time before they ended."""
    added: list[float] = []
    real = stop_sums.MachineSums.add
    monkeypatch.setattr(stop_sums.MachineSums, "add",
                        lambda self, stop, *args: (added.append(stop.start - T0), real(self, stop, *args))[1])
    stored = [Stop("L1", "M1", T0 + 100.0 * i, T0 + 100.0 * i + 50, State.FAULT, i % 3) for i in range(6)]
    kept = Kept()

    def view(stops: list[Stop], now: float, plant: Any = PLANT, end: float = T0 + 3600) -> list[float]:
        added.clear()
        downtime_report(stops, plant, T0, end, T0 + now, kept=kept, listed=False)
        return list(added)

    ongoing = Stop("L1", "M1", T0 + 600, None, State.IDLE, 0)
    everything = [0, 100, 200, 300, 400, 500]
    assert view([*stored[:5], ongoing], 700) == [0, 100, 200, 300, 400, 600]
    assert view([*stored[:5], ongoing], 800) == [600], "the five ended ones were kept"
    assert view([*stored, Stop("L1", "M1", T0 + 700, None, State.IDLE, 0)], 800) == [500, 700]
    assert view(stored, 800) == [], "settled: the stop after them made no difference"
    assert view(stored, 520) == everything, "asked at a time before the stop at 500 ended"
    moved = [stored[0], Stop("L1", "M1", T0 + 100, T0 + 150, State.FAULT, 4), *stored[2:]]  # classified since
    assert view(moved, 800) == everything, "a settled stop is not the same object any more"
    assert view(moved, 800) == [], "the last stop too, once it ended inside the window"
    copy = Stop("L1", "M1", T0 + 400, T0 + 480, State.FAULT, 1)  # a more final copy of a settled stop
    assert view([*moved[:5], copy, moved[5]], 800) == everything
    assert view(stored, 800, plant=WITH_BREAK) == everything, "another plant"
    assert view(stored, 800, end=T0 + 420) == [0, 100, 200, 300, 400], "another window"


def test_a_copy_of_sums_is_equal_and_apart() -> None:
    sums = stop_sums.MachineSums(*range(1, 14), groups={"1": stop_sums.GroupSums(5.0, 1, "Jam", "equipment_failure")})
    sums.buckets["setup_s"], sums.counted = 7.0, 2
    copy = sums.copy()
    assert copy == sums and copy.groups is not sums.groups and copy.buckets is not sums.buckets
    copy.add(Stop("L1", "M1", T0, T0 + 300, State.FAULT, 1), 300.0, PLANT, T0 + 300)
    assert (sums.stops, sums.groups["1"].count) == (2, 0) and (copy.stops, copy.groups["1"].count) == (3, 1)
    assert (sums.buckets["failure_s"], copy.buckets["failure_s"], copy.buckets["setup_s"]) == (0.0, 300.0, 7.0)


@pytest.mark.parametrize("now", [T0 + 300, T0 + 420])
def test_a_stop_read_as_ended_after_now_is_not_kept_cut_at_now(now: float) -> None:
    """Stops read a moment after the view's ``now`` (the last one ended after it, at 400 s,
    its claim cut at ``now``): its sums are not kept cut; a later view counts it whole, as
    one made without kept sums."""
    stops = [Stop("L1", "M1", T0 + 50, T0 + 80, State.FAULT, 1), Stop("L1", "M1", T0 + 100, T0 + 400, State.FAULT, 2)]
    kept = Kept()
    first = downtime_report(stops, PLANT, T0, T0 + 3600, now, kept=kept, listed=False)
    assert first == downtime_report(stops, PLANT, T0, T0 + 3600, now, listed=False)
    later = downtime_report(stops, PLANT, T0, T0 + 3600, T0 + 500, kept=kept, listed=False)
    assert later == downtime_report(stops, PLANT, T0, T0 + 3600, T0 + 500, listed=False)
    assert later["summary"]["down_s"] == 330.0
