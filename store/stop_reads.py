"""The stops behind ``PlantReader``'s answers: reading a window's stops from the stops set
(closed ones, and the ongoing one unless the open edge computed it), people's
classifications over them, and the pure steps the answers take with stops (per bucket,
timeline segments, annotating downtime events).

UTC days of the stops set before every machine's watermark and every ongoing stop never
change: they are parsed once and kept (``StopReads.forget`` drops them when late data
rewrote stored stops). The day still filling is read again at every commit of the worker's;
its members are parsed once each, and stay the same ``Stop`` objects (which the answers'
per-stop caches key on: ``Classifications.apply``).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any, cast

import redis

from domain import answers, contract, downtime
from domain import classification as human
from domain.accounting import Stop
from domain.model import State
from domain.plant import Line, Plant
from domain.stop_groups import GroupedStops
from domain.stop_report import Kept
from store.bookkeeping import LineSnapshot
from store.cache import LruCache
from store.classifications import Classifications
from store.progress import floor_to

DAY_S = 86400.0
Ahead = tuple[float, list[tuple[Any, float]]]  # the stops set's (member, score) pairs from a time on
MAX_MEMBERS = 200_000  # parsed stops-set members kept per reader (about 300 bytes each)


class StopReads:
    """A window's stops, read from the stops set and the open edge, with people's reasons."""

    def __init__(self, redis_client: redis.Redis, classifications: Classifications, *,
                 cache_days: int = 2048) -> None:
        self.redis = redis_client
        self.classifications = classifications
        self._days: LruCache[tuple[str, float, frozenset[str]], _StopsByMachine] = LruCache(cache_days)
        # the days still filling, per generation of the line's bookkeeping (``overlapping``)
        self._live: LruCache[tuple[str, int, float, float | None], list[_StopsByMachine]] = LruCache(512)
        # the day still filling up to where it does not change any more (``_stored``): (where, its stops)
        self._final: LruCache[tuple[str, float, frozenset[str]], tuple[float, _StopsByMachine]] = LruCache(512)
        # stops-set members as parsed (machine, Stop or None): the days still filling are read again at
        # every commit of the worker's, and all but their newest members are the same (and their Stops too)
        self._members: dict[tuple[str, bytes | str], tuple[str, Stop | None]] = {}
        # what the downtime report made of these stops, by stop object (``stop_report.downtime_report``'s ``kept``)
        self.report = Kept()
        # the stored stops a live window keeps, per generation (``_passing``)
        self._filtered: LruCache[tuple[Any, ...], tuple[GroupedStops, frozenset[str], float]] = LruCache(512)
        # per line: where its last read of a day still filling began (``ahead``)
        self._cuts: dict[str, float] = {}

    def forget(self) -> None:
        """Drops the parsed days, and what was kept per stop (late data rewrote stored stops)."""
        self._days.clear()
        self._live.clear()
        self._final.clear()
        self._filtered.clear()
        self._members.clear()
        self._cuts.clear()
        self.report.clear()
        self.classifications.forget()

    def ahead(self, line_id: str) -> float | None:
        """Where the line's last read of a day still filling began: a reader may read the stops
        set's members from there on (with scores) with the line's bookkeeping (``WindowReads``:
        in the script that reads it, so as of the same instant) and hand them to
        ``overlapping`` as ``ahead``; None: nothing read of the line yet."""
        return self._cuts.get(line_id)

    def overlapping(self, line: Line, machines: Sequence[str], snapshot: LineSnapshot,
                    edge_stops: Mapping[str, list[Stop]], start: float, end: float, now: float,
                    stops_of: Sequence[str] | None = None, *, classify: bool = True,
                    generation: int | None = None, ahead: Ahead | None = None) -> list[Stop]:
        """Stops of ``stops_of`` (default: all ``machines``) overlapping [start, end): closed
        ones from the stops set; the ongoing one from the stops set, or from the open edge
        where it was computed (``edge_stops``: the edge's stops as of ``end`` by machine).
        How far back to look depends on all ``machines``. ``classify=False``: the PLC's
        stops, without people's classifications (``self.classifications.apply`` them), in the
        form ``apply`` gives a stop without one (``classification.unclassified``).
        ``generation``: the bookkeeping's (``WindowReads``): the stops set's days still
        filling are read once per generation (the worker writes them only as it commits).
        ``ahead``: the stops set's (member, score) pairs from a time on (``ahead()``'s), read
        with ``snapshot``: used instead of reading the day still filling again when that read
        would begin there."""
        own = set(machines) if stops_of is None else set(stops_of)
        lo, ongoing = _looked_back(machines, snapshot, start)
        kept = self._passing(line.id, lo, start, end, snapshot, ongoing, own, generation, ahead) \
            if _kept_per_commit(generation, end, snapshot) else None
        # the open edge's, in the form the stored ones are parsed into (``_stop``)
        extra: list[Stop] = [human.unclassified(s, self.classifications.kept) for machine, stops in edge_stops.items()
                             if machine in own for s in stops if overlaps(s, start, end, now)]
        if kept is not None and kept[2] < end and kept[1] <= edge_stops.keys():  # (ongoing: the edge knows better)
            out: list[Stop] = kept[0].plus(extra)  # (grouped by machine: the sums need only group ``extra``)
        else:  # (a window that ended, or an ongoing stored stop without its open edge: filtered here)
            out = []
            for stop in self._stored(line.id, lo, end, snapshot, ongoing, own, generation, ahead):  # ``overlaps``
                stop_start, stop_end = stop.start, stop.end
                if not lo <= stop_start < end:
                    continue
                if stop_end is None:
                    if stop.machine in edge_stops:
                        continue  # the open edge knows it better
                    stop_end = now if now > stop_start else stop_start
                if stop_end > start:
                    out.append(stop)
            out.extend(extra)
        return self.classifications.apply(line.id, out) if classify else out

    def keep(self, line: Line, machines: Sequence[str], snapshot: LineSnapshot, start: float, end: float,
             generation: int, ahead: Ahead | None) -> None:
        """Reads and keeps what ``overlapping`` with these arguments reads of the stops set (the
        days still filling, for this ``generation``; ``ahead``: read with ``snapshot``), without
        answering (``WindowReads.prepare``): a later ``overlapping`` of the generation reads nothing."""
        lo, ongoing = _looked_back(machines, snapshot, start)
        self._passing(line.id, lo, start, end, snapshot, ongoing, set(machines), generation, ahead)

    def _passing(self, line_id: str, lo: float, start: float, end: float, snapshot: LineSnapshot,
                 ongoing: dict[str, float], wanted: set[str], generation: int | None, ahead: Ahead | None
                 ) -> tuple[GroupedStops, frozenset[str], float]:
        """Of the stored stops (``_stored_by_machine``) from ``lo`` on: the ended ones that end
        after ``start`` (each machine's in stored order, machine after machine, grouped; their
        earliest start), the machines of the ongoing ones, the latest start. Kept per
        generation for a window ending after every time the worker processed (a live one,
        ``_kept_per_commit``): the stops stored then do not depend on its end, nor do these."""
        key = (line_id, generation, lo, start, frozenset(wanted)) \
            if _kept_per_commit(generation, end, snapshot) else None
        got = self._filtered.get(key) if key is not None else None
        if got is None:  # (one pass over each machine's stops, grouped as they are read)
            closed: list[Stop] = []
            groups: dict[tuple[str, str], list[Stop]] = {}
            waiting, top, low = set(), -math.inf, math.inf
            for machine, stops in self._stored_by_machine(line_id, lo, end, snapshot, ongoing, wanted,
                                                          generation, ahead):
                group = []
                for stop in stops:
                    stop_start, stop_end = stop.start, stop.end
                    if stop_start < lo:
                        continue
                    top = stop_start if stop_start > top else top
                    if stop_end is None:
                        waiting.add(machine)
                    elif stop_end > start:
                        group.append(stop)
                        low = stop_start if stop_start < low else low
                if group:
                    groups[(line_id, machine)] = group
                    closed += group
            got = (GroupedStops(closed, groups, low), frozenset(waiting), top)
            if key is not None:
                self._filtered.put(key, got)
        return got

    def _stored(self, line_id: str, lo: float, hi: float, snapshot: LineSnapshot,
                ongoing: dict[str, float], wanted: set[str], generation: int | None = None,
                ahead: Ahead | None = None) -> list[Stop]:
        """Members of the stops set of the ``wanted`` machines with start in about [lo, hi),
        each machine's in stored order (``_stored_by_machine``, day by day)."""
        found = self._stored_days(line_id, lo, hi, snapshot, ongoing, generation, ahead)
        return [stop for by_machine in found for m in sorted(wanted) for stop in by_machine.of(m)]

    def _stored_by_machine(self, line_id: str, lo: float, hi: float, snapshot: LineSnapshot,
                           ongoing: dict[str, float], wanted: set[str], generation: int | None = None,
                           ahead: Ahead | None = None) -> list[tuple[str, list[Stop]]]:
        """``_stored``'s stops by machine (in name order): (machine, its stops in stored order)."""
        found = self._stored_days(line_id, lo, hi, snapshot, ongoing, generation, ahead)
        return [(m, list(chain.from_iterable(by_machine.of(m) for by_machine in found))) for m in sorted(wanted)]

    def _stored_days(self, line_id: str, lo: float, hi: float, snapshot: LineSnapshot,
                     ongoing: dict[str, float], generation: int | None = None,
                     ahead: Ahead | None = None) -> list[_StopsByMachine]:
        """The stops set's members with start in about [lo, hi), by machine, UTC day by day (the
        day still filling: up to where it stopped changing, then the rest). UTC days before
        every machine's watermark and every ongoing stop never change: they are parsed once."""
        final_until = min([*(h.w for h in snapshot.heads.values()), *ongoing.values()], default=-math.inf)
        machines = frozenset(snapshot.heads)  # a machine seen for the first time may bring older stops
        days: list[float] = []
        day = floor_to(lo, DAY_S)
        while day < hi and day + DAY_S <= final_until:
            days.append(day)
            day += DAY_S
        live_from = max(day, lo)
        live_key = None if generation is None else (line_id, generation, live_from, _beyond(hi, snapshot))
        live = self._live.get(live_key) if live_key is not None and live_from < hi else None
        found: list[_StopsByMachine | None] = []
        missing = []
        for d in days:
            cached = self._days.get((line_id, d, machines))
            if cached is None:
                missing.append(d)
            found.append(cached)  # None: parsed below
        read_live = live_from < hi and live is None
        # the day still filling up to ``final_until`` does not change either: what was read of it
        # before is read again only from where it ended
        final_key, cut = (line_id, live_from, machines), min(final_until, hi)
        final = self._final.get(final_key) if read_live else None
        if final is not None and not live_from <= final[0] <= cut:
            final = None
        if missing or read_live:
            # the members after ``final``'s, read with the bookkeeping (``ahead``), when it began there
            pairs = ahead[1][:bisect_left(ahead[1], hi, key=_score)] \
                if read_live and final is not None and ahead is not None and ahead[0] == final[0] else None
            replies: Iterator[Any] = iter(())
            if missing or (read_live and pairs is None):
                key = contract.stops_key(line_id)
                with self.redis.pipeline(transaction=False) as pipe:
                    for d in missing:
                        pipe.zrangebyscore(key, d, f"({d + DAY_S}")
                    if read_live and pairs is None:
                        pipe.zrangebyscore(key, live_from if final is None else final[0], f"({hi}", withscores=True)
                    replies = iter(pipe.execute())
            for i, d in enumerate(days):
                if found[i] is None:
                    read = found[i] = _StopsByMachine(line_id, next(replies), self._parsed)
                    self._days.put((line_id, d, machines), read)
            if read_live:
                if pairs is None:
                    pairs = next(replies)
                split = bisect_left(pairs, cut, key=_score)
                settled = final[1] if final is not None and split == 0 else _StopsByMachine(
                    line_id, (m for m, _ in pairs[:split]), self._parsed, final and final[1])
                if cut >= live_from:
                    self._final.put(final_key, (cut, settled))
                    self._cuts[line_id] = cut
                live = [settled, _StopsByMachine(line_id, (m for m, _ in pairs[split:]), self._parsed)]
                if live_key is not None:
                    self._live.put(live_key, live)
        if live is not None:
            found.extend(live)
        return [by_machine for by_machine in found if by_machine is not None]

    def _parsed(self, line: str, raw: bytes | str) -> tuple[str, Stop | None] | None:
        """A stops-set member parsed: (machine, its Stop or None when its state is not one);
        None: not a member. Kept (up to ``MAX_MEMBERS``) while the stored stops stay."""
        got = self._members.get((line, raw))
        if got is None:
            try:
                parts = contract.decode_stop_member(raw)
            except ValueError:
                return None
            got = (parts[0], _stop(line, parts))
            if len(self._members) >= MAX_MEMBERS:
                self._members.clear()
            self._members[(line, raw)] = got
        return got


