"""The data behind one of ``PlantReader``'s windows: its edges, bucket sums and stops.

* **The window's edges** (``query_window``): ``start`` floored to its minute, ``end``
  capped at ``now``, and floored to its minute too when it lies inside closed minutes.
* **The bucket grid** (``store.windows.bucket_bounds``, ``bucket_step``): boundaries on the
  plant's local clock (whole hours, quarter hours, local days, ...), whole minutes each.
* **The sums** (``WindowReads.buckets``): closed minutes from the stored rollups
  (``store.closed_rollups``); the open edge, what the worker has not stored yet
  (``store.open_edges``); the time neither covers as no data (``_add_no_data``); and the
  stops overlapping the window (``store.stop_reads``).

The line's bookkeeping is read once per window (``WindowReads.snapshot``), parsed only when
its stamp moved (late data that rewrote stored rollups and stops drops the parsed caches);
reads at one ``now`` are shared.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from domain import contract, downtime
from domain.accounting import Stop
from domain.plant import Line, Plant
from domain.totals import Totals
from store import classifications
from store.bookkeeping import LineSnapshot, snapshot_of
from store.cache import LruCache
from store.closed_rollups import MachineRequest, RollupReads
from store.open_edges import Edge, OpenEdges
from store.progress import floor_to
from store.read_ahead import Command, ReadAhead
from store.stop_reads import Ahead, StopReads
from store.sums import RollupSum
from store.window_cache import DEFAULT_TTL_S, WindowSums
from store.windows import MAX_WINDOW_DAYS, MINUTE_S, Window, WindowError, bucket_of

log = logging.getLogger(__name__)

# stored rollups cover whole minutes and the edge runs to the window's end: anything
# missing is whole minutes (or the whole window), never a rounding residue
NO_DATA_TOLERANCE_S = 1e-3
# the classifications read with a window's bookkeeping: of stops that started up to this long
# before the window (a stop that began earlier still is looked up apart, ``Classifications.attached``)
CLASSIFIED_BEFORE_S = classifications.LOOKBACK_S + 12 * 3600.0


# The bookkeeping's stamp (commit counter, rewinds, heartbeat, and the epoch: the token the
# worker's first commit to the hash wrote, a new one when Redis lost the hash), and the whole
# hash when the stamp is not the one the reader has (ARGV; "" for a field it had not): one
# command, sent in the round trip that reads the line's new stream entries.
_STAMP = """
local s = redis.call('HMGET', KEYS[1], 'ver', 'amend', 'beat', 'epoch')
if s[1] and s[1] == ARGV[1] and (s[2] or '') == ARGV[2] and (s[3] or '') == ARGV[3]
   and (s[4] or '') == ARGV[4] then return {s} end
"""
_STAMP_OR_ALL = _STAMP + "return {s, redis.call('HGETALL', KEYS[1])}"
# the same, and with the hash the stops set's members and scores from ARGV[5] on (KEYS[2]: the
# line's stops set, in the same slot): what a worker commit changed of a day still filling
_STAMP_OR_ALL_AND_STOPS = _STAMP + \
    "return {s, redis.call('HGETALL', KEYS[1]), redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[5], '+inf', 'WITHSCORES')}"


@dataclass(frozen=True, slots=True)
class _Read:
    """A window's totals and the stops of ``stops_of`` (shared: never mutated)."""

    window: Window
    totals: dict[str, Totals]
    stops: list[Stop]
    stops_of: frozenset[str]


