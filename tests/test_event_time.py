"""Event-time rollups against a real Redis: the figures do not depend on when or in what
order a machine's events arrive (late, in bursts after an outage, each signal in its own
order), late data is filed in its own minute, hour and shift, and a Redis that lost the
worker's bookkeeping is reported."""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import contract
from domain.model import Event, Signal, State
from store.reader import PlantReader
from store.rollup import RollupWorker, WorkerOptions
from tests.history import line_history, write_events
from tests.store_support import HOUR, RECENT, assert_close, reference_kpis, two_machine_plant

START = RECENT + 5.5 * HOUR + 13.5  # 13:30 local, before the shift change at 14:00 (06:00 UTC)
END = START + 40 * 60  # across the shift change
SHIFT_CHANGE = RECENT + 6 * HOUR
OPTIONS = WorkerOptions(lateness_s=10, silence_s=15, grace_s=5)


@pytest.fixture(scope="module")
def plant() -> Any:
    return two_machine_plant()


class Quiet(list):  # type: ignore[type-arg]
    """A fixture value Hypothesis does not print whole when it reports an example."""

    def __repr__(self) -> str:
        return f"<{len(self)} items>"


class QuietDict(dict):  # type: ignore[type-arg]
    def __repr__(self) -> str:
        return f"<{len(self)} keys>"


@pytest.fixture(scope="module")
def events(plant: Any) -> list[Event]:
    return Quiet(line_history(plant, "L1", START, END, seed=5, power_every_s=5.0, mean_run_s=300.0))


def stored(client: redis.Redis) -> dict[bytes, Any]:
    """What the worker wrote for readers: rollups, stops, state changes (not its bookkeeping)."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match=b"plant:*"):
        kind = client.type(key)
        if key.endswith((b":rollup", b":live", b":events", b":lease")) or b":ckpt:" in key:
            continue
        if kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"string":
            out[key] = client.get(key)
    return out


def deliver(client: redis.Redis, plant: Any, arrivals: list[tuple[float, Event]], passes: int) -> None:
    """Writes events in arrival order in ``passes`` chunks, the worker running between them
    with its clock at the last arrival; then the clock moves on until every minute closed."""
    arrivals = sorted(arrivals, key=lambda a: a[0])
    clock = [START]
    worker = RollupWorker(client, plant, options=OPTIONS, clock=lambda: clock[0])
    size = max(1, math.ceil(len(arrivals) / passes))
    for i in range(0, len(arrivals), size):
        chunk = arrivals[i:i + size]
        write_events(client, [e for _, e in chunk])
        clock[0] = max(clock[0], chunk[-1][0])
        worker.drain()
    assert clock[0] < END + 600
    clock[0] = END + 600  # silence: everything closes on the clock, to the same time for every order
    worker.drain()
    worker.close()


def on_time(events: list[Event]) -> list[tuple[float, Event]]:
    return [(e.ts, e) for e in events]


def outage_window(outage: tuple[float, float] | None) -> tuple[float, float] | None:
    """(start, length) as shares of [START, END) -> the outage's times, within END."""
    if outage is None:
        return None
    a = START + outage[0] * (END - START)
    return a, min(END, a + outage[1] * (END - START))


def delayed(events: list[Event], seed: int, max_delay_s: float, outage: tuple[float, float] | None) -> list[
        tuple[float, Event]]:
    """Random delays; each signal of a machine keeps its order; events inside ``outage``
    arrive in one burst at its end (a store-and-forward flush)."""
    rng = random.Random(seed)
    last: dict[tuple[str, str], float] = {}
    out = []
    for event in events:
        arrival = event.ts + rng.uniform(0, max_delay_s)
        if outage is not None and outage[0] <= event.ts < outage[1]:
            arrival = outage[1] + rng.uniform(0, 5)
        key = (event.machine, str(event.signal))
        arrival = max(arrival, last.get(key, -math.inf))
        last[key] = arrival
        out.append((arrival, event))
    return out


@pytest.fixture(scope="module")
def reference_store(plant: Any, events: list[Event], redis_url: str) -> dict[bytes, Any]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    deliver(client, plant, on_time(events), passes=40)
    out = QuietDict(stored(client))
    client.flushdb()
    client.close()
    assert any(b":min60:" in k for k in out) and any(k.endswith(b":stops") for k in out)
    return out


@pytest.mark.timeout(600)  # a handful of examples, each a real worker on a real Redis, on a loaded machine
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), max_delay_s=st.sampled_from([0.5, 30.0, 400.0]),
       passes=st.integers(2, 30), outage=st.one_of(st.none(), st.tuples(st.floats(0, 0.6), st.floats(0.05, 0.4))))
