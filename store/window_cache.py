"""Closed whole hours of a window, summed once and shared by every reader process.

A window's machine sums are composed of three parts, always the same way (so a sum taken
from the cache and one computed again are the same floating-point numbers): the leading
minutes up to the first whole hour, the **closed whole hours** from there to the last hour
boundary the machine has closed (its watermark), and the tail after it
(the open edge comes on top, in ``store.window_reads``). The middle part never changes
until late data rewrites stored rollups (the line's ``amend`` counter moves), so it is kept
per (line, machine, first hour, last hour, amend): in the process (an LRU) and in Redis
(``contract.window_sums_key``, one hash per line and span, with a TTL), where another
server process finds it instead of reading and parsing every hour and day again. A rolling
range (7 days ending now) gets a new middle once an hour; a past range reads its middle
from the cache and only its leading and trailing minutes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from domain import contract
from store.cache import LruCache
from store.closed_rollups import HOUR_S, MINUTE_S, MachineRequest, RollupReads, ceil_to, floor_to
from store.sums import RollupSum

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 2 * 86400


def _encode(part: RollupSum) -> str:
    return json.dumps([part.scalars, part.states, [[q, kwh] for q, kwh in part.quarters.items()]],
                      separators=(",", ":"))


def _decode(text: bytes | str) -> RollupSum:
    scalars, states, quarters = json.loads(text)
    return RollupSum([float(v) for v in scalars], {str(k): float(v) for k, v in states.items()},
                     {float(q): float(kwh) for q, kwh in quarters})


class WindowSums:
    """Single-bucket window sums with their closed whole hours cached (module docstring).
    ``ttl_s`` 0: nothing is kept (every middle is read again; the composition stays the same)."""

    def __init__(self, redis_client: Any, rollups: RollupReads, *, ttl_s: int = DEFAULT_TTL_S,
                 max_entries: int = 20_000) -> None:
        self.redis = redis_client
        self.rollups = rollups
        self.ttl_s = ttl_s
        self.local: LruCache[tuple[str, str, float, float, int], RollupSum] = LruCache(max_entries if ttl_s else 0)
        self.shared_hits = 0  # machine middles found in Redis (tests, benchmarks)
        self.computed = 0  # machine middles read from the rollups

    def sums(self, line: str, requests: Sequence[MachineRequest], amend: int) -> dict[str, list[RollupSum]]:
        """Like ``RollupReads.bucket_sums`` for requests of one bucket ``[start, end)`` each.
        Each machine's sum is composed at its own last closed hour (its watermark's), so it
        is the same whichever other machines are asked with it."""
        out: dict[str, list[RollupSum]] = {}
        by_cut: dict[float, list[MachineRequest]] = {}
        for r in requests:
            by_cut.setdefault(floor_to(min(r.bounds[-1], floor_to(r.watermark, MINUTE_S)), HOUR_S), []).append(r)
        for cut, group in by_cut.items():
            out.update(self._composed(line, group, cut, amend))
        return out

    def _composed(self, line: str, requests: Sequence[MachineRequest], cut: float, amend: int
                  ) -> dict[str, list[RollupSum]]:
        """Lead, middle and tail of machines with the same last closed hour ``cut``."""
        start, end = requests[0].bounds[0], requests[0].bounds[-1]
        first = ceil_to(start, HOUR_S)
        if cut - first < HOUR_S:
            return self.rollups.bucket_sums(line, requests)
        middle = self._middle(line, requests, first, cut, amend)
        lead = self.rollups.bucket_sums(line, [MachineRequest(r.machine, r.watermark, [start, first])
                                               for r in requests]) if first > start else {}
        tail = self.rollups.bucket_sums(line, [MachineRequest(r.machine, r.watermark, [cut, end])
                                               for r in requests]) if end > cut else {}
        out: dict[str, list[RollupSum]] = {}
        for r in requests:
            total = RollupSum()
            if r.machine in lead:
                total.add(lead[r.machine][0])
            total.add(middle[r.machine])
            if r.machine in tail:
                total.add(tail[r.machine][0])
            out[r.machine] = [total]
        return out

    def _middle(self, line: str, requests: Sequence[MachineRequest], first: float, cut: float,
                amend: int) -> dict[str, RollupSum]:
        found: dict[str, RollupSum] = {}
        for r in requests:
            got = self.local.get((line, r.machine, first, cut, amend))
            if got is not None:
                found[r.machine] = got
        missing = [r for r in requests if r.machine not in found]
        if not missing:
            return found
        key = contract.window_sums_key(line, first, cut, amend)
        if self.ttl_s:
            try:
                raws: Any = self.redis.hmget(key, [r.machine for r in missing])
            except RedisError as exc:  # the cache is an optimisation: read the rollups instead
                log.warning("window cache unreadable: %s", exc)
                raws = [None] * len(missing)
            for r, raw in zip(missing, raws, strict=True):
                if raw is not None:
                    found[r.machine] = _decode(raw)
                    self.local.put((line, r.machine, first, cut, amend), found[r.machine])
                    self.shared_hits += 1
            missing = [r for r in missing if r.machine not in found]
        if not missing:
            return found
        read = self.rollups.bucket_sums(line, [MachineRequest(r.machine, r.watermark, [first, cut]) for r in missing])
        self.computed += len(missing)
        for r in missing:
            found[r.machine] = read[r.machine][0]
            self.local.put((line, r.machine, first, cut, amend), found[r.machine])
        if self.ttl_s:
            try:
                with self.redis.pipeline(transaction=False) as pipe:
                    pipe.hset(key, mapping={r.machine: _encode(found[r.machine]) for r in missing})
                    pipe.expire(key, self.ttl_s)
                    pipe.execute()
            except RedisError as exc:
                log.warning("window cache not written: %s", exc)
        return found
