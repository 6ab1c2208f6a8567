"""``LiveFeed``: one follower per server process of every line's event stream and of the
rollup worker's commits, so live screens are told when a line changed instead of asking
every 2 s.

Reader threads (started with the first subscriber) block on ``XREAD`` over the line
streams (``domain.contract.events_key``; one XREAD for all lines on a single Redis, one
per line on a Redis Cluster, where a command may not span slots) and, after each read or
each ``BLOCK_MS`` of silence, read the worker's bookkeeping counters (``ver`` and
``amend`` in ``contract.rollup_state_key``: bumped by every commit, resp. every rewind
by late data). A line that changed gets a new **version** after ``COALESCE_S`` (changes
arriving meanwhile ride along), at most once per ``MIN_GAP_S``, and at least every
``QUIET_S`` even without data (its texts depend on the clock: "down since 10:18 · 14 min",
"no data since", the pace). With ``follow_alerts`` the alerts are a channel beside the
lines (``ALERTS``): the alert loop's change counter is read every ``BLOCK_MS``, and a
change gives the channel a new version as a line's does (never one for the clock alone).

Consumers: ``versions()`` for the per-process memo of live views (``components.data``:
a view is computed once per line version however many screens show it), and
``wait(after, lines)`` / ``wait_async`` for the server-sent events of ``api.live`` (each change once, in
order, with a sequence number a reconnecting browser hands back as ``Last-Event-ID``).

Warm before telling: with a ``warm(line)`` hook (``components.data.Warmer``), a new version
is handed out at once (``versions()``) but told to the subscribers only once the hook has
recomputed what the screens asked of the line's last version (in ``WARM_THREADS``
threads), or after ``warm_max_s`` at the latest. The screens then ask for answers already
computed: a change is computed once, before thirty screens ask for it at the same moment,
not while they wait. A line gets no next version while its warm-up runs (up to
``WARM_STUCK_S``), so a process that cannot compute as fast as the lines change hands out
fewer versions instead of queueing warm-ups it will never catch up with; and while the
warm-ups used more than ``WARM_BUDGET`` of a core over the last ``BUDGET_WINDOW_S``, the
lines' next versions wait (the screens show the last ones a little longer), so a plant
that changes faster than the process can compute leaves it time to answer requests.

While Redis cannot be read the feed is ``down``: versions are withheld (nothing is
memoised) and the event streams tell the browsers, which fall back to their 2 s timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis

from domain import contract
from store.clients import is_cluster, node_client

log = logging.getLogger(__name__)

BLOCK_MS = 1000  # one XREAD waits this long; the worker's counters are read at least this often
COALESCE_S = 0.1  # a change waits this long for the ones right behind it
MIN_GAP_S = 0.5  # a line gets at most one version per this
QUIET_S = 3.0  # and at least one per this: the clock moves the texts
HISTORY = 4096  # changes kept for reconnecting browsers (Last-Event-ID)
RETRY_S = 1.0  # after a Redis error, read again after this
WARM_MAX_S = 0.5  # a change is told at the latest this long after its version, warm or not
WARM_THREADS = 4  # lines warmed at once
WARM_STUCK_S = 5.0  # a warm-up running this long no longer holds its line's next version back
WARM_BUDGET = 0.5  # of one core: the warm-ups' CPU over the last BUDGET_WINDOW_S; above it, versions wait
BUDGET_WINDOW_S = 2.0

WHY_EVENTS = "events"  # new entries in the line's stream
WHY_ROLLUP = "rollup"  # the worker committed (closed minutes, a rewind)
WHY_CLOCK = "clock"  # nothing new, but time moved on
WHY_RESTART = "restart"  # the feed (re)connected to Redis: anything may have changed
WHY_ALERTS = "alerts"  # an alert was raised, updated, cleared or acknowledged

ALERTS = "~alerts"  # the alerts' channel beside the lines (no line id has a "~")


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    line: str
    version: int
    why: tuple[str, ...]
    at: float = 0.0  # wall clock when the version was handed out (0: not known, a resync)

    def to_dict(self) -> dict[str, Any]:
        got: dict[str, Any] = {"line": self.line, "version": self.version, "why": list(self.why)}
        if self.at:
            got["at"] = round(self.at, 3)
        return got


@dataclass(slots=True)
class _Dirty:
    since: float
    why: set[str] = field(default_factory=set)


_Out = tuple[str, int, tuple[str, ...], float]  # a version handed out: line, version, why, wall clock


@dataclass(slots=True)
class _Batch:
    changes: list[_Out]  # handed out together
    by: float  # told at the latest then (feed clock)
    left: int  # lines still warming


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class LiveFeed:
    """Follows ``lines``' streams on ``client`` (``redis.Redis`` or ``RedisCluster``)."""

    def __init__(self, client: Any, lines: Sequence[str], *, clock: Callable[[], float] = time.monotonic,
                 block_ms: int = BLOCK_MS, coalesce_s: float = COALESCE_S, min_gap_s: float = MIN_GAP_S,
                 quiet_s: float = QUIET_S, warm: Callable[[str], None] | None = None,
                 warm_max_s: float = WARM_MAX_S, warm_stuck_s: float = WARM_STUCK_S,
                 warm_budget: float = WARM_BUDGET, follow_alerts: bool = False) -> None:
        self.client = client
        self.lines = tuple(lines)
        self.token = uuid.uuid4().hex[:12]  # names this process's sequence in event ids
        self.clock = clock
        self.block_ms = block_ms
        self.coalesce_s = coalesce_s
        self.min_gap_s = min_gap_s
        self.quiet_s = quiet_s
        self.warm = warm
        self.warm_max_s = warm_max_s
        self.warm_stuck_s = warm_stuck_s
        self.warm_budget = warm_budget
        self._warm_cpu: deque[tuple[float, float]] = deque()  # (ended, CPU seconds) of recent warm-ups
        self._warming: dict[int, _Batch] = {}  # versions handed out, not yet told
        self._warm_busy: dict[str, float] = {}  # line being warmed -> since: no next version before that ends
        self._batches = 0
        self._warm_pool: ThreadPoolExecutor | None = None
        self._cond = threading.Condition()
        self.follow_alerts = follow_alerts
        channels = (*self.lines, ALERTS) if follow_alerts else self.lines
        self._versions = dict.fromkeys(channels, 0)
        self._bumped = dict.fromkeys(channels, -1e18)
        self._dirty: dict[str, _Dirty] = {}
        self._history: deque[Change] = deque(maxlen=HISTORY)
        self._seq = 0
        self._down: dict[str, str] = {}  # reader group -> error; empty: up
        self._started = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.bumps = 0  # versions handed out (tests, benchmarks)

    # --- life ----------------------------------------------------------------------------

    def start(self) -> LiveFeed:
        """Starts the reader threads and the dispatcher once; later calls do nothing."""
        with self._cond:
            if self._started:
                return self
            self._started = True
        groups = [list(self.lines)] if not is_cluster(self.client) else [[line] for line in self.lines]
        with self._cond:  # down until each reader has read its streams' positions once
            self._down.update({",".join(lines): "starting" for lines in groups})
        for i, lines in enumerate(groups):
            self._spawn(f"live-feed-{i}", self._follow, lines)
        if self.follow_alerts:
            self._spawn("live-feed-alerts", self._follow_alerts)
        self._spawn("live-feed-dispatch", self._dispatch)
        return self

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stops the threads; every ``wait`` returns at once (streams end cleanly)."""
        self._stop.set()
        with self._cond:
            self._notify()
        for thread in self._threads:
            thread.join(timeout_s)
        if self._warm_pool is not None:
            self._warm_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._started and not self._stop.is_set()

    @property
    def up(self) -> bool:
        """Started, not stopped, and every reader follows its streams."""
        with self._cond:
            return self.running and not self._down

    # --- what consumers see ---------------------------------------------------------------

    def versions(self) -> dict[str, int] | None:
        """Each line's current version; None while the feed is not following (then nothing
        may be memoised: a change would go unnoticed)."""
        with self._cond:
            if not self.running or self._down:
                return None
            return dict(self._versions)

    def version(self, line: str) -> int | None:
        got = self.versions()
        return None if got is None else got.get(line)

    @property
    def seq(self) -> int:
        with self._cond:
            return self._seq

    def changes_since(self, after: int, lines: Iterable[str] | None = None) -> list[Change] | None:
        """The changes after sequence number ``after`` (of ``lines``); None when they are no
        longer all known (the browser should refresh everything it shows)."""
        wanted = None if lines is None else set(lines)
        with self._cond:
            return self._since(after, wanted)

    def _since(self, after: int, wanted: set[str] | None) -> list[Change] | None:
        if after > self._seq:
            return None  # another process's (or an older run's) number
        if after < self._seq and (not self._history or self._history[0].seq > after + 1):
            return None
        return [c for c in self._history if c.seq > after and (wanted is None or c.line in wanted)]

    def wait(self, after: int, lines: Iterable[str] | None, timeout_s: float,
             was_up: bool | None = None) -> tuple[int, list[Change] | None]:
        """Blocks until a change of ``lines`` after ``after``, the feed going down or up
        (when it differs from ``was_up``), stopping, or ``timeout_s``. -> (the sequence
        number seen, the changes; None: more than the history holds)."""
        wanted = None if lines is None else set(lines)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                changes = self._since(after, wanted)
                moved = was_up is not None and was_up != (self.running and not self._down)
                if changes is None or changes or self._stop.is_set() or moved:
                    return self._seq, changes
                after = self._seq  # changes of other lines only: nothing to say about them
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._seq, []
                self._cond.wait(left)

    async def wait_async(self, after: int, lines: Iterable[str] | None, timeout_s: float,
                         was_up: bool | None = None) -> tuple[int, list[Change] | None]:
        """``wait`` for an event loop: the same answer, awaited without holding a thread."""
        wanted = None if lines is None else set(lines)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            waiter = (loop, asyncio.Event())
            with self._cond:
                changes = self._since(after, wanted)
                moved = was_up is not None and was_up != (self.running and not self._down)
                if changes is None or changes or self._stop.is_set() or moved:
                    return self._seq, changes
                after = self._seq
                left = deadline - loop.time()
                if left <= 0:
                    return self._seq, []
                self._async_waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter[1].wait(), left)
            except TimeoutError:
                pass
            finally:
                with self._cond:
                    self._async_waiters.discard(waiter)

    def _notify(self) -> None:
        """Wakes every waiter, threads and event loops (call holding ``_cond``)."""
        self._cond.notify_all()
        for loop, woken in self._async_waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(woken.set)

    def mark(self, line: str, why: str) -> None:
        """A line changed (the readers call this; so may code that writes outside the stream)."""
        if line not in self._versions:
            return
        with self._cond:
            self._mark(line, why, self.clock())
            self._notify()

    def _mark(self, line: str, why: str, now: float) -> None:
        dirty = self._dirty.get(line)
        if dirty is None:
            dirty = self._dirty[line] = _Dirty(now)
        dirty.why.add(why)

    # --- the threads ----------------------------------------------------------------------

    def _follow(self, lines: list[str]) -> None:
        """Blocks on the streams of ``lines`` (one hash slot on a cluster); reads the worker's
        counters after every read."""
        key_of = {contract.events_key(line): line for line in lines}
        name = ",".join(lines)
        reader: Any = None
        positions: dict[str, str] | None = None
        counters: dict[str, tuple[Any, Any]] = {}
        warned = False
        while not self._stop.is_set():
            try:
                if positions is None:  # (re)start: from the newest entry on; everything may have changed
                    reader = node_client(self.client, next(iter(key_of)))  # on a cluster: the slot's master now
                    positions = {key: self._newest_id(reader, key) for key in key_of}
                    counters = self._counters(reader, lines)
                    self._set_down(name, None)
                    if warned:
                        log.info("live feed (%s): following the streams again", name)
                        warned = False
                    for line in lines:
                        self.mark(line, WHY_RESTART)
                reply: Any = reader.xread(positions, block=self.block_ms, count=1000)
                for stream, entries in reply or []:
                    key = _text(stream)
                    if entries:
                        positions[key] = _text(entries[-1][0])
                        self.mark(key_of[key], WHY_EVENTS)
                now_counters = self._counters(reader, lines)
                for line, value in now_counters.items():
                    if counters.get(line) != value:
                        self.mark(line, WHY_ROLLUP)
                counters = now_counters
            except (redis.RedisError, OSError) as exc:
                if self._stop.is_set():
                    return
                if not warned:  # once per outage
                    log.warning("live feed (%s): Redis unavailable, screens fall back to polling: %s", name, exc)
                    warned = True
                self._set_down(name, str(exc))
                positions = None
                self._stop.wait(RETRY_S)
            except Exception:  # never let the feed die silently: the screens would wait forever
                log.exception("live feed (%s) failed; restarting it", name)
                self._set_down(name, "internal error")
                positions = None
                self._stop.wait(RETRY_S)

    def _follow_alerts(self) -> None:
        """Reads the alerts' change counter (``contract.alerts_key("ver")``) every ``block_ms``:
        the alert loop bumps it with every change, acknowledgements too. (An outage shows in
        the line readers, which take the feed down.)"""
        key = contract.alerts_key("ver")
        unread = object()
        seen: Any = unread
        warned = False
        while not self._stop.is_set():
            try:
                now: Any = node_client(self.client, key).get(key)
                if now != seen:
                    self.mark(ALERTS, WHY_ALERTS if seen is not unread else WHY_RESTART)
                    seen = now
                warned = False
            except (redis.RedisError, OSError) as exc:
                if not warned:
                    log.warning("live feed (alerts): Redis unavailable: %s", exc)
                    warned = True
                seen = unread  # read again: anything may have changed meanwhile
            self._stop.wait(self.block_ms / 1000.0)

    @staticmethod
    def _newest_id(reader: Any, key: str) -> str:
        newest: Any = reader.xrevrange(key, count=1)
        return _text(newest[0][0]) if newest else "0-0"

    @staticmethod
    def _counters(reader: Any, lines: list[str]) -> dict[str, tuple[Any, Any]]:
        with reader.pipeline(transaction=False) as pipe:
            for line in lines:
                pipe.hmget(contract.rollup_state_key(line), "ver", "amend")
            replies = pipe.execute()
        return {line: tuple(reply) for line, reply in zip(lines, replies, strict=True)}

    def _set_down(self, group: str, error: str | None) -> None:
        with self._cond:
            if error is None:
                self._down.pop(group, None)
            else:
                self._down[group] = error
            self._notify()

    def _dispatch(self) -> None:
        """Turns marks into versions: after ``coalesce_s``, at most every ``min_gap_s``, at
        least every ``quiet_s``; tells them once warm (or after ``warm_max_s``)."""
        with self._cond:
            while not self._stop.is_set():
                now = self.clock()
                for batch_id, batch in list(self._warming.items()):
                    if now >= batch.by:  # warming too long: tell now, the screens join the computation
                        self._tell(batch_id)
                if not self._down:
                    for line in self.lines:
                        if line not in self._dirty and now - self._bumped[line] >= self.quiet_s:
                            self._mark(line, WHY_CLOCK, now)
                over = self._over_budget(now)
                due = [line for line, d in self._dirty.items()
                       if now - d.since >= self.coalesce_s and now - self._bumped[line] >= self.min_gap_s
                       and now - self._warm_busy.get(line, -1e18) >= self.warm_stuck_s  # one warm-up a line
                       and not (over and line != ALERTS)]
                changes = []
                handed_out = time.time()
                for line in due:
                    dirty = self._dirty.pop(line)
                    self._versions[line] += 1
                    self._bumped[line] = now
                    self.bumps += 1
                    changes.append((line, self._versions[line], tuple(sorted(dirty.why)), handed_out))
                if changes:
                    self._hand_out(changes, now)
                self._cond.wait(self._next_due(now))

    def _hand_out(self, changes: list[_Out], now: float) -> None:
        """New versions: told at once without a warm hook, else together once all are warm
        (holding ``_cond``)."""
        if self.warm is None:
            self._publish(changes)
            return
        lines = {out[0] for out in changes}
        for batch_id, batch in list(self._warming.items()):
            if lines & {out[0] for out in batch.changes}:
                self._tell(batch_id)  # still warming a line's last version: tell it now
        self._batches += 1
        self._warming[self._batches] = _Batch(changes, now + self.warm_max_s, len(changes))
        self._warm_busy.update(dict.fromkeys(lines, now))
        if self._warm_pool is None:
            self._warm_pool = ThreadPoolExecutor(WARM_THREADS, thread_name_prefix="live-warm")
        try:
            for out in changes:
                self._warm_pool.submit(self._warm_one, self._batches, out[0])
        except RuntimeError:  # stopping: the pool is shut
            for line in lines:
                self._warm_busy.pop(line, None)
            self._tell(self._batches)

    def _over_budget(self, now: float) -> bool:
        """Whether the warm-ups used more than ``warm_budget`` of a core over the last
        ``BUDGET_WINDOW_S`` (holding ``_cond``): the lines' next versions then wait, so a
        plant that changes faster than the process can compute does not take every core."""
        while self._warm_cpu and now - self._warm_cpu[0][0] > BUDGET_WINDOW_S:
            self._warm_cpu.popleft()
        return sum(cpu for _ended, cpu in self._warm_cpu) > self.warm_budget * BUDGET_WINDOW_S

    def _warm_one(self, batch_id: int, line: str) -> None:
        cpu = time.thread_time()
        try:
            if self.warm is not None and not self._stop.is_set():
                self.warm(line)
        except Exception:  # a failed warm-up only means the screens compute for themselves
            log.exception("live feed: warming %s failed", line)
        finally:
            with self._cond:
                self._warm_cpu.append((self.clock(), time.thread_time() - cpu))
                self._warm_busy.pop(line, None)
                self._notify()  # the line may be due again
                batch = self._warming.get(batch_id)
                if batch is not None:
                    batch.left -= 1
                    if batch.left <= 0:
                        self._tell(batch_id)

    def _tell(self, batch_id: int) -> None:
        """Publishes a warming batch (holding ``_cond``)."""
        batch = self._warming.pop(batch_id, None)
        if batch is not None:
            self._publish(batch.changes)

    def _publish(self, changes: list[_Out]) -> None:
        """Tells the subscribers, in one wake-up (holding ``_cond``)."""
        for line, version, why, at in changes:
            self._seq += 1
            self._history.append(Change(self._seq, line, version, why, at))
        self._notify()

    def _next_due(self, now: float) -> float:
        times = [max(d.since + self.coalesce_s, self._bumped[line] + self.min_gap_s)
                 for line, d in self._dirty.items() if line not in self._warm_busy]
        times += [since + self.warm_stuck_s for since in self._warm_busy.values()]  # else woken when warm
        if self._warm_cpu:
            times.append(self._warm_cpu[0][0] + BUDGET_WINDOW_S)  # the budget frees up
        times += [batch.by for batch in self._warming.values()]
        if not self._down:
            times += [self._bumped[line] + self.quiet_s for line in self.lines if line not in self._dirty]
        soonest = min(times, default=now + self.quiet_s)
        return min(self.quiet_s, max(0.01, soonest - now))


FEED_KEY = "LIVE_FEED"
WARM_KEY = "LIVE_WARM"
_feed_lock = threading.Lock()


def feed_of(config: dict[str, Any], client_of: Callable[[], Any], lines: Sequence[str]) -> LiveFeed:
    """The process's feed kept in the app's ``config`` (``api.context.config_of``), created
    and started on first use, with the app's warm-up hook (``WARM_KEY``: an object with a
    ``warm(line)`` method) when it has one."""
    feed = config.get(FEED_KEY)
    if feed is not None:
        return feed  # type: ignore[no-any-return]
    with _feed_lock:
        feed = config.get(FEED_KEY)
        if feed is None:
            warmer = config.get(WARM_KEY)
            feed = config[FEED_KEY] = LiveFeed(client_of(), lines, warm=None if warmer is None else warmer.warm,
                                               follow_alerts=True).start()
    return feed
