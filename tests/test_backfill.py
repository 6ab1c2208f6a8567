"""The demo history: the simulator's machines over past hours, written to a real Redis as
the collector writes, rolled up by the real worker, continued by the live simulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise

import pytest
import redis

from collectors.sim.history import (
    DemoHistory,
    backfill_demo,
    demo_history,
    has_history,
    heartbeat_gap_s,
    start_history,
)
from collectors.sim.simulator import PlantSimulator
from config.loader import DEMO_PLANT, load_plant
from domain import contract
from domain.accounting import Stop
from domain.engine import MachineAccumulator
from domain.kpi import kpis
from domain.model import Event, Signal, State
from domain.plant import Plant
from domain.totals import sum_totals
from store.closed_rollups import read_minute_rollups
from store.rollup import RollupWorker, WorkerOptions
from store.streams import stream_ids

HOUR = 3600.0
# 10:30 in Shanghai (02:30 UTC) a few days ago: recent, as rollup keys expire by the
# server's clock. The two hours before it hold shift A's 09:30-09:45 tea break.
NOW = float(int(time.time() - 3 * 86400) // 86400 * 86400) + 2.5 * HOUR
START = NOW - 2 * HOUR
BREAK = (NOW - HOUR, NOW - 0.75 * HOUR)
SEED = 3


@pytest.fixture(scope="module")
def plant() -> Plant:
    """The demo plant with only its body-welding line."""
    demo = load_plant(DEMO_PLANT)
    return demo.model_copy(update={"lines": [line for line in demo.lines if line.id == "BW1"]})


@pytest.fixture
def events(redis_client: redis.Redis, plant: Plant) -> Iterator[list[Event]]:
    """Two hours of BW1 history, backfilled and read back from its stream."""
    written = backfill_demo(redis_client, plant, NOW, hours=2, seed=SEED)
    entries = redis_client.xrange(contract.events_key("BW1"))
    assert written == len(entries) > 1000
    yield [contract.decode_event("BW1", fields) for _, fields in entries]


def by_machine(events: list[Event], machine: str, signal: Signal | None = None) -> list[Event]:
    return [e for e in events if e.machine == machine and (signal is None or e.signal == signal)]


def test_history_is_the_window_in_the_streams_format(redis_client: redis.Redis, plant: Plant,
                                                       events: list[Event]) -> None:
    ids = [entry_id.decode() for entry_id, _ in redis_client.xrange(contract.events_key("BW1"))]
    assert [int(i.split("-")[0]) for i in ids] == [round(e.ts * 1000) for e in events]  # ids at event time
    assert all(START <= e.ts <= NOW for e in events)
    assert all(e.status == "Good" for e in events)
    machines = {m.id for m in plant.lines[0].machines}
    assert {e.machine for e in events} == machines
    for machine in machines:
        for signal in (Signal.GOOD, Signal.REJECT, Signal.ENERGY):
            values = [e.value for e in by_machine(events, machine, signal)]
            assert all(isinstance(v, int | float) for v in values)
            assert values == sorted(values), f"{machine} {signal} went down"
        goods = [e.value for e in by_machine(events, machine, Signal.GOOD)]
        assert goods[0] == 0 and 40 < goods[-1] < 2 * HOUR / 50  # roughly one part per cycle
        states = {e.value for e in by_machine(events, machine, Signal.STATE)}
        assert states <= {str(s) for s in State} and {"running", "idle"} <= states
        times = [e.ts for e in by_machine(events, machine)]
        assert times == sorted(times)
        assert max(b - a for a, b in pairwise(times)) <= heartbeat_gap_s(plant) < plant.gap_timeout_s


def test_live_hash_holds_each_signals_last_event(redis_client: redis.Redis, events: list[Event]) -> None:
    live = {field.decode(): value for field, value in redis_client.hgetall(contract.live_key("BW1")).items()}
    last: dict[str, Event] = {}
    for event in events:
        last[contract.live_field(event.machine, event.signal)] = event
    assert live.keys() == last.keys()
    assert len(live) == 7 * 7  # six configured signals and the heartbeat per machine
    for field, event in last.items():
        assert contract.decode_live("BW1", field, live[field]) == event


def accumulate(plant: Plant, events: list[Event], machine_id: str, until: float) -> tuple[list, list[Stop]]:
    """What the rollup worker computes for one machine: its minutes and its stops."""
    line = plant.lines[0]
    machine = line.machine(machine_id)
    assert machine is not None
    acc = MachineAccumulator(plant, line, machine, START)
    for event in by_machine(events, machine_id):
        acc.feed(event)
    minutes = acc.close_until(until)
    current = acc.current_stop()
    return minutes, acc.drain_stops() + ([current] if current is not None else [])


def test_history_gives_plausible_kpis_with_the_break_not_counted_as_down(plant: Plant, events: list[Event]) -> None:
    down_s = 0.0
    for machine in plant.lines[0].machines:
        minutes, stops = accumulate(plant, events, machine.id, NOW)
        assert len(minutes) == 120
        report = kpis(sum_totals(m.totals for m in minutes), stops, plant, START, NOW, NOW)
        t = report.totals
        assert report.oee is not None and 0.3 < report.oee < 1, machine.id
        assert report.availability is not None and 0 < report.availability <= 1
        assert report.performance is not None and 0.6 < report.performance < 1
        assert report.quality is not None and 0.9 < report.quality <= 1
        assert t.unknown_s == 0  # heard all the time
        assert t.planned_operation_s == pytest.approx(2 * HOUR - 15 * 60)
        # the machine stood through the break, and those 15 minutes are no loss of any kind
        assert any(s.start <= BREAK[0] and (s.end is None or s.end >= BREAK[1]) for s in stops), machine.id
        not_running_s = sum(v for k, v in t.state_s.items() if k not in ("running", "unknown"))
        losses_s = t.down_s + t.micro_stop_s + t.planned_down_s
        assert not_running_s - losses_s == pytest.approx(15 * 60, abs=0.01), machine.id
        down_s += t.down_s
    assert down_s > 0  # faults and waits happen in two hours of seven machines


def test_rollup_worker_turns_the_history_into_rollups(redis_client: redis.Redis, plant: Plant,
                                                        events: list[Event]) -> None:
    clock = [NOW]
    worker = RollupWorker(redis_client, plant, options=WorkerOptions(silence_s=5), clock=lambda: clock[0])
    assert worker.drain() == len(events)
    clock[0] = NOW + 10  # nothing new: the silent machines close on the clock
    assert worker.drain() == 0
    worker.close()
    hours = [START - START % HOUR + i * HOUR for i in range(3)]
    for machine in plant.lines[0].machines:
        expected, _ = accumulate(plant, events, machine.id, NOW + 10)
        stored = {hour + index * 60: rollup.to_totals() for hour in hours
                  for index, rollup in read_minute_rollups(redis_client, "BW1", machine.id, hour).items()}
        assert sorted(stored) == [m.minute_start for m in expected]
        for name in ("good_count", "run_s", "energy_kwh"):
            got = sum(getattr(t, name) for t in stored.values())
            assert got == pytest.approx(sum(getattr(m.totals, name) for m in expected), rel=1e-6), name


def test_live_simulator_goes_on_from_the_historys_values(plant: Plant) -> None:
    history = DemoHistory(plant, START, SEED)
    last = {(e.machine, e.signal): e.value for e in history.events_until(NOW)["BW1"]}
    sim = PlantSimulator(plant, models=history.models, start=NOW + 20 * 60, autorun=False)
    assert sim.models == history.models
    for (_, machine), totals in sim.totals().items():
        assert totals.good is not None and totals.energy_kwh is not None
        assert last[(machine, Signal.GOOD)] <= totals.good <= last[(machine, Signal.GOOD)] + 30
        assert last[(machine, Signal.ENERGY)] < totals.energy_kwh
        assert history.models[("BW1", machine)].meter_period_s == 10.0  # live density again


def test_a_top_up_continues_the_stream(redis_client: redis.Redis, plant: Plant) -> None:
    clock = iter([NOW, NOW + 0.0002, NOW + 1])  # the second write starts within the same ms
    history = demo_history(redis_client, plant, hours=1, seed=SEED, clock=lambda: next(clock))
    assert history is not None and history.t == NOW + 0.0002
    ids = [entry_id.decode() for entry_id, _ in redis_client.xrange(contract.events_key("BW1"))]
    parsed = [tuple(map(int, i.split("-"))) for i in ids]
    assert parsed == sorted(parsed) and len(set(parsed)) == len(parsed)
    assert parsed[-1][0] == round(NOW * 1000)  # the top-up's heartbeats share the last ms


def test_history_only_goes_into_empty_streams(redis_client: redis.Redis, plant: Plant) -> None:
    assert not has_history(redis_client, plant)
    assert demo_history(redis_client, plant, hours=0, seed=SEED) is None
    redis_client.xadd(contract.events_key("BW1"), {"m": "ST10", "s": "hb", "v": "", "q": "Good", "t": "1"})
    assert has_history(redis_client, plant)
    assert demo_history(redis_client, plant, hours=1, seed=SEED) is None
    with pytest.raises(ValueError, match="empty streams only"):
        backfill_demo(redis_client, plant, NOW, hours=1, seed=SEED)


def test_history_starts_at_a_whole_minute(plant: Plant) -> None:
    assert start_history(plant, NOW + 25.5, 1, SEED).start == NOW - HOUR
    assert start_history(plant, NOW, 7.5 * 24, SEED).start == NOW - 7.5 * 24 * HOUR


@pytest.mark.parametrize("hours", [0, -1, 8 * 24])
def test_hours_must_fit_the_retention(plant: Plant, hours: float) -> None:
    with pytest.raises(ValueError):
        start_history(plant, NOW, hours, SEED)


def _event(ts: float) -> Event:
    return Event("L", "M", Signal.HEARTBEAT, None, "Good", ts)


@pytest.mark.parametrize(("times", "after", "expected"), [
    ([1.0, 1.0004, 1.001, 2.0], (0, 0), ["1000-0", "1000-1", "1001-0", "2000-0"]),
    ([1.0, 1.0], (1000, 4), ["1000-5", "1000-6"]),
    ([1.0, 3.0], (2000, 0), ["2000-1", "3000-0"]),
    ([], (0, 0), []),
])
def test_stream_ids_follow_event_time_above_the_last_id(times: list[float], after: tuple[int, int],
                                                         expected: list[str]) -> None:
    assert stream_ids([_event(t) for t in times], after) == expected
