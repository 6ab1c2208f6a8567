"""The stream entry format: an event's fields and value encoding, entry ids, and the
live hash's values. Collectors write through ``encode_event``, readers decode with
``decode_event``; the README documents the same format for third-party collectors.

``plant:{<line>}:events`` (``keys.events_key``) holds one entry per event, fields:
``m`` machine id, ``s`` signal (see ``domain.model.Signal``), ``v`` value as text,
``q`` OPC UA status name ("Good", "BadSensorFailure", ...), ``t`` event time in
epoch milliseconds UTC (the OPC UA source timestamp by default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from domain.contract.keys import as_text, live_field, split_live_field
from domain.model import Event, Signal

FIELDS = ("m", "s", "v", "q", "t")
DEFAULT_RETENTION_S = 8 * 24 * 3600

_INT_SIGNALS = {Signal.GOOD, Signal.REJECT, Signal.REASON}
_FLOAT_SIGNALS = {Signal.ENERGY, Signal.POWER}


# Statuses the collector writes on an event whose timestamp it cannot trust (further
# ahead of its clock than its tolerance, or older than the stream's retention): the value
# is recorded, its time never moves heartbeats, link events, watermarks or "since".
TIMESTAMP_FUTURE = "BadTimestampFuture"
TIMESTAMP_TOO_OLD = "BadTimestampTooOld"
BAD_TIMESTAMP_STATUSES = frozenset({TIMESTAMP_FUTURE, TIMESTAMP_TOO_OLD})


# Stream entry ids: ``<ms>-<seq>`` (ms: when the entry reached Redis, or for the demo
# history the event's time; seq: its place among entries of that ms).
NO_STREAM_ID = "0-0"


def stream_id(ms: int, seq: int = 0) -> str:
    return f"{ms}-{seq}"


def stream_id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    """A stream id as a comparable (ms, seq) pair (``<ms>`` alone: seq 0)."""
    ms, _, seq = as_text(entry_id).partition("-")
    return int(ms), int(seq or 0)


def after_stream_id(entry_id: bytes | str) -> str:
    """The exclusive lower bound of an XRANGE that starts after ``entry_id``."""
    return f"({as_text(entry_id)}"


def encode_value(value: str | float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def encode_event(event: Event) -> dict[str, str]:
    """Stream entry fields for an event (always the same field order: compact listpacks)."""
    return {
        "m": event.machine,
        "s": str(event.signal),
        "v": encode_value(event.value),
        "q": event.status,
        "t": str(round(event.ts * 1000)),
    }


def encode_live(event: Event) -> tuple[str, str]:
    """Field and value of the live-snapshot hash for an event."""
    return (
        live_field(event.machine, event.signal),
        f"{encode_value(event.value)}|{event.status}|{round(event.ts * 1000)}",
    )


def decode_value(signal: Signal, text: str, status: str) -> tuple[str | float | int | None, str]:
    """Typed value for a signal; text that does not parse keeps its text and a Bad status."""
    if signal == Signal.HEARTBEAT:
        return None, status
    try:
        if signal in _INT_SIGNALS:
            return int(float(text)), status
        if signal in _FLOAT_SIGNALS:
            number = float(text)
            if math.isnan(number) or math.isinf(number):
                return number, status if status != "Good" else "BadValue"
            return number, status
    except ValueError:
        return text, "BadValue" if status == "Good" else status
    return text, status


def decode_event(line: str, fields: Mapping[bytes | str, bytes | str]) -> Event:
    """Event from a stream entry's fields. Raises ValueError on an entry without m/s/t."""
    f = {as_text(k): as_text(v) for k, v in fields.items()}
    try:
        signal = Signal(f["s"])
        ts = int(f["t"]) / 1000.0
        machine = f["m"]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a plant event: {f!r}") from exc
    status = f.get("q", "Good") or "Good"
    value, status = decode_value(signal, f.get("v", ""), status)
    return Event(line=line, machine=machine, signal=signal, value=value, status=status, ts=ts)


def decode_live(line: str, field: bytes | str, raw: bytes | str) -> Event:
    machine, signal_text = split_live_field(field)
    value_text, status, ts_ms = as_text(raw).rsplit("|", 2)
    signal = Signal(signal_text)
    value, status = decode_value(signal, value_text, status)
    return Event(line, machine, signal, value, status, int(ts_ms) / 1000.0)
