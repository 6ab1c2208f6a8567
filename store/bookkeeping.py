"""The rollup worker's bookkeeping of a line (``domain.contract.rollup_state_key``), as
the readers see it: each machine's carry (watermark, last stream id applied, ...)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson

from domain import contract

log = logging.getLogger(__name__)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


@dataclass(frozen=True, slots=True)
class LineSnapshot:
    """The worker's bookkeeping of one line as read at one moment."""

    carries: dict[str, dict[str, Any]]  # machine -> carry record
    beat: float | None
    max_stop_s: float
    amend: int = 0  # rewinds so far: stored rollups before a watermark changed when this grew

    def watermark(self, machine: str) -> float | None:
        carry = self.carries.get(machine)
        return None if carry is None else float(carry["w"])

    def last_id(self, machine: str) -> str:
        carry = self.carries.get(machine)
        return contract.NO_STREAM_ID if carry is None else str(carry.get("id") or contract.NO_STREAM_ID)


def _loads(text: bytes | str) -> Any:
    """A carry parsed: with orjson (a live read parses every machine's carry at each worker
    commit, about 4x faster than ``json``); a carry ``json.dumps`` wrote with NaN or
    Infinity in it (orjson refuses those) with ``json``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def snapshot_of(raw: dict[Any, Any]) -> LineSnapshot:
    data = {_text(k): v for k, v in (raw or {}).items()}
    carries = {}
    for key, value in data.items():
        if key.startswith("c:"):
            try:
                carries[key[2:]] = _loads(value)
            except ValueError:
                log.warning("unreadable carry %s", key)
    beat = data.get("beat")
    return LineSnapshot(carries, float(beat) if beat else None, float(data.get("max_stop_s") or 0.0),
                        int(data.get("amend") or 0))


# a carry as the worker writes it (``json.dumps`` of ``MachineProgress.to_carry``) starts with its watermark
_WATERMARK = re.compile(rb'\{"w":(-?[0-9][0-9.eE+-]*)[,}]')


def watermarks_of(raw: dict[Any, Any]) -> LineSnapshot:
    """The bookkeeping with each carry reduced to its watermark (``{"w": ...}``): what the
    health check needs, without parsing every machine's whole carry (read from the
    carry's first field; a carry written otherwise is parsed whole)."""
    carries: dict[str, dict[str, Any]] = {}
    other: dict[Any, Any] = {}
    for key, value in (raw or {}).items():
        name = _text(key)
        if not name.startswith("c:"):
            other[name] = value
            continue
        found = _WATERMARK.match(value if isinstance(value, bytes) else value.encode())
        if found is not None:
            carries[name[2:]] = {"w": float(found.group(1))}
        else:
            other[name] = value
    snapshot = snapshot_of(other)
    return LineSnapshot({**carries, **{m: {"w": c.get("w")} for m, c in snapshot.carries.items()}},
                        snapshot.beat, snapshot.max_stop_s, snapshot.amend)
