"""Redis Cluster: the demo history written, rolled up and read through a real 3-master
cluster on loopback gives exactly the figures of a single Redis, with no duplicate entry.

Every key of a line carries the line as a hash tag, so each line lives in one slot; the
demo plant's three lines land on different masters (checked), so the path crosses nodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from collectors.buffer import StoreAndForwardBuffer
from collectors.sim.history import backfill_demo
from collectors.sim.simulator import PlantSimulator
from collectors.sink import RedisSink
from config.loader import DEMO_PLANT, load_plant
from domain import contract
from domain.model import Event, Signal
from domain.plant import Plant
from store.clients import connect, connect_async, is_async_cluster, is_cluster
from store.reader import PlantReader
from store.rollup import RollupWorker
from tests.cluster_support import RedisClusterServers
from tests.test_collector import caught_up, collecting, fast_plant, hours_ago, until

HOUR = 3600.0
NOW = float(int(time.time() - 2 * 86400) // HOUR * HOUR) + 1234.5


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers()
    servers.start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def plant() -> Plant:
    return load_plant(DEMO_PLANT)


def roll_up(client: Any, plant: Plant) -> int:
    clock = [NOW]
    worker = RollupWorker(client, plant, clock=lambda: clock[0])
    events = worker.drain()
    clock[0] = NOW + 60  # nothing more arrives: the rest closes on the clock
    worker.drain()
    worker.close()
    return events


def figures(client: Any, plant: Plant) -> dict[str, Any]:
    reader = PlantReader(client, plant)
    out: dict[str, Any] = {}
    for line in plant.lines:
        out[line.id] = {
            "kpis": reader.line_kpis(line.id, NOW - 2 * HOUR, NOW, NOW + 60, machines=True),
            "downtime": reader.downtime(line.id, NOW - 2 * HOUR, NOW, NOW + 60),
            "energy": reader.energy(line.id, NOW - 2 * HOUR, NOW, NOW + 60),
        }
    return out


def test_the_cluster_url_gives_a_cluster_client(cluster: RedisClusterServers) -> None:
    client = connect(cluster.url, "worker")
    assert is_cluster(client)
    detected = connect(cluster.url.replace("redis+cluster://", "redis://"), "screen")
    assert isinstance(detected, RedisCluster), "a plain URL of a cluster node is detected"
    client.close()
    detected.close()


def test_history_worker_and_reader_through_a_cluster_equal_a_single_redis(cluster: RedisClusterServers,
                                                                          redis_client: redis.Redis,
                                                                          plant: Plant) -> None:
    client = connect(cluster.url, "worker")
    try:
        slots = {line.id: client.keyslot(contract.events_key(line.id)) for line in plant.lines}
        nodes = {client.get_node_from_key(contract.events_key(line.id)).name for line in plant.lines}
        assert len(set(slots.values())) == len(plant.lines) and len(nodes) >= 2, (slots, nodes)

        written = backfill_demo(client, plant, NOW, hours=2, seed=5)
        assert backfill_demo(redis_client, plant, NOW, hours=2, seed=5) == written
        lengths = {line.id: client.xlen(contract.events_key(line.id)) for line in plant.lines}
        assert sum(lengths.values()) == written, "no entry written twice"

        assert roll_up(client, plant) == written
        assert roll_up(redis_client, plant) == written

        assert figures(client, plant) == figures(redis_client, plant)
    finally:
        client.close()


def test_simulator_collector_worker_and_reader_through_a_cluster_every_event_once(
        cluster: RedisClusterServers, tmp_path: Path) -> None:
    """The live path on the cluster: the collector (async cluster client, one EVAL per
    line on its slot's master) writes each event once, the worker rolls up exactly what
    was written, and the live view shows the simulator's counters."""
    client = connect(cluster.url, "worker")
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    plant = fast_plant(load_plant(DEMO_PLANT))
    assert len({client.get_node_from_key(contract.events_key(line.id)).name for line in plant.lines}) >= 2

    async def scenario() -> tuple[PlantSimulator, int]:
        async with (
            PlantSimulator(plant, seed=3, speed=900, autorun=False, record=True, start=hours_ago()) as sim,
            collecting(plant, cluster.url, tmp_path) as collector,
        ):
            assert is_async_cluster(collector.sink.client)
            first = sim.totals()
            sim.start_plant()
            # until the plant made a few dozen parts (a condition: a loaded machine is slower)
            def made() -> int:
                pairs = zip(sim.totals().values(), first.values(), strict=True)
                return sum((t.good or 0) - (t0.good or 0) for t, t0 in pairs)

            await until(lambda: made() > 40, timeout_s=120, what="parts made")
            await sim.stop_plant()
            await until(caught_up(client, sim), what="collector to catch up")
            sink = collector.sink
        await until(lambda: sink.pending == 0, what="the last batch")
        return sim, sink.stats.written

    try:
        sim, written = asyncio.run(scenario())
        totals = sim.totals()
        assert sum(t.good for t in totals.values()) > 20
        entries = {line.id: client.xrange(contract.events_key(line.id)) for line in plant.lines}
        assert sum(len(e) for e in entries.values()) == written, "every event stored exactly once"
        for line in plant.lines:
            # The Redis path writes every event put once (above). The collector may put a value
            # twice only across a reconnect of its machine (a loaded machine: the session
            # times out; the new subscription reports the current values again, with their
            # stamps): a repeated row needs a "link" row of its machine between the two. The
            # "link" rows themselves may repeat (down and up again at the same stamp, the
            # simulated clock standing still).
            links: dict[bytes, int] = {}  # machine -> link rows so far
            seen: dict[tuple[Any, ...], int] = {}  # row -> its machine's link rows when first written
            for _, fields in entries[line.id]:
                machine = fields[b"m"]
                if fields.get(b"s") == Signal.LINK.value.encode():
                    links[machine] = links.get(machine, 0) + 1
                    continue
                row = tuple(sorted(fields.items()))
                assert seen.get(row, -1) < links.get(machine, 0), f"{line.id}: an entry written twice: {row}"
                seen[row] = links.get(machine, 0)

        worker = RollupWorker(client, plant)
        assert worker.drain() == written
        worker.close()
        lines = PlantReader(client, plant).lines(time.time())
        assert lines, "the reader answers through the cluster"
        for line in plant.lines:
            live = {(e.machine, e.signal): e.value for e in (contract.decode_live(line.id, f, v) for f, v in
                                                             client.hgetall(contract.live_key(line.id)).items())}
            for m in line.machines:
                assert live[(m.id, Signal.GOOD)] == totals[(line.id, m.id)].good
    finally:
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
        client.close()


def migrate_slot(cluster: RedisClusterServers, slot: int, source_port: int, target_port: int) -> None:
    """Move ``slot`` and its keys from one master to another, as ``redis-cli --cluster reshard`` does."""
    nodes = {port: redis.Redis(host="127.0.0.1", port=port) for port in cluster.ports}
    try:
        ids = {port: client.execute_command("CLUSTER MYID") for port, client in nodes.items()}
        ids = {port: i.decode() if isinstance(i, bytes) else i for port, i in ids.items()}
        source, target = nodes[source_port], nodes[target_port]
        target.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source_port])
        source.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target_port])
        while keys := source.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            source.execute_command("MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", *keys)
        for client in nodes.values():
            client.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target_port])
    finally:
        for client in nodes.values():
            client.close()


