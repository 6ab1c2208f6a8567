"""The open edge of a line's machines: what the worker has not stored yet, live to the second.

The worker stores closed minutes up to each machine's watermark and keeps its state there
(the carry, ``store.bookkeeping``); everything after, up to a read's ``now``, is the
**open edge**: the carry restored and fed the events it holds back and the stream entries
after the last one the worker read. ``OpenEdges.edges`` gives each machine's open edge as
of a window's end (``Edge``: the minutes it closed, the open minute, its stops):

* **followed** (``OpenEdges._followed``): per line and process, each machine's carry is
  restored once and then fed every stream entry as it comes, and forgets what the worker
  stored at each commit (``MachineAccumulator.forget_until``): each entry is decoded and
  fed once per process, not once per read and commit;
* **restored for the read** (``OpenEdges._restored``): the carry restored and fed the
  newer entries, the restored carry kept while the line's bookkeeping stays the same
  (``_Base``). For machines without a carry, and where followers cannot answer.

Both give the same figures (``tests/test_followed_edges.py``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from domain import contract
from domain.accounting import MachineContext, Stop
from domain.engine import MachineAccumulator, MinuteRollup, feed_order
from domain.model import Event
from domain.plant import Line, Machine, Plant
from domain.totals import Totals
from store.bookkeeping import LineSnapshot
from store.line_worker import first_minute, usable_event
from store.progress import pending_events

log = logging.getLogger(__name__)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


@dataclass(frozen=True, slots=True)
class Edge:
    """The open edge of one machine as of the window's end (``MachineAccumulator.edge_minutes``):
    the minutes it closed past the watermark, the open minute's start and totals, its stops."""

    minutes: list[MinuteRollup]
    cursor: float
    partial: Totals
    stops: list[Stop]

    @classmethod
    def of(cls, acc: MachineAccumulator, end: float) -> Edge:
        return cls(*acc.edge_minutes(end))


@dataclass(slots=True)
class _Follower:
    """A machine's open edge kept across reads and worker commits: its carry restored once,
    then fed every stream entry as it comes (``_LineFollow``)."""

    acc: MachineAccumulator
    processed: float  # the worker's time processed, as last forgotten up to (``MachineAccumulator.forget_until``)
    last_order: tuple[float, int]  # ``feed_order`` of the last event fed
    since: list[tuple[tuple[int, int], Event]]  # the entries after the worker's last id (to restore again)
    future: list[Event] = field(default_factory=list)  # entries read with a time after the reads' now


@dataclass(slots=True)
class _LineFollow:
    """The followers of one line's machines, all at one stream position (``pos``), for one
    line config and one count of the worker's rewinds (late data: restored again)."""

    line: Line
    amend: int
    generation: int = -1
    pos: str | None = None  # the id of the last stream entry read
    now: float = -math.inf  # the latest now fed up to: a read at an earlier now cannot use them
    machines: dict[str, _Follower] = field(default_factory=dict)
    offered: tuple[str, list[Any]] | None = None  # entries after a position, read with the bookkeeping
    carried: tuple[int, list[str], tuple[int, int]] = (-1, [], (-1, -1))  # of a generation (``_follow``)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True, slots=True)
class _Base:
    """A machine's carry restored and fed the events it held back (never fed again: copied)."""

    generation: int
    acc: MachineAccumulator
    latest: float  # the latest time of those events
    last_order: tuple[float, int]  # ``feed_order`` of the last of them