class WindowReads:
    """Bucket sums and stops of a line's machines over a window, live to the second.
    ``plant`` gives the plant as the figures see it (reason lists managed over the file)."""

    def __init__(self, redis_client: redis.Redis, plant: Callable[[], Plant], rollups: RollupReads,
                 stops: StopReads, *, max_edge_events: int = 200_000, window_cache_ttl_s: int = DEFAULT_TTL_S) -> None:
        self.redis = redis_client
        self.window_sums = WindowSums(redis_client, rollups, ttl_s=window_cache_ttl_s)
        self._plant = plant
        self.rollups = rollups
        self.stops = stops
        self.edges = OpenEdges(redis_client, plant, max_edge_events=max_edge_events)
        self.ahead = ReadAhead()  # round trips read ahead with other lines' (a pool child's round)
        self._amend_seen: dict[str, tuple[int, int, Any]] = {}  # per line: its rewinds, commit counter and epoch seen
        # per line: the parsed bookkeeping, its stamp (commit counter, rewinds, heartbeat), a generation
        self._snapshots: dict[str, tuple[tuple[Any, ...], LineSnapshot, int]] = {}
        self._generation = itertools.count(1)
        # stored rollups' bucket sums of a window, per machine and watermark's minute (``_closed_sums``)
        self._closed: LruCache[tuple[Any, ...], list[RollupSum]] = LruCache(8192)
        # a window read just made (same generation, window and now): shared by the next question
        self.reads: LruCache[tuple[Any, ...], _Read] = LruCache(256)

    @property
    def plant(self) -> Plant:
        return self._plant()

    def totals(self, line: Line, machines: list[str], start: float, end: float, now: float,
               stops_of: Sequence[str] = ()) -> tuple[Window, dict[str, Totals], list[Stop]]:
        """The window as computed, each machine's totals over it and the stops of ``stops_of``."""
        window, totals, stops, _ = self.totals_and(line, machines, start, end, now, stops_of)
        return window, totals, stops

    def totals_and(self, line: Line, machines: list[str], start: float, end: float, now: float,
                   stops_of: Sequence[str] = (), also: Sequence[tuple[str, tuple[Any, ...]]] = ()
                   ) -> tuple[Window, dict[str, Totals], list[Stop], list[Any]]:
        """``totals``, and the replies to ``also``: more commands on the line's keys (name,
        arguments), sent in the round trip that reads the line's bookkeeping stamp."""
        window, since, also, stops_from = self._totals_reads(line, machines, start, end, now, stops_of, also)
        snap, replies, ahead = self._snap_and(line.id, also, stops_from)
        classified = classifications.Read.of(since, replies.pop()) if stops_of else None
        own = frozenset(stops_of)
        key = (line.id, snap[1], snap[2], tuple(machines), window.start, window.end, now)
        read = self.reads.get(key)
        if read is None or not own <= read.stops_of:
            sums, stops, window = self.buckets(line, machines, [window.start, window.end], now, stops_of, snap,
                                               classify=False, ahead=ahead)
            read = _Read(window, {m: sums[m][0].to_totals() for m in machines}, stops, own)
            self.reads.put(key, read)
        stops = read.stops if own >= read.stops_of else [s for s in read.stops if s.machine in own]
        return (read.window, dict(read.totals),
                self.stops.classifications.apply(line.id, stops, classified) if stops_of else [], replies)

    def plan_totals(self, line: Line, machines: list[str], start: float, end: float, now: float,
                    stops_of: Sequence[str] = (), also: Sequence[tuple[str, tuple[Any, ...]]] = ()) -> list[Command]:
        """The commands ``totals_and`` with these arguments would send now (``store.read_ahead``)."""
        _, _, also, stops_from = self._totals_reads(line, machines, start, end, now, stops_of, also)
        return self._snap_commands(line.id, also, stops_from)[0]

    def prepare(self, line: Line, machines: list[str], start: float, now: float) -> None:
        """Reads what a window [start, now) of ``machines`` with their stops will read at a later
        ``now`` and keeps it, without computing it (a reader pool child between rounds of
        views, ``store.preparation``): the line's bookkeeping and the stream entries since its
        followers' position, which they are fed up to ``now``; at a new commit, the stops set
        from the last cut; the closed sums of a watermark in a new minute. The window's read
        at a later ``now`` then reads and feeds only what came after."""
        snapshot, generation, _ = (snap := self._snap_and(line.id, (), self.stops.ahead(line.id)))[0]
        window = query_window(start, now, now, machines, snapshot)
        self.edges.follow(line, snapshot, generation, now)
        self._closed_sums(line.id, snapshot, machines, [window.start, window.end], copied=False)
        self.stops.keep(line, machines, snapshot, window.start, window.end, generation, snap[2])

    def plan_prepare(self, line: Line) -> list[Command]:
        """The commands ``prepare`` of ``line`` would send now (``store.read_ahead``)."""
        return self._snap_commands(line.id, (), self.stops.ahead(line.id))[0]

    def _totals_reads(self, line: Line, machines: list[str], start: float, end: float, now: float,
                      stops_of: Sequence[str], also: Sequence[tuple[str, tuple[Any, ...]]]
                      ) -> tuple[Window, float, list[tuple[str, tuple[Any, ...]]], float | None]:
        """The window, the start of the classifications read, the commands sent with the
        bookkeeping and where the stops set is read from (``_snap_and``)."""
        window = query_window(start, end, now, machines, None)
        since = window.start - CLASSIFIED_BEFORE_S  # people's classifications: read in the same round trip
        if not stops_of:
            return window, since, list(also), None
        return window, since, [*also, classifications.read_after(line.id, since)], self.stops.ahead(line.id)

    def buckets(self, line: Line, machines: list[str], bounds: list[float], now: float,
                stops_of: Sequence[str] = (), snap: tuple[LineSnapshot, int, Any] | None = None, *,
                classify: bool = True, ahead: Ahead | None = None
                ) -> tuple[dict[str, list[RollupSum]], list[Stop], Window]:
        """Bucket sums of ``machines`` and the stops of ``stops_of`` (some of them) overlapping
        the window (none: energy does not depend on stops); ``classify=False``: the PLC's stops;
        ``ahead``: stops read with ``snap`` (``StopReads.overlapping``)."""
        snapshot, generation, _ = self._snap(line.id) if snap is None else snap
        window = query_window(bounds[0], bounds[-1], now, machines, snapshot)
        bounds = [*bounds[:-1], window.end]
        sums = self._closed_sums(line.id, snapshot, machines, bounds)
        edges = self.edges.edges(line, snapshot, generation,
                            [m for m in machines if _needs_edge(snapshot, m, window.end)], now, window.end)
        for machine, edge in edges.items():
            _add_edge(sums[machine], edge, bounds)
        _add_no_data(sums, bounds, self.plant, self.stops.report.planned)
        stops: list[Stop] = []
        if stops_of:
            edge_stops = {m: edge.stops for m, edge in edges.items()}  # as of the window's end
            stops = self.stops.overlapping(line, machines, snapshot, edge_stops, window.start, window.end, now,
                                           stops_of, classify=classify, generation=generation, ahead=ahead)
        return sums, stops, window

    def _closed_sums(self, line_id: str, snapshot: LineSnapshot, machines: list[str],
                     bounds: list[float], *, copied: bool = True) -> dict[str, list[RollupSum]]:
        """Bucket sums of the stored rollups (up to each machine's watermark, the start of its
        open minute), kept per machine and its watermark's minute (and rewinds: ``amend``): a
        machine's are read again once a minute although the worker commits every second,
        whatever the window's end beyond its watermark, and only that machine's (the
        machines' watermarks enter a new minute at different commits); a copy (the open edge
        is added to it; ``copied=False``: only read and kept, those kept left out)."""
        head, end = tuple(bounds[:-1]), bounds[-1]
        out: dict[str, list[RollupSum]] = {}
        missing: list[tuple[MachineRequest, tuple[Any, ...]]] = []
        for m in machines:
            watermark = snapshot.watermark(m)
            if watermark is None:
                out[m] = [RollupSum() for _ in range(len(bounds) - 1)]
                continue
            cap = floor_to(watermark, MINUTE_S)
            key = (line_id, m, snapshot.amend, cap, head, None if end >= cap else end)
            got = self._closed.get(key)
            if got is None:
                missing.append((MachineRequest(m, watermark, bounds), key))
            elif copied:
                out[m] = [part.copy() for part in got]
        if missing:
            requests = [request for request, _ in missing]
            if len(bounds) == 2:  # one bucket: its closed whole hours shared (``store.window_cache``)
                read = self.window_sums.sums(line_id, requests, snapshot.amend)
            else:
                read = self.rollups.bucket_sums(line_id, requests)
            for request, key in missing:
                parts = read.get(request.machine) or [RollupSum() for _ in range(len(bounds) - 1)]
                self._closed.put(key, parts)
                out[request.machine] = [part.copy() for part in parts]
        return out

    def snapshot(self, line_id: str) -> LineSnapshot:
        """The line's bookkeeping (watermarks, carries) as the worker last wrote it."""
        return self._snap(line_id)[0]

    def _snap(self, line_id: str) -> tuple[LineSnapshot, int, Any]:
        return self._snap_and(line_id, ())[0]  # (the stops' argument left out: no stops read)

    def _snap_commands(self, line_id: str, also: Sequence[tuple[str, tuple[Any, ...]]], stops_from: float | None
                       ) -> tuple[list[Command], str | None, tuple[tuple[Any, ...], LineSnapshot, int] | None]:
        """``_snap_and``'s round trip as it stands: its commands, the followers' stream position
        and the bookkeeping kept (both as the commands were planned with them)."""
        key, events = contract.rollup_state_key(line_id), contract.events_key(line_id)
        pos = self.edges.position(line_id)
        cached = self._snapshots.get(line_id)
        commands: list[Command] = [(name, tuple(args), ()) for name, args in also]
        known = ["" if v is None else v for v in cached[0]] if cached is not None else ["", "", "", ""]
        if stops_from is None:  # (a cluster pipeline has no eval())
            commands.append(("execute_command", ("EVAL", _STAMP_OR_ALL, 1, key, *known), ()))
        else:
            commands.append(("execute_command", ("EVAL", _STAMP_OR_ALL_AND_STOPS, 2, key, contract.stops_key(line_id),
                                                 *known, repr(stops_from)), ()))
        commands.append(("xrevrange", (events,), (("count", 1),)))
        if pos is not None:
            commands.append(("xrange", (events,), (("min", contract.after_stream_id(pos)),
                                                   ("count", self.edges.max_edge_events))))
        return commands, pos, cached

    def _snap_and(self, line_id: str, also: Sequence[tuple[str, tuple[Any, ...]]], stops_from: float | None = None
                  ) -> tuple[tuple[LineSnapshot, int, Any], list[Any], Ahead | None]:
        """The line's bookkeeping, its generation (the same number as long as the worker has
        not written it again) and the id of the stream's newest entry. Its stamp (commit
        counter, rewinds, heartbeat: three short fields) and that id are read every time (one
        round trip, which also reads the stream entries after the line's followers for them:
        ``OpenEdges.offer``); the whole hash (in that round trip too: ``_STAMP_OR_ALL``), and
        each machine's head (``store.bookkeeping``), only when the stamp moved. ``also``: more
        commands sent in that round trip (their replies). ``stops_from``: when the stamp moved, the
        stops set's members from there on are read with the hash (``StopReads.ahead``: the time and
        the (member, score) pairs; None when not read)."""
        commands, pos, cached = self._snap_commands(line_id, also, stops_from)
        replies = self.ahead.run(self.redis, line_id, commands)  # read ahead (``store.read_ahead``), or now
        extra, (stamped, newest, *after) = replies[:len(also)], replies[len(also):]
        if pos is not None and after:
            self.edges.offer(line_id, pos, after[0])
        stamp = tuple(stamped[0])
        head = newest[0][0] if newest else None
        if len(stamped) == 1:  # the stamp is the one kept (only then does _STAMP_OR_ALL send no hash)
            assert cached is not None
            snapshot, generation = cached[1], cached[2]
        else:  # the hash, read with its stamp
            whole = stamped[1]
            snapshot, generation = snapshot_of(dict(zip(whole[::2], whole[1::2], strict=True))), next(self._generation)
            if stamp[0] is not None:
                self._snapshots[line_id] = (stamp, snapshot, generation)
        ver = int(stamp[0]) if stamp[0] is not None and stamp[0].isdigit() else 0
        seen = self._amend_seen.setdefault(line_id, (snapshot.amend, ver, stamp[3]))
        if seen[0] != snapshot.amend or ver < seen[1] or seen[2] != stamp[3]:
            # late data rewrote stored rollups and stops, or Redis lost them (another epoch, or
            # the commit counter went back): what was cached as final may have changed
            self._closed.clear()
            self.window_sums.local.clear()
            self.rollups.days.clear()
            self.rollups.hours.clear()
            self.stops.forget()
            if seen[2] != stamp[3]:
                self.edges.forget(line_id)
        self._amend_seen[line_id] = (snapshot.amend, ver, stamp[3])
        ahead = None
        if len(stamped) > 2 and stops_from is not None:  # the stops set from there (scores as Redis' exact text)
            flat = stamped[2]
            ahead = (stops_from, [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)])
        return (snapshot, generation, head), extra, ahead


