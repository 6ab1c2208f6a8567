"""Human classifications of stops in Redis, keyed by stable stop ids
(``domain.classification``; key: ``domain.contract.classifications_key``).

Read on every stop query (one pipeline: the window's stop ids, and the ids of the
classifications whose stop started up to ``LOOKBACK_S`` before), never cached: a
classification changes every figure at once, past windows included. A classification
whose stop late data rewrote with another start attaches by overlap
(``domain.classification.attach``); the next write for that stop moves it to the new id.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from domain import contract
from domain.accounting import Stop
from domain.classification import (
    Classification,
    ClassifiedStop,
    Pieces,
    Unclassified,
    apply,
    attach,
    parse_stop_id,
    stop_id,
    unclassified,
)
from domain.model import State
from domain.stop_groups import earliest_start

log = logging.getLogger(__name__)

EDGE_LOOKUP_S = 6 * 3600.0  # a stop not in the stops set yet is a recent one
LOOKBACK_S = 12 * 3600.0  # how far before a window's stops a moved stop's classification is looked for


class Classifications:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        # what ``apply`` made of each stop object (``domain.classification.apply``): kept while the stops
        # are the same objects (a reader's, until late data rewrote them: ``forget``)
        self.kept: Unclassified = {}  # without a classification
        self.pieces: Pieces = {}  # with one

    def forget(self) -> None:
        """Drops what was made of each stop (the stops are not the same objects any more)."""
        self.kept.clear()
        self.pieces.clear()

    def get(self, line: str, sid: str) -> Classification | None:
        raw: Any = self.redis.hget(contract.classifications_key(line), sid)
        return _decode(raw)

    def index(self, line: str) -> None:
        """The start index of classifications stored before it existed."""
        raw: Any = self.redis.hkeys(contract.classifications_key(line))
        scores = {}
        for sid in raw:
            parsed = parse_stop_id(_text(sid))
            if parsed is not None:
                scores[_text(sid)] = parsed[2]
        if scores:
            self.redis.zadd(contract.classification_starts_key(line), scores)

    def attached(self, line: str, stops: Sequence[Stop], read: Read | None = None
                 ) -> dict[str, tuple[str, Classification]]:
        """stop id -> (the id it was stored under, the classification the stop carries).
        ``read``: the line's classifications as ``read_after`` read them, used when they
        cover these stops (no round trip of its own)."""
        return self._attached(line, stops, [unclassified(s, self.kept) for s in stops], read)

    def _attached(self, line: str, stops: Sequence[Stop], plain: list[ClassifiedStop], read: Read | None
                  ) -> dict[str, tuple[str, Classification]]:
        """``attached``; ``plain``: the stops as ``unclassified`` gives them."""
        if not stops:
            return {}
        lo = earliest_start(stops) - LOOKBACK_S  # (a live window's stops carry it: ``GroupedStops.low``)
        if read is not None and read.covers(lo) and not read.raw:
            return {}  # nothing classified from ``lo`` on
        sids = [p.stop_id for p in plain]
        hi = max(math.inf if s.end is None else s.end for s in stops)
        if read is not None and read.covers(lo):
            ids = set(sids)
            found = {sid: cls for sid in read.raw if sid in ids and (cls := read.get(sid)) is not None}
            found.update({sid: cls for sid, score in read.starts if lo <= score <= hi and sid not in found
                          and sid not in ids and (cls := read.get(sid)) is not None})
            return _by_stop(stops, found, sids)
        wanted = list(dict.fromkeys(sids))
        starts = contract.classification_starts_key(line)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(contract.classifications_key(line), wanted)
            pipe.exists(starts)
            pipe.hlen(contract.classifications_key(line))
            pipe.zrangebyscore(starts, lo, "+inf" if math.isinf(hi) else hi)
            raws, indexed, stored, nearby = pipe.execute()
        if not indexed and stored:
            self.index(line)
            nearby = self.redis.zrangebyscore(starts, lo, "+inf" if math.isinf(hi) else hi)
        found = {sid: cls for sid, raw in zip(wanted, raws, strict=True) if (cls := _decode(raw)) is not None}
        known = set(wanted)
        others = [_text(x) for x in nearby if _text(x) not in found and _text(x) not in known]
        if others:
            found.update(self.many(line, others))
        return _by_stop(stops, found, sids)

    def carried(self, line: str, stop: Stop) -> tuple[str, Classification] | None:
        """(stored id, classification) the stop carries, exactly or by overlap."""
        return self.attached(line, [stop]).get(stop_id(stop.line, stop.machine, stop.start))

    def many(self, line: str, ids: Sequence[str]) -> dict[str, Classification]:
        if not ids:
            return {}
        raws: Any = self.redis.hmget(contract.classifications_key(line), list(ids))
        out = {}
        for sid, raw in zip(ids, raws, strict=True):
            cls = _decode(raw)
            if cls is not None:
                out[sid] = cls
        return out

    def put(self, line: str, sid: str, cls: Classification, replaces: str | None = None) -> None:
        """Stores ``cls`` for the stop ``sid``; ``replaces``: the id it was stored under
        before late data moved the stop's start (removed)."""
        parsed = parse_stop_id(sid)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(contract.classifications_key(line), sid, json.dumps(cls.to_dict()))
            pipe.incr(contract.classifications_version_key(line))  # every process's live feed: the line changed
            if parsed is not None:
                pipe.zadd(contract.classification_starts_key(line), {sid: parsed[2]})
            if replaces is not None and replaces != sid:
                pipe.hdel(contract.classifications_key(line), replaces)
                pipe.zrem(contract.classification_starts_key(line), replaces)
            pipe.execute()

    def trim(self, line: str, before: float, batch: int = 1000) -> int:
        """Drops the classifications of stops that started before ``before`` (the stops'
        retention: their stops are gone), by the start index (built first when incomplete);
        how many were dropped."""
        hash_key, starts = contract.classifications_key(line), contract.classification_starts_key(line)
        if int(self.redis.hlen(hash_key)) > int(self.redis.zcard(starts)):
            self.index(line)
        dropped = 0
        while True:
            old: Any = self.redis.zrangebyscore(starts, "-inf", f"({before!r}", start=0, num=batch)
            if not old:
                return dropped
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.hdel(hash_key, *old)
                pipe.zrem(starts, *old)
                pipe.execute()
            dropped += len(old)

    def apply(self, line: str, stops: list[Stop], read: Read | None = None) -> list[Stop]:
        """The stops with the people's classifications applied (``domain.classification.apply``)."""
        # the stored stops are parsed into this form (``unclassified``), the open edge's turned into it
        # by ``StopReads.overlapping``: then they are used as they are (late in a shift a line has over
        # a thousand: a C-level check of their types, no list made)
        plain = cast(list[ClassifiedStop], stops) if set(map(type, stops)) <= {ClassifiedStop} else \
            [s if s.__class__ is ClassifiedStop else unclassified(s, self.kept) for s in stops]
        attached = self._attached(line, stops, plain, read)
        return apply(stops, {sid: cls for sid, (_stored, cls) in attached.items()}, plain=plain, pieces=self.pieces)


