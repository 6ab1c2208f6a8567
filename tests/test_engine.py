"""The incremental engine: minutes, carry, and minutes + stops == totals from raw events."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.accounting import MachineContext
from domain.engine import MachineAccumulator, MinuteRollup, Stop, feed_order, replay, totals_from_events, window_totals
from domain.kpi import kpis
from domain.model import Event, Signal, State
from domain.totals import Totals, sum_totals
from tests.core_support import T0, assert_totals_close, ev, heartbeats, machine_config, make_plant

MIN = 60.0


def accumulator(plant=None, machine_index=0, start=T0) -> MachineAccumulator:
    plant = plant or make_plant()
    line = plant.lines[0]
    return MachineAccumulator(plant, line, line.machines[machine_index], start)


# --- The DOMAIN.md worked example, as events -----------------------------------------

WORKED_SHIFT = {
    "name": "day", "start": "06:00", "end": "14:00",
    "breaks": [{"start": "08:00", "end": "08:15"}, {"start": "10:00", "end": "10:30"},
               {"start": "12:00", "end": "12:15"}],
}
SHIFT_START, SHIFT_END = T0 + 6 * 3600, T0 + 14 * 3600
BREAKS = [(T0 + 8 * 3600, T0 + 8 * 3600 + 900), (T0 + 10 * 3600, T0 + 10 * 3600 + 1800),
          (T0 + 12 * 3600, T0 + 12 * 3600 + 900)]
FAILURE = (T0 + 7 * 3600, T0 + 7 * 3600 + 30 * 60)  # 30 min, reason 1 (equipment failure)
SETUP = (T0 + 11 * 3600, T0 + 11 * 3600 + 17 * 60)  # 17 min, reason 2 (setup)


def worked_example_events() -> list[Event]:
    """8 h shift, 60 min of breaks (machine idle, not down), 47 min of unplanned stops,
    373 running minutes making 19,271 parts (423 rejects) at an ideal 1.0 s each."""
    changes = [(SHIFT_START, "running")]
    for a, b in BREAKS:
        changes += [(a, "idle"), (b, "running")]
    changes += [(FAILURE[0], "fault"), (FAILURE[1], "running"), (SETUP[0], "changeover"), (SETUP[1], "running"),
                (SHIFT_END, "idle")]
    events = [ev(Signal.STATE, state, t) for t, state in changes]
    events += [ev(Signal.REASON, 1, FAILURE[0] + 5), ev(Signal.REASON, 2, SETUP[0] + 5)]
    events += list(heartbeats(SHIFT_START - 60, SHIFT_END + 600))
    running_minutes = [
        t for t in (SHIFT_START + 60 * i for i in range(480))
        if not any(a <= t < b for a, b in [*BREAKS, FAILURE, SETUP])
    ]
    assert len(running_minutes) == 373
    good, reject = 0, 0
    for i, t in enumerate(running_minutes):  # spread 18,848 good and 423 rejects evenly
        good_now, reject_now = 18848 * (i + 1) // 373, 423 * (i + 1) // 373
        if good_now != good:
            events.append(ev(Signal.GOOD, 1000 + good_now, t + 30))
        if reject_now != reject:
            events.append(ev(Signal.REJECT, 50 + reject_now, t + 30))
        good, reject = good_now, reject_now
    events += [ev(Signal.GOOD, 1000, SHIFT_START - 30), ev(Signal.REJECT, 50, SHIFT_START - 30)]  # baselines
    return sorted(events, key=lambda e: e.ts)


def test_worked_example_through_the_accumulator() -> None:
    plant = make_plant(shifts=[WORKED_SHIFT])
    acc = accumulator(plant, start=SHIFT_START - 3600)
    minutes = replay(acc, worked_example_events(), SHIFT_END + 3600)
    stops = acc.drain_stops()
    in_shift = [m for m in minutes if SHIFT_START <= m.minute_start < SHIFT_END]
    report = kpis(sum_totals(m.totals for m in in_shift), stops, plant, SHIFT_START, SHIFT_END, SHIFT_END + 3600)
    t = report.totals
    assert (t.planned_operation_s, t.planned_busy_s, t.run_s, t.down_s) == (420 * 60, 420 * 60, 373 * 60, 47 * 60)
    assert (t.failure_s, t.setup_s, t.unknown_s, t.micro_stop_s) == (30 * 60, 17 * 60, 0, 0)
    assert (t.total_count, t.good_count, t.reject_count, t.stops) == (19271, 18848, 423, 2)
    assert round(report.availability * 100, 2) == 88.81
    assert round(report.performance * 100, 2) == 86.11
    assert round(report.quality * 100, 2) == 97.80
    assert round(report.oee * 100, 2) == 74.79
    assert report.oee == pytest.approx(18848 * 1.0 / (420 * 60), rel=1e-12)
    # breaks are not downtime: the idle machine on breaks is idle time outside the plan
    assert t.state_s["idle"] == pytest.approx(3600)  # the breaks
    assert [(s.state, s.reason) for s in stops if s.reason] == [(State.FAULT, 1), (State.CHANGEOVER, 2)]


# --- Minutes -------------------------------------------------------------------------


def test_minutes_close_even_without_events_and_are_unknown() -> None:
    acc = accumulator()
    minutes = acc.close_until(T0 + 150)
    assert [m.minute_start for m in minutes] == [T0, T0 + 60]
    assert acc.cursor == T0 + 120
    for m in minutes:
        assert (m.totals.calendar_s, m.totals.planned_operation_s, m.totals.unknown_s) == (60, 60, 60)
        assert m.totals.state_s == {"unknown": 60}


def test_a_minute_splits_state_at_the_event_and_carries_state_on() -> None:
    acc = accumulator()
    acc.feed(ev(Signal.STATE, "running", T0 + 15))
    for t in range(25, 200, 10):
        acc.feed(ev(Signal.HEARTBEAT, None, T0 + t))
    minutes = acc.close_until(T0 + 180)
    assert [(m.totals.run_s, m.totals.unknown_s) for m in minutes] == [(45, 15), (60, 0), (60, 0)]


def test_silence_turns_unknown_after_the_gap_timeout_and_ends_the_stop() -> None:
    acc = accumulator()
    acc.feed(ev(Signal.STATE, "fault", T0 + 10))  # then nothing: unknown from T0 + 40
    minutes = acc.close_until(T0 + 120)
    assert [(m.totals.stopped_s, m.totals.unknown_s) for m in minutes] == [(30, 30), (0, 60)]
    assert acc.drain_stops() == [Stop("L1", "M1", T0 + 10, T0 + 40, State.FAULT, 0)]
    assert acc.current_stop() is None


def test_an_event_beyond_the_open_minute_closes_the_minutes_before_it() -> None:
    acc = accumulator()
    acc.feed(ev(Signal.STATE, "running", T0 + 5))
    acc.feed(ev(Signal.STATE, "running", T0 + 130))
    assert acc.cursor == T0 + 120
    minutes = acc.close_until(T0 + 121)  # returns what the feed closed
    assert [m.minute_start for m in minutes] == [T0, T0 + 60]
    assert acc.close_until(T0 + 121) == []


def test_partial_covers_the_open_minute_without_closing_it() -> None:
    acc = accumulator()
    acc.feed(ev(Signal.STATE, "running", T0 + 61))
    acc.feed(ev(Signal.HEARTBEAT, None, T0 + 80))
    before = acc.carry()
    part = acc.partial(T0 + 100)
    assert (part.calendar_s, part.run_s, part.unknown_s) == (40, 39, 1)
    assert acc.carry() == before  # nothing changed
    longer = acc.partial(T0 + 200)  # across minute ends: the silence starts at T0 + 110
    assert (longer.calendar_s, longer.run_s, longer.unknown_s) == (140, 49, 91)


def test_an_accumulator_and_its_copies_are_freed_without_the_cycle_collector() -> None:
    """A reader copies a machine's accumulator for every live view (``edge``, ``partial``,
    ``edge_minutes``): neither it nor its copies may be in a reference cycle, else each is
    garbage only the cyclic collector frees (thousands a second at 1000 machines, each
    collection then 10-20 ms)."""
    import gc
    import weakref

    gc.collect()
    gc.disable()
    try:
        acc = accumulator()
        acc.feed(ev(Signal.STATE, "running", T0 + 1))
        acc.feed(ev(Signal.GOOD, 100, T0 + 2))
        acc.feed(ev(Signal.STATE, "idle", T0 + 70))
        copies = [acc._clone(), acc._clone(advanced_only=True)]
        for copy in copies:
            copy.advance_to(T0 + 200)
        assert acc.edge(T0 + 150)[1] and acc.edge_minutes(T0 + 190)[0]  # (they copy it too)
        refs = [weakref.ref(acc), *map(weakref.ref, copies)]
        del acc, copies, copy
        assert [ref() for ref in refs] == [None, None, None]
    finally:
        gc.enable()


def test_stops_at_sees_a_stop_ended_by_silence_after_the_processed_time() -> None:
    acc = accumulator()
    acc.feed(ev(Signal.STATE, "idle", T0 + 10))
    assert acc.current_stop() == Stop("L1", "M1", T0 + 10, None, State.IDLE, 0)
    assert acc.stops_at(T0 + 100) == [Stop("L1", "M1", T0 + 10, T0 + 40, State.IDLE, 0)]
    assert acc.current_stop() is not None  # unchanged


def test_late_events_land_in_the_open_minute_and_stale_readings_are_ignored() -> None:
    acc = accumulator()
    acc.feed(ev(Signal.STATE, "running", T0 + 1))
    acc.feed(ev(Signal.GOOD, 100, T0 + 2))
    acc.feed(ev(Signal.GOOD, 110, T0 + 50))
    acc.close_until(T0 + 60)
    acc.feed(ev(Signal.GOOD, 105, T0 + 40))  # stale: older than the reading at T0 + 50
    acc.feed(ev(Signal.GOOD, 112, T0 + 55))  # late but newer: counted in the open minute
    minute = acc.close_until(T0 + 120)[0]
    assert minute.minute_start == T0 + 60
    assert minute.totals.good_count == 2


def test_feeding_another_machine_is_an_error() -> None:
    with pytest.raises(ValueError):
        accumulator().feed(ev(Signal.STATE, "running", T0, machine="M9"))


def test_carry_is_json_and_restoring_it_continues_identically() -> None:
    plant = make_plant(tariff={"currency": "EUR", "default_price_per_kwh": 0.2,
                               "periods": [{"start": "00:01", "end": "00:02", "price_per_kwh": 0.5}]})
    events = [ev(Signal.STATE, "running", T0 + 3), ev(Signal.ENERGY, 7.0, T0 + 4), ev(Signal.GOOD, 5, T0 + 5),
              ev(Signal.STATE, "idle", T0 + 70), ev(Signal.REASON, 3, T0 + 71), ev(Signal.ENERGY, 7.5, T0 + 75),
              ev(Signal.GOOD, 9, T0 + 80), ev(Signal.STATE, "running", T0 + 100), ev(Signal.ENERGY, 8.25, T0 + 130)]
    straight = accumulator(plant)
    resumed = accumulator(plant)
    for e in events[:6]:
        straight.feed(e)
        resumed.feed(e)
    line = plant.lines[0]
    resumed = MachineAccumulator(plant, line, line.machines[0], 0.0, carry=json.loads(json.dumps(resumed.carry())))
    for e in events[6:]:
        straight.feed(e)
        resumed.feed(e)
    assert resumed.carry() == straight.carry()
    assert resumed.partial(T0 + 170) == straight.partial(T0 + 170)
    assert resumed.close_until(T0 + 300) == straight.close_until(T0 + 300)
    assert resumed.drain_stops() == straight.drain_stops()


def test_carry_of_another_machine_is_refused() -> None:
    plant = make_plant(machines=[machine_config("M1"), machine_config("M2")])
    line = plant.lines[0]
    carry = MachineAccumulator(plant, line, line.machines[0], T0).carry()
    with pytest.raises(ValueError):
        MachineAccumulator(plant, line, line.machines[1], T0, carry=carry)


def test_a_shared_context_of_another_machine_is_refused() -> None:
    plant = make_plant(machines=[machine_config("M1"), machine_config("M2")])
    line = plant.lines[0]
    context = MachineContext.of(plant, line, line.machines[0])
    shared = MachineAccumulator(plant, line, line.machines[0], T0, context=context)
    own = MachineAccumulator(plant, line, line.machines[0], T0)
    assert shared.close_until(T0 + 120) == own.close_until(T0 + 120)
    with pytest.raises(ValueError):
        MachineAccumulator(plant, line, line.machines[1], T0, context=context)


def test_window_totals_classify_a_stop_whose_reason_came_minutes_later() -> None:
    acc = accumulator()
    acc.feed(ev(Signal.STATE, "idle", T0 + 30))
    for t in range(40, 120, 10):
        acc.feed(ev(Signal.HEARTBEAT, None, T0 + t))
    first = acc.close_until(T0 + 120)  # closed while the stop was still a "micro-stop"
    for t in range(120, 300, 10):
        acc.feed(ev(Signal.HEARTBEAT, None, T0 + t))
    acc.feed(ev(Signal.REASON, 1, T0 + 295))
    acc.feed(ev(Signal.STATE, "running", T0 + 300))
    rest = acc.close_until(T0 + 360)
    totals = window_totals(first + rest, acc.drain_stops(), make_plant(), T0, T0 + 360, T0 + 360)
    assert (totals.failure_s, totals.micro_stop_s, totals.down_s, totals.stops) == (270, 0, 270, 1)


# --- Property: minute rollups + stops == direct computation from raw events ----------

PROP_SHIFTS = [
    {"name": "early", "start": "06:00", "end": "14:00",
     "breaks": [{"start": "06:20", "end": "06:35"}, {"start": "07:10", "end": "07:12"}]},
    {"name": "night", "start": "22:00", "end": "06:00", "breaks": [{"start": "05:30", "end": "05:45"}]},
]
PROP_TARIFF = {"currency": "EUR", "default_price_per_kwh": 0.3, "periods": [
    {"name": "peak", "start": "06:30", "end": "06:50", "price_per_kwh": 0.9},
    {"name": "night", "start": "23:00", "end": "06:15", "price_per_kwh": 0.1}]}
PROP_PLANT = make_plant(
    shifts=PROP_SHIFTS, timezone="Europe/Berlin", tariff=PROP_TARIFF,
    machines=[machine_config("M1", ideal=2.0, counter_bits=8, meter_rollover_kwh=100.0),
              machine_config("M2", ideal=3.0, meter=False)],
)
PROP_START = T0 + 4 * 3600  # 05:00 Berlin: night shift, its break, the early shift and its breaks
STATES = [s.value for s in State]


@st.composite
def event_sequences(draw: st.DrawFn, machine: str) -> list[Event]:
    """Random but plausible event streams: cumulative counters with resets and wraps,
    a meter with rollover, power, reasons, link drops, silences, equal timestamps."""
    n = draw(st.integers(min_value=0, max_value=60))
    ms = int(PROP_START * 1000) + draw(st.integers(0, 120_000))
    good, reject, meter = draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(st.floats(0, 99))
    events: list[Event] = []
    for _ in range(n):
        gap = draw(st.sampled_from(["same", "short", "short", "short", "short", "long"]))
        ms += {"same": 0, "short": draw(st.integers(1, 20_000)), "long": draw(st.integers(20_000, 240_000))}[gap]
        ts = ms / 1000.0
        kind = draw(st.sampled_from(["state", "state", "state", "reason", "reason", "good", "good", "reject", "energy",
                                     "energy", "power", "hb", "hold", "hold", "link", "bad"]))
        if kind == "state":
            events.append(ev(Signal.STATE, draw(st.sampled_from(["running", "running", *STATES])), ts, machine))
        elif kind == "reason":
            events.append(ev(Signal.REASON, draw(st.sampled_from([0, 0, 1, 2, 3, 4, 5, 6, 99])), ts, machine))
        elif kind in ("good", "reject"):
            step = draw(st.one_of(st.integers(0, 12), st.just(-1)))  # -1: a PLC restart
            value = (good if kind == "good" else reject)
            value = draw(st.integers(0, 3)) if step < 0 else (value + step) % 256
            if kind == "good":
                good = value
            else:
                reject = value
            events.append(ev(Signal.GOOD if kind == "good" else Signal.REJECT, value, ts, machine))
        elif kind == "energy":
            meter = (meter + draw(st.floats(0, 3))) % 100.0
            events.append(ev(Signal.ENERGY, meter, ts, machine))
        elif kind == "power":
            events.append(ev(Signal.POWER, draw(st.sampled_from([0.0, 1.5, 12.0, 40.0])), ts, machine))
        elif kind == "hb":
            events.append(ev(Signal.HEARTBEAT, None, ts, machine))
        elif kind == "hold":  # the machine stays heard for a while (long stops, long runs)
            for _ in range(draw(st.integers(1, 40))):
                events.append(ev(Signal.HEARTBEAT, None, ms / 1000.0, machine))
                ms += 10_000
        elif kind == "link":
            events.append(ev(Signal.LINK, draw(st.sampled_from(["up", "down"])), ts, machine))
        else:
            signal = draw(st.sampled_from([Signal.STATE, Signal.GOOD, Signal.ENERGY, Signal.POWER]))
            events.append(ev(signal, "garbage", ts, machine, status="BadSensorFailure"))
    return events


def run_engine(events: list[Event], machine_index: int, now: float, closes: list[bool], carries: list[bool]
               ) -> tuple[list[MinuteRollup], list[Stop], MachineAccumulator]:
    """Feeds events with closes and carry round trips in between, as the worker would."""
    line = PROP_PLANT.lines[0]
    machine = line.machines[machine_index]
    acc = MachineAccumulator(PROP_PLANT, line, machine, PROP_START)
    minutes: list[MinuteRollup] = []
    stops: list[Stop] = []
    for i, event in enumerate(sorted(events, key=feed_order)):  # the order the worker feeds
        if closes[i % len(closes)]:
            minutes += acc.close_until(event.ts)
            stops += acc.drain_stops()
        if carries[i % len(carries)]:
            acc = MachineAccumulator(PROP_PLANT, line, machine, 0.0, carry=json.loads(json.dumps(acc.carry())))
        acc.feed(event)
    minutes += acc.close_until(now)
    stops += acc.drain_stops()
    return minutes, stops, acc


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    machine_index=st.sampled_from([0, 1]),
    data=st.data(),
    closes=st.lists(st.booleans(), min_size=1, max_size=5),
    carries=st.lists(st.booleans(), min_size=1, max_size=7),
)
def test_minutes_plus_stops_equal_totals_from_raw_events(machine_index: int, data: st.DataObject,
                                                         closes: list[bool], carries: list[bool]) -> None:
    machine = PROP_PLANT.lines[0].machines[machine_index]
    events = data.draw(event_sequences(machine.id))
    last = events[-1].ts if events else PROP_START
    now = last + data.draw(st.floats(0, 400))
    minutes, stops, acc = run_engine(events, machine_index, now, closes, carries)
    all_stops = stops + acc.stops_at(now)
    first, last_closed = PROP_START, acc.cursor
    minutes_closed = max(0, int((last_closed - first) // 60))
    start = first + 60 * data.draw(st.one_of(st.integers(0, min(5, minutes_closed)), st.integers(0, minutes_closed)))
    open_edge = data.draw(st.booleans())
    if open_edge:  # the window runs to now: closed minutes plus the open edge
        end = now
        parts = [m.totals for m in minutes if m.minute_start >= start] + [acc.partial(now)]
        if start > acc.cursor:
            return
    else:
        end = start + 60 * data.draw(st.integers(0, max(0, int((last_closed - start) // 60))))
        parts = [m.totals for m in minutes if start <= m.minute_start < end]
    rolled = window_totals(parts, all_stops, PROP_PLANT, start, end, now)
    line = PROP_PLANT.lines[0]
    direct, direct_stops = totals_from_events(events, PROP_PLANT, line, machine, start, end, now, origin=PROP_START)
    assert_totals_close(rolled, direct)
    assert sorted(all_stops, key=lambda s: s.start) == direct_stops
    # the invariants of Totals hold for every window
    assert rolled.planned_operation_s == pytest.approx(rolled.run_s + rolled.stopped_s + rolled.unknown_s, abs=1e-6)
    assert rolled.stopped_s == pytest.approx(rolled.planned_down_s + rolled.micro_stop_s + rolled.down_s, abs=1e-6)
    assert rolled.planned_busy_s == pytest.approx(
        rolled.run_s + rolled.micro_stop_s + rolled.down_s + rolled.unknown_s, abs=1e-6)
    assert rolled.calendar_s == pytest.approx(sum(rolled.state_s.values()), abs=1e-6)
    assert sum(rolled.quarter_kwh.values()) == pytest.approx(rolled.energy_kwh, abs=1e-9)
    assert min(rolled.run_s, rolled.down_s, rolled.micro_stop_s, rolled.unknown_s, rolled.energy_kwh) >= -1e-9


@settings(max_examples=60, deadline=None)
@given(machine_index=st.sampled_from([0, 1]), data=st.data(), split=st.integers(0, 45))
def test_carry_round_trip_at_any_point_gives_identical_results(machine_index: int, data: st.DataObject,
                                                               split: int) -> None:
    line = PROP_PLANT.lines[0]
    machine = line.machines[machine_index]
    events = data.draw(event_sequences(machine.id))
    now = (events[-1].ts if events else PROP_START) + 100
    straight = MachineAccumulator(PROP_PLANT, line, machine, PROP_START)
    resumed = MachineAccumulator(PROP_PLANT, line, machine, PROP_START)
    for i, event in enumerate(events):
        if i == split:
            resumed.close_until(event.ts)
            straight.close_until(event.ts)
            resumed = MachineAccumulator(PROP_PLANT, line, machine, 0.0,
                                         carry=json.loads(json.dumps(resumed.carry())))
        straight.feed(event)
        resumed.feed(event)
    before = straight.carry()
    assert straight.edge(now) == (resumed.partial(now), resumed.stops_at(now))
    assert straight.carry() == before  # edge() works on a copy of the state
    assert resumed.partial(now) == straight.partial(now)
    assert resumed.stops_at(now) == straight.stops_at(now)
    assert resumed.close_until(now) == straight.close_until(now)
    assert resumed.carry() == straight.carry()


@settings(max_examples=60, deadline=None)
@given(machine_index=st.sampled_from([0, 1]), data=st.data(), ahead=st.floats(0, 400))
def test_open_edges_asked_between_events_change_nothing(machine_index: int, data: st.DataObject,
                                                        ahead: float) -> None:
    """``edge_minutes`` and ``edge`` advance a copy that shares the counters (only events
    change them): asked after every event, the accumulator's state, and what it makes of
    the events after, are those of one never asked."""
    line = PROP_PLANT.lines[0]
    machine = line.machines[machine_index]
    events = data.draw(event_sequences(machine.id))
    asked = MachineAccumulator(PROP_PLANT, line, machine, PROP_START)
    never = MachineAccumulator(PROP_PLANT, line, machine, PROP_START)
    for event in events:
        asked.feed(event)
        never.feed(event)
        before = asked.carry()
        open_from = asked.cursor
        minutes, cursor, partial, stops = asked.edge_minutes(event.ts + ahead)
        assert cursor >= open_from
        past = sum_totals([*(m.totals for m in minutes if m.minute_start >= open_from), partial])
        assert asked.edge(event.ts + ahead) == (past, stops)
        assert asked.carry() == before == never.carry()
    now = (events[-1].ts if events else PROP_START) + 100
    assert asked.close_until(now) == never.close_until(now)
    assert asked.carry() == never.carry()


def test_performance_over_100_through_the_engine_is_reported_not_clamped() -> None:
    events = [ev(Signal.STATE, "running", PROP_START + 10), ev(Signal.GOOD, 10, PROP_START + 11)]
    events += [ev(Signal.GOOD, 10 + i, PROP_START + 12 + i) for i in range(1, 25)]
    events += [ev(Signal.STATE, "fault", PROP_START + 40), ev(Signal.REASON, 1, PROP_START + 40)]
    minutes, stops, acc = run_engine(events, 0, PROP_START + 120, [False], [False])
    report = kpis(sum_totals(m.totals for m in minutes), stops, PROP_PLANT, PROP_START, PROP_START + 120,
                  PROP_START + 120)
    assert report.totals.total_count == 24
    assert report.performance == pytest.approx(24 * 2.0 / 30)  # 24 parts x 2 s in 30 s of running
    assert report.to_dict()["flags"]["performance_over_100"] is True
    assert math.isclose(report.oee or 0, 24 * 2.0 / report.known_planned_busy_s)


def test_totals_json_round_trip_keeps_quarter_keys_as_numbers() -> None:
    totals = Totals(energy_kwh=1.5, quarter_kwh={T0: 1.0, T0 + 900: 0.5}, state_s={"running": 60.0}, total_count=3)
    back = Totals.from_dict(json.loads(json.dumps(totals.to_dict())))
    assert back == totals
    assert all(isinstance(k, float) for k in back.quarter_kwh)


# --- Time zones and energy alignment through the engine -------------------------------

def test_a_night_shift_over_the_spring_daylight_saving_change_has_one_hour_less() -> None:
    """22:00-06:00 Berlin on 30/31 March 2024 is 7 h long; a machine running all night
    has 7 h minus its 30 min break of run time, and the break is not downtime."""
    from tests.core_support import local

    plant = make_plant(timezone="Europe/Berlin", shifts=[
        {"name": "N", "start": "22:00", "end": "06:00", "breaks": [{"start": "00:00", "end": "00:30"}]}])
    start, end = local("Europe/Berlin", "2024-03-30T22:00"), local("Europe/Berlin", "2024-03-31T06:00")
    acc = accumulator(plant, start=start)
    events = [ev(Signal.STATE, "running", start), *heartbeats(start + 10, end + 10)]
    minutes = replay(acc, events, end)
    totals = window_totals(minutes, acc.drain_stops(), plant, start, end, end)
    assert end - start == 7 * 3600
    assert (totals.planned_operation_s, totals.run_s, totals.unplanned_run_s) == (6.5 * 3600, 6.5 * 3600, 1800)
    assert totals.down_s == 0


def test_energy_and_parts_of_a_machine_land_in_the_same_minutes() -> None:
    """Pitfall 9: kWh and parts of one machine on one time axis, so kWh per part of any
    window divides numbers of the same minutes (a meter reading belongs to the minute
    it was taken in, power is split at the minute boundary)."""
    plant = make_plant(machines=[machine_config("M1"), machine_config("M2", meter=False)])
    metered, powered = accumulator(plant, 0), accumulator(plant, 1)
    for t, good, kwh in [(5, 0, 10.0), (50, 4, 10.5), (70, 10, 11.5), (130, 11, 11.75)]:
        metered.feed(ev(Signal.STATE, "running", T0 + t))
        metered.feed(ev(Signal.GOOD, good, T0 + t))
        metered.feed(ev(Signal.ENERGY, kwh, T0 + t))
    assert [(m.totals.good_count, m.totals.energy_kwh) for m in metered.close_until(T0 + 180)] == [
        (4, 0.5), (6, 1.0), (1, 0.25)]
    powered.feed(ev(Signal.STATE, "running", T0 + 30, machine="M2"))
    powered.feed(ev(Signal.POWER, 60.0, T0 + 30, machine="M2"))
    for t in (50, 80, 110):  # heard until T0 + 140
        powered.feed(ev(Signal.HEARTBEAT, None, T0 + t, machine="M2"))
    assert [m.totals.energy_kwh for m in powered.close_until(T0 + 180)] == pytest.approx([0.5, 1.0, 1 / 3])