def test_any_arrival_order_and_delay_gives_the_on_time_rollups(redis_client: redis.Redis, plant: Any,
                                                               events: list[Event],
                                                               reference_store: dict[bytes, Any], seed: int,
                                                               max_delay_s: float, passes: int,
                                                               outage: tuple[float, float] | None) -> None:
    redis_client.flushdb()
    deliver(redis_client, plant, delayed(events, seed, max_delay_s, outage_window(outage)), passes)
    assert stored(redis_client) == reference_store


def test_an_outage_across_the_shift_change_puts_every_part_in_its_own_shift(redis_client: redis.Redis,
                                                                            plant: Any, events: list[Event]) -> None:
    """The collector buffers 20 minutes around the shift change and flushes them after;
    meanwhile the worker closed those minutes as unknown."""
    outage = (SHIFT_CHANGE - 10 * 60, SHIFT_CHANGE + 10 * 60)
    clock = [START]
    worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    before = [e for e in events if e.ts < outage[0]]
    write_events(redis_client, before)
    clock[0] = outage[0]
    worker.drain()
    clock[0] = outage[1]  # nothing arrives during the outage
    worker.drain()
    reader = PlantReader(redis_client, plant)
    during = reader.machine_kpis("L1", "M2", SHIFT_CHANGE, outage[1], outage[1])
    assert during["total_count"] == 0 and during["unknown_s"] > 0
    write_events(redis_client, [e for e in events if e.ts >= outage[0]])  # the flush, and the rest
    clock[0] = END + 120
    worker.drain()
    for machine in ("M1", "M2"):
        for start, end in [(START, SHIFT_CHANGE), (SHIFT_CHANGE, END)]:
            got = reader.machine_kpis("L1", machine, start, end, END + 120)
            expected = reference_kpis(plant, events, machine, math.floor(start / 60) * 60, end, END + 120,
                                      origin=START)
            assert expected["total_count"] > 0
            assert_close(got, expected, f"{machine} {start - SHIFT_CHANGE:+.0f}")


def test_a_fast_replay_with_the_worker_running_equals_the_worker_started_after(redis_client: redis.Redis,
                                                                               plant: Any,
                                                                               events: list[Event]) -> None:
    """An old shift replayed at 600x: arrival times have nothing to do with event times."""
    later = END + 3600.0
    clock = [later]
    running = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    for i in range(0, len(events), 97):
        write_events(redis_client, events[i:i + 97])
        clock[0] += 0.05  # 30 s of plant time in 50 ms of the worker's clock
        running.drain()
    clock[0] = later + 100  # the replay is over: silence closes the rest on the clock
    running.drain()
    running.close()
    during = stored(redis_client)
    redis_client.flushdb()
    write_events(redis_client, events)
    clock[0] = later + 50
    after = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    after.drain()
    clock[0] = later + 100
    after.drain()
    after.close()
    assert stored(redis_client) == during
    assert any(b":min60:" in k for k in during)


def test_a_future_timestamp_is_flagged_and_moves_nothing(redis_client: redis.Redis, plant: Any) -> None:
    t0 = RECENT + 3 * HOUR
    good = [Event("L1", "M1", Signal.STATE, State.RUNNING.value, "Good", t0),
            Event("L1", "M1", Signal.GOOD, 1, "Good", t0 + 1)]
    write_events(redis_client, good)
    write_events(redis_client, [Event("L1", "M1", Signal.HEARTBEAT, None, "Good", t0 + 70 * 365 * 86400.0)])
    write_events(redis_client, [Event("L1", "M1", Signal.STATE, State.FAULT.value, contract.TIMESTAMP_FUTURE,
                                      t0 + 3600)])  # the collector's verdict on a PLC clock ahead
    write_events(redis_client, [Event("L1", "M1", Signal.GOOD, 3, "Good", t0 + 2)])
    worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: t0 + 3)
    worker.drain()
    progress = worker.lines["L1"].machines["M1"]
    assert progress.newest == t0 + 2, "the far-future heartbeat must not move the watermark"
    flags = redis_client.zrange(contract.flags_key("L1"), 0, -1)
    assert len(flags) == 2 and all(b"future_timestamp" in f for f in flags)
    kpis = PlantReader(redis_client, plant).machine_kpis("L1", "M1", t0, t0 + 3, t0 + 3)
    assert kpis["good_count"] + kpis["unplanned_good_count"] == 2


