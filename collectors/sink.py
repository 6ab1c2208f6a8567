"""Writes canonical events to Redis in pipelined batches, through the stream contract.

One pipeline per batch: per line, an ``XADD <plant:{line}:events> MINID ~ <now - retention> *``
per event and one ``HSET <plant:{line}:live>`` with the batch's latest value of every
(machine, signal), run in Redis by the stream writer's Lua script (``store.streams``). A batch is
written when ``batch_max`` events are waiting or ``flush_interval_s`` after the first one
arrived.

While Redis is unreachable, batches go to the store-and-forward buffer, which writes
them to disk at once, and the sink retries with capped exponential backoff. Once Redis
answers, the buffer is forwarded in order before anything newer (new events queue behind
it), so readers see every (machine, signal) in the order the collector received it. A
write that takes longer than ``journal_after_s`` (a Redis that hangs rather than refuses)
puts its batch and everything waiting behind it into the buffer too, so no event stays
only in memory for longer than about that: a collector killed during an outage loses at
most that much. Delivery is at least once: a batch cut off in the middle by a dying
Redis is written again (all values are idempotent: cumulative counters, states, levels).

On a Redis Cluster (``store.clients.connect_async``) each line's script is its own
``EVAL``, sent to the master holding the line's slot (``store.streams.write_async``).

What the OPC UA side refuses (a node the server rejects, an untrusted server
certificate) is kept per line in ``contract.nodes_key`` (``report``), for ``/api/health``.

Events whose timestamp the collector flagged (``contract.BAD_TIMESTAMP_STATUSES``) go to
the stream but not to the live hash: a time 70 years ahead must not become a machine's
"last data".
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio
from redis.exceptions import RedisError

from collectors.buffer import StoreAndForwardBuffer
from domain.contract import nodes_key
from domain.model import Event
from store.streams import live_batches, minid_for, write_async

log = logging.getLogger(__name__)



@dataclass(slots=True)
class SinkStats:
    written: int = 0  # events stored in Redis
    batches: int = 0  # pipelines executed
    buffered: int = 0  # events that went through the store-and-forward buffer
    outages: int = 0


class Backoff:
    """Capped exponential delays: initial, 2x, 4x, ... up to ``cap`` seconds."""

    def __init__(self, initial_s: float, cap_s: float) -> None:
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.initial_s * float(2**self.attempts), self.cap_s)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


class RedisSink:
    """The collector's only way to Redis. ``put`` never blocks and never raises."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        buffer: StoreAndForwardBuffer,
        *,
        retention_s: float,
        batch_max: int = 2000,
        flush_interval_s: float = 0.01,
        drain_chunk: int = 5000,
        retry_initial_s: float = 0.25,
        retry_max_s: float = 10.0,
        journal_after_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.buffer = buffer
        self.retention_s = retention_s
        self.batch_max = batch_max
        self.flush_interval_s = flush_interval_s
        self.drain_chunk = drain_chunk
        self.journal_after_s = journal_after_s
        self.clock = clock
        self.stats = SinkStats()
        self._pending: list[Event] = []
        self._wake = asyncio.Event()
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._retry_at = 0.0  # monotonic time of the next attempt while Redis is down
        self._down_since: float | None = None
        self._reports: dict[str, dict[str, str | None]] = {}  # line -> field -> JSON (None: remove)

    def report(self, line: str, field: str, value: Mapping[str, object] | None) -> None:
        """Record (or with None clear) a problem of the OPC UA side in the line's
        ``contract.nodes_key`` hash; written with the next batch, kept until Redis takes it."""
        text = None if value is None else json.dumps(dict(value), separators=(",", ":"), sort_keys=True)
        self._reports.setdefault(line, {})[field] = text
        self._wake.set()

    async def _write_reports(self) -> None:
        """The recorded problems, line by line (one slot each); what fails stays for later."""
        for line in list(self._reports):
            fields = self._reports.pop(line)
            gone = [f for f, v in fields.items() if v is None]
            kept = {f: v for f, v in fields.items() if v is not None}
            try:
                if gone:
                    await self.client.hdel(nodes_key(line), *gone)
                if kept:
                    await self.client.hset(nodes_key(line), mapping=cast(dict[Any, Any], kept))
            except (RedisError, OSError):
                for f, v in fields.items():
                    self._reports.setdefault(line, {}).setdefault(f, v)
                return

    def put(self, event: Event) -> None:
        self._pending.append(event)
        if len(self._pending) == 1 or len(self._pending) >= self.batch_max:
            self._wake.set()

    def put_all(self, events: Sequence[Event]) -> None:
        """``put`` of each event, in order."""
        if not events:
            return
        pending = self._pending
        first = not pending
        pending.extend(events)
        if first or len(pending) >= self.batch_max:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Events not yet in Redis (waiting for the next batch or in the buffer)."""
        return len(self._pending) + len(self.buffer)

    async def run(self) -> None:
        """Write batches until cancelled."""
        while True:
            await self._wait_for_work()
            await self.flush()

    async def _wait_for_work(self) -> None:
        if not self._pending:
            delay = self._retry_at - time.monotonic() if len(self.buffer) else None
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                # cancellation that arrives as the timeout expires, so shutdown hung.
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                return
        self._wake.clear()
        if len(self._pending) < self.batch_max:
            await asyncio.sleep(self.flush_interval_s)

    async def flush(self) -> None:
        """Write what is waiting: the buffer first (if Redis is back), then new events."""
        batch, self._pending = self._pending, []
        if self._reports and self._down_since is None:
            await self._write_reports()
        if len(self.buffer) or self._down_since is not None:
            self._to_buffer(batch)
            if self._down_since is not None and time.monotonic() < self._retry_at:
                return
            await self._forward_buffer()
            return
        if not batch:
            return
        await self._write_direct(batch)

    def _to_buffer(self, events: Sequence[Event]) -> None:
        self.buffer.extend(events)
        self.stats.buffered += len(events)

    def journal(self) -> None:
        """Events waiting for the next batch go to the buffer (and so to disk) now."""
        batch, self._pending = self._pending, []
        self._to_buffer(batch)

    async def _write_direct(self, batch: list[Event]) -> None:
        """The buffer is empty and Redis up: write ``batch`` straight away. If Redis is slow
        to answer, ``batch`` goes to the buffer first (it is then the buffer's head, so it
        is removed from there once written)."""
        journaled = False

        def on_slow() -> None:
            nonlocal journaled
            if not journaled:
                self._to_buffer(batch)
                journaled = True
            self.journal()

        try:
            written = await self._watched_write(batch, on_slow)
        except asyncio.CancelledError:
            if not journaled:
                self._to_buffer(batch)  # shutting down mid-write: keep it (at least once)
            raise
        if not journaled:
            if not written:
                self._to_buffer(batch)
            return
        if written:  # it was put in first: the buffer's head
            self.buffer.pop(len(self.buffer.peek(len(batch))))

    async def _forward_buffer(self) -> None:
        while len(self.buffer):
            chunk = self.buffer.peek(self.drain_chunk)
            if not await self._watched_write(chunk, self.journal):
                return
            self.buffer.pop(len(chunk))
            await asyncio.sleep(0)  # let the OPC UA side run between chunks

    async def _watched_write(self, events: Sequence[Event], on_slow: Callable[[], None]) -> bool:
        """``_try_write``, calling ``on_slow`` every ``journal_after_s`` while it has not
        finished (events keep arriving in the meantime)."""
        task = asyncio.ensure_future(self._try_write(events))
        try:
            while True:
                done, _ = await asyncio.wait((task,), timeout=self.journal_after_s)
                if done:
                    return task.result()
                on_slow()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait((task,))

    async def _try_write(self, events: Sequence[Event]) -> bool:
        try:
            await self.write(events)
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            return False
        self._mark_up()
        return True

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.stats.outages += 1
            log.warning("Redis unreachable (%s); buffering events until it is back", exc)
        self._retry_at = time.monotonic() + self._backoff.next_delay()

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.warning(
                "Redis reachable again after %.1f s; forwarding %d buffered events",
                time.monotonic() - self._down_since, len(self.buffer),
            )
            self._down_since = None
            self._backoff.reset()

    async def write(self, events: Sequence[Event]) -> None:
        """One round trip: per line, its events' XADDs (MINID ~ trimming) and one HSET
        (``store.streams``)."""
        if not events:
            return
        await write_async(self.client, live_batches(events), minid_for(self.clock(), self.retention_s))
        self.stats.written += len(events)
        self.stats.batches += 1

    async def close(self, timeout_s: float = 2.0) -> None:
        """Last flush within ``timeout_s`` (to Redis if it answers; while it is down no new
        attempt is made), then what is left goes to the buffer's files, so the next start
        sends it."""
        if self._down_since is None:
            try:
                async with asyncio.timeout(timeout_s):
                    await self.flush()
            except TimeoutError:
                log.warning("Redis did not take the last batch within %.0f s; it stays in the buffer", timeout_s)
        self.journal()
        if len(self.buffer):
            log.info("store-and-forward: %d events kept in %s for the next start", len(self.buffer),
                     self.buffer.directory)
        self.buffer.close()
