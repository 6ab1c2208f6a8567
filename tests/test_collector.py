"""The collector end to end: a real asyncua server (the simulator) -> collector -> a real Redis,
read back through the stream contract."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from asyncua import ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from collectors.buffer import StoreAndForwardBuffer
from collectors.collector import Collector, CollectorOptions, quiet_asyncua_logging, run_collector
from collectors.sim.scenario import load_scenario, replay_scenario
from collectors.sim.simulator import PlantSimulator, retarget
from collectors.sink import RedisSink
from collectors.timebase import TimeBase
from config.loader import DEMO_PLANT, load_plant
from config.settings import Settings
from domain.contract import TIMESTAMP_FUTURE, TIMESTAMP_TOO_OLD, decode_event, decode_live, events_key, live_key
from domain.engine import totals_from_events
from domain.model import Event, Signal, State
from domain.plant import Plant, Security, TimestampSource
from store.clients import connect_async
from store.live import lines_now
from tests.store_support import run_worker_until_drained
from tests.support import RedisServer, free_port

EXAMPLE_SCENARIO = Path(__file__).resolve().parent.parent / "collectors" / "sim" / "scenarios" / "bw1_st70_shift_a.csv"
# watchdog_factor: 5 s of silence (10 keep-alives of 0.5 s) before a rebuild, so that a loaded
# machine starving the event loop for a second does not rebuild subscriptions (re-reads).
FAST = CollectorOptions(reconnect_initial_s=0.1, reconnect_max_s=0.5, redis_retry_initial_s=0.1,
                        redis_retry_max_s=0.5, connect_timeout_s=5.0, watchdog_factor=10.0)
# A simulator running 900x faster than the wall clock starts this long ago, so that its
# source timestamps stay behind the collector's clock (values stamped more than
# ``CollectorOptions.max_future_s`` ahead are written as BadTimestampFuture).
FAST_PLANT_LEAD_S = 12 * 3600.0
# For the tests that compare every value the simulator wrote with what reached Redis: a
# loaded machine can stall the simulator's server (the same event loop) past FAST's
# watchdog (5 s), and a rebuilt subscription reads the current values, not the changes
# made during the silence. These give the subscription a minute.
PATIENT = dataclasses.replace(FAST, watchdog_factor=120.0)


def hours_ago() -> float:
    return time.time() - FAST_PLANT_LEAD_S


@pytest.fixture(scope="module")
def demo() -> Plant:
    return load_plant(DEMO_PLANT)


def fast_plant(demo: Plant, lines: Iterable[str] | None = None, **endpoint_fields: object) -> Plant:
    """The demo plant on a free port, publishing every 50 ms, heartbeats every 0.5 s."""
    fields = {"publishing_interval_ms": 50, **endpoint_fields}
    plant = retarget(demo, f"opc.tcp://127.0.0.1:{free_port()}/liuzhou/", **fields)
    keep = [line for line in plant.lines if lines is None or line.id in lines]
    return plant.model_copy(update={"heartbeat_s": 0.5, "lines": keep})


@asynccontextmanager
async def collecting(plant: Plant, redis_url: str, data_dir: Path, options: CollectorOptions = FAST,
                     env: dict[str, str] | None = None) -> AsyncIterator[Collector]:
    settings = Settings(plant_path=DEMO_PLANT, plant=plant, redis_url=redis_url, data_dir=data_dir)
    stop = asyncio.Event()
    started: asyncio.Future[Collector] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_collector(settings, stop, options=options, env=env or {}, started=started))
    collector = await started
    try:
        await collector.wait_connected(60)  # a hang, not a slow start on a loaded machine
        yield collector
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def stream(client: redis.Redis, line: str) -> list[Event]:
    return [decode_event(line, fields) for _, fields in client.xrange(events_key(line))]


def values(events: list[Event], machine: str, signal: Signal) -> list[object]:
    return [e.value for e in events if e.machine == machine and e.signal == signal]


async def until(predicate: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    """Poll ``predicate``, asked in a thread: most read a whole stream from Redis, which blocks,
    and this event loop also runs the OPC UA server and the collector; starved on a loaded
    machine, the client's health check timed out and the link went down in the middle of a
    replay (the timeout only turns a hang into a failure: a loaded machine is slow)."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


COUNTED = (("good", Signal.GOOD), ("reject", Signal.REJECT), ("energy_kwh", Signal.ENERGY))


def enough_data(client: redis.Redis, plant: Plant, sim: PlantSimulator) -> Callable[[], bool]:
    """True once the plant made more than 60 good parts, every line's good-part events
    span more than 1200 s of plant time and every machine has at least 4 heartbeats in the
    stream."""
    def check() -> bool:
        if sum(t.good or 0 for t in sim.totals().values()) <= 60:
            return False
        for line in plant.lines:
            events = stream(client, line.id)
            goods = [e.ts for e in events if e.signal == Signal.GOOD]
            if not goods or max(goods) - min(goods) <= 1200:
                return False
            if any(len(values(events, m.id, Signal.HEARTBEAT)) < 4 for m in line.machines):
                return False
        return True
    return check


def caught_up(client: redis.Redis, sim: PlantSimulator, allow_missing: bool = False) -> Callable[[], bool]:
    """True once the last good, reject and kWh of every machine in Redis are the simulator's
    (``allow_missing``: a Redis restarted empty may have no event yet for a counter that
    has not changed since)."""
    def check() -> bool:
        totals = sim.totals()
        for line in sim.plant.lines:
            events = stream(client, line.id)
            for m in line.machines:
                for field, signal in COUNTED:
                    seen = values(events, m.id, signal)[-1:]
                    if seen != [getattr(totals[(line.id, m.id)], field)] and (seen or not allow_missing):
                        return False
        return True
    return check


