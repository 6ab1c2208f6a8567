"""The rollup worker: line event streams -> minute and hour rollups, stops and timeline,
in each machine's event time.

One consumer group (``rollup``) per line stream. Each pass reads a batch with
XREADGROUP (one line per command: every key of a line shares its hash slot), hands each
machine its events (``store.line_worker``: per-line processing; ``store.progress``: one
machine in event time, checkpoints, rewinds) and writes, per line, in ONE MULTI/EXEC:
the closed minutes, the hours they complete, stops, state changes, flags, checkpoints,
every touched machine's carry (engine state + the last stream id applied + events
waiting for the watermark) and the XACK of the batch. A crash at any point leaves either
all of it or none of it.

Late data: a machine's minutes close when its data has moved past them (its newest event
time minus ``lateness_s``); an event older than what a machine has processed rewinds it
to the checkpoint before the event (read here, with the machine's events since, from the
stream) and the affected minutes, hours, stops and timeline entries are written again,
so figures do not depend on when or in what order the data arrived.

Exactly once: a machine's carry holds the last stream id applied to it, and entries at
or below it are skipped, so entries delivered again (pending entries after a crash, a
rewound group, a second worker) never count twice. Two workers on one line are also
fenced: the commit WATCHes the line's bookkeeping hash and checks its write counter;
the loser reloads its state from Redis and re-reads its pending entries.

Key layout and the rollup text format: ``domain.contract``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from domain import contract
from domain.model import Event
from domain.plant import Plant
from store.clients import is_cluster
from store.line_worker import (
    LineBatch,
    LineWorker,
    WorkerOptions,
    arrival_s,
    closing_hours,
    first_minute,
    read_stored,
    read_stored_minutes,
    usable_event,
    write_batch,
)
from store.progress import floor_to

__all__ = ["GROUP", "LineBatch", "LineConflict", "LineWorker", "RollupWorker", "WorkerOptions",
           "apply_retention", "closing_hours", "first_minute", "floor_to", "read_stored_minutes", "run_worker",
           "usable_event", "write_batch"]

log = logging.getLogger(__name__)

HOUR_S = 3600
DAY_S = 86400
GROUP = "rollup"


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class LineConflict(Exception):
    """Another writer changed the line's bookkeeping since this worker loaded it."""


