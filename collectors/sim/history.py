"""Demo history: the simulator's machines run over the past hours and written to the
line streams as the collector would have written them, so that a fresh demo has shifts,
days and stops to show instead of empty charts (the rollup worker rolls them up).

    history = DemoHistory(plant, start=now - 24 * 3600, seed=7)
    history.write_until(redis_client, now)   # events written
    PlantSimulator(plant, models=history.models, ...)  # the live plant goes on from there

The machines are ``collectors.sim.machine_model`` models started and advanced with exactly
the code the simulator uses; their writes become canonical events with the collector's
own mapping (``collectors.mapping``: the state map applied to raw states), stamped with
their simulated (past) times. Two things differ from a live collector, to keep a day of
history small enough to write and roll up in seconds:

* energy meter and power are sampled every ``meter_period_s`` (60 s by default instead
  of the simulator's 10 s): the KPIs integrate the meter, not the power;
* heartbeats only fill silences: a machine gets one when it has sent nothing for
  ``plant.gap_timeout_s / 2``, which keeps it heard (the engine turns a machine unknown
  after ``gap_timeout_s`` of silence) with a fraction of the collector's heartbeats.

Entries get stream ids at their event time (``<ms>-<seq>``, in time order), so MINID
retention trims them by age as it does live entries, and readers see ids in time order
as they do live. So history goes into empty streams (or continues its own): writing
events older than a stream's newest entry is refused.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

import redis

from collectors.mapping import GOOD, bindings_for, coerce
from collectors.sim.machine_model import MachineModel, Write, calendar_segments, start_models
from domain.model import Event, Signal
from domain.plant import Plant
from store.streams import has_entries, write_history

log = logging.getLogger(__name__)

HISTORY_METER_PERIOD_S = 60.0


def heartbeat_gap_s(plant: Plant) -> float:
    """Longest silence the history leaves a machine in: well inside ``gap_timeout_s``."""
    return plant.gap_timeout_s / 2


class DemoHistory:
    """The plant's machines from ``start`` on, turned into events as they advance.

    ``events_until`` is pure (the models' state and the events); ``write_until`` also
    writes the events to Redis. ``models`` hold the state reached: hand them to
    ``PlantSimulator(models=...)`` once the history is written, and counters and meters
    go on from there (the simulator then owns them).
    """

    def __init__(self, plant: Plant, start: float, seed: int, *,
                 meter_period_s: float = HISTORY_METER_PERIOD_S) -> None:
        self.plant = plant
        self.start = start
        self.tz = ZoneInfo(plant.timezone)
        self.models: dict[tuple[str, str], MachineModel] = start_models(plant, start, seed, meter_period_s)
        self.t = start
        self._bindings = {(b.line, b.machine, b.signal): b
                          for name in plant.endpoints for b in bindings_for(plant, name)}
        self._machines = {(b.line, b.machine) for b in self._bindings.values()}  # those the collector hears
        self._gap_s = heartbeat_gap_s(plant)
        self._last_event: dict[tuple[str, str], float] = {}
        self._started = False

    def events_until(self, until: float) -> dict[str, list[Event]]:
        """Every machine advanced to ``until``: the events of (t, until] per line, in
        time order (the first call starts with every node's value at the start, as the
        collector reads them when it subscribes)."""
        if until < self.t:
            raise ValueError(f"the history is already at {self.t}, cannot go back to {until}")
        segments = calendar_segments(self.plant, self.tz, self.t, until) if until > self.t else []
        by_line: dict[str, list[Event]] = {}
        for key, model in self.models.items():
            if key not in self._machines:
                continue
            writes = model.snapshot() if not self._started else []
            writes += model.advance(segments)
            by_line.setdefault(key[0], []).extend(self._events(key, writes, until))
        self._started = True
        self.t = until
        for events in by_line.values():
            events.sort(key=_event_time)  # stable: each machine's events keep their order
        return by_line

    def _events(self, key: tuple[str, str], writes: Iterable[Write], until: float) -> list[Event]:
        line, machine = key
        out: list[Event] = []
        last = self._last_event.get(key)
        for write in writes:
            if last is not None:
                self._heartbeats(out, key, last, write.ts)
            binding = self._bindings[(line, machine, write.signal)]
            out.append(Event(line, machine, write.signal, coerce(binding, write.value), GOOD, write.ts))
            last = write.ts
        if last is not None:
            self._heartbeats(out, key, last, until)
            if last < until:
                out.append(Event(line, machine, Signal.HEARTBEAT, None, GOOD, until))  # heard up to now
                last = until
            self._last_event[key] = last
        return out

    def _heartbeats(self, out: list[Event], key: tuple[str, str], after: float, before: float) -> None:
        """Heartbeats in (after, before) so that no silence reaches the gap."""
        t = after + self._gap_s
        while t < before:
            out.append(Event(key[0], key[1], Signal.HEARTBEAT, None, GOOD, t))
            t += self._gap_s

    def write_until(self, redis_client: redis.Redis, until: float) -> int:
        """Advances to ``until`` and writes the events to the line streams and live hashes.
        Returns the events written."""
        written = 0
        for line_id, events in self.events_until(until).items():
            written += write_history(redis_client, line_id, events, now=until,
                                     retention_s=self.plant.retention.stream_days * 86400)
        return written


def _event_time(event: Event) -> float:
    return event.ts


def has_history(redis_client: redis.Redis, plant: Plant) -> bool:
    """Whether any line stream of the plant holds an entry."""
    return has_entries(redis_client, [line.id for line in plant.lines])


def backfill_demo(redis_client: redis.Redis, plant: Plant, now: float, hours: float, seed: int) -> int:
    """Writes ``hours`` of simulated history before ``now`` into empty line streams.
    Returns the events written. See ``DemoHistory`` to continue the plant live from it."""
    return start_history(plant, now, hours, seed).write_until(redis_client, now)


def start_history(plant: Plant, now: float, hours: float, seed: int) -> DemoHistory:
    """A ``DemoHistory`` starting ``hours`` before ``now`` (at the start of that minute, so
    the first minute rolled up is whole), checked against the stream retention."""
    if hours <= 0:
        raise ValueError(f"hours must be positive, got {hours:g}")
    start = math.floor((now - hours * 3600) / 60) * 60.0
    if now - start >= plant.retention.stream_days * 86400:
        raise ValueError(f"{hours:g} h of history would be trimmed at once: streams keep "
                         f"{plant.retention.stream_days:g} days (retention.stream_days)")
    return DemoHistory(plant, start, seed)


def demo_history(redis_client: redis.Redis, plant: Plant, hours: float, seed: int,
                 clock: Callable[[], float] = time.time) -> DemoHistory | None:
    """For ``python app.py``: ``hours`` of history up to now when the plant's streams are
    empty (else None), topped up once with the seconds writing took, so the live plant
    (``PlantSimulator(models=history.models)``) starts right where the history ends."""
    if hours <= 0 or has_history(redis_client, plant):
        return None
    began = clock()
    history = start_history(plant, began, hours, seed)
    events = history.write_until(redis_client, began)
    events += history.write_until(redis_client, max(clock(), began))
    log.info("demo history: %d events over the last %g h written in %.1f s", events, hours, clock() - began)
    return history
