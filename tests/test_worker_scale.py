"""The rollup worker at scale: several lines committed in one transaction write exactly
what one line per transaction writes; a conflict on one line leaves the others' commit;
several worker processes share the lines by lease, each reading only its lines' streams."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from domain import contract
from domain.model import Event
from domain.plant import Plant
from store.reader import PlantReader
from store.rollup import GROUP, LineConflict, RollupWorker, WorkerOptions
from tests.core_support import machine_config, make_plant
from tests.history import line_history, write_events
from tests.store_support import HOUR, RECENT

ROOT = Path(__file__).resolve().parent.parent
START = RECENT + 1.5 * HOUR + 7.25
END = RECENT + 3.25 * HOUR
NOW = END + 30
LINES = ("L1", "L2", "L3")


def lines_plant(lines: tuple[str, ...] = LINES) -> Plant:
    cfg = []
    for line in lines:
        ids = [f"{line}A", f"{line}B"]
        cfg.append({"id": line, "output_machine": ids[-1],
                    "machines": [machine_config(m, ideal=20.0, counter_bits=16) for m in ids]})
    return make_plant(lines=cfg, timezone="Asia/Shanghai")


def history(plant: Plant) -> list[Event]:
    events: list[Event] = []
    for n, line in enumerate(plant.lines):
        events.extend(line_history(plant, line.id, START, END, seed=20 + n, power_every_s=5.0, mean_run_s=400.0))
    events.sort(key=lambda e: e.ts)
    return events


def written(client: redis.Redis) -> dict[bytes, Any]:
    """Every rollup, stop, state change, flag and checkpoint the worker wrote (not its
    bookkeeping hash, whose version counts transactions)."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match=b"plant:*"):
        kind = client.type(key)
        if kind == b"hash" and not key.endswith((b":rollup", b":live", b":lease")):
            out[key] = client.hgetall(key)
        elif kind == b"string" and b":min60:" in key:
            out[key] = client.get(key)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
    return out


def assert_same(got: dict[bytes, Any], want: dict[bytes, Any], what: str) -> None:
    """``got == want``, naming the keys (and hash fields) that differ, not printing all."""
    if got == want:
        return
    diff: list[str] = [f"only in one: {sorted(set(got) ^ set(want))[:10]}"]
    for key in sorted(set(got) & set(want)):
        a, b = got[key], want[key]
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            fields = sorted(set(a) | set(b))
            diff.append(f"{key!r}: " + "; ".join(f"{f!r} {a.get(f)!r} != {b.get(f)!r}"
                                                 for f in fields if a.get(f) != b.get(f))[:600])
        else:
            diff.append(f"{key!r}: {a!r:.300} != {b!r:.300}")
    raise AssertionError(f"{what}:\n" + "\n".join(diff[:20]))


def drain(client: redis.Redis, plant: Plant, **options: Any) -> RollupWorker:
    worker = RollupWorker(client, plant, options=WorkerOptions(**options), clock=lambda: NOW)
    worker.drain()
    worker.close()
    return worker


def test_lines_in_one_transaction_write_what_one_line_per_transaction_writes(redis_client: redis.Redis) -> None:
    plant = lines_plant()
    events = history(plant)
    write_events(redis_client, events)
    drain(redis_client, plant, batch_count=500)  # all lines in each pass's transaction
    together = written(redis_client)
    versions = [int(redis_client.hget(contract.rollup_state_key(line), "ver") or 0) for line in LINES]
    assert all(v > 5 for v in versions), versions
    assert sum(redis_client.xpending(contract.events_key(line), "rollup")["pending"] for line in LINES) == 0

    redis_client.flushdb()
    write_events(redis_client, events)
    for line in LINES:  # one line per worker: a transaction per line, as before
        drain(redis_client, lines_plant((line,)), batch_count=500)
    alone = written(redis_client)
    assert together.keys() == alone.keys()
    assert_same(together, alone, "lines in one transaction")
    assert any(b":min60:" in key for key in together) and any(key.endswith(b":stops") for key in together)


def test_a_conflict_on_one_line_leaves_the_other_lines_commit(redis_client: redis.Redis) -> None:
    plant = lines_plant()
    events = history(plant)
    write_events(redis_client, events)
    state = contract.rollup_state_key("L2")
    meddle = [False]

    def clock() -> float:  # called between reading a pass and committing it
        if meddle[0]:
            redis_client.hincrby(state, "ver", 1)  # another writer commits L2 meanwhile
            meddle[0] = False
        return NOW

    worker = RollupWorker(redis_client, plant, options=WorkerOptions(batch_count=300), clock=clock)
    worker.process_once()  # pending entries: none
    assert worker.process_once() > 0
    before = {line: int(redis_client.hget(contract.rollup_state_key(line), "ver")) for line in LINES}
    meddle[0] = True
    try:
        worker.process_once()
        raise AssertionError("the conflict was not reported")
    except LineConflict as exc:
        assert "L2" in str(exc)
    after = {line: int(redis_client.hget(contract.rollup_state_key(line), "ver")) for line in LINES}
    assert after == {"L1": before["L1"] + 1, "L2": before["L2"] + 1, "L3": before["L3"] + 1}, \
        "L1 and L3 committed, L2 only the other writer's increment"
    worker.drain()
    worker.close()
    got = written(redis_client)

    redis_client.flushdb()
    write_events(redis_client, events)
    drain(redis_client, plant, batch_count=300)
    assert_same(got, written(redis_client), "exactly once: the same rollups as without the conflict")
    reader = PlantReader(redis_client, plant)
    kpis = reader.line_kpis("L2", math.floor(START / 60) * 60, END, NOW)
    assert kpis["total_count"] > 0


