"""Implausible counter, meter and power readings are flagged, never counted (hand-computed limits)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.counters import CumulativeCounter
from domain.engine import MachineAccumulator, totals_from_events
from domain.kpi import kpis
from domain.model import Event, Signal
from domain.plant import Plant
from domain.plausibility import IMPLAUSIBLE_DELTA, IMPLAUSIBLE_POWER, Flag, Limits
from domain.totals import Totals, sum_totals
from tests.core_support import T0, assert_totals_close, ev, heartbeats, machine_config, make_plant

# ideal cycle 1 s, factor 3, slack 10 parts: a counter may add 3 x dt + 10 parts in dt seconds;
# max power 100 kW, slack 1 kWh: a meter may add 100 x dt / 3600 + 1 kWh
LIMITS = Limits(ideal_cycle_time_s=1.0, counter_factor=3.0, counter_slack_parts=10, max_power_kw=100.0,
                meter_slack_kwh=1.0)


@pytest.mark.parametrize("elapsed_s, parts, kwh", [
    (0.0, 10, 1.0),  # slack only
    (10.0, 40, 1 + 1000 / 3600),
    (36.0, 118, 2.0),
    (3600.0, 10_810, 101.0),
    (-5.0, 10, 1.0),  # never below the slack
])
def test_limits(elapsed_s: float, parts: float, kwh: float) -> None:
    assert LIMITS.max_parts(elapsed_s) == pytest.approx(parts)
    assert LIMITS.max_kwh(elapsed_s) == pytest.approx(kwh)


@pytest.mark.parametrize("previous, value, elapsed_s, modulus, counted, rejected", [
    (None, 4_000_000_000, 1.0, 2**32, 0, 0),  # the first reading is a baseline, never flagged
    (100, 140, 10.0, None, 40, 0),  # just inside: 3 x 10 + 10
    (100, 141, 10.0, None, 0, 41),  # just outside
    (100, 110, 0.0, None, 10, 0),  # same instant: the slack
    (100, 111, 0.0, None, 0, 11),
    (109, 4_000_000_000, 10.0, 2**32, 0, 3_999_999_891),  # the PLC glitch from the field
    (65530, 4, 1.0, 2**16, 10, 0),  # a rollover within the limit still counts
    (65000, 20, 1.0, 2**16, 0, 556),  # a wrap of 556 parts in 1 s: implausible
    (100, 5, 10.0, None, 0, 0),  # a reset is still 0, not a flag
    (100, 100, 10.0, None, 0, 0),
])
def test_counter_plausibility(previous: int | None, value: int, elapsed_s: float, modulus: int | None,
                              counted: int, rejected: int) -> None:
    counter = CumulativeCounter(modulus)
    if previous is not None:
        counter.apply(previous, T0, limit=LIMITS.max_parts)
    assert counter.apply(value, T0 + elapsed_s, limit=LIMITS.max_parts) == (counted, rejected)
    assert counter.last == value  # counted, rejected or reset: the reading is the new baseline


@pytest.mark.parametrize("previous, value, elapsed_s, modulus, counted, rejected", [
    (None, 1e308, 1.0, None, 0.0, 0.0),  # first reading: baseline
    (50.0, 52.0, 36.0, None, 2.0, 0.0),  # just inside: 100 kW x 36 s = 1 kWh, + 1 kWh slack
    (50.0, 52.5, 36.0, None, 0.0, 2.5),  # just outside
    (50.0, 50.75, 0.0, None, 0.75, 0.0),  # the slack covers a resolution step read twice
    (50.0, 1e308, 10.0, None, 0.0, 1e308),  # the 1e308 reading (minus 50 kWh: lost in the float)
    (999.5, 0.25, 36.0, 1000.0, 0.75, 0.0),  # rollover still counted
    (500.0, 0.0, 36.0, 1000.0, 0.0, 0.0),  # meter exchanged: reset
])
def test_meter_plausibility(previous: float | None, value: float, elapsed_s: float, modulus: float | None,
                            counted: float, rejected: float) -> None:
    meter = CumulativeCounter(modulus)
    if previous is not None:
        meter.apply(previous, T0, limit=LIMITS.max_kwh)
    assert meter.apply(value, T0 + elapsed_s, limit=LIMITS.max_kwh) == pytest.approx((counted, rejected))


def test_after_a_jump_the_counter_counts_from_the_new_value_and_a_return_is_a_reset() -> None:
    counter = CumulativeCounter(2**32)
    readings = [  # (value, t, counted, rejected)
        (100, 0, 0, 0),
        (109, 10, 9, 0),
        (4_000_000_000, 20, 0, 3_999_999_891),  # flagged, new baseline
        (4_000_000_005, 30, 5, 0),  # the next normal reading counts from it
        (112, 40, 0, 0),  # back in the old range: a reset (wrapped 294,967,403 > 2**32 / 16)
        (115, 50, 3, 0),
        (115, 49, 0, 0),  # older than the last reading: ignored, neither counted nor flagged
    ]
    for value, t, counted, rejected in readings:
        assert counter.apply(value, T0 + t, limit=LIMITS.max_parts) == (counted, rejected), value


# --- settings ------------------------------------------------------------------------

def test_machine_max_power_overrides_the_plant_default() -> None:
    plant = make_plant(machines=[machine_config("M1", max_power_kw=250), machine_config("M2")],
                       plausibility={"counter_factor": 2, "counter_slack_parts": 5, "max_power_kw": 800})
    own, default = (Limits.of(plant, m) for m in plant.lines[0].machines)
    assert (own.max_power_kw, default.max_power_kw) == (250, 800)
    assert own.max_parts(10) == 2 * 10 / 1.0 + 5
    built_in = Limits.of(make_plant(), make_plant().lines[0].machines[0])
    assert (built_in.counter_factor, built_in.counter_slack_parts, built_in.max_power_kw,
            built_in.meter_slack_kwh) == (3, 10, 10_000, 1)


@pytest.mark.parametrize("extra", [
    {"plausibility": {"counter_factor": 0.5}},
    {"plausibility": {"counter_slack_parts": -1}},
    {"plausibility": {"max_power_kw": 0}},
    {"plausibility": {"meter_slack_kwh": -0.1}},
    {"plausibility": {"unknown_key": 1}},
    {"machines": [machine_config("M1", max_power_kw=-5)]},
])
def test_invalid_plausibility_settings_are_refused(extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_plant(**extra)


# --- through the timeline and the accumulator ----------------------------------------

def plant_with(**machine: Any) -> Plant:
    return make_plant(machines=[machine_config("M1", counter_bits=32, **machine)])


def accumulate(plant: Plant, events: list[Event], now: float) -> tuple[Totals, list[Flag]]:
    line = plant.lines[0]
    acc = MachineAccumulator(plant, line, line.machines[0], T0)
    for event in events:
        acc.feed(event)
    minutes = acc.close_until(now)
    return sum_totals([*(m.totals for m in minutes), acc.partial(now)]), acc.drain_flags()


def with_heartbeats(events: list[Event], end: float = T0 + 120) -> list[Event]:
    return sorted([*events, *heartbeats(T0, end, 5)], key=lambda e: e.ts)


def assert_finite(value: Any, path: str = "") -> None:
    if isinstance(value, float):
        assert math.isfinite(value), path
    elif isinstance(value, dict):
        for k, v in value.items():
            assert_finite(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            assert_finite(v, f"{path}[{i}]")


def test_the_counter_glitch_counts_nothing_and_is_flagged() -> None:
    plant = plant_with()
    good = [(100, 1), (109, 10), (109, 30), (115, 40)]  # 109 again after the glitch: no parts made meanwhile
    clean = with_heartbeats([ev("state", "running", T0), *(ev("good", v, T0 + t) for v, t in good)])
    glitch = ev("good", 4_000_000_000, T0 + 20)
    dirty = with_heartbeats([ev("state", "running", T0), *(ev("good", v, T0 + t) for v, t in good), glitch])
    expected, none = accumulate(plant, clean, T0 + 120)
    totals, flags = accumulate(plant, dirty, T0 + 120)
    assert none == []
    assert flags == [Flag("L1", "M1", "good", T0 + 20, IMPLAUSIBLE_DELTA, 3_999_999_891)]
    assert totals.good_count == expected.good_count == 15
    assert_totals_close(totals, expected)
    report = kpis(totals, [], plant, T0, T0 + 120, T0 + 120)
    assert report.oee == pytest.approx(15 / 120)


def test_the_1e308_meter_reading_changes_nothing_and_is_flagged() -> None:
    plant = plant_with(meter_rollover_kwh=1_000_000)
    meter = [(100.0, 1), (100.5, 10), (100.5, 30), (101.0, 40)]
    base = [ev("state", "running", T0), ev("good", 0, T0 + 1), ev("good", 30, T0 + 40)]
    clean = with_heartbeats([*base, *(ev("energy_kwh", v, T0 + t) for v, t in meter)])
    dirty = with_heartbeats([*base, *(ev("energy_kwh", v, T0 + t) for v, t in meter),
                             ev("energy_kwh", 1e308, T0 + 20)])
    expected, _ = accumulate(plant, clean, T0 + 120)
    totals, flags = accumulate(plant, dirty, T0 + 120)
    assert flags == [Flag("L1", "M1", "energy_kwh", T0 + 20, IMPLAUSIBLE_DELTA, 1e308 - 100.5)]
    assert totals.energy_kwh == expected.energy_kwh == pytest.approx(1.0)
    assert_totals_close(totals, expected)
    report = kpis(totals, [], plant, T0, T0 + 120, T0 + 120).to_dict()
    assert report["energy"]["cost"] == pytest.approx(0.2) and report["energy"]["kwh_per_good_unit"] == 1 / 30
    assert_finite(report)
    assert_finite(totals.to_dict())


@pytest.mark.parametrize("reading_kw, energy_kwh, flagged", [
    (100.0, (50 * 30 + 100 * 30 + 50 * 60) / 3600, False),  # at the maximum: used
    (100.001, 50 * 120 / 3600, True),  # above it: flagged, the 50 kW before it is held
    (1e308, 50 * 120 / 3600, True),
])
def test_power_above_the_maximum_is_flagged_and_not_integrated(reading_kw: float, energy_kwh: float,
                                                               flagged: bool) -> None:
    plant = make_plant(machines=[machine_config("M1", meter=False, max_power_kw=100)])
    events = with_heartbeats([ev("state", "running", T0), ev("power_kw", 50.0, T0), ev("power_kw", reading_kw, T0 + 30),
                              ev("power_kw", 50.0, T0 + 60)])
    totals, flags = accumulate(plant, events, T0 + 120)
    assert totals.energy_kwh == pytest.approx(energy_kwh)
    assert flags == ([Flag("L1", "M1", "power_kw", T0 + 30, IMPLAUSIBLE_POWER, reading_kw)] if flagged else [])
    line = plant.lines[0]
    direct, _ = totals_from_events(events, plant, line, line.machines[0], T0, T0 + 120, T0 + 120, origin=T0)
    assert direct.energy_kwh == pytest.approx(energy_kwh)  # the window sink ignores the flags


def test_undrained_flags_survive_a_carry_round_trip_and_are_drained_once() -> None:
    plant = plant_with()
    line = plant.lines[0]
    acc = MachineAccumulator(plant, line, line.machines[0], T0)
    for event in [ev("good", 0, T0 + 1), ev("good", 1000, T0 + 2), ev("reject", 0, T0 + 3),
                  ev("reject", 500, T0 + 4)]:
        acc.feed(event)
    restored = MachineAccumulator(plant, line, line.machines[0], 0.0, carry=json.loads(json.dumps(acc.carry())))
    expected = [Flag("L1", "M1", "good", T0 + 2, IMPLAUSIBLE_DELTA, 1000),
                Flag("L1", "M1", "reject", T0 + 4, IMPLAUSIBLE_DELTA, 500)]
    restored.edge(T0 + 60)  # a query's clone does not drain them
    assert restored.drain_flags() == expected
    assert restored.drain_flags() == []
    assert acc.drain_flags() == expected  # the original is independent of the carry


# --- property: flags and totals do not depend on how the work was split --------------

PROP_PLANT = make_plant(machines=[machine_config("M1", counter_bits=16, max_power_kw=50, meter_rollover_kwh=10_000)])


@st.composite
def glitchy_events(draw: st.DrawFn) -> list[Event]:
    """A running machine whose counters, meter and power now and then read garbage."""
    events = [ev("state", "running", T0)]
    good, energy, ms = 0, 100.0, 0
    for _ in range(draw(st.integers(0, 60))):
        ms += draw(st.integers(0, 20_000))
        ts = T0 + ms / 1000.0
        kind = draw(st.sampled_from(["good", "energy", "power", "glitch", "reset", "hb"]))
        if kind == "good":
            good = (good + draw(st.integers(0, 25))) % 2**16
            events.append(ev("good", good, ts))
        elif kind == "energy":
            energy += draw(st.floats(0, 2))
            events.append(ev("energy_kwh", energy, ts))
        elif kind == "power":
            events.append(ev("power_kw", draw(st.floats(0, 60)), ts))
        elif kind == "glitch":
            signal, value = draw(st.sampled_from([("good", 4_000_000_000), ("reject", 70_000), ("energy_kwh", 1e308),
                                                  ("power_kw", 1e308), ("good", good + 5000)]))
            events.append(ev(signal, value, ts))
        elif kind == "reset":
            good = 0
            events.append(ev("good", 0, ts))
        else:
            events.append(ev(Signal.HEARTBEAT, None, ts))
    return events


def run_split(events: list[Event], now: float, carries: list[bool], drains: list[bool]) -> tuple[Totals, list[Flag]]:
    line = PROP_PLANT.lines[0]
    acc = MachineAccumulator(PROP_PLANT, line, line.machines[0], T0)
    totals: list[Totals] = []
    flags: list[Flag] = []
    for i, event in enumerate(events):
        if carries[i % len(carries)]:
            totals += [m.totals for m in acc.close_until(event.ts)]
            acc = MachineAccumulator(PROP_PLANT, line, line.machines[0], 0.0, carry=json.loads(json.dumps(acc.carry())))
        if drains[i % len(drains)]:
            flags += acc.drain_flags()
        acc.feed(event)
    totals += [m.totals for m in acc.close_until(now)]
    return sum_totals([*totals, acc.partial(now)]), flags + acc.drain_flags()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=glitchy_events(), carries=st.lists(st.booleans(), min_size=1, max_size=7),
       drains=st.lists(st.booleans(), min_size=1, max_size=5))
def test_flags_and_totals_do_not_depend_on_carry_splits(events: list[Event], carries: list[bool],
                                                        drains: list[bool]) -> None:
    now = events[-1].ts + 90
    whole, whole_flags = run_split(events, now, [False], [False])
    split, split_flags = run_split(events, now, carries, drains)
    assert split_flags == whole_flags
    assert_totals_close(split, whole)
    assert_finite(whole.to_dict())
    # every kW reading over the maximum is flagged; no garbage reaches the totals
    over = [e.ts for e in events if e.signal == Signal.POWER and isinstance(e.value, float) and e.value > 50]
    assert [f.ts for f in whole_flags if f.kind == IMPLAUSIBLE_POWER] == over
    assert whole.good_count + whole.unplanned_good_count <= 25 * sum(
        1 for e in events if e.signal == Signal.GOOD and e.value != 4_000_000_000)
    legit_kwh = max([e.value for e in events if e.signal == Signal.ENERGY and e.value != 1e308], default=100.0)
    assert whole.energy_kwh <= legit_kwh - 100.0 + 1e-6
