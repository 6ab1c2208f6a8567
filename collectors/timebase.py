"""The time base of the collector's own events (``hb``, ``link``, nodes the server refused).

Data events carry the PLC's SourceTimestamp (or the server's timestamp): the PLC's clock,
which may be skewed, or, for a replayed scenario, days in the past and running faster
than the wall clock. The collector's own events must be on that same clock: the rollup
worker starts a machine at its first event and the engine applies events older than the
time it has processed at that time (late), so a ``link`` ``up`` stamped with today's wall
clock ahead of replayed data would push all of that data late.

Per machine (``MachineKey``: line, machine):

* **offset** = the newest time of the machine's data in a notification minus the wall
  time that notification arrived, from the latest notification with a change of the
  machine; without one, the endpoint's latest such offset (machines behind one server
  usually share its clock); without any change yet, a lower bound from the initial values
  (see below); without data at all, 0 (the wall clock). Offsets are kept across
  reconnects: they are a property of the PLC's clock.
* **initial values** (the first value of each monitored item after the subscription was
  created) carry the time of the node's last change, possibly hours ago, not the time
  they were sent: they never set the offset, only the lower bound (the PLC's clock is at
  least at the newest of them).
* a collector event is stamped ``heard + offset``, where ``heard`` is the wall time of the
  subscription's last publish response (data or keep-alive) minus one publishing
  interval (``ItemSubscription.heard_until``): the server had sent everything queued
  until then, while a value that changed since may still wait in its queue; and never
  earlier than the newest event already written for the machine (monotonic per
  machine). So a heartbeat never runs ahead of the data's time base.
* ``link`` ``up`` waits for the machine's first data of a session (``observe`` returns
  it): ``min(heard + offset, the earliest change in that notification)``, not earlier
  than the newest event written. The rollup worker therefore never starts a machine
  ahead of its data; initial values older than the link are applied at its time.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from domain.model import Event

MachineKey = tuple[str, str]  # line, machine


class TimeBase:
    """One endpoint's machines: offsets of their clocks and the newest time written."""

    def __init__(self) -> None:
        self.offsets: dict[MachineKey, float] = {}  # from changes
        self.endpoint_offset: float | None = None
        self.lower: dict[MachineKey, float] = {}  # from initial values: lower bounds
        self.endpoint_lower: float | None = None
        self.last: dict[MachineKey, float] = {}  # newest event time written per machine

    def offset(self, key: MachineKey) -> float:
        """Seconds to add to the wall clock to get the machine's clock."""
        offset = self.offsets.get(key)
        if offset is not None:
            return offset
        if self.endpoint_offset is not None:
            return self.endpoint_offset
        offset = self.lower.get(key)
        if offset is not None:
            return offset
        return self.endpoint_lower if self.endpoint_lower is not None else 0.0

    def stamp(self, key: MachineKey, heard: float) -> float:
        """The time of a collector event of ``key`` whose server was heard at wall time
        ``heard``; recorded as written."""
        ts = heard + self.offset(key)
        last = self.last.get(key)
        if last is not None and last >= ts:
            return last
        self.last[key] = ts
        return ts

    def observe(self, events: Sequence[Event], arrival: float, initial: Collection[int] | None = None,
                waiting: Collection[MachineKey] = ()) -> dict[MachineKey, float]:
        """One notification's events, sorted by time, that arrived at wall time ``arrival``;
        ``initial``: the ``id()`` of the events that are initial values (None: none are).

        Returns the time of ``link`` ``up`` for each machine of ``waiting`` that has data
        here (its events go to the stream after it)."""
        newest: dict[MachineKey, float] = {}
        earliest_change: dict[MachineKey, float] = {}
        if not initial:
            for event in events:
                newest[event.line, event.machine] = event.ts  # sorted: the last one is the newest
            changes = newest
            if waiting:
                for event in reversed(events):
                    earliest_change[event.line, event.machine] = event.ts
        else:
            changes = {}
            for event in events:
                key = (event.line, event.machine)
                newest[key] = event.ts
                if id(event) in initial:
                    lower = event.ts - arrival
                    if lower > self.lower.get(key, -math.inf):
                        self.lower[key] = lower
                    if self.endpoint_lower is None or lower > self.endpoint_lower:
                        self.endpoint_lower = lower
                else:
                    changes[key] = event.ts
                    earliest_change.setdefault(key, event.ts)
        if changes:
            best = -math.inf
            offsets = self.offsets
            for key, ts in changes.items():
                offset = offsets[key] = ts - arrival
                if offset > best:
                    best = offset
            self.endpoint_offset = best
        ups: dict[MachineKey, float] = {}
        last = self.last
        if waiting:
            for key in newest:
                if key in waiting:
                    ts = min(arrival + self.offset(key), earliest_change.get(key, math.inf))
                    previous = last.get(key)
                    ups[key] = ts if previous is None or ts > previous else previous
        for key, ts in newest.items():
            up = ups.get(key)
            if up is not None and up > ts:
                ts = up
            previous = last.get(key)
            if previous is None or ts > previous:
                last[key] = ts
        return ups
