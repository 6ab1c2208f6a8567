"""OPC UA data values to canonical events: which node is which machine signal, raw
states to canonical states, the event time, and what counts as a bad value.

A value that does not fit its signal (wrong type, NaN or infinite, a negative or
fractional counter, no value at all) becomes an event with status ``BadValue``; an OPC UA
status other than Good is kept by name ("BadSensorFailure", "UncertainLastUsableValue").
Either way the event is recorded and never counts as production or state: only events
whose status is Good do (``Event.is_good``). Nothing here raises on plant data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from asyncua import ua
from asyncua.ua import status_codes

from domain.model import Event, Signal
from domain.plant import Plant, StateMap, TimestampSource

BAD_VALUE = "BadValue"
GOOD = "Good"

_COUNTERS = frozenset({Signal.GOOD, Signal.REJECT})
_LEVELS = frozenset({Signal.ENERGY, Signal.POWER})
_STATUS_MASK = 0xFFFF0000  # the low 16 bits are info bits (overflow, limits), not the code


@dataclass(frozen=True, slots=True)
class Binding:
    """One configured node: whose signal it is and how to read its raw values."""

    line: str
    machine: str
    signal: Signal
    node_id: str
    state_map: StateMap | None = None  # for Signal.STATE only


def bindings_for(plant: Plant, endpoint: str) -> list[Binding]:
    """All configured nodes of the machines on ``endpoint``, in plant-file order."""
    out: list[Binding] = []
    for line in plant.lines:
        for machine in line.machines:
            if machine.endpoint != endpoint:
                continue
            state_map = plant.state_map_for(machine)
            for signal, node_id in machine.nodes.items():
                out.append(Binding(line.id, machine.id, signal, node_id, state_map if signal == Signal.STATE else None))
    return out


@lru_cache(maxsize=512)
def _status_name(code: int) -> str:
    name, _ = status_codes.get_name_and_doc(code & _STATUS_MASK)
    return name


def status_name(code: ua.StatusCode | None) -> str:
    if code is None:
        return GOOD
    return _status_name(code.value)


def event_time(dv: ua.DataValue, source: TimestampSource, arrival: float) -> float:
    """Epoch seconds from the timestamp the endpoint is configured to trust.

    ``source`` falls back to the server timestamp, both fall back to arrival time:
    servers may omit either.
    """
    if source is TimestampSource.SOURCE and dv.SourceTimestamp is not None:
        return dv.SourceTimestamp.timestamp()
    if source is not TimestampSource.ARRIVAL and dv.ServerTimestamp is not None:
        return dv.ServerTimestamp.timestamp()
    return arrival


def _as_int(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        return int(raw)
    return None


def _as_level(raw: object) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    number = float(raw)
    return number if math.isfinite(number) else None


def _shown(raw: object) -> str | float | int | None:
    """A bad raw value as it can be stored: numbers and text as they are, others as text."""
    if raw is None or isinstance(raw, str | int | float):
        return raw if not isinstance(raw, str) else raw[:64]
    return repr(raw)[:64]


def coerce(binding: Binding, raw: object) -> str | float | int | None:
    """The canonical value of a Good raw value, or None when it does not fit the signal."""
    signal = binding.signal
    if signal in _COUNTERS:
        count = _as_int(raw)
        return count if count is not None and count >= 0 else None
    if signal in _LEVELS:
        return _as_level(raw)
    if signal == Signal.REASON:
        return _as_int(raw)
    if signal == Signal.STATE:
        if raw is None or not isinstance(raw, str | int | float) or (isinstance(raw, float) and not math.isfinite(raw)):
            return None
        assert binding.state_map is not None
        return str(binding.state_map.map(raw))
    return None


def to_event(binding: Binding, dv: ua.DataValue, source: TimestampSource, arrival: float) -> Event:
    """The canonical event for one data change notification of ``binding``'s node."""
    raw = dv.Value.Value if dv.Value is not None else None
    code = dv.StatusCode
    status = GOOD if code is None or code.value == 0 else _status_name(code.value)  # Good: the fast path
    if source is TimestampSource.SOURCE and dv.SourceTimestamp is not None:
        ts = dv.SourceTimestamp.timestamp()
    else:
        ts = event_time(dv, source, arrival)
    if status.startswith(GOOD):
        value = coerce(binding, raw)
        if value is None:
            return Event(binding.line, binding.machine, binding.signal, _shown(raw), BAD_VALUE, ts)
        return Event(binding.line, binding.machine, binding.signal, value, status, ts)
    value = coerce(binding, raw) if raw is not None else None
    return Event(binding.line, binding.machine, binding.signal, _shown(raw) if value is None else value, status, ts)
