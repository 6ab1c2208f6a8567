"""The incremental engine: one machine's events in time order -> closed minutes and stops.

The rollup worker (``store``) feeds events and stores what ``close_until`` returns; a
query computes the open edge with ``partial`` from a carry restored from Redis plus the
raw events since. Pure: time is always passed in, never read from the clock.

**Why minute rollups are raw.** Whether a stop is a micro-stop (a performance loss) or
down time (an availability loss), planned or not, and which loss category it has depends
on the whole stop: its end and its reason, which may arrive minutes after the stop
started. Minutes close while a stop is ongoing and are never rewritten. So a minute
stores only what is known when it closes: ``stopped_s``, the known not-running seconds
inside planned operation time (plus ``state_s`` per state), and leaves the classified
fields (``domain.totals.CLASSIFIED_FIELDS``) at 0. For a window, ``window_totals`` sums
the minutes and splits their ``stopped_s`` with the Stop records overlapping the window
(``domain.downtime.classify_totals``): each stop's seconds inside planned operation time
and inside the window go to the bucket of the whole stop, classified as of ``now`` (an
ongoing stop is classified as if it ended at ``now``). The result equals the totals
computed directly from the raw events over the same window (``totals_from_events``;
tested with random event sequences and windows).

Timeline rules (unknown, gaps, stops, reasons, counters, energy): ``domain.timeline``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from domain.accounting import (
    MINUTE_S,
    MachineContext,
    MinuteRollup,
    Stop,
    add_count,
    add_meter_energy,
    add_time,
    floor_minute,
    is_stopped,
)
from domain.calendar import Interval
from domain.downtime import LOSS_FIELDS, classify_stop, classify_totals, has_planned_time, set_classified
from domain.model import Event, Signal, State
from domain.plant import Line, Machine, Plant
from domain.plausibility import Flag
from domain.slots import shallow_copier
from domain.timeline import Timeline
from domain.totals import Totals, sum_totals

__all__ = ["MachineAccumulator", "MinuteRollup", "Stop", "feed_order", "totals_from_events", "window_totals"]

CARRY_VERSION = 1


class _MinuteSink:
    """Adds the timeline's reports to the accumulator's open minute. Made for each call
    that reports (``feed``, ``_advance``), not kept by the accumulator: kept, the two would
    reference each other, and every accumulator (a reader clones one per machine per live
    view) would be freed only by the cyclic garbage collector."""

    __slots__ = ("_acc",)

    def __init__(self, acc: MachineAccumulator) -> None:
        self._acc = acc

    def segment(self, start: float, end: float, state: State, power_kw: float | None,
                stop_start: float | None) -> None:
        add_time(self._acc._open, self._acc._ctx, start, end, state, power_kw)

    def count(self, at: float, good: int, reject: int) -> None:
        add_count(self._acc._open, self._acc._ctx, at, good, reject)

    def meter(self, at: float, kwh: float, running: bool) -> None:
        add_meter_energy(self._acc._open, self._acc._ctx, at, kwh, running)

    def flag(self, flag: Flag) -> None:
        self._acc._flags.append(flag)


class MachineAccumulator:
    """Consumes one machine's events in time order and closes whole minutes.

    * ``feed(event)``: an event of this machine (any signal). Events older than the
      time already processed are late: they are applied at that time (their counts and
      energy land in the open minute, nothing is lost) and closed minutes are never
      reopened; readings older than the last of their signal are ignored.
      An event beyond the open minute closes the minutes before it (returned by the
      next ``close_until``).
    * ``close_until(t)``: closes every whole minute ending at or before ``t`` and
      returns their rollups (also minutes with no events: state carries on, or becomes
      unknown after ``plant.gap_timeout_s`` of silence). Rollups are raw: see the
      module docstring and ``window_totals``.
    * ``partial(t)``: totals from the open minute's start to ``t`` (no closing).
    * ``drain_flags()``: implausible readings (``domain.plausibility``) since the last
      call, in the order fed; carried like the stops until drained.
    * ``drain_stops()``: stops that ended since the last call. ``current_stop()``: the
      ongoing stop as of the time processed. ``stops_at(t)``: both, as of ``t``.
    * ``edge(t)``: ``partial(t)`` and ``stops_at(t)`` together (one copy of the state).
    * ``carry()`` / ``MachineAccumulator(..., carry=...)``: JSON-serialisable state;
      restoring it continues with identical results (``start`` is then ignored).
    * ``context``: the machine's ``MachineContext`` (its shift-calendar cache) from an
      earlier accumulator of the same plant, line and machine; a reader that restores
      accumulators on every query passes it so the calendar is not rebuilt each time.
    """

    def __init__(self, plant: Plant, line: Line, machine: Machine, start: float,
                 carry: dict[str, Any] | None = None, *, context: MachineContext | None = None) -> None:
        if context is not None and (context.line.id, context.machine.id) != (line.id, machine.id):
            raise ValueError(f"context of {context.line.id}/{context.machine.id} given for {line.id}/{machine.id}")
        self._ctx = context if context is not None else MachineContext.of(plant, line, machine)
        self._flags: list[Flag] = []
        if carry is None:
            self._cursor = floor_minute(start)
            self._open = Totals()
            self._ready: list[MinuteRollup] = []
            self._timeline = Timeline(self._ctx, self._cursor)
        else:
            self._restore(carry)

    @property
    def cursor(self) -> float:
        """Start of the open minute."""
        return self._cursor

    @property
    def processed_until(self) -> float:
        """Time up to which events and silence have been applied (>= cursor)."""
        return self._timeline.t

    def feed(self, event: Event) -> None:
        if event.machine != self._ctx.machine.id or event.line != self._ctx.line.id:
            raise ValueError(f"event of {event.line}/{event.machine} fed to {self._ctx.line.id}/{self._ctx.machine.id}")
        sink = _MinuteSink(self)
        self._advance(max(event.ts, self._timeline.t), sink)
        self._timeline.apply(event, sink)

    def advance_to(self, t: float) -> None:
        """Processes time (silence) up to ``t`` exactly; minutes that end on the way are
        closed (returned by the next ``close_until``). Event-time workers advance to their
        watermark, so an event at or after it is never late."""
        if t > self._timeline.t:
            self._advance(t)

    def close_until(self, t: float) -> list[MinuteRollup]:
        boundary = floor_minute(t)
        if boundary > self._cursor:
            self._advance(boundary)
        ready, self._ready = self._ready, []
        return ready

    def partial(self, t: float) -> Totals:
        """Totals from ``cursor`` to ``t`` (also across minute ends), without closing.
        A ``t`` before the time already processed gives the totals up to that time."""
        return self.edge(t)[0]

    def drain_flags(self) -> list[Flag]:
        flags, self._flags = self._flags, []
        return flags

    def drain_stops(self) -> list[Stop]:
        stops, self._timeline.finished = self._timeline.finished, []
        return stops

    def current_stop(self) -> Stop | None:
        return self._timeline.current_stop()

    def stops_at(self, t: float) -> list[Stop]:
        """Stops not drained yet plus the ongoing one, as of ``t`` (without changing state):
        silence between the time processed and ``t`` may have ended the ongoing stop."""
        return self.edge(t)[1]

    def edge(self, t: float) -> tuple[Totals, list[Stop]]:
        """``partial(t)`` and ``stops_at(t)`` from one pass (a query needs both)."""
        clone = self._clone(advanced_only=True)
        clone._ready = []
        clone._advance(max(t, clone._timeline.t))
        totals = sum_totals(m.totals for m in clone._ready) + clone._open
        current = clone.current_stop()
        return totals, clone.drain_stops() + ([current] if current is not None else [])

    def edge_minutes(self, t: float) -> tuple[list[MinuteRollup], float, Totals, list[Stop]]:
        """Without changing state: the minutes closed and not returned yet plus those
        ending by ``t``, the start of the minute open at ``t`` and its totals up to ``t``,
        and ``stops_at(t)`` (one copy of the state: what a reader sums per bucket)."""
        clone = self._clone(advanced_only=True)
        clone._advance(max(t, clone._timeline.t))
        current = clone.current_stop()
        stops = clone.drain_stops() + ([current] if current is not None else [])
        return clone._ready, clone._cursor, clone._open, stops

    def forget_until(self, t: float) -> bool:
        """What a worker that processed this machine up to ``t`` has stored, dropped: the
        minutes closed before ``t`` and the stops that ended before it (and the flags). Time
        up to ``t`` is processed first (silence), as that worker did. Events fed beyond
        ``t`` stay. False, and nothing dropped, when a stop ended exactly at ``t`` (that
        worker may or may not have it: the caller restores the worker's state instead)."""
        finished = self._timeline.finished
        if any(s.end == t for s in finished):
            return False
        self.advance_to(t)
        boundary = floor_minute(t)
        self._ready = [m for m in self._ready if m.minute_start >= boundary]
        self._timeline.finished = [s for s in self._timeline.finished if s.end is None or s.end > t]
        self._flags = []
        return True

    @staticmethod
    def processed_in(carry: dict[str, Any]) -> float:
        """``processed_until`` of the accumulator a ``carry()`` restores (without restoring it)."""
        return float(carry["timeline"]["t"])

    def copy(self) -> MachineAccumulator:
        """An independent copy: what a ``carry()`` round trip gives, without the dicts (a reader
        keeps a restored accumulator and feeds copies of it)."""
        return self._clone()

    def carry(self) -> dict[str, Any]:
        return {
            "v": CARRY_VERSION,
            "machine": self._ctx.machine.id,
            "cursor": self._cursor,
            "open": self._open.to_dict(),
            "ready": [[m.minute_start, m.totals.to_dict()] for m in self._ready],
            "timeline": self._timeline.to_dict(),
            "flags": [f.to_dict() for f in self._flags],
        }

    # internals

    def _restore(self, carry: dict[str, Any]) -> None:
        if carry.get("v") != CARRY_VERSION or carry.get("machine") != self._ctx.machine.id:
            raise ValueError(f"carry of {carry.get('machine')!r} (version {carry.get('v')!r}) does not fit "
                             f"{self._ctx.machine.id!r} (version {CARRY_VERSION})")
        self._cursor = float(carry["cursor"])
        self._open = Totals.from_dict(carry["open"])
        self._ready = [MinuteRollup(float(start), Totals.from_dict(data)) for start, data in carry["ready"]]
        self._timeline = Timeline(self._ctx, self._cursor)
        self._timeline.restore(carry["timeline"])
        self._flags = [Flag.from_dict(f) for f in carry.get("flags", ())]

    def _clone(self, *, advanced_only: bool = False) -> MachineAccumulator:
        """An independent copy (what a ``carry()`` round trip gives, without the dicts);
        ``advanced_only``: a copy that is only advanced in time, never fed (``edge_minutes``):
        it shares the counters and flags, which only events change."""
        clone = MachineAccumulator.__new__(MachineAccumulator)
        clone._ctx = self._ctx  # shares the calendar cache
        clone._cursor = self._cursor
        clone._open = _copy_totals(self._open)
        clone._ready = list(self._ready)  # closed rollups are never changed
        clone._timeline = self._timeline.copy(counters=not advanced_only)
        clone._flags = self._flags if advanced_only else list(self._flags)  # Flag records are frozen
        return clone

    def _advance(self, t: float, sink: _MinuteSink | None = None) -> None:
        """Processes time up to ``t``, closing every minute that ends on the way."""
        if sink is None:
            sink = _MinuteSink(self)
        while t >= self._cursor + MINUTE_S:
            self._timeline.advance(self._cursor + MINUTE_S, sink)
            self._ready.append(MinuteRollup(self._cursor, self._open))
            self._cursor += MINUTE_S
            self._open = Totals()
        self._timeline.advance(t, sink)


_shallow_totals = shallow_copier(Totals)


def _copy_totals(totals: Totals) -> Totals:
    """A copy that shares nothing mutable (``Totals.copy`` adds to zeros: slower)."""
    out = _shallow_totals(totals)
    out.state_s = dict(totals.state_s)
    out.quarter_kwh = dict(totals.quarter_kwh)
    return out


def window_totals(minutes: Iterable[Totals | MinuteRollup], stops: Iterable[Stop], plant: Plant,
                  start: float, end: float, now: float) -> Totals:
    """Totals of a window from its raw minute rollups (and ``partial`` for the open edge)
    plus the Stop records overlapping it (ended ones and the ongoing one)."""
    raw = sum_totals(m.totals if isinstance(m, MinuteRollup) else m for m in minutes)
    return classify_totals(raw, stops, plant, start, end, now)


class _WindowSink:
    """Adds the timeline's reports inside [start, end) to one Totals, remembering which
    stop each stopped second belongs to, so it can be classified when the stop is known."""

    def __init__(self, ctx: MachineContext, start: float, end: float, open_edge: bool) -> None:
        self.ctx = ctx
        self.start = start
        self.end = end
        self.open_edge = open_edge  # the window runs to now: readings at now are in it
        self.totals = Totals()
        self.stopped: list[tuple[float, Interval]] = []  # (stop start, clipped segment)

    def segment(self, start: float, end: float, state: State, power_kw: float | None,
                stop_start: float | None) -> None:
        a, b = max(start, self.start), min(end, self.end)
        if b <= a:
            return
        add_time(self.totals, self.ctx, a, b, state, power_kw)
        if is_stopped(state) and stop_start is not None:
            self.stopped.append((stop_start, (a, b)))

    def _inside(self, at: float) -> bool:
        return self.start <= at < self.end or (self.open_edge and at == self.end)

    def count(self, at: float, good: int, reject: int) -> None:
        if self._inside(at):
            add_count(self.totals, self.ctx, at, good, reject)

    def meter(self, at: float, kwh: float, running: bool) -> None:
        if self._inside(at):
            add_meter_energy(self.totals, self.ctx, at, kwh, running)

    def flag(self, flag: Flag) -> None:
        pass  # totals only: flags are the accumulator's (``drain_flags``)


def totals_from_events(events: Iterable[Event], plant: Plant, line: Line, machine: Machine,
                       start: float, end: float, now: float, origin: float | None = None) -> tuple[Totals, list[Stop]]:
    """Totals of [start, min(end, now)) computed in one pass from raw events, and all stops.

    The reference the minute rollups must agree with, and a way to recompute any window
    from the raw stream. ``origin``: where the timeline starts (state unknown until the
    first event); default: the minute of ``start``. Events after ``now`` are ignored;
    readings at exactly ``now`` count when the window runs to ``now`` (as in ``partial``).
    """
    ctx = MachineContext.of(plant, line, machine)
    edge = min(end, now)
    sink = _WindowSink(ctx, start, edge, open_edge=end >= now)
    timeline = Timeline(ctx, floor_minute(start if origin is None else origin))
    for event in sorted(events, key=feed_order):
        if event.ts > now:
            continue
        timeline.advance(max(event.ts, timeline.t), sink)
        timeline.apply(event, sink)
    timeline.advance(max(now, timeline.t), sink)
    current = timeline.current_stop()
    stops = timeline.finished + ([current] if current is not None else [])
    classes = {stop.start: classify_stop(stop, plant, now) for stop in stops}
    buckets = dict.fromkeys(LOSS_FIELDS, 0.0)
    for stop_start, (a, b) in sink.stopped:
        buckets[classes[stop_start].loss_field] += ctx.calendar.seconds(a, b)
    counted = sum(1 for s in stops if classes[s.start].is_availability_loss and start <= s.start < edge
                  and has_planned_time(s, plant, now))
    return set_classified(sink.totals, buckets, counted), stops


# Readings of an instant belong to the time up to it (a meter reading taken as the state
# changes is energy of the old state), so the state comes last; a reason before the state
# it explains.
_FEED_ORDER = (Signal.HEARTBEAT, Signal.LINK, Signal.GOOD, Signal.REJECT, Signal.ENERGY, Signal.POWER,
               Signal.REASON, Signal.STATE)
_SIGNAL_RANK = {signal: rank for rank, signal in enumerate(_FEED_ORDER)}


def feed_order(event: Event) -> tuple[float, int]:
    """The order events are fed in: event time, then signal (fixed), so that events of
    one instant give the same result whatever order they arrived in. Sort stably with
    this key: readings of one signal at one instant keep their arrival order."""
    return event.ts, _SIGNAL_RANK.get(event.signal, len(_SIGNAL_RANK))


def replay(acc: MachineAccumulator, events: Sequence[Event], until: float) -> list[MinuteRollup]:
    """Feeds events (in time order) and closes minutes up to ``until``: backfills, tests."""
    for event in events:
        acc.feed(event)
    return acc.close_until(until)
