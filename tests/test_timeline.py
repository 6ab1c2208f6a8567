"""Timeline rules: unknown time, stops, reasons, late and bad readings, energy sources."""

from __future__ import annotations

import pytest

from domain.accounting import MachineContext
from domain.engine import Stop, totals_from_events
from domain.model import Event, State
from domain.plant import Plant
from domain.plausibility import IMPLAUSIBLE_DELTA, IMPLAUSIBLE_POWER, Flag
from domain.timeline import REASON_LEAD_S, Timeline
from domain.totals import Totals
from tests.core_support import T0, ev, heartbeats, machine_config, make_plant

PLANT = make_plant()


def run(events: list[Event], end: float = T0 + 120, start: float = T0, now: float | None = None,
        plant: Plant = PLANT, machine: int = 0) -> tuple[Totals, list[Stop]]:
    line = plant.lines[0]
    return totals_from_events(events, plant, line, line.machines[machine], start, end,
                              end if now is None else now, origin=T0)


def stop(start: float, end: float | None, state: State = State.IDLE, reason: int = 0) -> Stop:
    return Stop("L1", "M1", T0 + start, None if end is None else T0 + end, state, reason)


# --- unknown: silence, link, bad readings --------------------------------------------

@pytest.mark.parametrize("events, run_s, unknown_s", [
    # silence: unknown from last_heard + gap_timeout (30 s), before the first event too
    ([ev("state", "running", T0 + 10)], 30, 90),
    # heartbeats keep the last state alive
    ([ev("state", "running", T0 + 10), *heartbeats(T0 + 20, T0 + 120, 20)], 110, 10),
    # link down: unknown until "up", then the last known state again
    ([ev("state", "running", T0), ev("hb", None, T0 + 25), ev("link", "down", T0 + 50), ev("link", "up", T0 + 80),
      ev("hb", None, T0 + 100)],
     50 + 40, 30),
    # link down ends with the next good state event
    ([ev("state", "running", T0), ev("link", "down", T0 + 20), ev("state", "running", T0 + 60)], 20 + 30, 70),
    # any event, even one with a Bad status, counts as hearing the machine
    ([ev("state", "running", T0), ev("good", "x", T0 + 25, status="BadCommunicationError")], 55, 65),
    # a Bad state reading is unknown until the next good state reading
    ([ev("state", "running", T0), ev("state", "running", T0 + 20, status="BadSensorFailure"),
      ev("hb", None, T0 + 40), ev("state", "running", T0 + 60)], 20 + 30, 40 + 30),
    # a state value the product does not know, or "unknown" itself
    ([ev("state", "running", T0), ev("state", "exploded", T0 + 20), ev("state", "running", T0 + 40)], 20 + 30, 20 + 50),
    ([ev("state", "unknown", T0), ev("state", "running", T0 + 90)], 30, 90),
])
def test_unknown_time(events: list[Event], run_s: float, unknown_s: float) -> None:
    totals, _ = run(events)
    assert (totals.run_s, totals.unknown_s) == (run_s, unknown_s)
    assert totals.run_s + totals.stopped_s + totals.unknown_s == totals.planned_operation_s == 120


def test_unknown_is_neither_running_nor_down_and_ends_a_stop() -> None:
    events = [ev("state", "fault", T0), ev("reason", 1, T0), ev("hb", None, T0 + 10),  # silent from T0 + 40
              ev("hb", None, T0 + 100)]
    totals, stops = run(events, now=T0 + 120)
    assert stops == [stop(0, 40, State.FAULT, 1), stop(100, None, State.FAULT)]
    assert (totals.failure_s, totals.unknown_s) == (40, 60)
    assert totals.micro_stop_s == 20  # the stop after the gap is new, short and without a reason


# --- stops ---------------------------------------------------------------------------

