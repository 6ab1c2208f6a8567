"""The rollup worker's bookkeeping of a line (``domain.contract.rollup_state_key``), as
the readers see it: each machine's carry (watermark, last stream id applied, ...) and,
beside it, its head (``Head``: what a reader needs of it at every commit)."""

from __future__ import annotations

import json
import logging
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from domain import contract
from domain.engine import MachineAccumulator

log = logging.getLogger(__name__)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


@dataclass(frozen=True, slots=True)
class Head:
    """What a reader needs of a machine's carry at every commit of the worker's, without
    parsing the carry: the worker writes it beside each carry (``head_text``)."""

    w: float  # the watermark: the start of the open minute
    id: str  # the last stream entry applied
    t: float  # the time processed (``MachineAccumulator.processed_in``)
    stop: str | None  # the ongoing stop's member (``contract.stop_member``), if any


def head_of(carry: dict[str, Any]) -> Head:
    return Head(float(carry["w"]), str(carry.get("id") or contract.NO_STREAM_ID),
                MachineAccumulator.processed_in(carry["acc"]), carry.get("stop"))


def carry_text(carry: dict[str, Any]) -> str:
    """A carry's JSON as the worker writes it: compact. Made by orjson (a 1000-machine
    plant's worker writes a thousand carries a second; about twice as fast as ``json``, the
    check included) when that reads back as the very carry: the same values, and the same
    text as ``json.dumps`` but for a few floats' exponents (``1.5e-7`` for ``1.5e-07``) and
    text beyond ASCII (as UTF-8, not escaped).
    Else by ``json``: orjson writes NaN and infinities as null, and a key that is not text
    (a number: ``json`` writes its text) would not read back as itself."""
    try:
        text = orjson.dumps(carry, option=orjson.OPT_NON_STR_KEYS)  # (a State key: its value, as json)
        if orjson.loads(text) == carry:
            return text.decode()
    except (TypeError, orjson.JSONEncodeError):  # (an int beyond 64 bits, a type orjson does not know)
        pass
    return json.dumps(carry, separators=(",", ":"))


def head_text(carry_text: str, carry: dict[str, Any]) -> str:
    """The head field the worker writes beside ``carry_text`` (the carry's JSON): its CRC-32
    first, so a reader uses it only with the very carry it was written for."""
    head = head_of(carry)
    fields = [zlib.crc32(carry_text.encode()), head.w, head.id, head.t, head.stop]
    if math.isfinite(head.w) and math.isfinite(head.t):  # (orjson writes NaN and infinities as null)
        return orjson.dumps(fields).decode()
    return json.dumps(fields, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class LineSnapshot:
    """The worker's bookkeeping of one line as read at one moment: each machine's head at
    once, its whole carry parsed when first asked for (``carry``: restoring the machine's
    accumulator, rare once a reader follows the line)."""

    heads: dict[str, Head]  # machine -> head
    beat: float | None
    max_stop_s: float
    amend: int = 0  # rewinds so far: stored rollups before a watermark changed when this grew
    raw: dict[str, bytes | str] = field(default_factory=dict)  # machine -> its carry's JSON
    parsed: dict[str, dict[str, Any]] = field(default_factory=dict)  # the carries parsed so far

    def carry(self, machine: str) -> dict[str, Any]:
        """The machine's whole carry (KeyError: the worker keeps none)."""
        got = self.parsed.get(machine)
        if got is None:
            if machine not in self.heads:
                raise KeyError(machine)
            got = self.parsed[machine] = _loads(self.raw[machine])
        return got

    def watermark(self, machine: str) -> float | None:
        head = self.heads.get(machine)
        return None if head is None else head.w

    def last_id(self, machine: str) -> str:
        head = self.heads.get(machine)
        return contract.NO_STREAM_ID if head is None else head.id

    def processed(self, machine: str) -> float:
        """The time the worker processed the machine up to (KeyError: it keeps no carry)."""
        return self.heads[machine].t


def _loads(text: bytes | str) -> Any:
    """A carry parsed: with orjson (about 4x faster than ``json``); a carry ``json.dumps``
    wrote with NaN or Infinity in it (orjson refuses those) with ``json``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def snapshot_of(raw: dict[Any, Any]) -> LineSnapshot:
    """The bookkeeping hash as read: each machine's head from the field the worker wrote
    beside its carry when it fits that carry (CRC-32), else from the carry, parsed."""
    data = {_text(k): v for k, v in (raw or {}).items()}
    heads: dict[str, Head] = {}
    texts: dict[str, bytes | str] = {}
    parsed: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if not key.startswith("c:"):
            continue
        machine = key[2:]
        head = _written_head(data.get(contract.head_field(machine)), value)
        if head is None:
            try:
                carry = _loads(value)
                head = head_of(carry)
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable carry %s", key)
                continue
            parsed[machine] = carry
        heads[machine], texts[machine] = head, value
    beat = data.get("beat")
    return LineSnapshot(heads, float(beat) if beat else None, float(data.get("max_stop_s") or 0.0),
                        int(data.get("amend") or 0), texts, parsed)


def _written_head(text: bytes | str | None, carry_text: bytes | str) -> Head | None:
    """The head the worker wrote, if it was written for this very carry (a worker of an
    earlier release writes none, and leaves an earlier one stale when it writes the carry)."""
    if text is None:
        return None
    try:
        crc, w, last_id, t, stop = orjson.loads(text)
        if crc != zlib.crc32(carry_text if isinstance(carry_text, bytes) else carry_text.encode()):
            return None
        return Head(float(w), str(last_id or contract.NO_STREAM_ID), float(t), stop)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None


# a carry as the worker writes it (``carry_text`` of ``MachineProgress.to_carry``) starts with its watermark
_WATERMARK = re.compile(rb'\{"w":(-?[0-9][0-9.eE+-]*)[,}]')


def watermarks_of(raw: dict[Any, Any]) -> tuple[dict[str, float], float | None]:
    """Each machine's watermark and the worker's heartbeat: what the health check needs,
    without parsing every machine's whole carry (the watermark from its head, else from the
    carry's first field; a carry written otherwise is parsed whole)."""
    data = {_text(k): v for k, v in (raw or {}).items()}
    out: dict[str, float] = {}
    other: dict[Any, Any] = {}
    for name, value in data.items():
        if not name.startswith("c:"):
            continue
        machine = name[2:]
        head = _written_head(data.get(contract.head_field(machine)), value)
        if head is not None:
            out[machine] = head.w
            continue
        found = _WATERMARK.match(value if isinstance(value, bytes) else value.encode())
        if found is not None:
            out[machine] = float(found.group(1))
        else:
            other[name] = value
    out.update((m, head.w) for m, head in snapshot_of(other).heads.items())
    beat = data.get("beat")
    return out, float(beat) if beat else None
