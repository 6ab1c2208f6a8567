"""The incremental engine: one machine's events in time order -> closed minutes and stops.

INTERFACE STUB, to be implemented (owner: the core engine work). The rollup worker
(``store``) feeds events and stores what ``close_until`` returns; a query computes the
open edge with ``partial`` from a carry restored from Redis plus the raw events since.
Pure: time is always passed in, never read from the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.model import Event, State
from domain.plant import Line, Machine, Plant
from domain.totals import Totals


@dataclass(frozen=True, slots=True)
class MinuteRollup:
    minute_start: float  # epoch seconds, a multiple of 60
    totals: Totals


@dataclass(frozen=True, slots=True)
class Stop:
    """A period in which the machine was not running (and the state was known).

    ``end`` is None while the stop is ongoing. ``reason`` is the last non-zero reason
    code seen during the stop (0: none). Classification (planned, micro-stop, loss
    category, reason text) is done with the plant config by ``domain.downtime``.
    """

    line: str
    machine: str
    start: float
    end: float | None
    state: State
    reason: int

    def duration(self, now: float) -> float:
        return (self.end if self.end is not None else now) - self.start


class MachineAccumulator:
    """Consumes one machine's events in time order and closes whole minutes.

    * ``feed(event)``: an event of this machine (any signal). Events older than the
      open minute's start are late: they still update counters/meters baselines but
      do not reopen closed minutes.
    * ``close_until(t)``: closes every whole minute ending at or before ``t`` and
      returns their rollups (also minutes with no events: state carries on, or becomes
      unknown after ``plant.gap_timeout_s`` of silence).
    * ``partial(t)``: totals of the open minute from its start to ``t`` (no closing).
    * ``drain_stops()``: stops that ended since the last call. ``current_stop()``.
    * ``carry()`` / ``MachineAccumulator(..., carry=...)``: JSON-serialisable state.
    """

    def __init__(self, plant: Plant, line: Line, machine: Machine, start: float, carry: dict | None = None) -> None:
        raise NotImplementedError

    @property
    def cursor(self) -> float:
        """Start of the open minute."""
        raise NotImplementedError

    def feed(self, event: Event) -> None:
        raise NotImplementedError

    def close_until(self, t: float) -> list[MinuteRollup]:
        raise NotImplementedError

    def partial(self, t: float) -> Totals:
        raise NotImplementedError

    def drain_stops(self) -> list[Stop]:
        raise NotImplementedError

    def current_stop(self) -> Stop | None:
        raise NotImplementedError

    def carry(self) -> dict:
        raise NotImplementedError