@pytest.mark.parametrize("states, expected", [
    (["idle"], [stop(0, 60, State.IDLE)]),
    (["idle", "fault", "idle"], [stop(0, 60, State.FAULT)]),  # the first specific state is the cause
    (["fault", "changeover"], [stop(0, 60, State.FAULT)]),
    (["idle", "changeover", "starved"], [stop(0, 60, State.CHANGEOVER)]),
    # planned and unplanned time never share a stop
    (["fault", "planned_stop", "idle"], [stop(0, 20, State.FAULT), stop(20, 40, State.PLANNED_STOP),
                                         stop(40, 60, State.IDLE)]),
    (["idle", "running", "idle"], [stop(0, 20, State.IDLE), stop(40, 60, State.IDLE)]),
])
def test_stop_records(states: list[str], expected: list[Stop]) -> None:
    events = [ev("state", s, T0 + 20 * i) for i, s in enumerate(states)] + [ev("state", "running", T0 + 60)]
    events = sorted([*events, *heartbeats(T0 + 5, T0 + 60)], key=lambda e: e.ts)
    _, stops = run(events, now=T0 + 61)
    assert [s for s in stops if s.end is not None] == expected


def test_zero_length_stops_are_dropped() -> None:
    _, stops = run([ev("state", "running", T0), ev("state", "idle", T0 + 10), ev("state", "running", T0 + 10)])
    assert stops == []


@pytest.mark.parametrize("reason_events, expected", [
    ([(5, 1)], 1),  # during the stop
    ([(5, 1), (8, 2)], 2),  # the last one wins
    ([(5, 1), (8, 0)], 1),  # 0 does not clear a stop's reason
    ([(0, 3)], 3),  # same instant as the stop, fed before the state
    ([(-REASON_LEAD_S, 3)], 3),  # set by the PLC just before the state changed
    ([(-REASON_LEAD_S - 1, 3)], 0),  # too early: not this stop's reason
    ([(-1, 3), (-0.5, 0)], 0),  # cleared before the stop
    ([(50, 3)], 0),  # after the stop ended: the record is final
])
def test_reason_attaches_to_the_stop(reason_events: list[tuple[float, int]], expected: int) -> None:
    events = [ev("state", "running", T0), ev("state", "fault", T0 + 20), ev("state", "running", T0 + 40)]
    events += [ev("reason", code, T0 + 20 + dt) for dt, code in reason_events]
    events.sort(key=lambda e: e.ts)  # stable: a reason at the same instant stays before the state
    _, stops = run(events, now=T0 + 100)
    assert [s.reason for s in stops] == [expected]


def test_window_starting_while_down_starts_from_the_last_state_before_it() -> None:
    events = [ev("state", "fault", T0), *heartbeats(T0 + 10, T0 + 300, 10), ev("state", "running", T0 + 180)]
    events.sort(key=lambda e: e.ts)
    totals, stops = run(events, start=T0 + 120, end=T0 + 240)
    # the window sees 60 s of the stop; the whole stop (180 s) decides it is not a micro-stop
    assert (totals.failure_s, totals.micro_stop_s, totals.run_s, totals.stops) == (60, 0, 60, 0)
    assert stops[0] == stop(0, 180, State.FAULT)


# --- late and bad readings -----------------------------------------------------------

def test_late_events_apply_at_the_processed_time_and_stale_states_are_ignored() -> None:
    ctx = MachineContext.of(PLANT, PLANT.lines[0], PLANT.lines[0].machines[0])
    timeline = Timeline(ctx, T0)

    class Null:
        def segment(self, *args: object) -> None: ...
        def count(self, *args: object) -> None: ...
        def meter(self, *args: object) -> None: ...
        def flag(self, *args: object) -> None: ...

    for event in [ev("state", "running", T0 + 10), ev("state", "idle", T0 + 20), ev("state", "fault", T0 + 15)]:
        timeline.advance(max(event.ts, timeline.t), Null())
        timeline.apply(event, Null())
    assert timeline.state == State.IDLE  # the reading from T0 + 15 is older than the one applied


def test_bad_counter_readings_are_ignored() -> None:
    events = [ev("state", "running", T0), ev("good", 10, T0 + 1), ev("good", 0, T0 + 2, status="BadSensorFailure"),
              ev("good", 99999, T0 + 3, status="Bad"), ev("good", 15, T0 + 4), ev("good", -3, T0 + 5),
              ev("good", 17, T0 + 6)]
    totals, _ = run(events)
    assert totals.good_count == 7


