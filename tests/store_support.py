"""Shared by the store tests: a plant, a history in Redis, the reference computation."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from domain import kpi
from domain.engine import totals_from_events
from domain.model import Event
from domain.plant import Plant
from domain.totals import Totals
from store.rollup import RollupWorker, WorkerOptions
from tests.core_support import machine_config, make_plant

HOUR = 3600.0
# Rollup keys expire relative to the Redis server's clock, so histories are recent.
RECENT = float(int(time.time() - 3 * 86400) // 86400 * 86400)


def two_machine_plant(**extra: Any) -> Plant:
    """Line L1 (M1 -> M2, output M2), shifts with a break and a gap between shifts."""
    shifts = [
        {"name": "A", "start": "06:00", "end": "14:00", "breaks": [{"start": "10:00", "end": "10:30"}]},
        {"name": "B", "start": "14:00", "end": "22:00"},
    ]
    machines = [machine_config("M1", ideal=20.0, counter_bits=16, power_running_kw=10, power_idle_kw=2),
                machine_config("M2", ideal=25.0, meter=False, power_running_kw=6, power_idle_kw=1)]
    lines = [{"id": "L1", "output_machine": "M2", "machines": machines}]
    return make_plant(shifts=shifts, lines=lines, timezone="Asia/Shanghai", **extra)


class Snapshot:
    """Every key of a Redis database with its value (DUMP) and time to live, to put back
    into an emptied database before each test that reads what a fixture built once."""

    def __init__(self, keys: list[tuple[bytes, int, bytes]]) -> None:
        self.keys = keys

    @classmethod
    def take(cls, client: redis.Redis) -> Snapshot:
        names = list(client.scan_iter(count=1000))
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.pttl(name)
            pipe.dump(name)
        answers = pipe.execute()
        return cls([(name, max(int(ttl), 0), dumped)
                    for name, ttl, dumped in zip(names, answers[::2], answers[1::2], strict=True)])

    def restore(self, client: redis.Redis) -> None:
        """Into ``client``'s database, which must not hold these keys (``redis_client`` is emptied)."""
        assert self.keys, "an empty snapshot"
        pipe = client.pipeline(transaction=False)
        for name, ttl_ms, dumped in self.keys:
            pipe.restore(name, ttl_ms, dumped)
        pipe.execute()


def run_worker_until_drained(client: redis.Redis, plant: Plant, now: float, **options: Any) -> RollupWorker:
    worker = RollupWorker(client, plant, options=WorkerOptions(**options), clock=lambda: now)
    worker.drain()
    worker.close()
    return worker


def reference(plant: Plant, events: list[Event], machine: str, start: float, end: float, now: float,
              origin: float) -> tuple[Totals, list[Any]]:
    line = plant.lines[0]
    cfg = line.machine(machine)
    assert cfg is not None
    return totals_from_events([e for e in events if e.machine == machine], plant, line, cfg, start, end, now,
                              origin=origin)


def reference_kpis(plant: Plant, events: list[Event], machine: str, start: float, end: float, now: float,
                   origin: float) -> dict[str, Any]:
    totals, stops = reference(plant, events, machine, start, end, now, origin)
    data = kpi.kpis(totals, stops, plant, start, min(end, now), now).to_dict()
    data.pop("window")
    return data


def assert_close(actual: Any, expected: Any, path: str = "", tol: float = 2e-3) -> None:
    """Nested dicts/lists equal, numbers within ``tol`` (absolute or relative)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key in expected:
            assert_close(actual.get(key), expected[key], f"{path}.{key}", tol)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close(a, e, f"{path}[{i}]", tol)
    elif isinstance(expected, bool) or expected is None or isinstance(expected, str):
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
    else:
        assert actual == pytest.approx(expected, rel=tol, abs=tol), f"{path}: {actual!r} != {expected!r}"


def rolled_up_snapshot(redis_url: str, plant: Plant, events: list[Event], now: float) -> Snapshot:
    """``events`` written and rolled up once, as a snapshot (for a module whose tests only
    read them: each restores it into the emptied database)."""
    from tests.history import write_events

    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
        write_events(client, events)
        run_worker_until_drained(client, plant, now)
        return Snapshot.take(client)
    finally:
        client.flushdb()
        client.close()
