"""``Preparation``: a reader pool child (``store.reader_pool``) prepares its lines' next live
views between rounds, so that a round's views compute only what came after.

At 1 Hz a line's live view fed its machines' followers (``store.open_edges``) the half
second of events since the last round, and read and parsed them: about a quarter of its
CPU, spent while the whole round of lines waited. Between rounds the child is idle: fed
there, most of those events cost the round nothing (``WindowReads.prepare``).
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from store.reasons import REFRESH_S

log = logging.getLogger(__name__)

PREPARE_AHEAD_S = 0.05  # a child prepares its lines' next views this long before their round is due
PREPARE_LAG_S = 0.1  # ... up to this long before its clock (the views of a round are asked later)
PREPARE_RECENT_S = 10.0  # lines asked this recently are prepared
PREPARE_PAUSE_S = 5.0  # after a preparation failed (Redis?), none for this long
ROUND_GAP_S = 0.05  # a request after this long without one begins a round
ROUNDS_KEPT = 6  # the period of rounds: the median of the last intervals between them
PERIOD_S = (0.1, 10.0)  # ... within these bounds (0.5 s until two rounds were seen)


class Preparation:
    """A child's lines' next views prepared between rounds. Rounds come about every half
    second (``store.live_feed``'s ``MIN_GAP_S``: all the child's lines at once); the child
    learns their period and, ``PREPARE_AHEAD_S`` before the next round is due (then once a
    period while none comes), prepares the lines asked within ``PREPARE_RECENT_S``: their
    bookkeeping and new stream entries read in one round trip (``store.read_ahead``), their
    followers fed up to ``PREPARE_LAG_S`` before the clock, a new commit's stops and closed
    sums kept (``WindowReads.prepare``), and the managed reason lists read again when half
    their ``REFRESH_S`` has passed (so a view does not wait for that round trip). A request
    that comes in ends a preparation at once. A view asked at an earlier ``now`` than an
    event its followers were fed reads without them (``OpenEdges.early``): the lag keeps the
    views of a round clear of it."""

    def __init__(self, reader: Any, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.reader = reader  # a ``PlantReader``
        self.clock = clock
        self.wall = wall
        self.lines: dict[str, tuple[float, float]] = {}  # line -> (its window's start, asked at)
        self.rounds: collections.deque[float] = collections.deque(maxlen=ROUNDS_KEPT)  # when they began
        self.last = -1e18  # the last request (clock)
        self.prepared = -1e18  # the last preparation
        self.paused_until = -1e18

    def asked(self, line: str, start: float) -> None:
        """A view of ``line``'s window from ``start`` was asked (now)."""
        at = self.clock()
        if at - self.last > ROUND_GAP_S:
            self.rounds.append(at)
        self.last = at
        self.lines[line] = (start, at)

    def period(self) -> float:
        """Seconds between rounds: the median of the last ones, within ``PERIOD_S``."""
        gaps = sorted(b - a for a, b in itertools.pairwise(self.rounds))
        return min(max(gaps[len(gaps) // 2], PERIOD_S[0]), PERIOD_S[1]) if gaps else 0.5

    def wait_s(self) -> float | None:
        """How long to wait for a request before preparing (None: no line to prepare)."""
        if not self.lines:
            return None
        period, begun, at = self.period(), self.rounds[-1] if self.rounds else self.last, self.clock()
        due = begun + period - PREPARE_AHEAD_S if self.prepared < begun else self.prepared + period
        return max(0.0, due - at, self.paused_until - at, self.last + ROUND_GAP_S - at)

    def _reads(self, line: str) -> Any:
        """``PlantReader.line_now_reads`` of ``line`` (None: not a line of the plant any more)."""
        try:
            return self.reader.line_now_reads(line, False)
        except LookupError:
            self.lines.pop(line, None)
            return None

    def run(self, conn: Any) -> float:
        """One preparation of the recent lines, until ``conn`` (the child's pipe) holds a
        request: its CPU seconds."""
        at = self.prepared = self.clock()
        for line in [line for line, (_, asked) in self.lines.items() if at - asked > PREPARE_RECENT_S]:
            del self.lines[line]
        if not self.lines:
            return 0.0
        cpu, now, reads = time.thread_time(), self.wall() - PREPARE_LAG_S, self.reader.window_reads
        try:
            # the managed reason lists read here, not in a view (``ReasonLists.effective``'s round trip)
            self.reader.reason_lists.effective(REFRESH_S / 2)
            lines = [(self._reads(line), start) for line, (start, _) in list(self.lines.items())]
            lines = [(reads_of, start) for reads_of, start in lines if reads_of is not None]
            reads.ahead.prefetch(reads.redis, [(cfg.id, reads.plan_prepare(cfg)) for (cfg, _, _), _ in lines])
            for (cfg, ids, _), start in lines:
                if conn.poll(0):
                    break  # a round came: its views first
                if now > start:
                    reads.prepare(cfg, ids, start, now)
        except Exception as exc:  # noqa: BLE001  # the views read for themselves (and say what is wrong)
            log.debug("preparing the next views failed (%s: %s)", type(exc).__name__, exc)
            self.paused_until = self.clock() + PREPARE_PAUSE_S
        finally:
            reads.ahead.clear()
        return time.thread_time() - cpu