def test_a_redis_that_lost_the_bookkeeping_is_reported(redis_client: redis.Redis, plant: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    t0 = RECENT + 3 * HOUR
    write_events(redis_client, [Event("L1", "M1", Signal.STATE, State.RUNNING.value, "Good", t0 + i)
                                for i in range(0, 300, 5)])
    clock = [t0 + 300]
    worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    worker.drain()
    assert redis_client.exists(contract.rollup_state_key("L1"))
    redis_client.flushdb()  # a restart without persistence
    write_events(redis_client, [Event("L1", "M1", Signal.STATE, State.RUNNING.value, "Good", t0 + 400)])
    clock[0] = t0 + 420
    with caplog.at_level(logging.ERROR, logger="store.rollup"):
        for _ in range(3):
            try:
                worker.process_once()
            except redis.RedisError:
                continue
    lost = {k.decode(): float(v) for k, v in redis_client.hgetall(contract.data_loss_key("L1")).items()}
    assert lost["from"] == t0 and lost["to"] >= t0 + 300 and lost["detected"] == t0 + 420
    assert any("Redis lost its data" in r.getMessage() for r in caplog.records)


def test_a_reader_drops_what_it_kept_of_a_bookkeeping_redis_lost(redis_client: redis.Redis, plant: Any) -> None:
    """Redis lost its data while a reader kept what does not change of the line (its stops
    up to the watermarks, its closed sums, its open edges); the worker started again and
    committed more often than before, so the commit counter passed its old value and no
    rewind was counted: the bookkeeping's new epoch tells the reader, whose figures are
    then a fresh reader's (before, it kept showing the lost stop)."""
    t0 = RECENT + 3 * HOUR
    clock = [t0]

    def life(fault_at: float, passes: int) -> None:  # 50 min of M1 with a 10 min fault, the worker passing
        worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
        states = [(0, State.RUNNING), (fault_at, State.FAULT), (fault_at + 600, State.RUNNING)]
        events = [Event("L1", "M1", Signal.STATE, state.value, "Good", t0 + at) for at, state in states]
        events += [Event("L1", "M1", Signal.HEARTBEAT, None, "Good", t0 + at) for at in range(5, 3000, 5)]
        events.sort(key=lambda e: e.ts)
        size = math.ceil(len(events) / passes)
        for i in range(0, len(events), size):
            write_events(redis_client, events[i:i + size])
            clock[0] = events[min(i + size, len(events)) - 1].ts + 1
            worker.drain()

    def stops(reader: PlantReader) -> list[tuple[float, float | None]]:
        return [(e["start"], e["end"]) for e in reader.downtime("L1", t0, t0 + 3000, t0 + 3000)["events"]]

    life(fault_at=600, passes=2)
    old_ver = int(redis_client.hget(contract.rollup_state_key("L1"), "ver"))
    reader = PlantReader(redis_client, plant)
    assert stops(reader) == [(t0 + 600, t0 + 1200)]
    followed = reader.window_reads.edges._follows.get("L1")
    assert followed is not None
    redis_client.flushdb()  # a restart without persistence: the same times, the fault later this time
    life(fault_at=1500, passes=2 * old_ver + 2)
    state = redis_client.hgetall(contract.rollup_state_key("L1"))
    assert int(state[b"ver"]) > old_ver and b"amend" not in state
    assert stops(reader) == stops(PlantReader(redis_client, plant)) == [(t0 + 1500, t0 + 2100)]
    assert reader.window_reads.edges._follows.get("L1") is not followed  # followed again from the new carry


def test_a_reading_re_read_after_a_reconnect_changes_nothing_and_rewinds_nothing(redis_client: redis.Redis,
                                                                                 plant: Any) -> None:
    t0 = RECENT + 3 * HOUR
    first = [Event("L1", "M1", Signal.STATE, State.IDLE.value, "Good", t0),
             Event("L1", "M1", Signal.GOOD, 7, "Good", t0 + 1)]
    write_events(redis_client, first + [Event("L1", "M1", Signal.HEARTBEAT, None, "Good", t0 + 5 * i)
                                        for i in range(1, 30)])
    clock = [t0 + 150]
    worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    worker.drain()
    before = stored(redis_client)
    write_events(redis_client, first)  # the collector reconnected and read every node again
    clock[0] = t0 + 151
    worker.drain()
    assert redis_client.hget(contract.rollup_state_key("L1"), "amend") is None, "no rewind"
    assert stored(redis_client) == before


def test_a_first_value_older_than_the_streams_counts_as_of_its_arrival(redis_client: redis.Redis,
                                                                        plant: Any) -> None:
    """An idle machine's state last changed weeks ago: it is its state now, not a flag."""
    ancient = RECENT - 40 * 86400.0
    write_events(redis_client, [Event("L1", "M2", Signal.STATE, State.IDLE.value, "Good", ancient)])
    arrived = float(redis_client.xrange(contract.events_key("L1"))[-1][0].decode().split("-")[0]) / 1000
    clock = [arrived + 1]
    worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    worker.drain()
    clock[0] = arrived + 40  # silent since: closed on the clock, the reading fed
    worker.drain()
    progress = worker.lines["L1"].machines["M2"]
    assert progress.origin == math.floor(arrived / 60) * 60
    assert progress.acc.carry()["timeline"]["state"] == "idle"
    assert redis_client.zcard(contract.flags_key("L1")) == 0
