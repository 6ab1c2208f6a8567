"""Human classifications of stops in Redis, keyed by stable stop ids
(``domain.classification``; key: ``domain.contract.classifications_key``).

Read on every stop query (one HMGET of the window's stop ids), never cached: a
classification changes every figure at once, past windows included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import redis

from domain import contract
from domain.accounting import Stop
from domain.classification import Classification, apply, stop_id
from domain.model import State

log = logging.getLogger(__name__)

EDGE_LOOKUP_S = 6 * 3600.0  # a stop not in the stops set yet is a recent one


class Classifications:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def get(self, line: str, sid: str) -> Classification | None:
        raw: Any = self.redis.hget(contract.classifications_key(line), sid)
        return _decode(raw)

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

    def put(self, line: str, sid: str, cls: Classification) -> None:
        self.redis.hset(contract.classifications_key(line), sid, json.dumps(cls.to_dict()))

    def apply(self, line: str, stops: list[Stop]) -> list[Stop]:
        """The stops with the people's classifications applied (``domain.classification.apply``)."""
        ids = list(dict.fromkeys(stop_id(s.line, s.machine, s.start) for s in stops))
        return apply(stops, self.many(line, ids))


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
