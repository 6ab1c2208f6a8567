"""One endpoint's events besides its values' changes: each notification's values turned
into events in time order (times that cannot be right flagged), heartbeats, ``link``
up/down, and the events of nodes the server refused, stamped in the time base of the
machine's data (``collectors.timebase``; the wall clock for ``arrival`` timestamps).

``EndpointCollector`` (``collectors.endpoint``) runs the session and tells this part what
happens to it: ``subscribing`` (a new session), ``resubscribing`` (a rebuilt subscription),
``up`` (subscribed), ``refused`` (a node the server will not monitor), ``link("down")``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Sequence
from operator import attrgetter

from asyncua import ua

from collectors.mapping import Binding, to_event
from collectors.options import EndpointStats
from collectors.sink import RedisSink
from collectors.subscription import ItemSubscription
from collectors.timebase import MachineKey, TimeBase
from domain.contract import TIMESTAMP_FUTURE, TIMESTAMP_TOO_OLD
from domain.model import GOOD_STATUS, Event, Signal
from domain.plant import Plant, TimestampSource

log = logging.getLogger(__name__)

_BY_TIME = attrgetter("ts")


class EndpointEvents:
    """The events of one endpoint's machines, put into the sink."""

    def __init__(self, plant: Plant, name: str, by_handle: dict[int, Binding], source: TimestampSource,
                 sink: RedisSink, stats: EndpointStats, max_future_s: float, heard: Callable[[], float]) -> None:
        self.name = name
        self.by_handle = by_handle
        self.machines = sorted({(b.line, b.machine) for b in by_handle.values()})
        self.source = source
        self.sink = sink
        self.stats = stats
        self.max_future_s = max_future_s
        self.heard = heard  # wall time up to which the server's data has arrived
        self.retention_s = plant.retention.stream_days * 86400.0
        # The time base of hb/link (None: the wall clock, for ``arrival`` timestamps).
        self.timebase = None if source is TimestampSource.ARRIVAL else TimeBase()
        self.fresh: set[int] = set()  # handles whose initial value has not arrived yet
        self.fresh_since = 0.0
        self.waiting: set[MachineKey] = set()  # machines whose "link up" waits for their first data
        self.held: dict[MachineKey, list[tuple[Binding, str]]] = {}  # refused nodes of waiting machines
        self.up_at = 0.0
        self._reported_times: set[tuple[str, str, str]] = set()  # (machine, signal, status) logged

    def subscribing(self) -> None:
        """A new session subscribes: initial values come, and each machine's "link up"
        waits for its first data (with a time base)."""
        if self.timebase is not None:
            self.fresh, self.fresh_since = set(self.by_handle), time.monotonic()
            self.waiting = set(self.machines)
            self.held = {}

    def resubscribing(self) -> None:
        """A rebuilt subscription: its new items send their initial values again."""
        if self.timebase is not None:
            self.fresh, self.fresh_since = set(self.by_handle), time.monotonic()

    def up(self, monitored: Collection[MachineKey]) -> None:
        """Subscribed: "link up" now for the wall clock, else for the machines of which no
        data will come (none of their nodes monitored)."""
        self.up_at = time.monotonic()
        if self.timebase is None:
            self.link("up")
            return
        for key in sorted(self.waiting - set(monitored)):
            self.link_up(key, self.timebase.stamp(key, self.heard()))

    def refused(self, handle: int, binding: Binding, status: str) -> None:
        """A node the server will not monitor: an event with its status (with a time base,
        a waiting machine's is written with its "link up")."""
        self.fresh.discard(handle)
        key = (binding.line, binding.machine)
        if self.timebase is None:
            ts = time.time()
        elif key in self.waiting:
            self.held.setdefault(key, []).append((binding, status))
            return
        else:
            ts = self.timebase.stamp(key, self.heard())
        self.sink.put(Event(binding.line, binding.machine, binding.signal, None, status, ts))

    def on_data(self, items: Sequence[ua.MonitoredItemNotification]) -> None:
        """One publish response's notifications (called by asyncua's publish loop): their
        events sorted by time (stable) go to the sink, after the "link up" of machines
        heard for the first time in this session."""
        arrival = time.time()
        by_handle, source = self.by_handle, self.source
        events: list[Event] = []
        append = events.append
        fresh = self.fresh
        initial: set[int] | None = None
        if fresh:  # the first values after (re)subscribing: initial values, not changes
            initial = set()
            for item in items:
                handle = item.ClientHandle
                binding = by_handle.get(handle)
                if binding is not None:
                    event = to_event(binding, item.Value, source, arrival)
                    append(event)
                    if handle in fresh:
                        fresh.discard(handle)
                        initial.add(id(event))
        else:
            for item in items:
                binding = by_handle.get(item.ClientHandle)
                if binding is not None:
                    append(to_event(binding, item.Value, source, arrival))
        self.stats.notifications += len(items)
        timebase = self.timebase
        if timebase is not None and events:  # arrival timestamps are all equal: already in order
            events.sort(key=_BY_TIME)
            trusted = events
            if (events[-1].ts > arrival + self.max_future_s
                    or events[0].ts < arrival - self.retention_s):
                events, trusted = self._flag_times(events, arrival, initial)
            ups = timebase.observe(trusted, arrival, initial, self.waiting)
            for key, ts in ups.items():
                self.link_up(key, ts)
        self.sink.put_all(events)

    def _flag_times(self, events: list[Event], arrival: float,
                    initial: set[int] | None) -> tuple[list[Event], list[Event]]:
        """``events`` with a Bad status on those whose time cannot be right, and those
        whose time can (for the time base). An initial value is old when its node has not
        changed for long: only changes are too old."""
        latest, oldest = arrival + self.max_future_s, arrival - self.retention_s
        out: list[Event] = []
        trusted: list[Event] = []
        for event in events:
            if event.ts > latest:
                status = TIMESTAMP_FUTURE
            elif event.ts < oldest and (initial is None or id(event) not in initial):
                status = TIMESTAMP_TOO_OLD
            else:
                out.append(event)
                trusted.append(event)
                continue
            out.append(dataclasses.replace(event, status=status))
            self._report_time(event, status, arrival)
        return out, trusted

    def _report_time(self, event: Event, status: str, arrival: float) -> None:
        key = (event.machine, str(event.signal), status)
        level = logging.DEBUG if key in self._reported_times else logging.WARNING
        self._reported_times.add(key)
        log.log(level, "endpoint %s: %s/%s %s stamped %+.0f s from the collector's clock: written as %s "
                "(tolerance +%g s, retention %g days)", self.name, event.line, event.machine, event.signal,
                event.ts - arrival, status, self.max_future_s, self.retention_s / 86400)

    def beat(self, sub: ItemSubscription, silence_s: float) -> None:
        timebase, put = self.timebase, self.sink.put
        if timebase is None:
            now = time.time()
            for line, machine in self.machines:
                put(Event(line, machine, Signal.HEARTBEAT, None, GOOD_STATUS, now))
            return
        heard = sub.heard_until()
        now = time.monotonic()
        # A server that never sent some initial values: go on without them.
        if self.fresh and now - self.fresh_since >= silence_s:
            self.fresh.clear()
        if self.waiting and now - self.up_at >= silence_s:
            for key in sorted(self.waiting):
                self.link_up(key, timebase.stamp(key, heard))
        for key in self.machines:
            if key not in self.waiting:
                put(Event(key[0], key[1], Signal.HEARTBEAT, None, GOOD_STATUS, timebase.stamp(key, heard)))

    def link_up(self, key: MachineKey, ts: float) -> None:
        """A waiting machine's "link up" and the events of its refused nodes, at ``ts``."""
        self.waiting.discard(key)
        line, machine = key
        self.sink.put(Event(line, machine, Signal.LINK, "up", GOOD_STATUS, ts))
        for binding, status in self.held.pop(key, ()):
            self.sink.put(Event(line, machine, binding.signal, None, status, ts))

    def link(self, value: str) -> None:
        """``link`` ``value`` for every machine. With a time base (only "down": "up" is
        ``_link_up``) only for the machines whose "up" was written."""
        timebase = self.timebase
        if timebase is None:
            now = time.time()
            for line, machine in self.machines:
                self.sink.put(Event(line, machine, Signal.LINK, value, GOOD_STATUS, now))
            return
        heard = self.heard()
        for key in self.machines:
            if key not in self.waiting:
                self.sink.put(Event(key[0], key[1], Signal.LINK, value, GOOD_STATUS, timebase.stamp(key, heard)))
        self.waiting.clear()
        self.held.clear()