def test_entries_a_worker_read_after_losing_its_lease_are_applied_in_order(
        redis_client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """A worker that stalled past its lease reads a batch of a line another worker took
    over meanwhile (after that one read the line's pending entries) and cannot commit it.
    The one holding the line notices those entries pending before its own new ones and
    reads them first: exactly what one worker writes, nothing left pending."""
    plant = lines_plant()
    events = history(plant)
    write_events(redis_client, events)
    drain(redis_client, plant, batch_count=150)
    want = written(redis_client)
    redis_client.flushdb()
    write_events(redis_client, events)

    worker = RollupWorker(redis_client, plant, options=WorkerOptions(batch_count=150), clock=lambda: NOW)
    assert worker.process_once() == 0  # took the lines, read their pending entries: none
    assert worker.process_once() > 0  # then new ones
    stream = contract.events_key("L2")
    stalled = redis_client.xreadgroup(GROUP, "rollup", {stream: ">"}, count=150)  # the stalled worker's read
    assert len(stalled[0][1]) == 150
    with caplog.at_level(logging.WARNING, logger="store.rollup"):
        worker.drain()
    worker.close()
    assert sum(redis_client.xpending(contract.events_key(line), GROUP)["pending"] for line in LINES) == 0
    assert_same(written(redis_client), want, "a line read out of order")
    assert "line L2: entries read by a worker that lost the line's lease are pending" in caplog.text


_WORKER = """
import sys, threading, logging
sys.path.insert(0, {root!r})
import redis
from store.rollup import WorkerOptions, run_worker
from tests.test_worker_scale import lines_plant
logging.basicConfig(level="INFO")
run_worker(redis.Redis.from_url({url!r}), lines_plant({lines!r}), threading.Event(), now=lambda: {now!r},
           options=WorkerOptions(batch_count=200, block_ms=50, lease_ms=2000))
"""


def test_worker_processes_share_the_lines_by_lease(redis_client: redis.Redis, redis_url: str) -> None:
    lines = ("L1", "L2", "L3", "L4")
    plant = lines_plant(lines)
    events = history(plant)
    write_events(redis_client, events)
    drain(redis_client, plant, batch_count=200)
    want = written(redis_client)  # what one process writes
    redis_client.flushdb()
    write_events(redis_client, events)
    script = _WORKER.format(root=str(ROOT), url=redis_url, lines=lines, now=NOW)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(2)]
    try:
        def holders() -> dict[str, bytes | None]:
            return {line: redis_client.get(contract.rollup_lease_key(line)) for line in lines}

        def shared_and_caught_up() -> bool:
            """Each process holds two lines and together they wrote all one process writes
            (reading the last entry is not enough: the last minutes close a pass later)."""
            tokens = [t for t in holders().values() if t is not None]
            return len(tokens) == 4 and len(set(tokens)) == 2 and written(redis_client) == want

        deadline = time.monotonic() + 120
        while not shared_and_caught_up():
            assert all(p.poll() is None for p in procs), "a worker exited"
            if time.monotonic() > deadline:
                assert_same(written(redis_client), want, f"two processes did not write what one writes "
                                                         f"within 120 s (leases: {holders()})")
                raise AssertionError(f"the lines were not shared: {holders()}")
            time.sleep(0.1)
        by_token: dict[bytes | None, list[str]] = {}
        for line, token in holders().items():
            by_token.setdefault(token, []).append(line)
        assert sorted(len(v) for v in by_token.values()) == [2, 2], by_token
        assert sum(redis_client.xpending(contract.events_key(line), "rollup")["pending"] for line in lines) == 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    assert_same(written(redis_client), want, "two processes wrote more than one writes once stopped")