def test_a_moved_line_is_written_once_on_its_new_master(cluster: RedisClusterServers, tmp_path: Path) -> None:
    """The sink's client still maps CM1's slot to its old master: that one answers MOVED,
    the script did not run there, and the redirect writes every entry once on the new one."""
    client = connect(cluster.url, "worker")
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    now = time.time()

    def batch(start: int) -> list[Event]:
        return [Event(line, "M1", Signal.GOOD, start + i, "Good", now + (start + i) / 1000)
                for i in range(100) for line in ("CM1", "BW1")]

    async def scenario() -> tuple[int, int, int]:
        sink = RedisSink(connect_async(cluster.url), StoreAndForwardBuffer(tmp_path / "buffer"), retention_s=86400)
        try:
            await sink.write(batch(0))
            stream = contract.events_key("CM1")
            before = sink.client.get_node_from_key(stream).port
            target = next(port for port in cluster.ports if port != before)
            migrate_slot(cluster, client.keyslot(stream), before, target)
            await sink.write(batch(100))
            after = sink.client.get_node_from_key(stream).port
            assert after == target != before, "the client learned the new master from a MOVED answer"
            return sink.stats.written, before, after
        finally:
            sink.buffer.close()
            await sink.client.aclose()

    try:
        written, _, _ = asyncio.run(scenario())
        assert written == 400
        for line in ("CM1", "BW1"):
            goods = [int(fields[b"v"]) for _, fields in client.xrange(contract.events_key(line))]
            assert goods == list(range(200)), f"{line}: every entry once, in order"
            assert client.hget(contract.live_key(line), "M1|good") is not None
    finally:
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
        client.close()