def initial_values_in(client: redis.Redis, plant: Plant) -> Callable[[], bool]:
    """True once the live hash has every node's value plus hb and link, for every machine."""
    return lambda: all(client.hlen(live_key(line.id)) == 8 * len(line.machines) for line in plant.lines)


def collapse(items: list[object]) -> list[object]:
    return [v for i, v in enumerate(items) if i == 0 or v != items[i - 1]]


# --- end to end --------------------------------------------------------------------------


def test_counts_in_redis_equal_the_simulators(demo: Plant, redis_client: redis.Redis, redis_url: str,
                                              tmp_path: Path) -> None:
    plant = fast_plant(demo)

    async def scenario() -> PlantSimulator:
        async with (
            PlantSimulator(plant, seed=11, speed=900, autorun=False, record=True, start=hours_ago()) as sim,
            collecting(plant, redis_url, tmp_path, options=PATIENT) as collector,
        ):
            await until(initial_values_in(redis_client, plant), what="initial values")
            sim.start_plant()
            # run until the data (not the wall clock: a loaded machine is slow) spans well over
            # 1000 s of plant time and every machine sent a few heartbeats
            await until(enough_data(redis_client, plant, sim), timeout_s=120, what="enough plant time in Redis")
            await sim.stop_plant()
            await until(caught_up(redis_client, sim), what="collector to catch up")
            assert collector.endpoints["demo"].stats.connects == 1
            assert collector.endpoints["demo"].stats.rebuilds == 0, "the subscription was rebuilt (a stall)"
        return sim

    sim = asyncio.run(scenario())
    totals = sim.totals()
    assert sum(t.good for t in totals.values()) > 50
    for line in plant.lines:
        events = stream(redis_client, line.id)
        live = {(e.machine, e.signal): e for e in (decode_live(line.id, f, v) for f, v in
                                                   redis_client.hgetall(live_key(line.id)).items())}
        for m in line.machines:
            for signal in (Signal.GOOD, Signal.REJECT, Signal.ENERGY, Signal.STATE, Signal.REASON):
                written = [v for v, _ in sim.history(line.id, m.id, signal)]
                if signal == Signal.STATE:
                    state_map = plant.state_map_for(m)
                    written = [str(state_map.map(v)) for v in written]
                # Every value since the initial one, in order, none missing.
                assert collapse(values(events, m.id, signal)) == collapse(written), f"{line.id}/{m.id} {signal}"
            assert live[(m.id, Signal.GOOD)].value == totals[(line.id, m.id)].good
            assert live[(m.id, Signal.ENERGY)].value == totals[(line.id, m.id)].energy_kwh
            assert values(events, m.id, Signal.LINK) == ["up", "down"]  # connected, then shut down
            assert len(values(events, m.id, Signal.HEARTBEAT)) >= 4  # every 0.5 s while it ran
        assert all(e.is_good for e in events)
        # Source timestamps of production events are simulated time (900x, from hours ago).
        goods = [e.ts for e in events if e.signal == Signal.GOOD]
        assert time.time() - FAST_PLANT_LEAD_S - 60 < min(goods) < max(goods) < time.time()
        assert max(goods) - min(goods) > 1000


@contextmanager
def asyncua_quieted() -> Iterator[None]:
    """``quiet_asyncua_logging`` as the entry points install it, undone afterwards."""
    session_log = logging.getLogger("asyncua.client.ua_session.UaSession")
    client_log = logging.getLogger("asyncua.client.client")
    asyncua_log = logging.getLogger("asyncua")
    before = (asyncua_log.level, list(session_log.filters), list(client_log.filters))
    try:
        quiet_asyncua_logging()
        yield
    finally:
        asyncua_log.setLevel(before[0])
        session_log.filters[:] = before[1]
        client_log.filters[:] = before[2]


def test_survives_an_opc_ua_server_restart(demo: Plant, redis_client: redis.Redis, redis_url: str,
                                           tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plant = fast_plant(demo, lines=["BW1"])
    caplog.set_level(logging.INFO, logger="collectors")

    async def scenario() -> PlantSimulator:
        async with (
            PlantSimulator(plant, seed=5, speed=900, record=True, start=hours_ago()) as sim,
            collecting(plant, redis_url, tmp_path) as collector,
        ):
            endpoint = collector.endpoints["demo"]

            def st10_good() -> int:
                return int(sim.totals()[("BW1", "ST10")].good or 0)

            def in_redis(good: int) -> Callable[[], bool]:
                return lambda: any(int(v) > good for v in values(stream(redis_client, "BW1"), "ST10", Signal.GOOD))

            await until(in_redis(st10_good() + 2), what="parts in Redis before the outage")
            await sim.stop_server()
            await until(lambda: not endpoint.connected.is_set(), what="loss noticed")
            at_loss = st10_good()
            await until(lambda: st10_good() > at_loss + 2, what="parts made while the server is gone")
            before = st10_good()
            await sim.start_server()
            await until(lambda: endpoint.stats.connects == 2, what="reconnect")
            await until(in_redis(before), what="parts in Redis after the reconnect")
            await sim.stop_plant()
            await until(caught_up(redis_client, sim), what="collector to catch up")
            assert endpoint.stats.outages == 1
            assert sim.totals()[("BW1", "ST10")].good > before
        return sim

    with asyncua_quieted():
        sim = asyncio.run(scenario())
    events = stream(redis_client, "BW1")
    for m in plant.lines[0].machines:
        goods = values(events, m.id, Signal.GOOD)
        assert goods == sorted(goods) and goods[-1] == sim.totals()[("BW1", m.id)].good
        assert values(events, m.id, Signal.LINK) == ["up", "down", "up", "down"]
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("collectors")]
    assert sum("reconnected after" in msg for msg in messages) == 1
    assert not any("cannot connect" in msg for msg in messages)
    # The client side says it once: one WARNING line for the outage, no traceback.
    client_side = [r for r in caplog.records if r.levelno >= logging.WARNING
                   and r.name.startswith(("collectors", "asyncua.client", "asyncua.common"))]
    assert [("connection lost" in r.getMessage(), r.exc_info) for r in client_side] == [(True, None)]


