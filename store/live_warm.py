"""The warm-ups between a line version handed out and told (``store.live_feed``).

With a ``warm(line)`` hook (``components.warm.Warmer``) the feed hands a new version out at
once but tells the subscribers only once the hook has recomputed, for it, what the screens
asked of the line's last version (in ``WARM_THREADS`` threads; with a reader pool, its
``warm_threads``), or after ``max_s`` at the
latest: the screens then ask for answers already computed.

Two limits keep the warm-ups from taking more than the process has: a line gets no next
version while its warm-up runs (up to ``stuck_s``), and no line does while the warm-ups
used more than ``budget`` of a core over the last ``BUDGET_WINDOW_S`` (``over_budget``).

``WarmUps`` only keeps the state; the feed calls every method holding its own lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

WARM_MAX_S = 0.5  # a change is told at the latest this long after its version, warm or not
WARM_THREADS = 4  # lines warmed at once (in this process: more only contend for its GIL)
WARM_STUCK_S = 5.0  # a warm-up running this long no longer holds its line's next version back
WARM_BUDGET = 0.5  # of one core: the warm-ups' CPU over the last BUDGET_WINDOW_S; above it, versions wait
BUDGET_WINDOW_S = 2.0

Out = tuple[str, int, tuple[str, ...], float]  # a version handed out: line, version, why, wall clock


@dataclass(slots=True)
class Batch:
    changes: list[Out]  # handed out together, told together
    by: float  # told at the latest then (feed clock)
    left: int  # lines still warming


class WarmUps:
    def __init__(self, max_s: float = WARM_MAX_S, stuck_s: float = WARM_STUCK_S, budget: float = WARM_BUDGET,
                 threads: int = WARM_THREADS) -> None:
        self.threads = threads
        self.max_s = max_s
        self.stuck_s = stuck_s
        self.budget = budget
        self.batches: dict[int, Batch] = {}  # versions handed out, not yet told
        self.busy: dict[str, float] = {}  # line being warmed -> since
        self.cpu: deque[tuple[float, float]] = deque()  # (ended, CPU seconds) of recent warm-ups
        self._cpu_sum = 0.0  # their sum (kept: the dispatcher asks at every turn)
        self._last_id = 0
        self._pool: ThreadPoolExecutor | None = None

    def holds(self, line: str, now: float) -> bool:
        """Whether ``line``'s warm-up still runs (and has not run for ``stuck_s``)."""
        return now - self.busy.get(line, -1e18) < self.stuck_s

    def over_budget(self, now: float) -> bool:
        """Whether the warm-ups used more than ``budget`` of a core over the last ``BUDGET_WINDOW_S``."""
        while self.cpu and now - self.cpu[0][0] > BUDGET_WINDOW_S:
            self._cpu_sum -= self.cpu.popleft()[1]
        if not self.cpu:
            self._cpu_sum = 0.0  # no rounding residue left behind
        return self._cpu_sum > self.budget * BUDGET_WINDOW_S

    def start(self, changes: list[Out], now: float, run: Callable[[int, str], None]) -> list[Batch]:
        """New versions: ``run(batch id, line)`` in the warm-up threads for each; -> the
        batches to tell now (those still warming a line's last version, and this one when
        the threads are shut: the feed is stopping)."""
        lines = {out[0] for out in changes}
        now_told = [self.batches.pop(i) for i, batch in list(self.batches.items())
                    if lines & {out[0] for out in batch.changes}]
        self._last_id += 1
        self.batches[self._last_id] = Batch(changes, now + self.max_s, len(changes))
        self.busy.update(dict.fromkeys(lines, now))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="live-warm")
        try:
            for line in lines:
                self._pool.submit(run, self._last_id, line)
        except RuntimeError:  # shut
            for line in lines:
                self.busy.pop(line, None)
            now_told.append(self.batches.pop(self._last_id))
        return now_told

    def finished(self, batch_id: int, line: str, cpu_s: float, now: float) -> Batch | None:
        """``line``'s warm-up is over (``cpu_s``: its thread's CPU time); -> its batch when
        it was the last of it (to tell now)."""
        self.cpu.append((now, cpu_s))
        self._cpu_sum += cpu_s
        self.busy.pop(line, None)
        batch = self.batches.get(batch_id)
        if batch is None:
            return None
        batch.left -= 1
        return self.batches.pop(batch_id) if batch.left <= 0 else None

    def expired(self, now: float) -> list[Batch]:
        """The batches warming for longer than ``max_s`` (to tell now)."""
        return [self.batches.pop(i) for i, batch in list(self.batches.items()) if now >= batch.by]

    def wake_times(self) -> list[float]:
        """When the feed must look again: a batch's deadline, a stuck warm-up, the budget freeing up."""
        times = [batch.by for batch in self.batches.values()]
        times += [since + self.stuck_s for since in self.busy.values()]
        if self.cpu:
            times.append(self.cpu[0][0] + BUDGET_WINDOW_S)
        return times

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