class OpenEdges:
    """The open edges of every line's machines, for one reader (thread-safe)."""

    def __init__(self, redis_client: redis.Redis, plant: Callable[[], Plant], *,
                 max_edge_events: int = 200_000) -> None:
        self.redis = redis_client
        self._plant = plant
        self.max_edge_events = max_edge_events
        self._warned: set[str] = set()
        # per machine: the shift-calendar cache the restored accumulators share
        self._contexts: dict[tuple[str, str], MachineContext] = {}
        # per machine: its carry restored and fed the events it holds (``_Base``), per generation
        self._bases: dict[tuple[str, str], _Base] = {}
        # per line: its machines' open edges followed across reads and commits (``_followed``)
        self._follows: dict[str, _LineFollow] = {}
        self._follows_lock = threading.Lock()
        self._behind: dict[str, int] = {}  # per line: the generation at which it had too much to follow
        self.early = 0  # reads at an earlier now than an event their followers were fed (restored instead)

    @property
    def plant(self) -> Plant:
        return self._plant()

    def edges(self, line: Line, snapshot: LineSnapshot, generation: int, machines: list[str],
               now: float, end: float) -> dict[str, Edge]:
        """Each machine's open edge as of ``end``: from the line's followers (``_followed``)
        when they can answer, else (and for machines the worker keeps no carry of yet)
        restored for this read (``_restored``)."""
        if not machines:
            return {}
        carried = [m for m in machines if m in snapshot.heads]
        edges = self._followed(line, snapshot, generation, carried, now, end) if carried else None
        rest = [m for m in machines if edges is None or m not in edges]  # all, or those without carry
        if rest:
            edges = edges or {}
            edges.update((m, Edge.of(acc, end)) for m, acc in self._restored(line, snapshot, generation, rest,
                                                                               now).items())
        return edges or {}

    def forget(self, line_id: str) -> None:
        """Drops the line's followers and restored carries (Redis lost the bookkeeping they
        were made from: the next read restores them from the new one)."""
        with self._follows_lock:
            self._follows.pop(line_id, None)
            self._behind.pop(line_id, None)
            for key in [key for key in self._bases if key[0] == line_id]:
                del self._bases[key]

    # --- followers: the open edge carried across reads and commits ------------------------------

    def position(self, line_id: str) -> str | None:
        """The id of the last stream entry the line's followers read (None: not followed)."""
        follow = self._follows.get(line_id)
        return None if follow is None else follow.pos

    def offer(self, line_id: str, pos: str, entries: list[Any]) -> None:
        """The stream entries after ``pos`` (read with the line's bookkeeping, in the same
        round trip): the followers take them instead of reading, if still at ``pos``."""
        follow = self._follows.get(line_id)
        if follow is not None:
            follow.offered = (pos, entries)

    def _followed(self, line: Line, snapshot: LineSnapshot, generation: int, machines: list[str],
                  now: float, end: float) -> dict[str, Edge] | None:
        """The open edges from the line's followers, brought up to the stream's newest entry
        and the worker's latest commit first (``_follow``). None where they cannot answer: a
        read at an earlier ``now`` than an event they were fed, a window ending before what
        they were fed, more entries than ``max_edge_events``.

        A follower is the machine's carry restored once and fed every entry as it comes (so
        each entry is decoded and fed once per process, not once per read): at each worker
        commit it forgets what the worker stored (``MachineAccumulator.forget_until``: the
        closed minutes and ended stops before the time it processed), which leaves what a carry
        restored and fed the same entries would hold. An entry older than what a follower
        processed, a rewind (late data), a watermark that went back or a stop that ended
        exactly at that time: that machine is restored from its carry again."""
        with self._follows_lock:
            follow = self._follows.get(line.id)
            if follow is not None and follow.line is not line and follow.line == line:
                follow.line = line  # the same config, copied again (managed reason lists: every second)
            if follow is None or follow.line is not line or follow.amend != snapshot.amend:
                follow = self._follows[line.id] = _LineFollow(line, snapshot.amend)
        if self._behind.get(line.id) == generation:
            return None  # too many entries to follow at this commit of the worker's (``_follow``)
        with follow.lock:
            if now < follow.now and any(f.acc.processed_until > now for f in follow.machines.values()):
                self.early += 1  # fed an event after now (for a later read, or ``follow``)
                return None
            if not self._follow(follow, snapshot, generation, now):
                self._behind[line.id] = generation
                return None
            edges: dict[str, Edge] = {}
            for m in machines:
                follower = follow.machines.get(m)
                if follower is None or follower.acc.processed_until > end:
                    return None
                edges[m] = Edge.of(follower.acc, end)
            return edges

    def follow(self, line: Line, snapshot: LineSnapshot, generation: int, now: float) -> bool:
        """The line's followers fed what came after their position up to ``now``, answering
        no read (``WindowReads.prepare``): the next read feeds only what came after."""
        return self._followed(line, snapshot, generation, [], now, now) is not None

    def _follow(self, follow: _LineFollow, snapshot: LineSnapshot, generation: int, now: float) -> bool:
        """Feeds the line's followers the entries after their position (a new machine: its
        carry restored and fed the entries after its own last id), then, at a new commit,
        lets them forget what the worker stored. False: too many entries to follow (more than
        ``max_edge_events`` the worker has not stored: restored per read until its next commit)."""
        line = follow.line
        if follow.carried[0] != generation:  # the machines the worker keeps a carry of, and its newest last id
            kept = [m for m in snapshot.heads if line.machine(m) is not None]
            follow.carried = (generation, kept, max((contract.stream_id_tuple(snapshot.last_id(m)) for m in kept),
                                                    default=(-1, -1)))
        _, carried, newest_last = follow.carried
        new = [m for m in carried if m not in follow.machines]
        lows = [snapshot.last_id(m) for m in new]
        if follow.pos is not None:
            lows.append(follow.pos)
        if not lows:
            return True
        after = min(lows, key=contract.stream_id_tuple)
        offered, follow.offered = follow.offered, None
        entries = None
        if offered is not None and offered[0] == after and len(offered[1]) < self.max_edge_events:
            entries = [(_text(entry_id), fields) for entry_id, fields in offered[1]]
            reach = contract.stream_id_tuple(entries[-1][0] if entries else after)
            if newest_last > reach:
                entries = None  # read before this bookkeeping (another thread's): not all the worker had
        if entries is None:
            entries = self._stream_after(line.id, after)
        if len(entries) >= self.max_edge_events:
            self._follows.pop(line.id, None)  # the worker is far behind (stopped?): restored per read
            return False
        pos = contract.stream_id_tuple(follow.pos) if follow.pos is not None else None
        wanted = set(carried)
        read: dict[str, list[tuple[tuple[int, int], Event]]] = {}
        for entry_id, fields in entries:
            event = usable_event(line, fields, math.inf, 0.0)  # a time after now is kept for later
            if event is None or isinstance(event, str) or event.machine not in wanted:
                continue
            read.setdefault(event.machine, []).append((contract.stream_id_tuple(entry_id), event))
        for m in new:
            follow.machines[m] = self._restore_follower(line, snapshot, m, read.get(m, []), now)
        for m, follower in list(follow.machines.items()):
            if m in new:
                continue
            if m not in wanted:
                del follow.machines[m]  # the worker no longer keeps it
                continue
            got = read.get(m)
            if not got and not follower.future:
                continue  # nothing new for it
            fresh = [(i, e) for i, e in got or () if pos is None or i > pos]
            follower.since.extend(fresh)
            due = [e for e in follower.future if e.ts <= now] + [e for _, e in fresh if e.ts <= now]
            follower.future = [e for e in follower.future if e.ts > now] + [e for _, e in fresh if e.ts > now]
            if due:
                due.sort(key=feed_order)
                first = due[0]
                if feed_order(first) < follower.last_order or first.ts < follower.acc.processed_until:
                    follow.machines[m] = self._restore_follower(line, snapshot, m, follower.since, now)
                    continue
                for event in due:
                    follower.acc.feed(event)
                follower.last_order = feed_order(due[-1])
        if generation != follow.generation:
            for m, follower in follow.machines.items():
                last = contract.stream_id_tuple(snapshot.last_id(m))
                follower.since = [(i, e) for i, e in follower.since if i > last]
                processed = snapshot.processed(m)
                if processed == follower.processed:
                    continue
                if processed < follower.processed or not follower.acc.forget_until(processed):
                    follow.machines[m] = self._restore_follower(line, snapshot, m, follower.since, now)
                else:
                    follower.processed = processed
            follow.generation = generation
        if sum(len(f.since) for f in follow.machines.values()) >= self.max_edge_events:
            self._follows.pop(line.id, None)  # the worker is far behind (stopped?): restored per read
            return False
        if entries:
            follow.pos = entries[-1][0]
        elif follow.pos is None:
            follow.pos = after
        follow.now = max(follow.now, now)
        return True

    def _restore_follower(self, line: Line, snapshot: LineSnapshot, machine: str,
                          since: list[tuple[tuple[int, int], Event]], now: float) -> _Follower:
        """``machine``'s carry restored and fed the events it holds back and the entries after
        its last id (``since``: at least those), in time order, up to ``now``."""
        carry = snapshot.carry(machine)
        last = contract.stream_id_tuple(snapshot.last_id(machine))
        since = [(i, e) for i, e in since if i > last]
        acc = self._from_carry(line, machine, carry)
        events = [*pending_events(line, machine, carry), *(e for _, e in since)]
        due = sorted((e for e in events if e.ts <= now), key=feed_order)
        for event in due:
            acc.feed(event)
        last_order = feed_order(due[-1]) if due else (-math.inf, -1)
        return _Follower(acc, MachineAccumulator.processed_in(carry["acc"]), last_order, since,
                         [e for e in events if e.ts > now])

    # --- restored for one read -----------------------------------------------------------------

    def _restored(self, line: Line, snapshot: LineSnapshot, generation: int, machines: list[str],
                  now: float) -> dict[str, MachineAccumulator]:
        """Restored accumulators fed the stream entries the worker has not applied yet.

        A machine's carry restored and fed the events it holds back (``_Base``) is kept
        while the line's bookkeeping stays the same (``generation``); each read feeds a copy
        of it the newer entries when they all come after those held back (``feed_order``),
        which is what feeding them all in order gives. Otherwise, as before: all in order."""
        # machines without carry: from there on (the worker made a carry of each machine it read an entry of)
        known = [snapshot.last_id(m) for m in machines if m in snapshot.heads] or \
            [snapshot.last_id(m) for m in snapshot.heads]
        after = min(known, key=contract.stream_id_tuple) if known else None
        entries = self._stream_after(line.id, after)
        wanted = set(machines)
        newer: dict[str, list[Event]] = {}  # the entries the worker has not read yet
        for entry_id, fields in entries:
            event = usable_event(line, fields, now, 0.0)  # nothing after now counts
            if event is None or isinstance(event, str) or event.machine not in wanted:
                continue
            if contract.stream_id_tuple(entry_id) <= contract.stream_id_tuple(snapshot.last_id(event.machine)):
                continue
            newer.setdefault(event.machine, []).append(event)
        edges: dict[str, MachineAccumulator] = {}
        waiting: dict[str, list[Event]] = {}
        for m in machines:
            carry = snapshot.carry(m) if m in snapshot.heads else None
            if carry is None:
                if m in newer:
                    waiting[m] = newer[m]
                continue
            base = self._base(line, m, carry, generation)
            events = [e for e in newer.get(m, ()) if e.ts <= now]
            events.sort(key=feed_order)
            if base.latest <= now and (not events or feed_order(events[0]) >= base.last_order):
                edges[m] = base.acc.copy()
                for event in events:
                    edges[m].feed(event)
                continue
            edges[m] = self._from_carry(line, m, carry)
            # events the worker holds back for its watermark, then those it has not read yet
            waiting[m] = [*pending_events(line, m, carry), *newer.get(m, ())]
        for m, events in waiting.items():
            events = [e for e in events if e.ts <= now]
            if not events:
                continue
            events.sort(key=feed_order)
            acc = edges.get(m)
            if acc is None:
                cfg = line.machine(m)
                assert cfg is not None
                acc = edges[m] = MachineAccumulator(
                    self.plant, line, cfg, first_minute(self.plant, events[0].ts, now),
                    context=self._context(line, cfg))
            for event in events:
                acc.feed(event)  # one older than the worker processed is applied at that time
        return edges

    def _base(self, line: Line, machine: str, carry: dict[str, Any], generation: int) -> _Base:
        """``machine``'s carry restored and fed the events it holds back, for this generation."""
        base = self._bases.get((line.id, machine))
        if base is not None and base.generation == generation:
            return base
        acc = self._from_carry(line, machine, carry)
        held = sorted(pending_events(line, machine, carry), key=feed_order)
        for event in held:
            acc.feed(event)
        base = _Base(generation, acc, max((e.ts for e in held), default=-math.inf),
                     feed_order(held[-1]) if held else (-math.inf, -1))
        self._bases[(line.id, machine)] = base
        return base

    def _from_carry(self, line: Line, machine: str, carry: dict[str, Any]) -> MachineAccumulator:
        """``machine``'s accumulator restored from its carry (sharing the machine's calendar cache)."""
        cfg = line.machine(machine)
        assert cfg is not None
        return MachineAccumulator(self.plant, line, cfg, float(carry["w"]), carry=carry["acc"],
                                  context=self._context(line, cfg))

    def _context(self, line: Line, machine: Machine) -> MachineContext:
        key = (line.id, machine.id)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = MachineContext.of(self.plant, line, machine)
        return context

    def _stream_after(self, line_id: str, after: str | None) -> list[tuple[str, dict[bytes, bytes]]]:
        low = "-" if after is None else contract.after_stream_id(after)
        entries: Any = self.redis.xrange(contract.events_key(line_id), min=low, count=self.max_edge_events)
        if len(entries) >= self.max_edge_events and line_id not in self._warned:
            self._warned.add(line_id)
            log.warning("line %s: more than %d events not yet rolled up (is the rollup worker running?); "
                        "the open edge uses the first %d", line_id, self.max_edge_events, self.max_edge_events)
        return [(_text(entry_id), fields) for entry_id, fields in entries]
