"""The commit of a rollup pass: each line's batch (``store.line_writes``) in a MULTI/EXEC,
fenced against a second writer.

A line's commit WATCHes its bookkeeping hash and its lease and checks, before the MULTI,
that the bookkeeping is at the version this worker loaded and that this worker still
holds the lease; otherwise the line is left out (``LineConflict``) and the worker reloads
it from Redis. On one server the lines of a pass share ONE MULTI/EXEC under one WATCH (a
few round trips per pass, each line's writes and XACK still all-or-nothing); on a
cluster each line has its own (a transaction stays in one hash slot).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from domain import contract
from store.clients import is_cluster
from store.leases import LineLeases
from store.line_worker import LineBatch, LineWorker, WorkerOptions
from store.line_writes import read_stored, write_batch

# Per line (KEYS in pairs: bookkeeping hash, lease): its version and its lease holder.
_VERSIONS_SCRIPT = """
local out = {}
for i = 1, #KEYS, 2 do
  out[#out + 1] = redis.call('HGET', KEYS[i], 'ver') or false  -- nil would end the list
  out[#out + 1] = redis.call('GET', KEYS[i + 1]) or false
end
return out
"""


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class LineConflict(Exception):
    """Another writer changed the line's bookkeeping since this worker loaded it."""


class LineCommitter:
    """Commits one worker's batches. ``reload_lost`` is called with a line whose
    bookkeeping Redis lost (it reports the loss and starts the line again from the stream)."""

    def __init__(self, redis_client: redis.Redis, leases: LineLeases, options: WorkerOptions,
                 reload_lost: Callable[[LineWorker], None]) -> None:
        self.redis = redis_client
        self.leases = leases
        self.options = options
        self.reload_lost = reload_lost
        self._versions = self.redis.register_script(_VERSIONS_SCRIPT)

    def commit(self, ready: list[tuple[LineWorker, LineBatch]], now: float) -> list[tuple[LineWorker, Exception]]:
        """Commits the pass's batches; returns the lines whose commit failed. On one server
        all lines go in one transaction (a few round trips per pass, not a few per line);
        on a cluster each line in its own (a transaction stays in one hash slot)."""
        failed: list[tuple[LineWorker, Exception]] = []
        if len(ready) > 1 and not is_cluster(self.redis):
            try:
                failed = self._commit_lines(ready, now)
            except Exception as exc:  # WatchError, a lost connection: nothing of the pass was written
                return [(worker, exc) for worker, _ in ready]
        else:
            for worker, batch in ready:
                try:
                    self._commit(worker, batch, now)
                except Exception as exc:
                    failed.append((worker, exc))
        return failed

    def _conflict(self, worker: LineWorker, version: Any, holder: Any) -> LineConflict | None:
        """Why this worker may not commit the line (its bookkeeping version and lease holder
        as read under WATCH), or None."""
        line_id = worker.line.id
        if version is None and worker.version > 0:
            return LineConflict(f"line {line_id}: bookkeeping gone (Redis lost its data)")
        if int(version or 0) != worker.version:
            return LineConflict(f"line {line_id}: bookkeeping at version {version!r}, expected {worker.version}")
        if _text(holder or b"") != self.leases.token:
            self.leases.held.discard(line_id)
            return LineConflict(f"line {line_id}: lease lost before the commit")
        return None

    def _commit_lines(self, ready: list[tuple[LineWorker, LineBatch]], now: float) -> list[
            tuple[LineWorker, Exception]]:
        """Several lines' batches in one MULTI/EXEC under one WATCH of their bookkeeping
        hashes and leases (each line's writes and XACK stay all-or-nothing, as with one line
        per transaction). A line another writer changed is left out (and reloaded)."""
        keys = [key for worker, _ in ready
                for key in (contract.rollup_state_key(worker.line.id), contract.rollup_lease_key(worker.line.id))]
        failed: list[tuple[LineWorker, Exception]] = []
        gone: list[LineWorker] = []
        ok: list[tuple[LineWorker, LineBatch]] = []
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.watch(*keys)
            checks: Any = self._versions(keys=keys, client=pipe)
            for n, (worker, batch) in enumerate(ready):
                version, holder = checks[2 * n], checks[2 * n + 1]
                conflict = self._conflict(worker, version, holder)
                if conflict is None:
                    ok.append((worker, batch))
                    continue
                failed.append((worker, conflict))
                if version is None and worker.version > 0:
                    gone.append(worker)
            if ok:
                stored = [read_stored(pipe, worker, batch) for worker, batch in ok]
                pipe.multi()
                for (worker, batch), line_stored in zip(ok, stored, strict=True):
                    write_batch(pipe, worker, batch, now, self.options, line_stored)
                pipe.execute()
        for worker, _ in ok:
            worker.version += 1
        for worker in gone:
            self.reload_lost(worker)  # reports the loss and starts the line again from the stream
        return failed

    def _commit(self, worker: LineWorker, batch: LineBatch, now: float) -> None:
        key = contract.rollup_state_key(worker.line.id)
        lease = contract.rollup_lease_key(worker.line.id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.watch(key, lease)
            version: Any = pipe.hget(key, "ver")
            conflict = self._conflict(worker, version, pipe.get(lease))
            if conflict is not None:
                if version is None and worker.version > 0:
                    pipe.reset()
                    self.reload_lost(worker)  # reports the loss and starts the line again from the stream
                raise conflict
            stored = read_stored(pipe, worker, batch)
            pipe.multi()
            write_batch(pipe, worker, batch, now, self.options, stored)
            pipe.execute()
        worker.version += 1