def _looked_back(machines: Sequence[str], snapshot: LineSnapshot, start: float) -> tuple[float, dict[str, float]]:
    """How far before ``start`` a stop of ``machines`` overlapping it may begin, and each
    machine's ongoing stop's start (``snapshot``'s)."""
    ongoing = {m: contract.decode_stop_member(h.stop)[1] for m, h in snapshot.heads.items() if h.stop}
    wanted = set(machines)
    lookback = max([snapshot.max_stop_s, *(start - s for m, s in ongoing.items() if m in wanted)])
    return start - lookback - 1.0, ongoing


def _kept_per_commit(generation: int | None, end: float, snapshot: LineSnapshot) -> bool:
    """Whether a window ending at ``end`` keeps its stored stops per generation (``_passing``):
    one ending after every time the worker processed, read with a generation."""
    return generation is not None and _beyond(end, snapshot) is None


def _score(pair: tuple[Any, float]) -> float:
    return pair[1]


def _beyond(hi: float, snapshot: LineSnapshot) -> float | None:
    """``hi``, or None when it lies beyond the time the worker processed every machine up to
    (no stored stop starts after that: the stops read up to ``hi`` are those up to any such)."""
    processed = max((h.t for h in snapshot.heads.values()), default=math.inf)
    return None if hi > processed else hi