def test_counter_reset_and_rollover_never_count_negative() -> None:
    plant = make_plant(machines=[machine_config("M1", counter_bits=8)])
    events = [ev("state", "running", T0), ev("good", 250, T0 + 1), ev("good", 4, T0 + 2),  # wrap: +10
              ev("good", 9, T0 + 3), ev("good", 1, T0 + 4), ev("good", 3, T0 + 5)]  # reset: 0, then +2
    totals, _ = run(events, plant=plant)
    assert totals.good_count == 10 + 5 + 0 + 2


# --- parts and planned time ----------------------------------------------------------

def test_parts_outside_planned_operation_are_kept_apart() -> None:
    plant = make_plant(shifts=[{"name": "s", "start": "00:01", "end": "00:02"}])
    events = [ev("state", "running", T0), ev("good", 0, T0 + 1), ev("good", 5, T0 + 30), ev("good", 8, T0 + 70),
              ev("reject", 0, T0 + 1), ev("reject", 1, T0 + 70), ev("good", 10, T0 + 120), *heartbeats(T0, T0 + 180)]
    events.sort(key=lambda e: e.ts)
    totals, _ = run(events, end=T0 + 180, plant=plant)
    assert (totals.good_count, totals.reject_count, totals.total_count) == (3, 1, 4)
    assert (totals.unplanned_good_count, totals.unplanned_reject_count) == (5 + 2, 0)
    assert (totals.run_s, totals.unplanned_run_s, totals.planned_operation_s) == (60, 120, 60)
    assert totals.ideal_time_s == 4 * 1.0 and totals.reject_ideal_time_s == 1.0


# --- energy --------------------------------------------------------------------------

def test_meter_energy_while_not_running_is_tracked() -> None:
    events = [ev("state", "running", T0), ev("energy_kwh", 100.0, T0 + 1), ev("energy_kwh", 101.0, T0 + 20),
              ev("state", "idle", T0 + 30), ev("energy_kwh", 101.25, T0 + 50)]
    totals, _ = run(events)
    assert (totals.energy_kwh, totals.energy_not_running_kwh) == (1.25, 0.25)
    assert totals.energy_cost == pytest.approx(1.25 * 0.2)
    assert totals.co2_kg == pytest.approx(1.25 * 0.5)
    assert totals.quarter_kwh == {T0: 1.25}


def test_meter_rollover_counts_the_wrapped_energy() -> None:
    plant = make_plant(machines=[machine_config("M1", meter_rollover_kwh=1000.0)])
    events = [ev("state", "running", T0), ev("energy_kwh", 999.5, T0 + 1), ev("energy_kwh", 0.25, T0 + 2),
              ev("energy_kwh", 0.0, T0 + 3)]  # then a reset
    totals, _ = run(events, plant=plant)
    assert totals.energy_kwh == pytest.approx(0.75)


def test_power_is_integrated_when_the_machine_has_no_meter_node() -> None:
    plant = make_plant(machines=[machine_config("M1", meter=False)])
    events = [ev("state", "running", T0), ev("power_kw", 12.0, T0), ev("power_kw", 6.0, T0 + 30),
              ev("state", "idle", T0 + 45), ev("energy_kwh", 5.0, T0 + 50), ev("energy_kwh", 9.0, T0 + 55)]
    totals, _ = run(events, plant=plant)  # heard until T0 + 85: no power after that
    assert totals.energy_kwh == pytest.approx((12 * 30 + 6 * 55) / 3600)
    assert totals.energy_not_running_kwh == pytest.approx(6 * 40 / 3600)


def test_power_readings_are_ignored_when_the_machine_has_a_meter() -> None:
    totals, _ = run([ev("state", "running", T0), ev("power_kw", 12.0, T0), *heartbeats(T0, T0 + 120)])
    assert totals.energy_kwh == 0