# --- the window's edges and the open edge (pure) ----------------------------------------------

def query_window(start: float, end: float, now: float, machines: Sequence[str],
                 snapshot: LineSnapshot | None) -> Window:
    """[start, end) as computed: whole minutes at the start, the end capped at ``now`` and,
    with a ``snapshot``, floored to its minute when it lies inside closed minutes."""
    if not (math.isfinite(start) and math.isfinite(end)):
        raise WindowError("start and end must be finite")
    end = min(end, now)
    start = floor_to(start, MINUTE_S)
    if end <= start:
        raise WindowError("end must be after start")
    if end - start > MAX_WINDOW_DAYS * 86400.0 + MINUTE_S:
        raise WindowError(f"window longer than {MAX_WINDOW_DAYS} days")
    if snapshot is not None and end != floor_to(end, MINUTE_S):
        closed = [w for m in machines if (w := snapshot.watermark(m)) is not None and w > end]
        if closed:
            end = floor_to(end, MINUTE_S)  # inside closed minutes: minute resolution
            if end <= start:
                raise WindowError("window shorter than a minute inside closed minutes")
    return Window(start, end, "")


def _needs_edge(snapshot: LineSnapshot, machine: str, end: float) -> bool:
    watermark = snapshot.watermark(machine)
    return watermark is None or end > watermark