# Renews the lease if we hold it (1), takes it if free (2), else 0.
_LEASE_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RollupWorker:
    """All lines of a plant, one pass at a time (``process_once``); ``run_worker`` loops."""

    def __init__(self, redis_client: redis.Redis, plant: Plant, *, options: WorkerOptions | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis_client
        self.plant = plant
        self.options = options or WorkerOptions()
        self.clock = clock
        self.lines = {line.id: LineWorker(plant, line, self.options) for line in plant.lines}
        self._ready = False
        self._last_retention = -math.inf
        self._last_beat: dict[str, float] = {}
        self.token = uuid.uuid4().hex
        self._lease = self.redis.register_script(_LEASE_SCRIPT)
        self._release = self.redis.register_script(_RELEASE_SCRIPT)
        self._held: set[str] = set()

    def setup(self) -> None:
        """Creates the consumer groups, takes over stale pending entries and loads all carries."""
        for line_id, worker in self.lines.items():
            stream = contract.events_key(line_id)
            try:
                self.redis.xgroup_create(stream, self.options.group, id="0", mkstream=True)
                log.info("line %s: created consumer group %r", line_id, self.options.group)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._claim_stale(stream)
            self._load(worker)
        self._ready = True

    def _load(self, worker: LineWorker) -> None:
        """Loads a line's state; reports it when Redis lost the bookkeeping this worker wrote."""
        earliest = min((p.origin for p in worker.machines.values()), default=None)
        latest = max((p.fed_until for p in worker.machines.values()), default=None)
        if worker.load(self.redis.hgetall(contract.rollup_state_key(worker.line.id))):
            self._report_data_loss(worker, earliest, latest)

    def _report_data_loss(self, worker: LineWorker, earliest: float | None, latest: float | None) -> None:
        now = self.clock()
        lost_from = earliest if earliest is not None else now
        lost_to = max(latest if latest is not None else now, now)
        log.error("line %s: the rollup bookkeeping is gone although this worker had written it: Redis lost its "
                  "data (restarted without persistence, flushed or evicted). Figures from %s to %s are "
                  "incomplete; see /api/health.", worker.line.id, _iso(lost_from), _iso(lost_to))
        key = contract.data_loss_key(worker.line.id)
        previous = self.redis.hgetall(key)
        old_from = float(previous.get(b"from", lost_from)) if previous else lost_from
        self.redis.hset(key, mapping={"from": repr(min(old_from, lost_from)), "to": repr(lost_to),
                                      "detected": repr(now)})

    def _claim_stale(self, stream: str) -> None:
        start = contract.NO_STREAM_ID
        while True:
            reply = self.redis.xautoclaim(stream, self.options.group, self.options.consumer,
                                          self.options.claim_idle_ms, start_id=start, count=1000)
            start = _text(reply[0])
            if start == contract.NO_STREAM_ID:
                return

    def process_once(self, block_ms: int = 0) -> int:
        """One pass over the lines this worker holds: read, apply, close minutes, commit.
        Returns the entries read."""
        if not self._ready:
            self.setup()
        held = self._renew_leases()
        if not held:
            time.sleep(min(block_ms, 1000) / 1000.0)
            return 0
        try:
            replies = self._read(held, block_ms)
        except Exception:
            self._ready = False  # entries may have been delivered: re-read pending after setup()
            raise
        now = self.clock()
        count = 0
        failure: Exception | None = None
        for line_id in held:
            worker = self.lines[line_id]
            entries = replies.get(line_id, [])
            count += len(entries)
            was_pending = worker.read_pending
            # pending entries are older than what waits behind them: never close past them
            backlog = was_pending or len(entries) >= self.options.batch_count
            try:
                self._process_line(worker, entries, now, backlog)
            except Exception as exc:
                self._reload(worker)
                failure = failure or exc
                continue
            if was_pending and not entries:
                worker.read_pending = False
        if failure is not None:
            raise failure
        self._retention(now)
        return count

    def close(self) -> None:
        """Gives the lines back at once (a stopped worker's lease would otherwise run out)."""
        for line_id in sorted(self._held):
            self._release(keys=[contract.rollup_lease_key(line_id)], args=[self.token])
        self._held = set()

    def _renew_leases(self) -> list[str]:
        """The lines this worker may process now (a line has one worker at a time)."""
        held = []
        for line_id, worker in self.lines.items():
            got = int(self._lease(keys=[contract.rollup_lease_key(line_id)], args=[self.token, self.options.lease_ms]))
            if got == 2 or (got == 1 and line_id not in self._held):
                log.info("line %s: this worker (%s) took over", line_id, self.token[:8])
                self._load(worker)
            if got:
                held.append(line_id)
            elif line_id in self._held:
                log.warning("line %s: lease lost to another rollup worker", line_id)
        self._held = set(held)
        return held

    def drain(self, max_passes: int = 100_000, wait_s: float = 60.0) -> int:
        """Passes until nothing is left to read (tests and backfills); waits up to
        ``wait_s`` for lines another worker holds."""
        total = 0
        deadline = time.monotonic() + wait_s
        for _ in range(max_passes):
            pending_pass = not self._ready or any(self.lines[line].read_pending for line in self._held)
            got = self.process_once()
            total += got
            if len(self._held) < len(self.lines):
                if time.monotonic() > deadline:
                    raise TimeoutError("rollup worker: lines held by another worker")
                time.sleep(0.02)
                continue
            if got == 0 and not pending_pass:
                return total
        raise RuntimeError("rollup worker: stream not drained")

    def _read(self, lines: list[str], block_ms: int) -> dict[str, list[tuple[str, dict[bytes, bytes] | None]]]:
        streams = {contract.events_key(line): ("0" if self.lines[line].read_pending else ">") for line in lines}
        pending = any(v == "0" for v in streams.values())
        block = None if pending or block_ms <= 0 else block_ms
        if is_cluster(self.redis):  # each line is in its own hash slot: one stream per command
            return self._read_each(streams, block)
        reply: Any = self.redis.xreadgroup(self.options.group, self.options.consumer, streams,  # type: ignore[arg-type]
                                           count=self.options.batch_count, block=block)
        return _entries_by_line(reply)

    def _read_each(self, streams: dict[str, str], block: int | None) -> dict[
            str, list[tuple[str, dict[bytes, bytes] | None]]]:
        """Reads line by line without blocking; when nothing came, waits a little (up to
        ``block``, at most 100 ms: a blocking read on one line would hold up the others)."""
        out: dict[str, list[tuple[str, dict[bytes, bytes] | None]]] = {}
        for stream, position in streams.items():
            reply: Any = self.redis.xreadgroup(self.options.group, self.options.consumer, {stream: position},
                                               count=self.options.batch_count)
            out.update(_entries_by_line(reply))
        if block and not any(out.values()):
            time.sleep(min(block, 100) / 1000.0)
        return out

    def _process_line(self, worker: LineWorker, entries: list[tuple[str, dict[bytes, bytes] | None]],
                      now: float, backlog: bool) -> None:
        batch, late = worker.receive(entries, now)
        if late:
            self._rewind(worker, late, batch)
        worker.close(now, backlog, batch)
        if batch.has_writes():
            self._commit(worker, batch, now)
            self._last_beat[worker.line.id] = now
        elif now - self._last_beat.get(worker.line.id, -math.inf) >= self.options.beat_every_s:
            self.redis.hset(contract.rollup_state_key(worker.line.id), "beat", repr(now))
            self._last_beat[worker.line.id] = now

    def _rewind(self, worker: LineWorker, late: dict[str, float], batch: LineBatch) -> None:
        """Rewinds each machine that got late data to the checkpoint before its oldest late
        event (or to its new origin), with its events since read back from the stream (one
        read for all of them)."""
        line_id = worker.line.id
        with self.redis.pipeline(transaction=False) as pipe:
            for machine_id in late:
                pipe.hkeys(contract.checkpoints_key(line_id, machine_id))
            hour_lists = pipe.execute()
        starts: dict[str, tuple[float, str | None]] = {}
        for (machine_id, oldest), fields in zip(late.items(), hour_lists, strict=True):
            progress = worker.machines[machine_id]
            usable = [h for h in (float(_text(f)) for f in fields) if progress.origin <= h <= oldest]
            if usable:
                starts[machine_id] = (max(usable), str(int(max(usable))))
            else:
                starts[machine_id] = (min(progress.origin, floor_to(oldest, 60)), None)
        with self.redis.pipeline(transaction=False) as pipe:
            for machine_id, (_, field) in starts.items():
                pipe.hget(contract.checkpoints_key(line_id, machine_id), field or "none")
            raws = pipe.execute()
        since = {m: start for m, (start, _) in starts.items()}
        events = self._events_since(worker, since, batch.last_id)
        for (machine_id, (start, field)), raw in zip(starts.items(), raws, strict=True):
            checkpoint = json.loads(contract.unpack(raw)) if field is not None and raw else None
            if field is not None and checkpoint is None:  # gone meanwhile (retention): start from scratch
                start = min(worker.machines[machine_id].origin, start)
            worker.rewind(machine_id, start, checkpoint, events[machine_id], batch)

    def _events_since(self, worker: LineWorker, since: dict[str, float], upto: str) -> dict[str, list[Event]]:
        """Each machine's usable events from its ``since`` (event time) in the entries up to
        ``upto``. An event reaches Redis after it happened (up to ``max_future_s`` before,
        for a clock ahead), so entries from ``since - max_future_s`` on hold them all."""
        stream = contract.events_key(worker.line.id)
        low = contract.stream_id(max(0, math.floor((min(since.values()) - self.options.max_future_s) * 1000)))
        out: dict[str, list[Event]] = {m: [] for m in since}
        page = self.options.reread_page
        line = worker.line
        while True:
            entries: Any = self.redis.xrange(stream, min=low, max=upto, count=page)
            for entry_id, fields in entries:
                machine = _text(fields.get(b"m", b"")) if fields else ""
                if machine not in since:
                    continue
                got = usable_event(line, fields, arrival_s(_text(entry_id)), self.options.max_future_s,
                                   worker.max_age_s)
                if isinstance(got, Event) and got.ts >= since[machine]:
                    out[machine].append(got)
            if len(entries) < page:
                return out
            low = contract.after_stream_id(entries[-1][0])

    def _commit(self, worker: LineWorker, batch: LineBatch, now: float) -> None:
        key = contract.rollup_state_key(worker.line.id)
        lease = contract.rollup_lease_key(worker.line.id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.watch(key, lease)  # type: ignore[no-untyped-call]
            version: Any = pipe.hget(key, "ver")
            if version is None and worker.version > 0:
                pipe.reset()
                self._load(worker)  # reports the loss and starts the line again from the stream
                raise LineConflict(f"line {worker.line.id}: bookkeeping gone (Redis lost its data)")
            if int(version or 0) != worker.version:
                raise LineConflict(f"line {worker.line.id}: bookkeeping at version {version!r}, "
                                   f"expected {worker.version}")
            if _text(pipe.get(lease) or b"") != self.token:
                self._held.discard(worker.line.id)
                raise LineConflict(f"line {worker.line.id}: lease lost before the commit")
            stored = read_stored(pipe, worker, batch)
            pipe.multi()
            write_batch(pipe, worker, batch, now, self.options, stored)
            pipe.execute()
        worker.version += 1

    def _reload(self, worker: LineWorker) -> None:
        """After a failed pass the in-memory state may be ahead of Redis: start again from Redis."""
        try:
            self._load(worker)
        except redis.RedisError:
            self._ready = False  # setup() reloads everything on the next pass

    def _retention(self, now: float) -> None:
        if now - self._last_retention < self.options.retention_every_s:
            return
        self._last_retention = now
        apply_retention(self.redis, self.plant, now)


def apply_retention(redis_client: redis.Redis, plant: Plant, now: float) -> None:
    """Drops stops and state changes past their retention; rollup keys expire by themselves."""
    keep = plant.retention
    for line in plant.lines:
        stops = redis_client.zremrangebyscore(contract.stops_key(line.id), "-inf",
                                              f"({now - keep.downtime_days * DAY_S}")
        states = redis_client.zremrangebyscore(contract.states_key(line.id), "-inf",
                                               f"({now - keep.minute_rollup_days * DAY_S}")
        flags = redis_client.zremrangebyscore(contract.flags_key(line.id), "-inf",
                                              f"({now - keep.downtime_days * DAY_S}")
        if stops or states or flags:
            log.info("line %s: retention removed %d stops, %d state changes and %d flags", line.id, stops, states,
                     flags)
        oldest_checkpoint = now - keep.stream_days * DAY_S
        for machine in line.machines:
            key = contract.checkpoints_key(line.id, machine.id)
            old = [f for f in redis_client.hkeys(key) if float(_text(f)) < oldest_checkpoint]
            if old:
                redis_client.hdel(key, *old)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _entries_by_line(reply: Any) -> dict[str, list[tuple[str, dict[bytes, bytes] | None]]]:
    by_stream: Any = reply.items() if isinstance(reply, dict) else (reply or [])
    out: dict[str, list[tuple[str, dict[bytes, bytes] | None]]] = {}
    for stream, entries in by_stream:
        line_id = contract.line_of_events_key(stream)
        if entries and isinstance(entries[0], list):
            entries = entries[0]  # the RESP3 shape wraps the entries once more
        out[line_id] = [(_text(entry_id), fields) for entry_id, fields in entries or [] if entry_id is not None]
    return out


def run_worker(redis_client: redis.Redis, plant: Plant, stop: threading.Event,
               now: Callable[[], float] = time.time, options: WorkerOptions | None = None) -> None:
    """Runs passes until ``stop`` is set; survives Redis outages (logged once each)."""
    worker = RollupWorker(redis_client, plant, options=options, clock=now)
    block_ms = worker.options.block_ms
    outage_since: float | None = None
    while not stop.is_set():
        try:
            worker.process_once(block_ms=block_ms)
            if outage_since is not None:
                log.info("rollup worker: Redis is back after %.0f s", time.monotonic() - outage_since)
                outage_since = None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if outage_since is None:
                outage_since = time.monotonic()
                log.warning("rollup worker: Redis unavailable (%s); retrying", exc)
            stop.wait(1.0)
        except (LineConflict, redis.WatchError) as exc:
            log.warning("rollup worker: %s; reloaded the line's state from Redis", exc or "concurrent write")
        except Exception:
            log.exception("rollup worker: pass failed; retrying")
            stop.wait(1.0)
    with contextlib.suppress(redis.RedisError):  # else the lease runs out by itself
        worker.close()
    log.info("rollup worker stopped")
