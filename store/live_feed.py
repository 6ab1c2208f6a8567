"""``LiveFeed``: one follower per server process of every line's event stream and of the
rollup worker's commits, so live screens are told when a line changed instead of asking
every 2 s.

Reader threads (``store.live_readers``, started with the first subscriber or live read) block on ``XREAD`` over the line
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

While Redis cannot be read the feed is ``down``: versions are withheld (nothing is
memoised) and the event streams tell the browsers, which fall back to their 2 s timer.

Warm before telling: with a ``warm(line)`` hook, a new version is handed out at once
(``versions()``) but told only once the hook has recomputed what the screens asked of the
line's last version, within limits (``store.live_warm``).
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
from dataclasses import dataclass, field
from typing import Any

from store import live_readers
from store.clients import is_cluster
from store.live_readers import ALERTS, WHY_ALERTS, WHY_AMENDED, WHY_EVENTS, WHY_RESTART, WHY_ROLLUP
from store.live_warm import WARM_BUDGET, WARM_MAX_S, WARM_STUCK_S, WARM_THREADS, Out, WarmUps
from store.reader_pool import cpu_in_children

log = logging.getLogger(__name__)

__all__ = ["ALERTS", "FEED_KEY", "START_KEY", "WARM_KEY", "WHY_ALERTS", "WHY_AMENDED", "WHY_CLOCK", "WHY_EVENTS",
           "WHY_RESTART", "WHY_ROLLUP", "Change", "LiveFeed", "feed_of"]

BLOCK_MS = 1000  # one XREAD waits this long; the worker's counters are read at least this often
COALESCE_S = 0.1  # a change waits this long for the ones right behind it
MIN_GAP_S = 0.5  # a line gets at most one version per this
QUIET_S = 3.0  # and at least one per this: the clock moves the texts
HISTORY = 4096  # changes kept for reconnecting browsers (Last-Event-ID)

WHY_CLOCK = "clock"  # nothing new, but time moved on


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


class LiveFeed:
    """Follows ``lines``' streams on ``client`` (``redis.Redis`` or ``RedisCluster``)."""

    def __init__(self, client: Any, lines: Sequence[str], *, clock: Callable[[], float] = time.monotonic,
                 block_ms: int = BLOCK_MS, coalesce_s: float = COALESCE_S, min_gap_s: float = MIN_GAP_S,
                 quiet_s: float = QUIET_S, warm: Callable[[str], None] | None = None,
                 warm_max_s: float = WARM_MAX_S, warm_stuck_s: float = WARM_STUCK_S,
                 warm_budget: float = WARM_BUDGET, warm_threads: int = WARM_THREADS,
                 follow_alerts: bool = False, on_commit: Callable[[list[str]], None] | None = None) -> None:
        self.client = client
        self.on_commit = on_commit  # the readers saw the worker commit these lines (a reader pool prepares them)
        self.lines = tuple(lines)
        self.token = uuid.uuid4().hex[:12]  # names this process's sequence in event ids
        self.clock = clock
        self.block_ms = block_ms
        self.coalesce_s = coalesce_s
        self.min_gap_s = min_gap_s
        self.quiet_s = quiet_s
        self.warm = warm
        self._warm_ups = WarmUps(warm_max_s, warm_stuck_s, warm_budget, warm_threads)
        lock = threading.RLock()
        self._cond = threading.Condition(lock)  # the consumers wait on it: changes told, down or up, stopping
        self._wake = threading.Condition(lock)  # the dispatcher waits on it: a line newly dirty, a warm-up over
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
            self._spawn(f"live-feed-{i}", live_readers.follow_streams, self, lines)
        if self.follow_alerts:
            self._spawn("live-feed-alerts", live_readers.follow_alerts, self)
        self._spawn("live-feed-dispatch", self._dispatch)
        return self

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        self._threads.append(thread := threading.Thread(target=target, args=args, name=name, daemon=True))
        thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stops the threads; every ``wait`` returns at once (streams end cleanly)."""
        self._stop.set()
        with self._cond:
            self._notify()
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout_s)
        self._warm_ups.shutdown()

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
        newer = []
        for change in reversed(self._history):  # the newest first: a waiter is usually a few behind
            if change.seq <= after:
                break
            if wanted is None or change.line in wanted:
                newer.append(change)
        newer.reverse()
        return newer

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
        """Wakes every consumer, threads and event loops (call holding ``_cond``): only for what
        they see (changes told, the feed going down or up, stopping). A line marked dirty only
        wakes the dispatcher (``_wake``): at 1 Hz a plant's streams mark lines hundreds of times
        a second, and each wake-up of a screen's event stream costs its event loop a turn."""
        self._cond.notify_all()
        for loop, woken in self._async_waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(woken.set)

    def mark(self, line: str, why: str) -> None:
        """A line changed (the readers call this; so may code that writes outside the stream)."""
        self.mark_all((line,), why)

    def mark_all(self, lines: Iterable[str], why: str) -> None:
        """``mark`` of each of ``lines`` (one read's), holding the lock once."""
        known = [line for line in lines if line in self._versions]
        if not known:
            return
        with self._cond:
            now = self.clock()
            if any([self._mark(line, why, now) for line in known]):  # (every line marked)
                self._wake.notify()  # a line newly dirty: the dispatcher's next turn may come sooner

    def amend(self, line: str, why: str = WHY_AMENDED) -> None:
        """A write outside the streams changed ``line``'s figures (a person classified a stop):
        the line's next version is handed out and told at once, not warmed, so what this
        process reads of the line after the write is read again, not taken from the memo."""
        if line not in self._versions:
            return
        with self._cond:
            self._publish([(line, self._bump(line, self.clock()), (why,), time.time())])

    def _bump(self, line: str, now: float) -> int:
        """The line's next version, handed out at ``now`` (holding ``_cond``)."""
        self._versions[line] += 1
        self._bumped[line] = now
        self.bumps += 1
        return self._versions[line]

    def _mark(self, line: str, why: str, now: float) -> bool:
        """Marks ``line`` dirty; -> whether it was not (a dirty line's turn is already planned)."""
        dirty = self._dirty.get(line)
        if dirty is not None:
            dirty.why.add(why)
            return False
        self._dirty[line] = _Dirty(now, {why})
        return True

    # --- the threads ----------------------------------------------------------------------

    def sleep(self, seconds: float) -> bool:
        """Waits ``seconds`` or until the feed stops (-> True: stopped)."""
        return self._stop.wait(seconds)

    def set_down(self, group: str, error: str | None) -> None:
        """A reader's state: ``error`` while it cannot read Redis, None once it follows again."""
        with self._cond:
            if error is None:
                self._down.pop(group, None)
            else:
                self._down[group] = error
            self._notify()
            self._wake.notify()

    def _dispatch(self) -> None:
        """Turns marks into versions: after ``coalesce_s``, at most every ``min_gap_s``, at
        least every ``quiet_s``; tells them once warm (``store.live_warm``)."""
        with self._cond:
            while not self._stop.is_set():
                now = self.clock()
                for batch in self._warm_ups.expired(now):  # warming too long: the screens join the computation
                    self._publish(batch.changes)
                if not self._down:
                    for line in self.lines:
                        if line not in self._dirty and now - self._bumped[line] >= self.quiet_s:
                            self._mark(line, WHY_CLOCK, now)
                over = self.warm is not None and self._warm_ups.over_budget(now)
                due = [line for line, d in self._dirty.items()
                       if now - d.since >= self.coalesce_s and now - self._bumped[line] >= self.min_gap_s
                       and not self._warm_ups.holds(line, now) and not (over and line != ALERTS)]
                changes = []
                handed_out = time.time()
                for line in due:
                    dirty = self._dirty.pop(line)
                    changes.append((line, self._bump(line, now), tuple(sorted(dirty.why)), handed_out))
                if changes and self.warm is None:
                    self._publish(changes)
                elif changes:
                    for batch in self._warm_ups.start(changes, now, self._warm_one):
                        self._publish(batch.changes)  # still warming a line's last version: told now
                self._wake.wait(self._next_due(now))

    def _warm_one(self, batch_id: int, line: str) -> None:
        cpu = time.thread_time() + cpu_in_children()  # a reader pool's work is the warm-up's too
        try:
            if self.warm is not None and not self._stop.is_set():
                self.warm(line)
        except Exception:  # a failed warm-up only means the screens compute for themselves
            log.exception("live feed: warming %s failed", line)
        finally:
            with self._cond:
                used = time.thread_time() + cpu_in_children() - cpu
                batch = self._warm_ups.finished(batch_id, line, used, self.clock())
                if batch is not None:
                    self._publish(batch.changes)
                self._wake.notify()  # the line may be due again

    def _publish(self, changes: list[Out]) -> None:
        """Tells the subscribers, in one wake-up (holding ``_cond``)."""
        for line, version, why, at in changes:
            self._seq += 1
            self._history.append(Change(self._seq, line, version, why, at))
        self._notify()

    def _next_due(self, now: float) -> float:
        times = [max(d.since + self.coalesce_s, self._bumped[line] + self.min_gap_s)
                 for line, d in self._dirty.items() if line not in self._warm_ups.busy]  # those: woken when warm
        times += self._warm_ups.wake_times()
        if not self._down:
            times += [self._bumped[line] + self.quiet_s for line in self.lines if line not in self._dirty]
        soonest = min(times, default=now + self.quiet_s)
        return min(self.quiet_s, max(0.01, soonest - now))