def _add_edge(sums: list[RollupSum], edge: Edge, bounds: Sequence[float]) -> None:
    """Adds the open edge [max(start, watermark), end) to the buckets."""
    start, end = bounds[0], bounds[-1]
    for rollup in edge.minutes:
        if start <= rollup.minute_start < end:
            sums[bucket_of(bounds, rollup.minute_start)].add_totals(rollup.totals)
    if end > edge.cursor >= start:
        sums[bucket_of(bounds, edge.cursor)].add_totals(edge.partial)


def _add_no_data(sums: dict[str, list[RollupSum]], bounds: Sequence[float], plant: Plant,
                 indexes: downtime.PlannedIndexes | None = None) -> None:
    """Adds to every bucket the time its rollups and open edge do not cover, as unknown.

    Relies on the rollup worker's invariant: from a machine's first minute on, every
    minute is closed and stored (also without events: a silence in the middle is
    already stored as UNKNOWN minutes), and the open edge runs from the watermark to
    the window's end. So only a leading gap matters: a machine's uncovered time is
    [window start, first minute) (the whole window if it has no data at all), and in
    each bucket the missing seconds lie at the bucket's start. The amounts come from
    the calendar time actually summed, so every bucket's calendar time adds up to its
    length and nothing counts twice; were the invariant broken (minute rollups past
    their retention, a worker restarted without its bookkeeping), only where in its
    bucket the missing time lies, so how much of it was planned, would be approximated.
    Cost: a subtraction per machine and bucket; the shift calendar is walked once, over
    the span of all gaps, and only when there is one (``indexes``: a caller's kept planned
    indexes, which the next live view's gaps, the same, find again)."""
    gaps: list[tuple[RollupSum, float, float]] = []
    for parts in sums.values():
        for part, (a, b) in zip(parts, itertools.pairwise(bounds), strict=True):
            missing = (b - a) - part.calendar_s
            if missing > NO_DATA_TOLERANCE_S:
                gaps.append((part, a, a + missing))
    if not gaps:
        return
    first, last = min(a for _, a, _ in gaps), max(b for _, _, b in gaps)
    planned = downtime.PlannedIndex(plant, first, last) if indexes is None else indexes.covering(plant, first, last)
    for part, a, b in gaps:
        part.add_no_data(b - a, planned.seconds(a, b))
