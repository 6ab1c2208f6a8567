"""The rollup worker: line event streams -> minute and hour rollups, stops and timeline,
in each machine's event time.

One consumer group (``rollup``) per line stream. Each pass reads a batch with
XREADGROUP (one line per command: every key of a line shares its hash slot), hands each
machine its events (``store.line_worker``: per-line processing; ``store.progress``: one
machine in event time, checkpoints, rewinds) and writes (``store.line_writes``), per line,
in ONE MULTI/EXEC (``store.line_commit``):
the closed minutes, the hours they complete, stops, state changes, flags, checkpoints,
every touched machine's carry (engine state + the last stream id applied + events
waiting for the watermark) and the XACK of the batch. A crash at any point leaves either
all of it or none of it. On one Redis server the lines of a pass share that MULTI/EXEC
(a pass costs a few round trips however many lines it has); ``run_worker`` starts a pass
at most every ``pass_every_s`` unless a line has a backlog, so a machine's carry is
written once for a second of its events, not once per arriving entry.

Several workers share a plant's lines: each line is leased to one worker, and the running
workers (registered in ``contract.rollup_workers_key``) take an equal share each; a worker
reads only the streams of the lines it holds (``store.leases``).

Late data: a machine's minutes close when its data has moved past them (its newest event
time minus ``lateness_s``); an event older than what a machine has processed rewinds it
to the checkpoint before the event (read, with the machine's events since, from the
stream: ``store.late_data``) and the affected minutes, hours, stops and timeline entries
are written again, so figures do not depend on when or in what order the data arrived.

Exactly once: a machine's carry holds the last stream id applied to it, and entries at
or below it are skipped, so entries delivered again (pending entries after a crash, a
rewound group, a second worker) never count twice. Two workers on one line are also
fenced: the commit WATCHes the line's bookkeeping hash and checks its write counter;
the loser reloads its state from Redis and re-reads its pending entries.

Retention of stops, state changes, flags and checkpoints: ``store.retention``. This module
keeps the loop: setup, a pass (``RollupWorker.process_once``), reloads, ``run_worker``.
Key layout and the rollup text format: ``domain.contract``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from domain import contract
from domain.plant import Plant
from store.clients import is_cluster
from store.late_data import rewind_late
from store.leases import LineLeases
from store.line_commit import LineCommitter, LineConflict
from store.line_worker import LineBatch, LineWorker, WorkerOptions, first_minute, usable_event
from store.line_writes import closing_hours, read_stored_minutes, write_batch
from store.progress import floor_to
from store.retention import apply_retention

__all__ = ["GROUP", "LineBatch", "LineConflict", "LineWorker", "RollupWorker", "WorkerOptions",
           "apply_retention", "closing_hours", "first_minute", "floor_to", "read_stored_minutes", "run_worker",
           "usable_event", "write_batch"]

log = logging.getLogger(__name__)

GROUP = "rollup"


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


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
        self.leases = LineLeases(redis_client, list(self.lines), self.options.lease_ms)
        self.committer = LineCommitter(redis_client, self.leases, self.options, self._load)
        self.backlog = False  # the last pass read a full batch of some line: more waits

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
        held = self.leases.renew(lambda line_id: self._load(self.lines[line_id]))
        if not held:
            time.sleep(min(block_ms, 1000) / 1000.0)
            return 0
        was_pending = {line_id: self.lines[line_id].read_pending for line_id in held}
        try:
            replies = self._read(held, block_ms)
        except Exception:
            self._ready = False  # entries may have been delivered: re-read pending after setup()
            raise
        now = self.clock()
        count = 0
        failure: Exception | None = None
        ready: list[tuple[LineWorker, LineBatch]] = []
        self.backlog = any(len(entries) >= self.options.batch_count for entries in replies.values())
        for line_id in held:
            worker = self.lines[line_id]
            entries = replies.get(line_id, [])
            count += len(entries)
            # pending entries are older than what waits behind them: never close past them
            backlog = was_pending[line_id] or worker.read_pending or len(entries) >= self.options.batch_count
            try:
                batch = self._process_line(worker, entries, now, backlog)
            except Exception as exc:
                self._reload(worker)
                failure = failure or exc
                continue
            if batch is not None:
                ready.append((worker, batch))
            if was_pending[line_id] and not entries:
                worker.read_pending = False  # set again by a reload when the commit fails
        for worker, error in self._commit_all(ready, now):
            self._reload(worker)
            failure = failure or error
        if failure is not None:
            raise failure
        self._retention(now)
        return count

    def close(self) -> None:
        """Gives the lines back at once (a stopped worker's lease would otherwise run out)."""
        self.leases.release_all()

    @property
    def token(self) -> str:
        """This worker's name in the lease registry and on the leases it holds."""
        return self.leases.token

    @property
    def held_lines(self) -> list[str]:
        """The lines this worker holds the lease of (after its last pass)."""
        return sorted(self.leases.held)

    def drain(self, max_passes: int = 100_000, wait_s: float = 60.0) -> int:
        """Passes until nothing is left to read (tests and backfills); waits up to
        ``wait_s`` for lines another worker holds."""
        total = 0
        deadline = time.monotonic() + wait_s
        for _ in range(max_passes):
            pending_pass = not self._ready or any(self.lines[line].read_pending for line in self.leases.held)
            got = self.process_once()
            total += got
            pending_pass = pending_pass or any(self.lines[line].read_pending for line in self.leases.held)
            if len(self.leases.held) < len(self.lines):
                if time.monotonic() > deadline:
                    raise TimeoutError("rollup worker: lines held by another worker")
                time.sleep(0.02)
                continue
            if got == 0 and not pending_pass:
                return total
        raise RuntimeError("rollup worker: stream not drained")

    def _read(self, lines: list[str], block_ms: int) -> dict[str, list[tuple[str, dict[bytes, bytes] | None]]]:
        """The next entries of each line (its pending ones after a (re)load), and with them
        the oldest entry still pending for this consumer name: see ``_older_pending``."""
        streams = {contract.events_key(line): ("0" if self.lines[line].read_pending else ">") for line in lines}
        pending = any(v == "0" for v in streams.values())
        block = None if pending or block_ms <= 0 else block_ms
        if is_cluster(self.redis):  # each line is in its own hash slot: one stream per command
            return self._read_each(streams, block)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.xreadgroup(self.options.group, self.options.consumer, streams,  # type: ignore[arg-type]
                            count=self.options.batch_count, block=block)
            news = self._queue_oldest_pending(pipe, streams)
            reply, *oldest = pipe.execute()
        out = _entries_by_line(reply)
        self._older_pending(out, news, oldest)
        return out

    def _read_each(self, streams: dict[str, str], block: int | None) -> dict[
            str, list[tuple[str, dict[bytes, bytes] | None]]]:
        """Reads line by line without blocking; when nothing came, waits a little (up to
        ``block``, at most 100 ms: a blocking read on one line would hold up the others)."""
        out: dict[str, list[tuple[str, dict[bytes, bytes] | None]]] = {}
        for stream, position in streams.items():
            with self.redis.pipeline(transaction=False) as pipe:  # one slot: one round trip
                pipe.xreadgroup(self.options.group, self.options.consumer, {stream: position},
                                count=self.options.batch_count)
                news = self._queue_oldest_pending(pipe, {stream: position})
                reply, *oldest = pipe.execute()
            out.update(_entries_by_line(reply))
            self._older_pending(out, news, oldest)
        if block and not any(out.values()):
            time.sleep(min(block, 100) / 1000.0)
        return out

    def _queue_oldest_pending(self, pipe: Any, streams: dict[str, str]) -> list[str]:
        """Queues, for each stream read for new entries (``>``), the oldest entry pending for
        this consumer name (``_older_pending``); -> those streams' lines, in that order."""
        news = [stream for stream, position in streams.items() if position == ">"]
        for stream in news:
            pipe.xpending_range(stream, self.options.group, "-", "+", 1, self.options.consumer)
        return [contract.line_of_events_key(stream) for stream in news]

    def _older_pending(self, out: dict[str, list[tuple[str, dict[bytes, bytes] | None]]], lines: list[str],
                       oldest: list[list[dict[str, Any]]]) -> None:
        """Keeps each of ``lines``' new entries in stream order with what another worker read
        (``oldest``: per line, its oldest pending entry, if any, from ``_queue_oldest_pending``).

        This worker acknowledges everything it read in its commit, so before a read of new
        entries nothing is pending for the consumer name the workers share, unless a worker
        that held the line before read entries after its lease ran out (it stalled longer
        than the lease) and could not commit them. Those come before this read's: the line
        drops this read and reads its pending entries, all of them in order, instead (new
        entries after newer ones would be taken for already applied)."""
        for line_id, first_pending in zip(lines, oldest, strict=True):
            if not first_pending:
                continue
            entries = out.get(line_id, [])
            first = _text(first_pending[0]["message_id"])
            if not entries or contract.stream_id_tuple(first) < contract.stream_id_tuple(entries[0][0]):
                log.warning("line %s: entries read by a worker that lost the line's lease are pending; "
                            "reading them first", line_id)
                out[line_id] = []
                self.lines[line_id].read_pending = True

    def _process_line(self, worker: LineWorker, entries: list[tuple[str, dict[bytes, bytes] | None]],
                      now: float, backlog: bool) -> LineBatch | None:
        """A line's pass up to its commit: the batch to commit (None: nothing to write)."""
        batch, late = worker.receive(entries, now)
        if late:
            rewind_late(self.redis, worker, late, batch, self.options)
        worker.close(now, backlog, batch)
        if batch.has_writes():
            return batch
        if now - self._last_beat.get(worker.line.id, -math.inf) >= self.options.beat_every_s:
            self.redis.hset(contract.rollup_state_key(worker.line.id), "beat", repr(now))
            self._last_beat[worker.line.id] = now
        return None

    def _commit_all(self, ready: list[tuple[LineWorker, LineBatch]], now: float) -> list[
            tuple[LineWorker, Exception]]:
        """Commits the pass's batches (``store.line_commit``); returns the lines whose
        commit failed. A committed line's beat is its commit."""
        failed = self.committer.commit(ready, now)
        lost = {id(worker) for worker, _ in failed}
        for worker, _ in ready:
            if id(worker) not in lost:
                self._last_beat[worker.line.id] = now
        return failed

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


def lower_priority(increment: int) -> None:
    """This process's CPU priority ``increment`` below the others' (``WORKER_NICE``, for
    ``python app.py worker`` only): where the worker shares cores with the dashboard, the
    screens' live views go first. Lowering a priority needs no privilege."""
    if increment and hasattr(os, "nice"):
        try:
            os.nice(increment)
        except OSError as exc:
            log.warning("WORKER_NICE: could not lower the rollup worker's priority: %s", exc)


def run_worker(redis_client: redis.Redis, plant: Plant, stop: threading.Event,
               now: Callable[[], float] = time.time, options: WorkerOptions | None = None) -> None:
    """Runs passes until ``stop`` is set, at most one per ``pass_every_s`` unless a line
    has a backlog; survives Redis outages (logged once each)."""
    worker = RollupWorker(redis_client, plant, options=options, clock=now)
    block_ms = worker.options.block_ms
    outage_since: float | None = None
    while not stop.is_set():
        started = time.monotonic()
        try:
            if worker.process_once(block_ms=block_ms) and not worker.backlog:
                stop.wait(max(0.0, worker.options.pass_every_s - (time.monotonic() - started)))
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
