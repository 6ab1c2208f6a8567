"""``Warmer``: the live reads screens made of each line's last version, made again for its
next one before the screens are told of it (``store.live_warm``).

``components.data`` tells the app's Warmer of each live read a screen makes (``note``, in
that request: the copy of its context keeps its app and its language); the live feed calls
``warm(line)`` from its warm-up threads when it hands out the line's next version. Reads
nobody asked for in ``recent_s`` are forgotten: a closed screen stops costing anything.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Hashable

from components import data
from components.data import DataUnavailable


class Warmer:
    """What the screens read of each line's last version, read again for its next one
    (module docstring): ``note`` in a request, ``warm(line)`` from the live feed's threads."""

    def __init__(self, recent_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.recent_s = recent_s
        self.clock = clock
        self._lock = threading.Lock()
        # per line: read key -> (the asking request's context, the read, when asked, rank)
        self._reads: dict[str, dict[Hashable, tuple[contextvars.Context, Callable[[], None], float, int]]] = {}
        self.warmed = 0  # reads made again (tests, benchmarks)
        self.threads = 4  # lines warmed at once (the live feed's threads: ``store.live_warm``)
        self.on_commit: Callable[[list[str]], None] | None = None  # the live feed's (a reader pool's prepare_now)
        self._in_warm = contextvars.ContextVar("warming", default=False)

    def note(self, line: str, key: Hashable, again: Callable[[], None], *, first: bool = False) -> None:
        """A screen read ``key`` of ``line``; ``again()`` makes that read for the current
        version (run in a copy of this request's context); ``first``: before the others of
        the line (a read that keeps what others then find: a line's view keeps its KPIs)."""
        if self._in_warm.get():
            return  # a read made again is not a screen asking
        ctx = contextvars.copy_context()
        with self._lock:
            self._reads.setdefault(line, {})[key] = (ctx, again, self.clock(), 0 if first else 1)

    def warm(self, line: str) -> None:
        """Every read of ``line`` a screen made in the last ``recent_s``, for its current version."""
        now = self.clock()
        with self._lock:
            reads = self._reads.get(line, {})
            for read_key, (_ctx, _again, used, _rank) in list(reads.items()):
                if now - used > self.recent_s:
                    del reads[read_key]
            mine = sorted(((rank, i, ctx, again) for i, (ctx, again, _used, rank) in enumerate(reads.values())),
                          key=lambda read: read[:2])
        for _rank, _i, ctx, again in mine:
            ctx = ctx.copy()
            ctx.run(self._in_warm.set, True)
            ctx.run(data.stop_consulting)  # what it reads is no shared answer's
            try:
                ctx.run(again)
                self.warmed += 1
            except DataUnavailable:
                return  # Redis unreadable: the screens will see it themselves

    def __len__(self) -> int:
        return sum(len(reads) for reads in self._reads.values())