class _StopsByMachine:
    """Stops-set members by machine, in stored order (``parse``: a member's machine and Stop)."""

    __slots__ = ("_stops",)

    def __init__(self, line: str, members: Iterable[bytes | str],
                 parse: Callable[[str, bytes | str], tuple[str, Stop | None] | None],
                 after: _StopsByMachine | None = None) -> None:
        """``after``: the members before these (they come first)."""
        self._stops: dict[str, list[Stop]] = {m: list(stops) for m, stops in after._stops.items()} if after else {}
        for raw in members:
            got = parse(line, raw)
            if got is not None and got[1] is not None:
                self._stops.setdefault(got[0], []).append(got[1])

    def of(self, machine: str) -> list[Stop]:
        return self._stops.get(machine, [])


def _stop(line: str, parts: tuple[str, float, float | None, str, int]) -> Stop | None:
    """A stops-set member's stop, in the form ``Classifications.apply`` gives a stop without a
    classification (``classification.unclassified``: its id and PLC code): made once per
    member, not per answer."""
    machine, start, end, state, reason = parts
    try:
        return human.unclassified(Stop(line, machine, start, end, State(state), reason))
    except ValueError:
        return None


# --- what the answers do with stops (pure) ---------------------------------------------------

def overlaps(stop: Stop, start: float, end: float, now: float) -> bool:
    """Whether the stop (an ongoing one: until ``now``) overlaps [start, end)."""
    stop_end = stop.end if stop.end is not None else max(now, stop.start)
    return stop.start < end and stop_end > start