FEED_KEY = "LIVE_FEED"
WARM_KEY = "LIVE_WARM"
# a callable that starts the process's feed when push is on (``api.live.install``): a screen's live
# read starts it too (``components.data.live_versions``), not only an event stream opened in this process
START_KEY = "LIVE_FEED_START"
_feed_lock = threading.Lock()


def feed_of(config: dict[str, Any], client_of: Callable[[], Any], lines: Sequence[str]) -> LiveFeed:
    """The process's feed kept in the app's ``config`` (``api.context.config_of``), created
    and started on first use, with the app's warm-up hook (``WARM_KEY``: an object with a ``warm(line)`` method,
    ``threads``: how many lines it warms at once, and ``on_commit``: ``LiveFeed``'s) when it has one."""
    feed = config.get(FEED_KEY)
    if feed is not None:
        return feed  # type: ignore[no-any-return]
    with _feed_lock:
        feed = config.get(FEED_KEY)
        if feed is None:
            warmer = config.get(WARM_KEY)
            feed = config[FEED_KEY] = LiveFeed(client_of(), lines, warm=None if warmer is None else warmer.warm,
                                               warm_threads=getattr(warmer, "threads", WARM_THREADS),
                                               follow_alerts=True, on_commit=getattr(warmer, "on_commit", None)).start()
    return feed