def test_a_redis_outage_loses_nothing(demo: Plant, restartable_redis: RedisServer, tmp_path: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    plant = fast_plant(demo, lines=["BW1", "BR1"])
    client = redis.Redis.from_url(restartable_redis.url)
    client.config_set("save", "3600 1")  # Redis saves on SIGTERM and loads it again on start
    caplog.set_level(logging.WARNING, logger="collectors.sink")

    async def scenario() -> tuple[PlantSimulator, RedisSink, int]:
        async with (
            PlantSimulator(plant, seed=8, speed=900, autorun=False, record=True, start=hours_ago()) as sim,
            collecting(plant, restartable_redis.url, tmp_path, options=PATIENT) as collector,
        ):
            await until(initial_values_in(client, plant), what="initial values")
            sim.start_plant()
            await until(lambda: len(values(stream(client, "BW1"), "ST10", Signal.GOOD)) > 2,
                        what="parts in Redis before the outage")
            restartable_redis.stop()
            # keep producing into the store-and-forward buffer (a condition, not a time: a
            # loaded machine produces less per second)
            await until(lambda: len(collector.sink.buffer) > 100, timeout_s=120, what="events buffered")
            in_buffer = len(collector.sink.buffer)
            restartable_redis.start()
            await until(lambda: collector.sink.stats.outages == 1 and len(collector.sink.buffer) == 0,
                        what="the buffer forwarded")
            await sim.stop_plant()
            await until(caught_up(client, sim), what="buffered events forwarded")
            assert collector.endpoints["demo"].stats.rebuilds == 0, "the subscription was rebuilt (a stall)"
            return sim, collector.sink, in_buffer

    sim, sink, in_buffer = asyncio.run(scenario())
    assert in_buffer > 100
    assert sink.stats.outages == 1 and sink.stats.buffered >= in_buffer and len(sink.buffer) == 0
    for line in plant.lines:
        events = stream(client, line.id)
        for m in line.machines:
            for signal in (Signal.GOOD, Signal.REJECT, Signal.ENERGY, Signal.POWER, Signal.STATE):
                written = [v for v, _ in sim.history(line.id, m.id, signal)]
                if signal == Signal.STATE:
                    written = [str(plant.state_map_for(m).map(v)) for v in written]
                seen = values(events, m.id, signal)
                # Everything since the subscription's initial value, in order, none missing.
                assert collapse(seen) == collapse(written), f"{line.id}/{m.id} {signal}"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Redis unreachable" in msg for msg in messages) == 1
    assert sum("Redis reachable again" in msg for msg in messages) == 1
    client.close()


def test_bad_values_are_recorded_with_a_bad_status(demo: Plant, redis_client: redis.Redis, redis_url: str,
                                                   tmp_path: Path) -> None:
    plant = fast_plant(demo, lines=["BW1"])
    # PLCs that show a counter as text or as a float.
    node_types = {"ns=2;s=BW1.ST20.good": ua.VariantType.String, "ns=2;s=BW1.ST30.good": ua.VariantType.Double}

    async def scenario() -> None:
        async with (
            PlantSimulator(plant, autorun=False, node_types=node_types) as sim,
            collecting(plant, redis_url, tmp_path),
        ):
            await sim.write("BW1", "ST10", Signal.ENERGY, float("nan"))
            await sim.write("BW1", "ST10", Signal.POWER, float("inf"))
            await sim.write("BW1", "ST10", Signal.GOOD, None, status="BadSensorFailure")
            await sim.write("BW1", "ST10", Signal.REJECT, 7, status="UncertainLastUsableValue")
            await sim.write("BW1", "ST10", Signal.STATE, 6)
            await sim.write("BW1", "ST20", Signal.GOOD, "12 pcs")
            await sim.write("BW1", "ST30", Signal.GOOD, 2**31)
            await sim.write("BW1", "ST30", Signal.GOOD, 4.5)
            await until(lambda: len(values(stream(redis_client, "BW1"), "ST30", Signal.GOOD)) >= 3,
                        what="the last write")

    asyncio.run(scenario())
    events = stream(redis_client, "BW1")

    def last(machine: str, signal: Signal) -> Event:
        return [e for e in events if e.machine == machine and e.signal == signal][-1]

    energy = last("ST10", Signal.ENERGY)
    assert energy.status == "BadValue" and math.isnan(energy.value) and not energy.is_good  # type: ignore[arg-type]
    assert last("ST10", Signal.POWER).status == "BadValue"
    assert (last("ST10", Signal.GOOD).status, last("ST10", Signal.GOOD).value) == ("BadSensorFailure", "")
    assert (last("ST10", Signal.REJECT).status, last("ST10", Signal.REJECT).value) == ("UncertainLastUsableValue", 7)
    assert not last("ST10", Signal.REJECT).is_good
    assert (last("ST10", Signal.STATE).value, last("ST10", Signal.STATE).status) == (State.RUNNING, "Good")
    assert (last("ST20", Signal.GOOD).status, last("ST20", Signal.GOOD).value) == ("BadValue", "12 pcs")
    st30 = [e for e in events if e.machine == "ST30" and e.signal == Signal.GOOD][-2:]
    assert [e.status for e in st30] == ["Good", "BadValue"] and st30[0].value == 2**31


def test_changes_faster_than_the_publishing_interval_all_arrive_in_order(
        demo: Plant, redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    plant = fast_plant(demo, lines=["CM1"], publishing_interval_ms=500, queue_size=1000)

    async def scenario() -> None:
        async with PlantSimulator(plant, autorun=False) as sim, collecting(plant, redis_url, tmp_path):
            await sim.write("CM1", "OP20", Signal.STATE, 0)
            for i in range(1, 301):  # mostly within one publishing interval: the server queues them
                await sim.write("CM1", "OP10", Signal.GOOD, i)
                await sim.write("CM1", "OP20", Signal.GOOD, i)
                await sim.write("CM1", "OP20", Signal.STATE, 6 if i % 2 else 5)
            await until(lambda: values(stream(redis_client, "CM1"), "OP20", Signal.GOOD)[-1:] == [300],
                        what="all changes")

    asyncio.run(scenario())
    events = stream(redis_client, "CM1")
    assert values(events, "OP10", Signal.GOOD) == list(range(0, 301))
    assert values(events, "OP20", Signal.GOOD) == list(range(0, 301))
    states = values(events, "OP20", Signal.STATE)
    assert states[-301:] == [State.UNKNOWN] + [State.RUNNING, State.STARVED] * 150


def test_values_of_different_nodes_are_written_in_time_order(demo: Plant, redis_client: redis.Redis,
                                                              redis_url: str, tmp_path: Path) -> None:
    """A notification lists each node's queued values together; the collector writes a
    machine's events in time order all the same (a stable sort per notification)."""
    plant = fast_plant(demo, lines=["CM1"], publishing_interval_ms=1000, queue_size=1000)
    base = math.floor(time.time()) - 60  # whole seconds: the times below are whole milliseconds

    async def scenario() -> None:
        async with PlantSimulator(plant, autorun=False) as sim, collecting(plant, redis_url, tmp_path):
            for signal in (Signal.GOOD, Signal.STATE, Signal.REASON):  # unlike the first values below
                await sim.write("CM1", "OP20", signal, 0, source_ts=base)
            # good, state, reason, good, state, reason, ... 1 ms apart; written in far less than a
            # publishing interval, so (almost always) they arrive in one notification, node by node
            for i in range(1, 101):
                at = base + i * 0.003
                await sim.write("CM1", "OP20", Signal.GOOD, i, source_ts=at)
                await sim.write("CM1", "OP20", Signal.STATE, 6 if i % 2 else 5, source_ts=at + 0.001)
                await sim.write("CM1", "OP20", Signal.REASON, i, source_ts=at + 0.002)
            await until(lambda: values(stream(redis_client, "CM1"), "OP20", Signal.REASON)[-1:] == [100],
                        what="all changes")

    asyncio.run(scenario())
    signals = (Signal.GOOD, Signal.STATE, Signal.REASON)
    written = [e for e in stream(redis_client, "CM1") if e.machine == "OP20" and base < e.ts < base + 1
               and e.signal in signals]
    assert [(e.signal, round(e.ts * 1000)) for e in written] == [
        (signal, round((base + i * 0.003 + k * 0.001) * 1000))
        for i in range(1, 101) for k, signal in enumerate(signals)]


def test_timestamp_modes(demo: Plant, redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    base = fast_plant(demo, lines=["BW1"])
    ep = base.endpoints["demo"]
    endpoints = {mode.value: ep.model_copy(update={"timestamp": mode}) for mode in TimestampSource}
    line = base.lines[0]
    machines = [m.model_copy(update={"endpoint": mode})
                for m, mode in zip(line.machines[:3], ["source", "server", "arrival"], strict=True)]
    plant = base.model_copy(update={"endpoints": endpoints,
                                    "lines": [line.model_copy(update={"machines": machines})]})
    source_ts, server_ts = 1_600_000_000.25, 1_650_000_000.5

    async def scenario() -> float:
        async with PlantSimulator(plant, autorun=False) as sim, collecting(plant, redis_url, tmp_path) as collector:
            assert set(collector.endpoints) == {"source", "server", "arrival"}
            written_at = time.time()
            for machine in ("ST10", "ST20", "ST30"):
                await sim.write("BW1", machine, Signal.GOOD, 5, source_ts=source_ts, server_ts=server_ts)
            await until(lambda: len([e for e in stream(redis_client, "BW1")
                                     if e.signal == Signal.GOOD and e.value == 5]) == 3, what="writes")
            return written_at

    started = time.time()
    written_at = asyncio.run(scenario())
    events = stream(redis_client, "BW1")
    ts = {e.machine: e.ts for e in events if e.signal == Signal.GOOD and e.value == 5}
    assert ts["ST10"] == source_ts
    assert ts["ST20"] == server_ts
    assert written_at <= ts["ST30"] < written_at + 2
    # Arrival timestamps: the collector's own events carry the wall clock too.
    own = [e.ts for e in events if e.machine == "ST30" and e.signal in (Signal.HEARTBEAT, Signal.LINK)]
    assert own and all(started <= t <= time.time() for t in own)


def test_watchdog_rebuilds_a_silent_subscription(demo: Plant, redis_client: redis.Redis, redis_url: str,
                                                 tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plant = fast_plant(demo, lines=["CM1"])
    caplog.set_level(logging.WARNING, logger="collectors.collector")

    async def scenario() -> Collector:
        async with PlantSimulator(plant, autorun=False) as sim, collecting(plant, redis_url, tmp_path) as collector:
            assert sim.stall_subscriptions() == 1
            await sim.write("CM1", "OP10", Signal.GOOD, 1)  # queued on the hung subscription
            await until(lambda: collector.endpoints["demo"].stats.rebuilds == 1, what="watchdog")
            await sim.write("CM1", "OP10", Signal.GOOD, 2)
            await until(lambda: values(stream(redis_client, "CM1"), "OP10", Signal.GOOD)[-1:] == [2],
                        what="data after the rebuild")
            return collector

    collector = asyncio.run(scenario())
    endpoint = collector.endpoints["demo"]
    assert endpoint.stats.connects == 1 and endpoint.stats.outages == 0  # same session
    assert sum("silent" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records) == 1


def test_unknown_nodes_are_reported_and_the_rest_collected(demo: Plant, redis_client: redis.Redis,
                                                           redis_url: str, tmp_path: Path) -> None:
    plant = fast_plant(demo, lines=["CM1"])
    served = plant
    line = plant.lines[0]
    op10 = line.machines[0]
    wrong = op10.model_copy(update={"nodes": {**op10.nodes, Signal.REASON: "ns=2;s=CM1.OP10.no_such_node"}})
    plant = plant.model_copy(update={"lines": [line.model_copy(update={"machines": [wrong, *line.machines[1:]]})]})

    async def scenario() -> None:
        async with PlantSimulator(served, autorun=False) as sim, collecting(plant, redis_url, tmp_path):
            await sim.write("CM1", "OP10", Signal.GOOD, 3)
            await until(lambda: values(stream(redis_client, "CM1"), "OP10", Signal.GOOD)[-1:] == [3],
                        what="good count")

    asyncio.run(scenario())
    reasons = [e for e in stream(redis_client, "CM1") if e.machine == "OP10" and e.signal == Signal.REASON]
    assert [e.status for e in reasons] == ["BadNodeIdUnknown"]


def test_stream_is_trimmed_to_the_retention(demo: Plant, redis_client: redis.Redis, redis_url: str,
                                            tmp_path: Path) -> None:
    days = demo.retention.stream_days

    async def scenario() -> None:
        client = connect_async(redis_url)
        now = time.time()
        old = RedisSink(client, StoreAndForwardBuffer(tmp_path / "a"), retention_s=days * 86400)
        await old.write([Event("BW1", "ST10", Signal.GOOD, i, "Good", now) for i in range(1000)])
        # The same sink days later: entries older than the retention go (whole listpack nodes).
        await asyncio.sleep(0.3)
        later = RedisSink(client, StoreAndForwardBuffer(tmp_path / "b"), retention_s=days * 86400,
                          clock=lambda: time.time() + days * 86400 - 0.15)
        await later.write([Event("BW1", "ST10", Signal.GOOD, 1000, "Good", now)])
        await client.aclose()

    asyncio.run(scenario())
    assert redis_client.xlen(events_key("BW1")) < 150
    assert stream(redis_client, "BW1")[-1].value == 1000


def test_connects_with_encryption_and_a_password_from_the_environment(
        demo: Plant, redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    async def certificates() -> tuple[Path, Path, Path, Path]:
        paths = []
        for who, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
            key, cert = tmp_path / f"{who}-key.pem", tmp_path / f"{who}-cert.der"
            await setup_self_signed_certificate(key, cert, f"urn:test:{who}", "localhost", [usage],
                                                {"commonName": who})
            paths += [cert, key]
        return paths[0], paths[1], paths[2], paths[3]

    server_cert, server_key, client_cert, client_key = asyncio.run(certificates())
    security = Security(policy="Basic256Sha256", mode="SignAndEncrypt", certificate=str(client_cert),
                        private_key=str(client_key), username="collector", password_env="OPCUA_PASSWORD")
    plant = fast_plant(demo, lines=["CM1"], security=security)

    with pytest.raises(ValueError, match="OPCUA_PASSWORD"):
        Collector(plant, None, env={})  # type: ignore[arg-type]

    async def scenario() -> None:
        async with (
            PlantSimulator(plant, autorun=False, certificate=server_cert, private_key=server_key,
                           users={"collector": "s3cret"}) as sim,
            collecting(plant, redis_url, tmp_path, env={"OPCUA_PASSWORD": "s3cret"}) as collector,
        ):
            client = collector.endpoints["demo"]
            await sim.write("CM1", "OP30", Signal.GOOD, 9)
            await until(lambda: values(stream(redis_client, "CM1"), "OP30", Signal.GOOD)[-1:] == [9],
                        what="value over the encrypted channel")
            assert client.stats.connects == 1

    asyncio.run(scenario())


def test_an_endpoint_that_swallows_its_cancellation_is_cancelled_again(demo: Plant) -> None:
    """A cancellation lost in what an endpoint awaits (Python 3.11's ``asyncio.wait_for``
    drops one that arrives as its awaitable completes): the endpoint's task went on
    collecting, and the collector's shutdown waited for ever. It is cancelled until it ends."""
    collector = Collector(fast_plant(demo, lines=["CM1"]), None, env={})  # type: ignore[arg-type]
    swallowed: list[int] = []

    async def swallowing_run() -> None:  # an endpoint whose first cancellation a library dropped
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not swallowed:
                    swallowed.append(1)
                    continue
                raise

    endpoint = next(iter(collector.endpoints.values()))
    endpoint.run = swallowing_run  # type: ignore[method-assign]

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    assert swallowed == [1]


def test_a_replayed_shift_arrives_with_its_own_times(demo: Plant, redis_client: redis.Redis, redis_url: str,
                                                      tmp_path: Path) -> None:
    # Queues that hold the whole scenario per node: a collector starved by a loaded machine
    # for seconds (hours of the scenario at 7200x) still gets every value.
    plant = fast_plant(demo, lines=["BW1"], queue_size=5000)
    file_rows = load_scenario(EXAMPLE_SCENARIO, plant)
    last_good = [r for r in file_rows if r.signal == Signal.GOOD][-1]
    settings = Settings(plant_path=DEMO_PLANT, plant=plant, redis_url=redis_url, data_dir=tmp_path / "replay")

    async def scenario() -> int:
        stop, start = asyncio.Event(), asyncio.Event()
        # 8 h in 4 s, moved in time so that it ends as it is played (the file's 2025 shift
        # is older than the stream's retention: its changes would be BadTimestampTooOld)
        replaying = asyncio.create_task(replay_scenario(settings, EXAMPLE_SCENARIO, speed=2 * 3600, stop=stop,
                                                        start=start, shift="exact"))
        # The replay catching up on a loaded machine can hold the event loop the server shares
        # with the collector for seconds: that is no hung subscription (a rebuild would skip values).
        patient = dataclasses.replace(FAST, watchdog_factor=40.0)
        async with collecting(plant, redis_url, tmp_path, patient):
            start.set()
            await until(lambda: values(stream(redis_client, "BW1"), "ST70", Signal.GOOD)[-1:] == [last_good.value],
                        what="the whole shift")
            stop.set()
            return await replaying

    assert asyncio.run(scenario()) == len(file_rows)
    ended = time.time()
    events = stream(redis_client, "BW1")
    # "link up" at the first row: the nodes' initial values carry its (moved) time.
    moved_by = round(events[0].ts - file_rows[0].time, 3)
    rows = [dataclasses.replace(r, time=round(r.time + moved_by, 3)) for r in file_rows]
    goods = [(e.value, e.ts) for e in events if e.machine == "ST70" and e.signal == Signal.GOOD and e.is_good]
    assert goods == [(r.value, r.time) for r in rows if r.signal == Signal.GOOD]
    assert all(e.is_good or e.status == "BadWaitingForInitialData" for e in events)
    # Machines the scenario does not play have no value: unknown, not running.
    st10 = {e.status for e in events if e.machine == "ST10" and e.signal == Signal.STATE}
    assert st10 == {"BadWaitingForInitialData"}
    # The collector's own events are in the scenario's time (hours ago), not in the wall
    # clock's: "link up" at the first row, heartbeats after it and never ahead of the data
    # (nor of the "link down"); every machine's events in time order.
    first, last = rows[0].time, rows[-1].time
    assert ended - 9 * 3600 < first < last - 7 * 3600
    for machine in ("ST10", "ST70"):
        mine = [e for e in events if e.machine == machine]
        assert (mine[0].signal, mine[0].value, mine[0].ts) == (Signal.LINK, "up", first)
        assert [e.ts for e in mine] == sorted(e.ts for e in mine), machine
        beats = [e.ts for e in mine if e.signal == Signal.HEARTBEAT]
        assert beats and first <= beats[0] and beats[-1] <= mine[-1].ts <= ended, machine
    # Readings every 15 s (gap_timeout_s / 2) keep the machine heard all shift: the
    # heartbeats, every heartbeat_s of wall time, cannot at 7200x.
    # Up to the "link down" (the collector stopped after the last row), in the scenario's
    # time too.
    line = plant.line("BW1")
    st70 = line.machine("ST70")  # type: ignore[union-attr]
    mine = [e for e in events if e.machine == "ST70"]
    down = mine[-1]
    assert (down.signal, down.value) == (Signal.LINK, "down") and last <= down.ts <= ended
    totals, _ = totals_from_events(mine, plant, line, st70, first, down.ts, down.ts)  # type: ignore[arg-type]
    # Running time in or out of the calendar's planned time: the replay ends now, so where
    # the calendar's breaks fall in it depends on the time of day the test runs.
    assert totals.unknown_s == 0 and totals.run_s + totals.unplanned_run_s > 5 * 3600


# --- the time base of hb and link ------------------------------------------------------------


def ev(machine: str, signal: Signal, value: object, ts: float) -> Event:
    return Event("L1", machine, signal, value, "Good", ts)


def test_timebase_follows_the_clock_of_the_data_changes_not_the_initial_values() -> None:
    a, b = ("L1", "A"), ("L1", "B")
    assert TimeBase().stamp(a, 1000.0) == 1000.0  # nothing known: the wall clock
    tb = TimeBase()
    # Initial values carry each node's last change (long ago for a quiet node): only a lower
    # bound of the PLC's clock. "link up" at the newest of them.
    initial = [ev("A", Signal.STATE, "idle", 100.0), ev("A", Signal.GOOD, 7, 460.0)]
    assert tb.observe(initial, 1000.0, {id(e) for e in initial}, waiting={a, b}) == {a: 460.0}
    assert tb.stamp(a, 1010.0) == 470.0
    assert tb.stamp(b, 1010.0) == 470.0  # no data of its own: the endpoint's bound
    # A change: this clock is 500 s behind the wall clock (latency included).
    tb.observe([ev("A", Signal.GOOD, 8, 520.0)], 1020.0)
    assert tb.offset(a) == -500.0 and tb.stamp(a, 1030.0) == 530.0
    assert tb.stamp(b, 1030.0) == 530.0  # no change of its own: the endpoint's offset
    # B (another PLC behind the same server) runs 900 s behind: from now on its own clock,
    # but never earlier than what was written for it (monotonic per machine).
    tb.observe([ev("B", Signal.GOOD, 1, 140.0)], 1040.0)
    assert (tb.offset(a), tb.offset(b)) == (-500.0, -900.0)
    assert tb.stamp(b, 1050.0) == 530.0
    assert tb.stamp(b, 1440.0) == 540.0
    # A notification delivered late makes the estimate fall back: stamps stay monotonic.
    tb.observe([ev("A", Signal.GOOD, 9, 600.0)], 1200.0)
    assert tb.stamp(a, 1201.0) == 601.0
    assert tb.stamp(a, 1150.0) == 601.0


def test_timebase_link_up_never_starts_a_machine_ahead_of_its_data() -> None:
    a = ("L1", "A")
    tb = TimeBase()
    # The first notification holds the initial values and changes made since subscribing
    # (a replay that began at once): "link up" at the earliest change, not at the newest
    # data (that would make the changes before it late); the initial values older than it
    # are applied at its time.
    events = [ev("A", Signal.REASON, 0, 50.0), ev("A", Signal.GOOD, 1, 90.0), ev("A", Signal.STATE, "running", 100.0),
              ev("A", Signal.GOOD, 2, 115.0), ev("A", Signal.GOOD, 3, 130.0)]
    assert tb.observe(events, 2000.0, {id(e) for e in events[:3]}, waiting={a}) == {a: 115.0}
    assert tb.offset(a) == 130.0 - 2000.0 and tb.last[a] == 130.0
    assert tb.stamp(a, 2005.0) == 135.0  # the link goes down
    # Reconnected: the clock is known, "link up" at its now, never before the "down".
    again = [ev("A", Signal.STATE, "running", 100.0)]
    assert tb.observe(again, 2001.5, {id(again[0])}, waiting={a}) == {a: 135.0}
    again = [ev("A", Signal.STATE, "running", 100.0)]
    assert tb.observe(again, 2100.0, {id(again[0])}, waiting={a}) == {a: 230.0}
    assert tb.observe([ev("A", Signal.GOOD, 4, 240.0)], 2110.0) == {}  # not waiting: nothing


def test_heartbeats_and_links_follow_a_plc_clock_an_hour_behind(demo: Plant, redis_client: redis.Redis,
                                                                 redis_url: str, tmp_path: Path) -> None:
    plant = fast_plant(demo, lines=["BW1"])
    skew = -3600.0

    async def scenario() -> tuple[float, float]:
        started = time.time()
        async with PlantSimulator(plant, seed=3, start=started + skew) as sim:  # its clock: an hour behind
            async with collecting(plant, redis_url, tmp_path):
                for n in range(1, 6):
                    await sim.write("BW1", "ST10", Signal.REASON, n)  # at the simulator's clock
                    await until(lambda n=n: values(stream(redis_client, "BW1"), "ST10", Signal.REASON)[-1:] == [n],
                                what=f"reason {n}")

                def heartbeats() -> bool:
                    events = stream(redis_client, "BW1")
                    return all(len(values(events, m.id, Signal.HEARTBEAT)) >= 4 for m in plant.lines[0].machines)

                await until(heartbeats, what="4 heartbeats of every machine")
            return started, time.time()

    started, ended = asyncio.run(scenario())
    events = stream(redis_client, "BW1")
    for m in plant.lines[0].machines:
        mine = [e for e in events if e.machine == m.id]
        own = [e for e in mine if e.signal in (Signal.HEARTBEAT, Signal.LINK)]
        assert [e.value for e in own if e.signal == Signal.LINK] == ["up", "down"]
        assert len(own) >= 4, m.id  # heartbeats every 0.5 s
        # Stamped with the PLC's clock, never ahead of it (nor of the data).
        assert all(started + skew - 1 <= e.ts <= ended + skew for e in own), m.id
        assert mine[0].signal == Signal.LINK and [e.ts for e in mine] == sorted(e.ts for e in mine), m.id


def test_quiet_asyncua_logging_drops_only_the_connection_drop_traceback(caplog: pytest.LogCaptureFixture) -> None:
    session_log = logging.getLogger("asyncua.client.ua_session.UaSession")
    client_log = logging.getLogger("asyncua.client.client")
    asyncua_log = logging.getLogger("asyncua")
    before = (asyncua_log.level, list(session_log.filters), list(client_log.filters))
    try:
        quiet_asyncua_logging()
        with caplog.at_level(logging.INFO):
            for exc in (ConnectionError("Connection is closed"), ValueError("a real bug")):
                try:
                    raise exc
                except Exception:
                    session_log.exception("Publish iteration crashed; retrying in 1s")
            session_log.info("create_subscription success")
            session_log.warning("close_session was called but connection is closed")
            session_log.warning("a warning that matters")
            client_log.error("create_session fault response: %s (%s)", "not trusted", "BadCertificateUntrusted")
            client_log.error("an error that matters")
        assert [(r.levelname, r.exc_info[1].__class__.__name__) for r in caplog.records if r.exc_info] == [
            ("ERROR", "ValueError")]
        assert not any(r.getMessage().startswith(("create_subscription", "close_session")) for r in caplog.records)
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == ["a warning that matters"]
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and not r.exc_info] == [
            "an error that matters"]
    finally:
        asyncua_log.setLevel(before[0])
        session_log.filters[:] = before[1]
        client_log.filters[:] = before[2]


# --- "since" and timestamps that cannot be right -----------------------------------------------


def state_of(client: redis.Redis, plant: Plant, machine: str, now: float) -> dict[str, Any]:
    """The machine as the wall shows it, at the time of its last data (not later: a loaded
    machine that stalls the collector, or this test's loop while a worker drains, for more
    than the plant's gap timeout would show it stale, so unknown, which is not what is
    tested here)."""
    def shown(at: float) -> dict[str, Any]:
        line = lines_now(client, plant, at)["lines"][0]
        return next(m for m in line["machines"] if m["id"] == machine)

    last = shown(now)["last_data"]
    return shown(min(now, last) if last is not None else now)


class PlcClock:
    """A PLC whose clock runs ``speed`` times faster than the wall clock, from ``lead_s``
    ago, with a power reading changing every 50 ms of wall time: its data (and with it the
    collector's heartbeats and links) runs on this clock, so minutes pass in seconds."""

    def __init__(self, sim: PlantSimulator, speed: float = 60.0, lead_s: float = 3600.0) -> None:
        self.sim, self.speed = sim, speed
        self.t0, self.wall0 = time.time() - lead_s, time.monotonic()
        self._task = asyncio.create_task(self._readings())

    def now(self) -> float:
        return self.t0 + (time.monotonic() - self.wall0) * self.speed

    async def _readings(self) -> None:
        kw = 10.0
        while True:
            kw = 10.0 if kw != 10.0 else 10.5
            if self.sim.server is not None:
                await self.sim.write("BW1", "ST10", Signal.POWER, kw, source_ts=self.now())
            await asyncio.sleep(0.05)

    async def until(self, t: float) -> None:
        await until(lambda: self.now() >= t, what="the PLC's clock")

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def test_since_is_the_state_changes_source_time_and_survives_a_reconnect(
        demo: Plant, redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """A fault 3.5 min old stays 3.5 min old on the wall after the collector reconnects
    (the re-read of the unchanged state carries the same source time), with the rollup
    worker past the reconnect (a link gap is unknown time to it: its own record of the
    state begins again at the reconnect)."""
    plant = fast_plant(demo, lines=["BW1"])

    def states_written() -> int:
        return len([e for e in stream(redis_client, "BW1") if e.machine == "ST10" and e.signal == Signal.STATE])

    async def scenario() -> tuple[float, float, dict[str, Any], dict[str, Any]]:
        async with (
            PlantSimulator(plant, autorun=False, start=time.time() - 4000) as sim,
            collecting(plant, redis_url, tmp_path) as collector,
        ):
            endpoint = collector.endpoints["demo"]
            plc = PlcClock(sim)
            try:
                await sim.write("BW1", "ST10", Signal.STATE, 6, source_ts=plc.now())  # running
                await plc.until(plc.now() + 60)
                fault_at = round(plc.now(), 3)
                await sim.write("BW1", "ST10", Signal.STATE, 9, source_ts=fault_at)  # PackML Aborted: fault
                await plc.until(fault_at + 210)
                await asyncio.to_thread(run_worker_until_drained, redis_client, plant, plc.now())
                before = state_of(redis_client, plant, "ST10", plc.now())
                written = states_written()
                await sim.stop_server()
                await until(lambda: not endpoint.connected.is_set(), what="loss noticed")
                await sim.start_server()
                await until(lambda: endpoint.stats.connects == 2, what="reconnect")
                await until(lambda: states_written() > written, what="the state read again")
                reconnected_at = plc.now()
                await plc.until(reconnected_at + 60)
                await asyncio.to_thread(run_worker_until_drained, redis_client, plant, plc.now())
                after = state_of(redis_client, plant, "ST10", plc.now())
            finally:
                await plc.stop()
        return fault_at, reconnected_at, before, after

    fault_at, reconnected_at, before, after = asyncio.run(scenario())
    assert (before["state"], before["since"]) == ("fault", fault_at)
    assert (after["state"], after["since"]) == ("fault", fault_at)
    links = [e for e in stream(redis_client, "BW1") if e.machine == "ST10" and e.signal == Signal.LINK]
    assert [e.value for e in links] == ["up", "down", "up", "down"]
    # The reconnect ("link up", stamped on the estimate of the PLC's clock) came minutes
    # after the fault: the state did not begin there.
    assert fault_at + 120 < links[2].ts <= reconnected_at


def test_far_future_and_too_old_times_are_written_bad_and_move_nothing(
        demo: Plant, redis_client: redis.Redis, redis_url: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    plant = fast_plant(demo, lines=["BW1"])
    caplog.set_level(logging.WARNING, logger="collectors.collector")
    future = round(time.time() + 70 * 365.25 * 86400, 3)  # a PLC clock 70 years ahead, once
    too_old = round(time.time() - (plant.retention.stream_days + 1) * 86400, 3)  # a PLC clock reset

    def st10(signal: Signal) -> list[Event]:
        return [e for e in stream(redis_client, "BW1") if e.machine == "ST10" and e.signal == signal]

    async def scenario() -> tuple[float, dict[str, Any]]:
        async with PlantSimulator(plant, autorun=False) as sim, collecting(plant, redis_url, tmp_path):
            await sim.write("BW1", "ST10", Signal.STATE, 6)  # running, now
            await until(lambda: [e.value for e in st10(Signal.STATE)][-1:] == ["running"], what="running")
            running_at = st10(Signal.STATE)[-1].ts
            await sim.write("BW1", "ST10", Signal.STATE, 9, source_ts=future)
            await sim.write("BW1", "ST10", Signal.GOOD, 4_000_000, source_ts=future)
            await sim.write("BW1", "ST10", Signal.REASON, 3, source_ts=too_old)
            await sim.write("BW1", "ST10", Signal.GOOD, 5)  # the clock is right again
            await until(lambda: [e.value for e in st10(Signal.GOOD) if e.is_good][-1:] == [5],
                        what="the next good value")
            beats = len(st10(Signal.HEARTBEAT))
            await until(lambda: len(st10(Signal.HEARTBEAT)) >= beats + 3, what="heartbeats after it")
            return running_at, state_of(redis_client, plant, "ST10", time.time())

    running_at, shown = asyncio.run(scenario())
    ended = time.time()
    events = [e for e in stream(redis_client, "BW1") if e.machine == "ST10"]
    flagged = [(e.signal, e.value, e.status, e.ts) for e in events if not e.is_good and e.status.startswith("BadTime")]
    flagged = list(dict.fromkeys(flagged))  # a rebuilt subscription reads the state again
    assert flagged == [(Signal.REASON, 3, TIMESTAMP_TOO_OLD, too_old),
                       (Signal.STATE, "fault", TIMESTAMP_FUTURE, future),
                       (Signal.GOOD, 4_000_000, TIMESTAMP_FUTURE, future)]
    # Heartbeats and links stay on the data's clock (here the wall clock), and in time order.
    own = [e.ts for e in events if e.signal in (Signal.HEARTBEAT, Signal.LINK)]
    assert own == sorted(own) and own[-1] <= ended
    # The live state is the last one with a trustworthy time: still running since then.
    assert (shown["state"], shown["since"], shown["good"]) == ("running", running_at, 5)
    assert shown["last_data"] <= ended and shown["reason"] is None
    warned = [r.getMessage() for r in caplog.records if "written as BadTimestamp" in r.getMessage()]
    assert len(warned) == 3  # once per machine signal and kind
