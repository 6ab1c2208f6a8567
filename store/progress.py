"""One machine's rollup progress in event time (pure: no Redis here).

A machine's events reach the worker in arrival order, which is not the order they
happened in: signals come through different subscriptions, gateways buffer, the
collector's store-and-forward buffer flushes an outage's hour at once. The worker
therefore keeps, per machine:

* ``acc``: the engine (``domain.engine.MachineAccumulator``) fed in event-time order
  (``domain.engine.feed_order``) up to ``fed_until``;
* ``pending``: events received but not fed yet, because data of an earlier instant may
  still come: they are fed once the machine's **watermark** (its newest event time minus
  the allowed lateness) has passed them;
* at every whole hour it crosses, a **checkpoint** (the whole progress as JSON): an event
  older than ``fed_until`` (late) rewinds the machine to the checkpoint before it, and
  its events since are fed again, so late data lands in its own minute, hour, shift,
  quarter hour and tariff period and the figures equal those of on-time arrival.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from domain import contract
from domain.accounting import MachineContext
from domain.engine import MachineAccumulator, MinuteRollup, Stop, feed_order
from domain.model import Event, Signal, State
from domain.plant import Line, Machine, Plant
from domain.timeline import Timeline
from store.sums import RollupSum

HOUR_S = 3600.0
def floor_to(ts: float, step: float) -> float:
    return math.floor(ts / step) * step


def encode_pending(event: Event) -> list[Any]:
    return [round(event.ts * 1000), str(event.signal), contract.encode_value(event.value), event.status]


def decode_pending(line: str, machine: str, raw: list[Any]) -> Event:
    signal = Signal(raw[1])
    value, status = contract.decode_value(signal, raw[2], raw[3])
    return Event(line, machine, signal, value, status, int(raw[0]) / 1000.0)


class StateChanges:
    """Timeline sink that keeps only changes of the effective state (segments, counts and
    energy are the accumulator's business)."""

    def __init__(self, machine: str) -> None:
        self.machine = machine
        self.state: str | None = None
        self.since: float | None = None
        self.changes: list[str] = []

    def segment(self, start: float, end: float, state: State, power_kw: float | None,
                stop_start: float | None) -> None:
        if str(state) != self.state:
            self.state, self.since = str(state), start
            self.changes.append(contract.encode_state_member(self.machine, start, str(state)))

    def count(self, at: float, good: int, reject: int) -> None:
        pass

    def meter(self, at: float, kwh: float, running: bool) -> None:
        pass

    def flag(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass(slots=True)
class Closed:
    """What advancing a machine closed: written by the worker in its next commit."""

    minutes: list[MinuteRollup] = field(default_factory=list)
    hours: list[tuple[float, RollupSum]] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    state_changes: list[str] = field(default_factory=list)
    flags: list[Any] = field(default_factory=list)
    checkpoints: dict[float, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class MachineProgress:
    """The worker's state for one machine; persisted as the machine's carry.

    ``shadow`` is a second ``domain.timeline.Timeline`` fed the same events as the
    accumulator: it records the effective-state changes for the timeline chart with
    exactly the rules the KPIs use. ``origin``: where the machine's rollups start (the
    minute of its oldest event). ``newest``: its newest event time (any signal).
    ``seen``: the worker's clock when an entry of it last arrived. ``last``: per signal,
    the newest reading received (time, value text, status): the collector keeps each
    signal in time order, so a reading not newer than it is one seen before (a re-read
    after a reconnect) and is dropped instead of rewinding the machine.
    """

    acc: MachineAccumulator
    shadow: Timeline
    changes: StateChanges
    origin: float
    last_id: str = contract.NO_STREAM_ID
    hour_start: float | None = None
    hour_sum: RollupSum | None = None
    hour_text: str | None = None  # ``hour_sum`` encoded for the carry (None: not since it last changed, here only)
    open_stop: str | None = None  # stops-set member of the ongoing stop
    pending: list[Event] = field(default_factory=list)  # sorted by feed_order
    pending_raw: list[list[Any]] = field(default_factory=list)  # ``pending`` encoded (the carry's "p")
    newest: float = -math.inf
    seen: float = -math.inf
    last: dict[str, list[Any]] = field(default_factory=dict)

    def is_repeat(self, event: Event) -> bool:
        """A reading this machine already has (see the class docstring)."""
        last = self.last.get(event.signal)
        if last is None or event.ts > last[0]:
            return False
        return event.ts < last[0] or [contract.encode_value(event.value), event.status] == last[1:]

    def remember(self, event: Event) -> None:
        last = self.last.get(event.signal)
        if last is None or event.ts >= last[0]:
            self.last[event.signal] = [event.ts, contract.encode_value(event.value), event.status]

    @classmethod
    def new(cls, plant: Plant, line: Line, machine: Machine, start: float) -> MachineProgress:
        acc = MachineAccumulator(plant, line, machine, start)
        return cls(acc, Timeline(MachineContext.of(plant, line, machine), acc.cursor), StateChanges(machine.id),
                   origin=acc.cursor)

    @property
    def fed_until(self) -> float:
        """Events before this time are in the figures; an older one is late."""
        return self.acc.processed_until

    def receive(self, events: list[Event]) -> None:
        """Events not older than ``fed_until``: they wait for the watermark."""
        for event in sorted(events, key=feed_order):
            at = bisect.bisect_right(self.pending, feed_order(event), key=feed_order)
            self.pending.insert(at, event)
            self.pending_raw.insert(at, encode_pending(event))  # once, not at every carry written
            self.newest = max(self.newest, event.ts)

    def advance(self, target: float) -> Closed:
        """Feeds the pending events before ``target`` and processes time up to it,
        checkpointing at every whole hour on the way."""
        closed = Closed()
        while True:
            hour = floor_to(self.fed_until, HOUR_S) + HOUR_S
            if hour > target:
                break
            self._feed_until(hour, closed)
            closed.checkpoints[hour] = self.checkpoint()
        self._feed_until(target, closed)
        return closed

    def _feed_until(self, t: float, closed: Closed) -> None:
        if t <= self.fed_until:
            return
        cut = bisect.bisect_left(self.pending, (t, -1), key=feed_order)
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        del self.pending_raw[:cut]
        for event in ready:
            self.acc.feed(event)
            self.shadow.advance(max(event.ts, self.shadow.t), self.changes)
            self.shadow.apply(event, self.changes)
        self.acc.advance_to(t)
        self.shadow.advance(max(t, self.shadow.t), self.changes)
        self.shadow.finished = []  # its stops are the accumulator's business
        for rollup in self.acc.close_until(t):
            closed.minutes.append(rollup)
            self._add_to_hour(rollup, closed)
        closed.stops.extend(self.acc.drain_stops())
        closed.flags.extend(self.acc.drain_flags())
        closed.state_changes.extend(self.changes.changes)
        self.changes.changes = []

    def _add_to_hour(self, rollup: MinuteRollup, closed: Closed) -> None:
        hour = floor_to(rollup.minute_start, HOUR_S)
        if self.hour_start is not None and self.hour_sum is not None and self.hour_start != hour:
            closed.hours.append((self.hour_start, self.hour_sum))  # an hour cut short
            self.hour_sum = None
        if self.hour_sum is None:
            self.hour_start, self.hour_sum = hour, RollupSum()
        self.hour_sum.add_totals(rollup.totals)
        self.hour_text = None  # (encoded again once a minute, not at every carry written)
        if rollup.minute_start + 60 >= hour + HOUR_S:
            closed.hours.append((hour, self.hour_sum))
            self.hour_start, self.hour_sum = None, None

    # persistence

    def checkpoint(self) -> dict[str, Any]:
        """The state at ``fed_until`` without what is received later (pending, ids)."""
        hour = None
        if self.hour_start is not None and self.hour_sum is not None:
            if self.hour_text is None:
                self.hour_text = self.hour_sum.encode(self.hour_start)
            hour = [self.hour_start, self.hour_text]
        return {
            "w": self.acc.cursor,
            "o": self.origin,
            "acc": self.acc.carry(),
            "hour": hour,
            "stop": self.open_stop,
            "tl": self.shadow.to_dict(),
            "since": [self.changes.state, self.changes.since],
        }

    def to_carry(self) -> dict[str, Any]:
        return {
            **self.checkpoint(),
            "id": self.last_id,
            "p": list(self.pending_raw),
            "n": None if self.newest == -math.inf else self.newest,
            "seen": None if self.seen == -math.inf else self.seen,
            "last": self.last,
        }

    @classmethod
    def from_carry(cls, plant: Plant, line: Line, machine: Machine, data: dict[str, Any]) -> MachineProgress:
        acc = MachineAccumulator(plant, line, machine, float(data["w"]), carry=data["acc"])
        shadow = Timeline(MachineContext.of(plant, line, machine), acc.cursor)
        shadow.restore(data["tl"])
        changes = StateChanges(machine.id)
        changes.state, changes.since = data.get("since") or (None, None)
        progress = cls(acc, shadow, changes, origin=float(data.get("o", data["w"])),
                       last_id=str(data.get("id") or contract.NO_STREAM_ID), open_stop=data.get("stop"))
        if data.get("hour"):
            progress.hour_start = float(data["hour"][0])
            progress.hour_sum = RollupSum.decode(data["hour"][1], progress.hour_start)
        progress.pending_raw = [list(raw) for raw in data.get("p") or []]
        progress.pending = [decode_pending(line.id, machine.id, raw) for raw in progress.pending_raw]
        progress.newest = -math.inf if data.get("n") is None else float(data["n"])
        progress.seen = -math.inf if data.get("seen") is None else float(data["seen"])
        progress.last = dict(data.get("last") or {})
        return progress


def pending_events(line: Line, machine: str, carry: dict[str, Any]) -> list[Event]:
    """The events a carry holds that its accumulator has not been fed (readers feed them)."""
    return [decode_pending(line.id, machine, raw) for raw in carry.get("p") or []]