class RecordingRedis(redis.Redis):
    """A real client that notes which streams each XREADGROUP asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def xreadgroup(self, groupname: Any, consumername: Any, streams: Any, *args: Any, **kwargs: Any) -> Any:
        self.read.update(str(key) for key in streams)
        return super().xreadgroup(groupname, consumername, streams, *args, **kwargs)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:  # the worker reads in a pipeline (with XPENDING)
        pipe = super().pipeline(*args, **kwargs)
        queue = pipe.xreadgroup

        def xreadgroup(groupname: Any, consumername: Any, streams: Any, *a: Any, **kw: Any) -> Any:
            self.read.update(str(key) for key in streams)
            return queue(groupname, consumername, streams, *a, **kw)

        pipe.xreadgroup = xreadgroup  # type: ignore[method-assign]
        return pipe


def test_each_worker_reads_only_the_streams_of_its_lines(redis_client: redis.Redis, redis_url: str) -> None:
    lines = ("L1", "L2", "L3", "L4")
    plant = lines_plant(lines)
    write_events(redis_client, history(plant))
    options = WorkerOptions(batch_count=200, lease_ms=5000)
    clients = [RecordingRedis.from_url(redis_url) for _ in range(2)]
    workers = [RollupWorker(client, plant, options=options, clock=lambda: NOW) for client in clients]
    for _ in range(6):  # the first takes every line, then gives half to the second once it is there
        for worker in workers:
            worker.process_once()
    for client in clients:
        client.read.clear()
    for _ in range(3):
        for worker in workers:
            worker.process_once()
    first, second = (w.held_lines for w in workers)
    assert len(first) == len(second) == 2 and not set(first) & set(second), (first, second)
    for client, held in zip(clients, (first, second), strict=True):
        assert client.read == {contract.events_key(line) for line in held}
    for worker in workers:
        worker.close()
    for client in clients:
        client.close()


def test_health_reads_every_line_of_a_cluster_as_of_one_server(redis_client: redis.Redis) -> None:
    """``/api/health``'s one pipeline for all lines crosses the masters of a cluster and
    answers what a single server answers for the same data."""
    from store import live
    from store.clients import connect
    from tests.cluster_support import RedisClusterServers

    plant = lines_plant()
    events = [e for e in history(plant) if e.ts < START + 0.5 * HOUR]
    servers = RedisClusterServers()
    servers.start()
    try:
        cluster = connect(servers.url, "tool")
        slots = {cluster.keyslot(contract.events_key(line)) for line in LINES}
        owners = {cluster.get_node_from_key(contract.events_key(line)).name for line in LINES}
        assert len(slots) == 3 and len(owners) > 1, "the lines span masters"
        answers = []
        for client in (cluster, redis_client):
            write_events(client, events)
            worker = RollupWorker(client, plant, options=WorkerOptions(batch_count=500), clock=lambda: NOW)
            worker.process_once()
            worker.process_once()  # part of it: the rest waits undelivered
            answers.append(live.health(client, plant, NOW))
            worker.close()
        cluster.close()
    finally:
        servers.stop()
    on_cluster, on_one = answers
    assert [line["id"] for line in on_cluster["lines"]] == list(LINES)
    assert any(line["worker"]["undelivered_s"] > 0 for line in on_one["lines"]), "entries wait"
    for got, expected in zip(on_cluster["lines"], on_one["lines"], strict=True):
        for key in ("status", "last_data", "stream_length", "data_loss", "bad_nodes"):
            assert got[key] == expected[key], key
        for key in ("pending", "closed_until"):
            assert got["worker"][key] == expected["worker"][key], key
        assert (got["worker"]["undelivered_s"] > 0) == (expected["worker"]["undelivered_s"] > 0)


def test_run_worker_paces_its_passes_unless_a_backlog_waits(redis_client: redis.Redis) -> None:
    """A pass at most every ``pass_every_s`` while entries trickle in (more events per
    machine per pass: fewer carry writes per event); a backlog is read without pause."""
    import threading

    from domain.model import Signal
    from store.rollup import run_worker

    plant = lines_plant(("L1",))
    backlog = history(plant)
    write_events(redis_client, backlog)
    state = contract.rollup_state_key("L1")
    stop = threading.Event()
    options = WorkerOptions(batch_count=100, block_ms=50, pass_every_s=0.5)
    thread = threading.Thread(target=run_worker, args=(redis_client, plant, stop),
                              kwargs={"now": lambda: NOW, "options": options})
    started = time.monotonic()
    thread.start()
    try:
        def acked() -> bool:
            groups = redis_client.xinfo_groups(contract.events_key("L1"))
            return bool(groups) and groups[0]["pending"] == 0 and groups[0]["last-delivered-id"] == \
                redis_client.xrevrange(contract.events_key("L1"), count=1)[0][0]

        while not acked():
            assert time.monotonic() - started < 120, "backlog not drained"
            time.sleep(0.02)
        passes = int(redis_client.hget(state, "ver") or 0)
        assert passes >= len(backlog) / 100, "a pass per full batch"
        assert time.monotonic() - started < 0.5 * passes / 2, "the backlog was read without pacing"
        t = END
        trickle_started = time.monotonic()
        before = passes
        while time.monotonic() - trickle_started < 3.0:  # an entry every 20 ms for 3 s
            t += 0.02
            write_events(redis_client, [Event("L1", "L1A", Signal.POWER, 5.0, "Good", round(t, 3))])
            time.sleep(0.02)
        during = int(redis_client.hget(state, "ver") or 0) - before
        assert 2 <= during <= 3.0 / 0.5 + 2, during
    finally:
        stop.set()
        thread.join(30)
