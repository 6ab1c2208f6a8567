"""Reading stored rollups: bucket sums from hours where whole hours fit, minutes elsewhere.

A window's cost grows with its number of hours and edge minutes, not with the event
rate. Closed rollups never change, so the hashes of finished hours (minutes) and
finished UTC days (hours) are kept parsed in a per-reader LRU; a finished day also
keeps its total, so a month is about 30 additions per machine.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from domain import contract
from store.cache import LruCache
from store.sums import RollupSum

MINUTE_S = 60
HOUR_S = 3600
DAY_S = 86400


@dataclass(slots=True)
class HashEntry:
    """One rollup hash: field index -> rollup text, parsed on first use."""

    start: float  # the hour (minute rollups) or UTC day (hour rollups) it covers
    step: float  # 60 or 3600
    texts: dict[int, bytes | str]
    memo: LruCache[tuple[float, bytes | str], RollupSum] | None = None  # parsed texts, across entries
    prefixes: Prefixes | None = None  # sums of leading rollups, across reads of a filling hash
    key: Any = None  # names the hash in ``prefixes``
    parsed: dict[int, RollupSum] = field(default_factory=dict)
    _total: RollupSum | None = None

    @classmethod
    def from_redis(cls, start: float, step: float, raw: dict[Any, Any],
                   memo: LruCache[tuple[float, bytes | str], RollupSum] | None = None,
                   prefixes: Prefixes | None = None, key: Any = None) -> HashEntry:
        texts: dict[int, bytes | str] = {}
        for field_name, value in raw.items():
            try:
                texts[int(field_name)] = value
            except ValueError:
                continue
        return cls(start, step, texts, memo, prefixes, key)

    def get(self, index: int) -> RollupSum | None:
        """The parsed rollup at ``index`` (never mutate it: it is shared)."""
        got = self.parsed.get(index)
        if got is None:
            text = self.texts.get(index)
            if text is None:
                return None
            start = self.start + index * self.step
            got = self.memo.get((start, text)) if self.memo is not None else None
            if got is None:
                got = RollupSum.decode(text, start)
                if self.memo is not None:
                    self.memo.put((start, text), got)
            self.parsed[index] = got
        return got

    def total(self) -> RollupSum:
        if self._total is None:
            out = RollupSum()
            for index in self.texts:
                part = self.get(index)
                if part is not None:
                    out.add(part)
            self._total = out
        return self._total

    def add_range(self, out: RollupSum, first: int, last: int) -> None:
        """Adds the rollups with index in [first, last) to ``out``."""
        if first <= 0 and last * self.step >= (DAY_S if self.step == HOUR_S else HOUR_S):
            out.add(self.total())
            return
        if first <= 0 and self.prefixes is not None and out.is_empty():
            out.add(self._prefix(last))  # the same additions in the same order, most of them done before
            return
        for index in range(first, last):
            part = self.get(index)
            if part is not None:
                out.add(part)

    def _prefix(self, last: int) -> RollupSum:
        """The rollups with index in [0, last) added in order to an empty sum. A filling hash
        (this hour's minutes) is read again at every live refresh with one more rollup or
        none: the sum of what an earlier read added is taken up where it stopped, as long
        as those rollups are the same texts (they are final once written)."""
        assert self.prefixes is not None
        held = self.prefixes.get(self.key)
        texts = self.texts
        if held is not None and len(held[0]) <= last and all(
                texts.get(i) == text for i, text in enumerate(held[0])):
            done, total = len(held[0]), held[1].copy()
        else:
            done, total = 0, RollupSum()
        for index in range(done, last):
            part = self.get(index)
            if part is not None:
                total.add(part)
        self.prefixes.put(self.key, ([texts.get(i) for i in range(last)], total))
        return total


# (line, machine, hash start, step) -> (the texts of indices 0.., their sum in index order)
Prefixes = LruCache[tuple[str, str, float, float], tuple[list["bytes | str | None"], RollupSum]]


@dataclass(frozen=True, slots=True)
class MachineRequest:
    """Bucket sums of one machine's closed rollups: buckets ``bounds[i]..bounds[i+1]``
    (minute-aligned), capped at the machine's watermark (start of its open minute)."""

    machine: str
    watermark: float
    bounds: Sequence[float]


def floor_to(ts: float, step: float) -> float:
    return math.floor(ts / step) * step


def ceil_to(ts: float, step: float) -> float:
    return math.ceil(ts / step) * step


@dataclass(slots=True)
class _Plan:
    """Which hashes a request needs: (kind, machine, start) -> [(bucket, first, last)]."""

    uses: dict[tuple[str, str, float], list[tuple[int, int, int]]] = field(default_factory=dict)

    def use(self, kind: str, machine: str, start: float, bucket: int, first: int, last: int) -> None:
        self.uses.setdefault((kind, machine, start), []).append((bucket, first, last))


class RollupReads:
    """Sums of stored rollups for one line at a time; cache shared by all calls."""

    def __init__(self, redis_client: Any, cache_days: int = 4096, cache_hours: int = 512,
                 cache_open: int = 20_000) -> None:
        self.redis = redis_client
        self.days: LruCache[tuple[str, str, float], HashEntry] = LruCache(cache_days)
        self.hours: LruCache[tuple[str, str, float], HashEntry] = LruCache(cache_hours)
        # rollups of hashes still filling (today's hours, this hour's minutes): each
        # value is final once written, so it is parsed once even though its hash is re-read
        self.open_texts: LruCache[tuple[float, bytes | str], RollupSum] = LruCache(cache_open)
        self.prefixes: Prefixes = LruCache(cache_open // 4)  # two filling hashes per machine, and some

    def bucket_sums(self, line: str, requests: Sequence[MachineRequest]) -> dict[str, list[RollupSum]]:
        plan = _Plan()
        for request in requests:
            _plan_machine(plan, request)
        watermarks = {r.machine: r.watermark for r in requests}
        entries = self._entries(line, plan, watermarks)
        out = {r.machine: [RollupSum() for _ in range(max(len(r.bounds) - 1, 0))] for r in requests}
        for (kind, machine, start), uses in plan.uses.items():
            entry = entries.get((kind, machine, start))
            if entry is None:
                continue
            for bucket, first, last in uses:
                entry.add_range(out[machine][bucket], first, last)
        return out

    def _entries(self, line: str, plan: _Plan, watermarks: dict[str, float]) -> dict[tuple[str, str, float], HashEntry]:
        found: dict[tuple[str, str, float], HashEntry] = {}
        missing: list[tuple[str, str, float]] = []
        for key in plan.uses:
            kind, machine, start = key
            cache = self.days if kind == "hour" else self.hours
            cached = cache.get((line, machine, start))
            if cached is not None:
                found[key] = cached
            else:
                missing.append(key)
        if not missing:
            return found
        with self.redis.pipeline(transaction=False) as pipe:
            for kind, machine, start in missing:
                if kind == "hour":
                    pipe.hgetall(contract.hour_rollup_key(line, machine, start))
                else:  # a closed hour's string; the hash too while it may still be filling
                    pipe.get(contract.closed_minutes_key(line, machine, start))
                    if start + HOUR_S > watermarks[machine]:
                        pipe.hgetall(contract.minute_rollup_key(line, machine, start))
            replies = iter(pipe.execute())
        for key in missing:
            kind, machine, start = key
            if kind == "hour":
                raw = next(replies)
            else:
                raw = contract.split_minutes(next(replies))
                if start + HOUR_S > watermarks[machine]:
                    raw.update(next(replies) or {})
            step, span, cache = (HOUR_S, DAY_S, self.days) if kind == "hour" else (MINUTE_S, HOUR_S, self.hours)
            if start + span <= watermarks[machine]:
                entry = HashEntry.from_redis(start, step, raw or {})
                cache.put((line, machine, start), entry)  # finished: never changes again
            else:
                entry = HashEntry.from_redis(start, step, raw or {}, self.open_texts, self.prefixes,
                                             (line, machine, start, step))
            found[key] = entry
        return found


def _plan_machine(plan: _Plan, request: MachineRequest) -> None:
    cap = floor_to(request.watermark, MINUTE_S)
    for bucket, (a, b) in enumerate(itertools.pairwise(request.bounds)):
        b = min(b, cap)
        if b <= a:
            continue
        first_hour, last_hour = ceil_to(a, HOUR_S), floor_to(b, HOUR_S)
        if first_hour >= last_hour:
            _plan_minutes(plan, request.machine, bucket, a, b)
            continue
        _plan_minutes(plan, request.machine, bucket, a, first_hour)
        _plan_hours(plan, request.machine, bucket, first_hour, last_hour)
        _plan_minutes(plan, request.machine, bucket, last_hour, b)


def _plan_minutes(plan: _Plan, machine: str, bucket: int, a: float, b: float) -> None:
    hour = floor_to(a, HOUR_S)
    while hour < b:
        first = int((max(a, hour) - hour) // MINUTE_S)
        last = int((min(b, hour + HOUR_S) - hour) // MINUTE_S)
        if last > first:
            plan.use("minute", machine, hour, bucket, first, last)
        hour += HOUR_S


def _plan_hours(plan: _Plan, machine: str, bucket: int, a: float, b: float) -> None:
    day = floor_to(a, DAY_S)
    while day < b:
        first = int((max(a, day) - day) // HOUR_S)
        last = int((min(b, day + DAY_S) - day) // HOUR_S)
        if last > first:
            plan.use("hour", machine, day, bucket, first, last)
        day += DAY_S


def read_minute_rollups(client: Any, line: str, machine: str, hour: float) -> dict[int, RollupSum]:
    """The stored minute rollups of one machine-hour, whether the hour is closed or filling."""
    texts: dict[Any, Any] = dict(contract.split_minutes(client.get(contract.closed_minutes_key(line, machine, hour))))
    texts.update(client.hgetall(contract.minute_rollup_key(line, machine, hour)))
    return {int(index): RollupSum.decode(text, hour + int(index) * MINUTE_S) for index, text in texts.items()}
