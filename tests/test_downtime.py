"""Stop classification, merging overlapping records, the downtime report, MTBF and MTTR."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calendar import intersect, total
from domain.downtime import (
    PlannedIndex,
    claimed_spans,
    classify_stop,
    classify_totals,
    planned_intervals,
)
from domain.engine import Stop
from domain.model import State
from domain.plant import LossCategory
from domain.stop_report import downtime_report
from domain.totals import Totals
from tests.core_support import T0, local, make_plant

PLANT = make_plant()  # planned 24/7 (UTC), threshold 120 s
F, S, SB, U, SM, P = (LossCategory.EQUIPMENT_FAILURE, LossCategory.SETUP_ADJUSTMENT, LossCategory.STARVED_BLOCKED,
                      LossCategory.UNEXPLAINED, LossCategory.SMALL_STOP, LossCategory.PLANNED)


def stop(start: float, end: float | None, state: State = State.IDLE, reason: int = 0, machine: str = "M1") -> Stop:
    return Stop("L1", machine, T0 + start, None if end is None else T0 + end, state, reason)


@pytest.mark.parametrize("state, reason, seconds, category, planned, micro, text", [
    (State.IDLE, 0, 60, SM, False, True, "No reason"),
    (State.IDLE, 0, 119.9, SM, False, True, "No reason"),
    (State.IDLE, 0, 120, U, False, False, "No reason"),  # at the threshold: down time
    (State.FAULT, 0, 30, SM, False, True, "No reason"),  # a short jam is a small stop
    (State.FAULT, 0, 300, F, False, False, "No reason"),
    (State.CHANGEOVER, 0, 30, S, False, False, "No reason"),  # a changeover is never a small stop
    (State.STARVED, 0, 300, SB, False, False, "No reason"),
    (State.BLOCKED, 0, 30, SM, False, True, "No reason"),
    (State.PLANNED_STOP, 0, 30, P, True, False, "No reason"),
    (State.IDLE, 4, 30, P, True, False, "Maintenance"),  # planned reason
    (State.FAULT, 6, 3000, P, True, False, "Team meeting"),  # planned flag beats the category
    (State.IDLE, 1, 30, F, False, False, "Jam"),  # a reason makes it more than a small stop
    (State.IDLE, 5, 600, SM, False, True, "Slow feeder"),  # a performance-loss reason
    (State.FAULT, 99, 300, F, False, False, "Unknown reason 99"),  # code not in the plant file
    (State.IDLE, 99, 30, U, False, False, "Unknown reason 99"),
])
def test_classify_stop(state: State, reason: int, seconds: float, category: LossCategory, planned: bool, micro: bool,
                       text: str) -> None:
    cls = classify_stop(stop(0, seconds, state, reason), PLANT, now=T0 + 10_000)
    assert (cls.category, cls.planned, cls.micro, cls.reason_text) == (category, planned, micro, text)


def test_an_ongoing_stop_is_classified_as_if_it_ended_now() -> None:
    ongoing = stop(0, None)
    assert classify_stop(ongoing, PLANT, now=T0 + 60).micro
    assert not classify_stop(ongoing, PLANT, now=T0 + 200).micro


def raw(stopped: float, window: float = 600) -> Totals:
    return Totals(calendar_s=window, planned_operation_s=window, run_s=window - stopped, stopped_s=stopped)


@pytest.mark.parametrize("threshold, micro_s, down_s", [(120, 0, 200), (300, 200, 0)])
def test_the_micro_stop_threshold_moves_loss_between_availability_and_performance(
        threshold: float, micro_s: float, down_s: float) -> None:
    plant = make_plant(micro_stop_threshold_s=threshold)
    totals = classify_totals(raw(200), [stop(100, 300)], plant, T0, T0 + 600, T0 + 600)
    assert (totals.micro_stop_s, totals.down_s, totals.unexplained_s) == (micro_s, down_s, down_s)
    assert totals.stops == (1 if down_s else 0)


def test_classified_fields_add_up() -> None:
    stops = [stop(0, 50, State.FAULT, 1), stop(60, 90, State.CHANGEOVER), stop(100, 130, State.IDLE),
             stop(200, 400, State.PLANNED_STOP), stop(400, 560, State.STARVED)]
    totals = classify_totals(raw(50 + 30 + 30 + 200 + 160), stops, PLANT, T0, T0 + 600, T0 + 600)
    assert (totals.failure_s, totals.setup_s, totals.micro_stop_s, totals.planned_down_s, totals.starved_blocked_s) == (
        50, 30, 30, 200, 160)
    assert totals.down_s == 50 + 30 + 160
    assert totals.planned_busy_s == 600 - 200
    assert totals.stops == 3  # failure, changeover, starved: not the micro-stop, not the planned one


def test_overlapping_stop_records_are_merged_so_availability_cannot_go_negative() -> None:
    stops = [stop(0, 100, State.FAULT, 1), stop(50, 150, State.FAULT, 1), stop(60, 70, State.IDLE, 2)]
    totals = classify_totals(raw(150), stops, PLANT, T0, T0 + 600, T0 + 600)
    assert totals.down_s == 150
    assert totals.run_s + totals.down_s <= totals.planned_busy_s


def test_a_stale_ongoing_copy_of_a_stop_yields_to_the_ended_one_and_to_later_stops() -> None:
    stops = [stop(0, None, State.FAULT, 1), stop(0, 100, State.FAULT, 1),  # same stop, before and after it ended
             stop(200, None, State.IDLE), stop(300, 400, State.FAULT, 1)]  # never closed, then a newer stop
    spans = claimed_spans(stops, T0, T0 + 600, T0 + 600)
    assert [(s.end, span) for s, span in spans] == [
        (T0 + 100, (T0, T0 + 100)), (None, (T0 + 200, T0 + 300)), (T0 + 400, (T0 + 300, T0 + 400))]


def test_stops_of_different_machines_are_not_merged() -> None:
    spans = claimed_spans([stop(0, 100), stop(0, 100, machine="M2")], T0, T0 + 600, T0 + 600)
    assert len(spans) == 2


def _claimed_spans_reference(stops: list[Stop], start: float, end: float, now: float) -> list[tuple[Stop, Any]]:
    """``claimed_spans`` as first written (a dict of the most final copy per stop, then each
    machine's stops in order), to check the one-pass version against."""
    best: dict[tuple[str, str, float], Stop] = {}
    for s in stops:
        known = best.get((s.line, s.machine, s.start))
        if known is None or known.end is None or (s.end is not None and s.end > known.end):
            best[(s.line, s.machine, s.start)] = s
    by_machine: dict[tuple[str, str], list[Stop]] = {}
    for s in best.values():
        by_machine.setdefault((s.line, s.machine), []).append(s)
    out: list[tuple[Stop, Any]] = []
    for machine_stops in by_machine.values():
        machine_stops.sort(key=lambda s: s.start)
        claimed_until = float("-inf")
        for i, s in enumerate(machine_stops):
            stop_to = s.end if s.end is not None else max(now, s.start)
            if s.end is None and i + 1 < len(machine_stops):
                stop_to = min(stop_to, machine_stops[i + 1].start)
            a, b = max(s.start, claimed_until, start), min(stop_to, end)
            if b > a:
                out.append((s, (a, b)))
            claimed_until = max(claimed_until, stop_to)
    out.sort(key=lambda item: (item[0].start, item[0].machine))
    return out


_stops = st.lists(st.tuples(st.sampled_from(["L1", "L2"]), st.sampled_from(["M1", "M2", "M3"]),
                            st.integers(0, 40).map(lambda m: T0 + 30.0 * m),
                            st.one_of(st.none(), st.integers(1, 20).map(lambda m: 30.0 * m)),
                            st.sampled_from([State.FAULT, State.IDLE]), st.sampled_from([0, 1, 2])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(raw=_stops, window=st.tuples(st.integers(-5, 40), st.integers(1, 45)), now_m=st.integers(0, 60))
def test_claimed_spans_in_one_pass_are_the_spans_as_first_written(raw: list[Any], window: tuple[int, int],
                                                                  now_m: int) -> None:
    """Copies of a stop (same start: the most final wins), ongoing ones cut at the next
    stop, overlaps claimed by the earlier stop, several lines with the same machine ids."""
    stops = [Stop(line, m, start, None if length is None else start + length, state, reason)
             for line, m, start, length, state, reason in raw]
    start, end, now = T0 + 30.0 * window[0], T0 + 30.0 * (window[0] + window[1]), T0 + 30.0 * now_m
    got = claimed_spans(stops, start, end, now)
    want = _claimed_spans_reference(stops, start, end, now)
    assert [(id(s), span) for s, span in got] == [(id(s), span) for s, span in want]


def test_stopped_time_no_record_claims_is_unexplained_and_overclaims_are_scaled() -> None:
    missing = classify_totals(raw(100), [stop(0, 40, State.FAULT, 1)], PLANT, T0, T0 + 600, T0 + 600)
    assert (missing.failure_s, missing.unexplained_s, missing.down_s) == (40, 60, 100)
    over = classify_totals(raw(50), [stop(0, 100, State.FAULT, 1)], PLANT, T0, T0 + 600, T0 + 600)
    assert (over.failure_s, over.down_s) == (50, 50)


def test_classifying_twice_with_the_same_stops_changes_nothing() -> None:
    stops = [stop(0, 300, State.FAULT, 1), stop(400, 450)]
    once = classify_totals(raw(350), stops, PLANT, T0, T0 + 600, T0 + 600)
    assert classify_totals(once, stops, PLANT, T0, T0 + 600, T0 + 600) == once


def test_a_stop_bridging_a_break_loses_only_planned_time() -> None:
    plant = make_plant(shifts=[{"name": "s", "start": "00:00", "end": "00:00",
                                "breaks": [{"start": "00:05", "end": "00:15"}]}])
    bridge = stop(240, 960)  # 00:04 to 00:16: 12 minutes, 2 of them planned
    totals = classify_totals(Totals(planned_operation_s=1200 - 600, stopped_s=120), [bridge], plant, T0, T0 + 1200,
                             T0 + 1200)
    assert (totals.unexplained_s, totals.micro_stop_s) == (120, 0)  # 12 min long: not a small stop
    report = downtime_report([bridge], plant, T0, T0 + 1200, T0 + 1200)
    assert report["events"][0]["lost_s"] == 120 and report["events"][0]["in_window_s"] == 720


def test_a_stop_only_on_a_break_is_neither_a_loss_nor_counted() -> None:
    plant = make_plant(shifts=[{"name": "s", "start": "00:00", "end": "00:00",
                                "breaks": [{"start": "00:05", "end": "00:15"}]}])
    totals = classify_totals(Totals(), [stop(310, 800)], plant, T0, T0 + 1200, T0 + 1200)
    assert (totals.down_s, totals.stops) == (0, 0)


# --- the report ----------------------------------------------------------------------

REPORT_STOPS = [
    stop(0, 600, State.FAULT, 1),  # 600 s jam
    stop(1000, 1300, State.FAULT, 1),  # 300 s jam
    stop(2000, 2900, State.CHANGEOVER, 2),  # 900 s changeover
    stop(3000, 3060),  # 60 s small stop
    stop(3100, 3130),  # 30 s small stop
    stop(3200, 3500),  # 300 s without a reason
    stop(4000, 5000, State.PLANNED_STOP),  # planned: listed, not a loss
    stop(5500, 5530, State.IDLE, 0, machine="M2"),
    stop(6000, None, State.FAULT, 99),  # ongoing, unknown code
]
NOW = T0 + 6300


def test_downtime_report_pareto_by_duration_and_count() -> None:
    report = downtime_report(REPORT_STOPS, PLANT, T0, T0 + 7200, NOW, run_s=3600.0)
    by_duration = [(r["group"], r["count"], r["duration_s"]) for r in report["pareto"]["by_duration"]]
    assert by_duration == [("1", 2, 900), ("2", 1, 900), ("99", 1, 300), ("no_reason", 1, 300),
                           ("small_stops", 3, 120)]
    by_count = [(r["group"], r["count"]) for r in report["pareto"]["by_count"]]
    assert by_count == [("small_stops", 3), ("1", 2), ("2", 1), ("99", 1), ("no_reason", 1)]
    rows = report["pareto"]["by_duration"]
    assert rows[0]["share"] == pytest.approx(900 / 2520)
    assert rows[-1]["cumulative_share"] == pytest.approx(1.0)
    assert rows[0]["label"] == "Jam" and rows[2]["label"] == "Unknown reason 99"
    assert rows[4]["label"] == "Small stops (no reason, < 120 s)"


def test_downtime_report_events_summary_and_reliability() -> None:
    report = downtime_report(REPORT_STOPS, PLANT, T0, T0 + 7200, NOW, run_s=3600.0)
    assert len(report["events"]) == len(REPORT_STOPS)
    ongoing = report["events"][-1]
    assert (ongoing["ongoing"], ongoing["end"], ongoing["duration_s"], ongoing["category"]) == (
        True, None, 300, "equipment_failure")
    assert report["summary"] == {"stops": 5, "micro_stops": 3, "planned_stops": 1, "down_s": 2400,
                                 "micro_stop_s": 120, "planned_down_s": 1000,
                                 # the untagged figures: 300 s of down time without a reason, one stop
                                 "untagged_coverage": 2100 / 2400, "tagged_down_s": 2100, "untagged_down_s": 300,
                                 "untagged_stops": 1}
    # failures: the two jams and the ongoing unknown-code fault (category from its state)
    assert (report["failures"], report["failure_down_s"]) == (3, 1200)
    assert report["mtbf_s"] == 1200 and report["mttr_s"] == 400
    assert report["by_machine"][0] == {"line": "L1", "machine": "M1", "count": 7, "duration_s": 2520 - 30}
    json.dumps(report)  # JSON-ready


def test_downtime_report_clips_to_the_window() -> None:
    report = downtime_report(REPORT_STOPS, PLANT, T0 + 300, T0 + 1100, NOW)
    assert [e["lost_s"] for e in report["events"]] == [300, 100]
    assert report["events"][0]["duration_s"] == 600  # the whole stop, for the list
    assert (report["failures"], report["mtbf_s"], report["mttr_s"]) == (2, None, 200)


def test_events_kept_by_a_caller_give_the_same_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader keeps its ended stops' events (``kept``): the report is the one made without,
    at every ``now``, clipped to every window, for another plant; copies, made once per stop."""
    import domain.stop_report as module

    kept = module.Kept()
    made: list[Stop] = []
    real = module._event
    monkeypatch.setattr(module, "_event", lambda s, *args: (made.append(s), real(s, *args))[1])
    other = make_plant(reasons={1: {"text": "Jam (renamed)", "category": "setup_adjustment"}})
    cases = [(PLANT, T0, T0 + 7200, NOW), (PLANT, T0, T0 + 7200, NOW + 600), (PLANT, T0 + 300, T0 + 1100, NOW),
             (other, T0, T0 + 7200, NOW + 600), (PLANT, T0, T0 + 7200, NOW + 900)]
    for plant, start, end, now in cases:
        made.clear()
        got = downtime_report(REPORT_STOPS, plant, start, end, now, run_s=3600.0, kept=kept)
        assert got == downtime_report(REPORT_STOPS, plant, start, end, now, run_s=3600.0), (start, end, now)
        got["events"][0]["id"] = "added by the caller"  # as ``annotate`` does
    made.clear()
    downtime_report(REPORT_STOPS, PLANT, T0, T0 + 7200, NOW + 1200, run_s=3600.0, kept=kept)
    assert made == [s for s in REPORT_STOPS if s.end is None], "only the ongoing stop is made again"
    assert all("id" not in event for _, _, event in kept.events.values())


def test_an_empty_report() -> None:
    report = downtime_report([], PLANT, T0, T0 + 60, T0 + 60, run_s=60.0)
    assert report["events"] == [] and report["pareto"] == {"by_duration": [], "by_count": []}
    assert (report["mtbf_s"], report["mttr_s"]) == (None, None)


SHIFT_PLANT = make_plant(timezone="Europe/Berlin", shifts=[
    {"name": "early", "start": "06:00", "end": "14:00", "breaks": [{"start": "09:00", "end": "09:15"}]},
    {"name": "late", "start": "14:00", "end": "22:00", "weekdays": [0, 1, 2, 3, 4]},
    {"name": "night", "start": "22:00", "end": "06:00", "breaks": [{"start": "02:00", "end": "02:30"}],
     "weekdays": [0, 2, 4]},
])
DST_SPAN = (local("Europe/Berlin", "2024-03-28T00:00"), local("Europe/Berlin", "2024-04-03T00:00"))


@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, 6 * 86_400_000), length=st.integers(0, 2 * 86_400_000))
def test_planned_index_adds_up_exactly_what_the_calendar_gives(a: int, length: int) -> None:
    """Bit for bit (not approximately): classify_totals used to intersect each stop with
    the calendar computed for just that stop."""
    index = PlannedIndex(SHIFT_PLANT, *DST_SPAN)
    start = DST_SPAN[0] + a / 1000
    end = min(start + length / 1000, DST_SPAN[1])
    expected = total(intersect([(start, end)], planned_intervals(SHIFT_PLANT, start, end))) if end > start else 0
    assert index.seconds(start, end) == expected
    assert index.any_in(start, end) == (expected > 0)


@settings(max_examples=200, deadline=None)
@given(ends=st.lists(st.integers(1, 3 * 86_400_000), min_size=1, max_size=6), a=st.integers(0, 3 * 86_400_000),
       length=st.integers(0, 86_400_000))
def test_kept_planned_indexes_answer_as_one_built_for_the_span(ends: list[int], a: int, length: int) -> None:
    """A reader's kept indexes (one window start, ends moving with the clock, across the DST
    change and the breaks): what each answers inside its asked span is what an index of just
    that span answers, bit for bit; a span it no longer covers (or another plant) builds anew."""
    from domain.downtime import PlannedIndexes

    indexes = PlannedIndexes(ahead_s=3600.0)
    start = DST_SPAN[0]
    kept = None
    for n in ends:
        end = start + n / 1000
        index = indexes.covering(SHIFT_PLANT, start, end)
        assert index.covers(start, end)
        if kept is not None and kept.covers(start, end):
            assert index is kept, "an index that still covers the span is kept"
        kept = index
        q0 = start + min(a / 1000, end - start)
        q1 = min(q0 + length / 1000, end)
        assert index.seconds(q0, q1) == PlannedIndex(SHIFT_PLANT, start, end).seconds(q0, q1)
    other = make_plant(timezone="Europe/Berlin", shifts=SHIFT_PLANT.model_dump()["shifts"])
    assert indexes.covering(other, start, start + 60) is not kept, "per plant object (a reloaded plant file)"


def test_kept_planned_indexes_are_built_ahead_of_the_clock() -> None:
    from domain.downtime import PlannedIndexes

    indexes = PlannedIndexes(ahead_s=600.0)
    start = DST_SPAN[0]
    first = indexes.covering(SHIFT_PLANT, start, start + 3600)
    assert (first.start, first.end) == (start, start + 4200)
    assert indexes.covering(SHIFT_PLANT, start, start + 4200) is first  # the next views of the live window
    later = indexes.covering(SHIFT_PLANT, start, start + 4201)
    assert later is not first and (later.start, later.end) == (start, start + 4801)
    assert indexes.covering(SHIFT_PLANT, start + 60, start + 120) is not later  # another window start


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.tuples(st.sampled_from(["L1", "L2"]), st.sampled_from(["M1", "M2", "M3"])), max_size=40),
       one_line=st.booleans())
def test_stops_by_machine_groups_as_by_line_and_machine_in_first_seen_order(keys: list[tuple[str, str]],
                                                                            one_line: bool) -> None:
    """Grouped by machine name first (one line's stops: the live views), by both when one name
    is on several lines (a plant's report): the same groups, keys in the same order."""
    from domain.stop_groups import stops_by_machine

    stops = [Stop("L1" if one_line else line, machine, T0 + i, T0 + i + 1, State.IDLE, 0)
             for i, (line, machine) in enumerate(keys)]
    expected: dict[tuple[str, str], list[Stop]] = {}
    for s in stops:
        expected.setdefault((s.line, s.machine), []).append(s)
    got = stops_by_machine(iter(stops))
    assert list(got) == list(expected)
    assert all(got[key] == group and all(a is b for a, b in zip(got[key], group, strict=True))
               for key, group in expected.items())