def _by_stop(stops: Sequence[Stop], found: dict[str, Classification],
             sids: Sequence[str]) -> dict[str, tuple[str, Classification]]:
    """stop id -> (the id it was stored under, the classification); ``sids``: the stops' ids."""
    if not found:
        return {}
    by_stop = attach(stops, found, sids)
    origin = {id(cls): sid for sid, cls in found.items()}
    return {sid: (origin[id(cls)], cls) for sid, cls in by_stop.items()}


# The classifications of stops that started from ARGV[1] on, with the hash's and the index's
# sizes (equal: every classification is in the index): one command, sent with a line's other reads.
_READ_AFTER = """
local found = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf', 'WITHSCORES')
local values = {}
for i = 1, #found, 2000 do
  local names = {}
  for j = i, math.min(i + 1999, #found), 2 do names[#names + 1] = found[j] end
  local got = redis.call('HMGET', KEYS[1], unpack(names))
  for _, v in ipairs(got) do values[#values + 1] = v end
end
return {redis.call('HLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]), found, values}
"""


def read_after(line: str, since: float) -> tuple[str, tuple[Any, ...]]:
    """The command (name, arguments: for a pipeline) that reads the line's classifications of
    stops that started at ``since`` or later; its reply makes a ``Read`` (``Read.of``)."""
    keys = (contract.classifications_key(line), contract.classification_starts_key(line))
    return "execute_command", ("EVAL", _READ_AFTER, 2, *keys, repr(since))  # a cluster pipeline has no eval()


@dataclass(frozen=True, slots=True)
class Read:
    """A line's classifications of the stops that started at ``since`` or later."""

    since: float
    complete: bool  # every classification of the line is in its start index (else: read them apart)
    starts: list[tuple[str, float]]  # (stop id, stop start), by start
    raw: dict[str, Any]  # stop id -> its stored JSON

    @classmethod
    def of(cls, since: float, reply: Any) -> Read:
        stored, indexed, found, values = reply
        starts = [(_text(found[i]), float(found[i + 1])) for i in range(0, len(found), 2)]
        raw = {sid: value for (sid, _), value in zip(starts, values, strict=True) if value}
        return cls(since, int(stored) == int(indexed), starts, raw)

    def covers(self, lo: float) -> bool:
        """Whether stops whose classifications start at ``lo`` or later are all here."""
        return self.complete and lo >= self.since

    def get(self, sid: str) -> Classification | None:
        raw = self.raw.get(sid)
        return None if raw is None else _decode(raw)


def _decode(raw: Any) -> Classification | None:
    if raw is None:
        return None
    try:
        return Classification.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring an unreadable stop classification")
        return None


def find_stop(reader: Any, line: str, machine: str, start: float, now: float) -> Stop | None:
    """The PLC's stop (reason as the PLC gave it) that starts at ``start`` on ``machine``:
    from the stops set (scored by start), else, for a stop the rollup worker has not
    stored yet, from the open edge through the reader."""
    start_ms = round(start * 1000)
    members: Any = reader.redis.zrangebyscore(contract.stops_key(line), start - 0.001, start + 0.001)
    found: Stop | None = None
    for raw in members:
        try:
            m, s, e, state, reason = contract.decode_stop_member(raw)
            candidate = Stop(line, m, s, e, State(state), reason)
        except ValueError:
            continue
        if m == machine and round(s * 1000) == start_ms and (found is None or found.end is None):
            found = candidate
    if found is not None or not 0 <= now - start < EDGE_LOOKUP_S:
        return found
    sid = stop_id(line, machine, start)
    events = [e for e in reader.downtime(line, start, now, now)["events"] if e.get("id") == sid]
    if not events:
        return None
    end = None if any(e["end"] is None for e in events) else max(e["end"] for e in events)
    return Stop(line, machine, start, end, State(events[0]["state"]), int(events[0]["plc_reason"]))


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
