"""``ReaderPool``: lines' live views read in more than one process.

A live view of a line costs a few milliseconds of CPU (``PlantReader.line_now``: the shift
window's sums, its stops, the live state), and at 1 Hz every line changes in every worker
commit: a 50-line plant needs its 50 views about every half second, more than one Python
process computes in the 100 ms a screen may take. With a pool, the dashboard process hands
``line_now`` of each line to one of ``processes`` child processes (``multiprocessing``,
spawned: the server process runs threads) and only turns the answers into views.

* Each line always goes to the same child (round robin over the plant's lines): the line's
  followers (``store.open_edges``) and caches live there, as they would in the server.
* A child computes one line at a time; the warm-up threads (``store.live_warm``) keep every
  child busy, a round of lines queued, whose first round trips it reads ahead in one
  (``store.read_ahead``). Answers are pickled back (about 5 KB a line).
* Nothing waits on a child that is not there: while it starts (about a second of imports),
  after it died (started again at most every ``RESTART_S``), or when it did not answer within
  ``TIMEOUT_S`` (killed), ``line_now`` raises ``PoolUnavailable`` and the caller reads in
  its own process, as without a pool. Redis' errors in a child reach the caller as such.
* A child ends with its pipe: when the server process exits, however it exits.
* A child collects its garbage between rounds of views (when asked nothing for ``IDLE_S``),
  so that the collector does not stop a view in the middle of one (``idle_collection``),
  and prepares its lines' next views there (``store.preparation``): the round's views then
  read and feed only the events that came after.

``processes_for(setting, lines)``: how many children a plant gets (``VIEW_PROCESSES``).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

from store.preparation import Preparation

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0  # a child answering nothing this long is killed (the screens' Redis timeout is 2 s)
RESTART_S = 5.0  # a child that died is started again at most this often
AUTO_MIN_LINES = 16  # "auto": a pool only for plants this big (smaller ones compute fast enough alone)
AUTO_MAX_PROCESSES = 4
IN_FLIGHT_PER_CHILD = 16  # lines asked of a child at once (the warm-up threads: ``warm_threads``): a round, read ahead
IDLE_S = 0.02  # a child asked nothing for this long is between rounds of views: it collects its garbage then
READ_AHEAD_MAX = 32  # requests of a round a child reads ahead at once (``store.read_ahead``)
PREPARE = "prepare"  # to a child: the worker committed, prepare the next views now
IDLE_GC_AT = 5_000  # young objects (of the 50,000 that set off a collection while computing) worth collecting
_cpu = threading.local()  # per thread: CPU seconds its calls took in the children


class PoolUnavailable(Exception):
    """No child can answer now: read in this process."""


def processes_for(setting: int | None, lines: int, cpus: int | None = None) -> int:
    """Children for a plant of ``lines`` lines: ``setting`` when given (0: no pool), else
    ("auto") one per CPU up to ``AUTO_MAX_PROCESSES`` for plants of ``AUTO_MIN_LINES``
    lines or more on a machine with more than one CPU, none otherwise."""
    if setting is not None:
        return max(0, setting)
    if cpus is None:
        cpus = os.cpu_count() or 1
    return min(cpus, AUTO_MAX_PROCESSES) if lines >= AUTO_MIN_LINES and cpus > 1 else 0


def pool_for(settings: Any) -> ReaderPool | None:
    """The pool of ``settings`` (``view_processes``, and the plant's lines), None: no pool."""
    lines = [line.id for line in settings.plant.lines]
    processes = processes_for(getattr(settings, "view_processes", None), len(lines))
    return ReaderPool(settings, lines, processes) if processes else None


def cpu_in_children() -> float:
    """CPU seconds the children spent on this thread's calls so far (a warm-up's cost)."""
    return float(getattr(_cpu, "s", 0.0))


class _Run:
    """One start of a child: its process, its pipe, the calls it has not answered yet. A
    thread per run reads the answers (``_answers``), so requests queue in the pipe and the
    child goes from one line to the next without waiting for this process."""

    def __init__(self, settings: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, theirs = ctx.Pipe()
        self.process: Any = ctx.Process(target=_serve, args=(theirs, settings), name="reader-pool", daemon=True)
        self.process.start()
        theirs.close()
        self.ready = False
        self.dead = False
        self.prepared_cpu_s = 0.0  # the child's CPU seconds preparing views between rounds
        self.early = 0  # its views asked at an earlier now than their followers were fed for
        self.told_preparations = 0  # its preparations because the worker committed (``PREPARE``)
        self.pending: dict[int, Future[tuple[bool, Any, float]]] = {}
        self.lock = threading.Lock()  # pending, dead
        self.sending = threading.Lock()
        threading.Thread(target=self._answers, name="reader-pool-answers", daemon=True).start()

    def _answers(self) -> None:
        """Reads the answers until the pipe ends (the child exited or was killed), then closes
        it: only this thread does, and not while a request is being sent. A pipe closed
        under a thread still reading it frees its descriptor's number for the next run's
        pipe, where that thread's read (retried after a signal) took the first bytes of the
        next child's "ready", and the new run never started."""
        try:
            self._read_answers()
        finally:
            with self.sending:
                self.conn.close()

    def _read_answers(self) -> None:
        while True:
            try:
                got = self.conn.recv()
            except Exception as exc:  # noqa: BLE001  # the pipe ended or broke: whatever it was, the run is over
                if not self.dead:
                    self.process.join(1.0)  # its exit code, when it is exiting
                    code = self.process.exitcode if not self.process.is_alive() else "still running"
                    log.warning("reader pool: a child's answers ended (%s: %s; exit code %s); it starts again",
                                type(exc).__name__, exc, code)
                self.stop()
                return
            if got == "ready":
                self.ready = True
                continue
            if got[0] == "prepared":  # (between rounds: ``store.preparation``)
                self.prepared_cpu_s += got[1]
                self.early = got[2]
                self.told_preparations += got[3]
                continue
            rid, *reply = got
            with self.lock:
                future = self.pending.pop(rid, None)
            if future is not None:
                future.set_result(tuple(reply))

    def send(self, request: tuple[Any, ...]) -> Future[tuple[bool, Any, float]]:
        future: Future[tuple[bool, Any, float]] = Future()
        rid = id(future)
        with self.lock:
            if self.dead:
                raise PoolUnavailable("the child is gone")
            self.pending[rid] = future
        try:
            with self.sending:  # not holding ``lock``: the answers are read meanwhile
                self.conn.send((rid, *request))
        except (OSError, ValueError) as exc:
            self.stop()
            raise PoolUnavailable(str(exc)) from exc
        return future

    def stop(self) -> None:
        """Kills the child (if it still runs); its unanswered calls fail. Its pipe ends with
        it, and the answers thread closes this end."""
        with self.lock:
            self.dead = True
            pending, self.pending = self.pending, {}
        for future in pending.values():
            future.set_exception(PoolUnavailable("the child is gone"))
        if self.process.is_alive():
            self.process.kill()


class _Child:
    """The runs of one child, one after the other (``lock``: starting and stopping)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.run: _Run | None = None
        self.started = -1e18  # monotonic


class ReaderPool:
    """``line_now`` of ``lines`` in ``processes`` children, each with its own ``PlantReader``
    of ``settings`` (``config.settings.Settings``: the Redis URL, the plant)."""

    def __init__(self, settings: Any, lines: list[str], processes: int, *,
                 timeout_s: float = TIMEOUT_S, restart_s: float = RESTART_S) -> None:
        if processes < 1:
            raise ValueError("a reader pool needs at least one process")
        self.settings = settings
        self.timeout_s = timeout_s
        self.restart_s = restart_s
        self._children = [_Child() for _ in range(processes)]
        self._of = {line: self._children[i % processes] for i, line in enumerate(lines)}
        self._closed = False
        self.calls = 0  # answered by a child (tests, benchmarks)
        self.cpu_s = 0.0  # the children's CPU seconds for those answers (benchmarks)
        self.around: collections.Counter[str] = collections.Counter()  # read around the pool, by why
        self.prepare_hints = 0  # commits told to a child (tests, benchmarks)

    def __len__(self) -> int:
        return len(self._children)

    @property
    def prepared_cpu_s(self) -> float:
        """The children's CPU seconds preparing views between rounds (their runs now; benchmarks)."""
        return sum(c.run.prepared_cpu_s for c in self._children if c.run is not None)

    @property
    def early(self) -> int:
        """Views whose followers had been prepared for a later ``now`` (read without them)."""
        return sum(c.run.early for c in self._children if c.run is not None)

    @property
    def told_preparations(self) -> int:
        """Preparations the children ran because they were told of a commit (``prepare_now``)."""
        return sum(c.run.told_preparations for c in self._children if c.run is not None)

    @property
    def warm_threads(self) -> int:
        """Warm-up threads that keep every child busy (a line always queued behind the one it reads)."""
        return IN_FLIGHT_PER_CHILD * len(self._children)

    def line_now(self, line: str, start: float, end: float, now: float, *, with_live: bool = True) -> Any:
        """``PlantReader.line_now`` of ``line`` computed by its child; ``PoolUnavailable``
        when that child cannot answer now."""
        child = self._of.get(line)
        if child is None:
            raise PoolUnavailable(f"line {line!r} has no child")
        run = self._ready(child)
        future = run.send((line, start, end, now, with_live))
        try:
            ok, value, cpu = future.result(self.timeout_s)
        except TimeoutError:
            log.warning("reader pool: no answer for %s within %.0f s; the child is stopped", line, self.timeout_s)
            run.stop()
            raise PoolUnavailable("timed out") from None
        _cpu.s = cpu_in_children() + cpu
        if not ok:
            raise value  # the reader's error (RedisError, UnknownLine...), as in this process
        self.calls += 1
        self.cpu_s += cpu
        return value

    def prepare_now(self, lines: Iterable[str]) -> None:
        """The worker committed ``lines`` (``store.live_feed``, before their versions are
        handed out): their children prepare the next views now, in the time until the round
        that asks them (``store.preparation``), not when their schedule says."""
        children = {id(c): c for line in lines if (c := self._of.get(line)) is not None}
        for child in children.values():
            run = child.run
            if run is not None and run.ready and not run.dead:
                with contextlib.suppress(OSError, ValueError), run.sending:
                    run.conn.send(PREPARE)
                    self.prepare_hints += 1

    def line_now_or(self, reader: Any, line: str, start: float, end: float, now: float, *,
                    with_live: bool = True) -> Any:
        """``line_now`` by the line's child, else by ``reader`` (a ``PlantReader`` of this process)."""
        try:
            return self.line_now(line, start, end, now, with_live=with_live)
        except PoolUnavailable as exc:
            self.around[str(exc)] += 1
            return reader.line_now(line, start, end, now, with_live=with_live)

    def _ready(self, child: _Child) -> _Run:
        """The child's run once it has started; else starts it (at most every ``restart_s``)
        and raises ``PoolUnavailable``."""
        with child.lock:
            if self._closed:
                raise PoolUnavailable("closed")
            run = child.run  # a child that exits closes its pipe: its run's answers thread stops the run
            if run is not None and not run.dead:
                if run.ready:
                    return run
                raise PoolUnavailable("starting")
            if time.monotonic() - child.started >= self.restart_s:
                child.started = time.monotonic()
                child.run = _Run(self.settings)
            raise PoolUnavailable("starting")

    def start(self) -> None:
        """Starts every child now (else each starts with its first call)."""
        for child in self._children:
            with contextlib.suppress(PoolUnavailable):
                self._ready(child)

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether every child has started within ``timeout_s`` (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.start()  # (again: a child that died starting is started again, as a call would)
            if all(c.run is not None and c.run.ready and not c.run.dead for c in self._children):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def close(self) -> None:
        with contextlib.ExitStack() as locks:
            for child in self._children:
                locks.enter_context(child.lock)
            self._closed = True
            runs = [c.run for c in self._children if c.run is not None]
        for run in runs:
            run.stop()


def idle_collection(counts: tuple[int, int, int], thresholds: tuple[int, ...]) -> int | None:
    """The generation a child collects while idle (``gc.get_count()``, ``gc.get_threshold()``):
    the one the collector would take next (its escalation to older generations), once
    ``IDLE_GC_AT`` young objects have piled up; None: not yet. A collection of tens of
    thousands of young objects took 30-80 ms, and when the collector chose its moment it
    was in the middle of a round, where one line's view then waited for it (a third of a
    round of 25 lines): collected between rounds, none is left for the views."""
    young, middle, old = counts
    if young < IDLE_GC_AT:
        return None
    if middle > thresholds[1]:  # as the collector: the oldest generation over its threshold
        return 2 if old > thresholds[2] else 1
    return 0


def _serve(conn: Connection, settings: Any) -> None:
    """A child: answers ``line_now`` requests, in order, until its pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    from store.clients import client_for
    from store.reader import PlantReader

    reader = PlantReader(client_for(settings, "screen"), settings.plant)
    prepared = Preparation(reader)
    gc.freeze()  # as the server process (components.app_factory.tune_runtime): what exists is never traced again,
    gc.set_threshold(50_000, 20, 100)  # and young collections every 50,000 allocations, not 700
    conn.send("ready")
    while True:
        try:
            generation = idle_collection(gc.get_count(), gc.get_threshold())
            if generation is not None and not conn.poll(IDLE_S):
                gc.collect(generation)
            while (wait := prepared.wait_s()) is not None and not conn.poll(wait):
                _prepare(conn, prepared, reader)
            got = conn.recv()
            if got == PREPARE:  # the worker committed: the next round's lines prepared now, not when it is due
                _prepare(conn, prepared, reader, told=True)
                continue
            batch = [got]
            while len(batch) < READ_AHEAD_MAX and conn.poll(0):  # the rest of the round, queued behind it
                if (got := conn.recv()) != PREPARE:
                    batch.append(got)
        except (EOFError, OSError):
            return  # the server process is gone
        cpu = time.thread_time()
        if len(batch) > 1:
            _read_ahead(reader, batch)
        shared = (time.thread_time() - cpu) / len(batch)  # the round trip read ahead, a share each
        for rid, line, start, end, now, with_live in batch:
            prepared.asked(line, start)
            cpu = time.thread_time()
            value: Any
            try:
                ok, value = True, reader.line_now(line, start, end, now, with_live=with_live)
            except Exception as exc:  # noqa: BLE001  # the caller raises it
                ok, value = False, exc
            try:
                conn.send((rid, ok, value, time.thread_time() - cpu + shared))
            except (EOFError, OSError):
                return
            except Exception as exc:  # noqa: BLE001  # an error that does not pickle
                conn.send((rid, False, RuntimeError(f"{type(exc).__name__}: {exc}"), 0.0))
        reader.window_reads.ahead.clear()  # (what a view did not take: its state had moved)


def _prepare(conn: Connection, prepared: Preparation, reader: Any, *, told: bool = False) -> None:
    """A preparation; ``told``: because the worker committed (``PREPARE``), said even when it had nothing to do."""
    cpu = prepared.run(conn)
    if cpu or told:
        conn.send(("prepared", cpu, reader.window_reads.edges.early, told))


def _read_ahead(reader: Any, batch: list[Any]) -> None:
    """The round trips the views of ``batch`` will make first, in one (``store.read_ahead``):
    planned with what ``PlantReader.line_now`` asks its window (``line_now_reads``; a view whose
    plan differs reads for itself). Any error here only means each view reads for itself."""
    planned = []
    for _rid, line, start, end, now, with_live in batch:
        with contextlib.suppress(Exception):
            cfg, ids, also = reader.line_now_reads(line, with_live)
            planned.append((line, reader.window_reads.plan_totals(cfg, ids, start, end, now, ids, also)))
    with contextlib.suppress(Exception):
        reader.window_reads.ahead.prefetch(reader.window_reads.redis, planned)