def test_power_crossing_a_quarter_hour_is_split_between_quarters() -> None:
    plant = make_plant(machines=[machine_config("M1", meter=False)])
    events = [ev("state", "running", T0 + 840), ev("power_kw", 36.0, T0 + 840), *heartbeats(T0 + 850, T0 + 960)]
    totals, _ = run(events, start=T0, end=T0 + 960, plant=plant)
    assert totals.quarter_kwh == pytest.approx({T0: 0.6, T0 + 900: 0.6})


# --- implausible readings ------------------------------------------------------------

class Recorder:
    """A sink that keeps what the timeline reports about readings."""

    def __init__(self) -> None:
        self.counts: list[tuple[float, int, int]] = []
        self.meters: list[tuple[float, float]] = []
        self.flags: list[Flag] = []

    def segment(self, *args: object) -> None: ...

    def count(self, at: float, good: int, reject: int) -> None:
        self.counts.append((at, good, reject))

    def meter(self, at: float, kwh: float, running: bool) -> None:
        self.meters.append((at, kwh))

    def flag(self, flag: Flag) -> None:
        self.flags.append(flag)


def feed(events: list[Event], plant: Plant = PLANT) -> Recorder:
    ctx = MachineContext.of(plant, plant.lines[0], plant.lines[0].machines[0])
    timeline, sink = Timeline(ctx, T0), Recorder()
    for event in events:
        timeline.advance(max(event.ts, timeline.t), sink)
        timeline.apply(event, sink)
    return sink


@pytest.mark.parametrize("events, counts, flags", [
    # ideal cycle 1 s: 3 x 10 s + 10 = 40 parts in 10 s
    ([ev("good", 100, T0), ev("good", 140, T0 + 10)], [(T0 + 10, 40, 0)], []),
    ([ev("good", 100, T0), ev("good", 141, T0 + 10)], [], [Flag("L1", "M1", "good", T0 + 10, IMPLAUSIBLE_DELTA, 41)]),
    ([ev("reject", 0, T0), ev("reject", 11, T0)], [], [Flag("L1", "M1", "reject", T0, IMPLAUSIBLE_DELTA, 11)]),
    # flagged at its own event time even when applied late (at the time processed)
    ([ev("good", 100, T0 + 20), ev("hb", None, T0 + 30), ev("good", 50_000, T0 + 25), ev("good", 50_003, T0 + 26)],
     [(T0 + 30, 3, 0)], [Flag("L1", "M1", "good", T0 + 25, IMPLAUSIBLE_DELTA, 49_900)]),
    # a Bad reading is ignored, not flagged
    ([ev("good", 100, T0), ev("good", 10**9, T0 + 1, status="BadSensorFailure")], [], []),
])
def test_the_timeline_reports_implausible_counts_as_flags(events: list[Event], counts: list[tuple[float, int, int]],
                                                         flags: list[Flag]) -> None:
    sink = feed(events)
    assert (sink.counts, sink.flags) == (counts, flags)


def test_an_implausible_meter_delta_and_power_reading_are_flagged_not_used() -> None:
    plant = make_plant(machines=[machine_config("M1", max_power_kw=360)])  # 0.1 kWh per s, + 1 kWh slack
    sink = feed([ev("energy_kwh", 10.0, T0), ev("energy_kwh", 13.0, T0 + 20), ev("energy_kwh", 16.1, T0 + 40),
                 ev("power_kw", 360.0, T0 + 40), ev("power_kw", 360.5, T0 + 41)], plant)
    assert sink.meters == [(T0 + 20, 3.0)]  # 1 + 20 x 0.1 = 3 kWh allowed in 20 s
    assert sink.flags == [Flag("L1", "M1", "energy_kwh", T0 + 40, IMPLAUSIBLE_DELTA, pytest.approx(3.1)),
                          Flag("L1", "M1", "power_kw", T0 + 41, IMPLAUSIBLE_POWER, 360.5)]


def test_the_window_sink_ignores_flags() -> None:
    totals, _ = run([ev("state", "running", T0), ev("good", 0, T0 + 1), ev("good", 10**9, T0 + 2),
                     ev("good", 10**9 + 2, T0 + 3)])
    assert totals.good_count == 2
