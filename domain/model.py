"""Records that cross boundaries: canonical states, signals and events.

Times in the domain are UTC epoch seconds (float). Durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    """The product's canonical machine states; raw PLC values map to these via config."""

    RUNNING = "running"
    IDLE = "idle"  # stopped without a known cause (waiting, stopped by operator)
    STARVED = "starved"  # waiting for parts from upstream
    BLOCKED = "blocked"  # cannot pass parts downstream
    FAULT = "fault"
    CHANGEOVER = "changeover"
    PLANNED_STOP = "planned_stop"  # planned maintenance, break taken at the machine
    UNKNOWN = "unknown"  # no data: neither running nor down


_STATES: dict[object, State] = {s.value: s for s in State}  # (a State is its string: it finds itself too)


def parse_state(value: object) -> State:
    """A state as stored or sent (its string) -> ``State``; anything else is unknown."""
    got = _STATES.get(value) if isinstance(value, str) else None  # (the andon asks it of every machine, often)
    if got is not None:
        return got
    try:
        return State(str(value))
    except ValueError:
        return State.UNKNOWN


class Signal(StrEnum):
    """What an event is about."""

    STATE = "state"  # value: a State's string
    GOOD = "good"  # value: cumulative good-part counter (int)
    REJECT = "reject"  # value: cumulative reject counter (int)
    ENERGY = "energy_kwh"  # value: cumulative energy meter, kWh (float)
    POWER = "power_kw"  # value: active power, kW (float)
    REASON = "reason"  # value: downtime reason code (int); 0 means none
    HEARTBEAT = "hb"  # value: None; the collector still hears this machine's server
    LINK = "link"  # value: "up" or "down"; the collector's connection to the machine


GOOD_STATUS = "Good"


@dataclass(frozen=True, slots=True)
class Event:
    """One observation of one signal of one machine.

    ``status`` is the OPC UA status code name ("Good", "BadSensorFailure", ...) or
    "BadValue" when the collector could not interpret the value. Only events whose
    status is good count as production or state.
    """

    line: str
    machine: str
    signal: Signal
    value: str | float | int | None
    status: str
    ts: float  # epoch seconds, UTC

    @property
    def is_good(self) -> bool:
        return self.status == GOOD_STATUS or self.status.startswith("Good")