def stops_by_bucket(stops: Iterable[Stop], bounds: Sequence[float], now: float) -> list[list[Stop]]:
    """The stops overlapping each bucket (a long stop is in every bucket it spans)."""
    out: list[list[Stop]] = [[] for _ in range(len(bounds) - 1)]
    for stop in stops:
        stop_end = stop.end if stop.end is not None else max(now, stop.start)
        first = max(bisect_right(bounds, stop.start) - 1, 0)
        for i in range(first, len(out)):
            if bounds[i] >= stop_end:
                break
            if overlaps(stop, bounds[i], bounds[i + 1], now):
                out[i].append(stop)
    return out


def annotate(events: list[answers.StopEvent], stops: Iterable[Stop], plant: Plant) -> None:
    """Each event gets its stop's stable id, the PLC's code and who classified it."""
    info = {(s.machine, s.start): s for s in stops if isinstance(s, human.ClassifiedStop)}
    for event in events:
        stop = info.get((event["machine"], event["start"]))
        if stop is None:
            continue
        event.update({"id": stop.stop_id, "plc_reason": stop.plc_reason,
                      "plc_reason_text": downtime.reason_text(plant, stop.plc_reason) if stop.plc_reason else None,
                      "classified": bool(stop.classified_by), "classified_by": stop.classified_by or None,
                      "comment": stop.comment, "piece": stop.piece})


def state_segments(changes: list[tuple[float, str]], start: float, end: float, stops: Iterable[Stop],
             now: float) -> list[answers.Segment]:
    """[start, end, state, reason] segments from state changes; a segment inside a stop
    takes the stop's reason. Before the first change the state is unknown."""
    out: list[list[Any]] = []
    points = sorted(changes)
    current = (start, State.UNKNOWN.value)
    for t, state in points:
        if t <= start:
            current = (start, state)
            continue
        if t >= end:
            break
        if state != current[1]:
            out.append([current[0], t, current[1], 0])
            current = (t, state)
    if end > current[0]:
        out.append([current[0], end, current[1], 0])
    stop_list = sorted(stops, key=lambda s: s.start)
    for seg in out:
        seg[3] = _reason_at(stop_list, seg[0], seg[1], now) if seg[2] not in (State.RUNNING, State.UNKNOWN) else 0
    # JSON arrays: lists at run time, typed as their fixed shape
    return cast(list[answers.Segment], [seg for seg in out if seg[1] > seg[0]])


def _reason_at(stops: Sequence[Stop], a: float, b: float, now: float) -> int:
    for stop in stops:
        stop_end = stop.end if stop.end is not None else max(now, stop.start)
        if stop.start < b and stop_end > a:
            return stop.reason
    return 0
