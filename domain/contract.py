"""The stream contract: Redis key names, field names and value encoding.

This is the one place that knows them. Collectors write through ``encode_event``,
readers decode with ``decode_event``; the README documents the same format for
third-party collectors. Pure: no Redis import, only names and bytes.

Keys carry the line in a hash tag (``{line}``) so a Redis Cluster keeps everything
of one line on one shard.

* ``plant:{<line>}:events`` - stream, one entry per event, fields:
  ``m`` machine id, ``s`` signal (see ``domain.model.Signal``), ``v`` value as text,
  ``q`` OPC UA status name ("Good", "BadSensorFailure", ...), ``t`` event time in
  epoch milliseconds UTC (the OPC UA source timestamp by default).
* ``plant:{<line>}:live`` - hash, the latest event per signal:
  field ``<machine>|<signal>``, value ``<v>|<q>|<t>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from domain.model import Event, Signal

PREFIX = "plant"
FIELDS = ("m", "s", "v", "q", "t")
DEFAULT_RETENTION_S = 8 * 24 * 3600

_INT_SIGNALS = {Signal.GOOD, Signal.REJECT, Signal.REASON}
_FLOAT_SIGNALS = {Signal.ENERGY, Signal.POWER}


def line_tag(line: str) -> str:
    return f"{PREFIX}:{{{line}}}"


def events_key(line: str) -> str:
    return f"{line_tag(line)}:events"


def live_key(line: str) -> str:
    return f"{line_tag(line)}:live"


def live_field(machine: str, signal: Signal | str) -> str:
    return f"{machine}|{signal}"


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


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


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
    f = {_text(k): _text(v) for k, v in fields.items()}
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
    machine, signal_text = _text(field).rsplit("|", 1)
    value_text, status, ts_ms = _text(raw).rsplit("|", 2)
    signal = Signal(signal_text)
    value, status = decode_value(signal, value_text, status)
    return Event(line, machine, signal, value, status, int(ts_ms) / 1000.0)
