"""Redis Cluster: the demo history written, rolled up and read through a real 3-master
cluster on loopback gives exactly the figures of a single Redis, with no duplicate entry.

Every key of a line carries the line as a hash tag, so each line lives in one slot; the
demo plant's three lines land on different masters (checked), so the path crosses nodes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from collectors.backfill import backfill_demo
from config.loader import DEMO_PLANT, load_plant
from domain import contract
from domain.plant import Plant
from store.clients import connect, is_cluster
from store.reader import PlantReader
from store.rollup import RollupWorker
from tests.cluster_support import RedisClusterServers

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
