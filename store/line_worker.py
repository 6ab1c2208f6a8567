"""The rollup worker's per-line processing: stream entries -> machines' progress -> the
writes of one pass (pure, apart from ``write_batch`` queueing commands on a pipeline).

A pass over a line: ``receive`` decodes the entries and hands each machine its new
events (entries at or below the machine's last applied stream id were applied before
and are skipped: exactly once); a machine that got an event older than the time it has
already processed is *late* and is rewound (``rewind``: the worker supplies the
checkpoint and the machine's events since, read back from the stream); ``close``
advances every machine to its target: its watermark (newest event time minus
``lateness_s``), or, once nothing of it has arrived for ``silence_s`` of the worker's
clock, the worker's clock minus ``grace_s`` (so a silent machine's minutes close and turn
unknown by the gap rule). ``write_batch`` writes what a pass produced; the worker runs
it in one MULTI/EXEC with the XACK.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from domain import contract
from domain.engine import Stop
from domain.model import Event
from domain.plant import Line, Plant
from domain.plausibility import Flag
from store.progress import HOUR_S, Closed, MachineProgress, floor_to
from store.sums import RollupSum

log = logging.getLogger(__name__)

DAY_S = 86400.0
MAX_FUTURE_S = 300.0
TIMESTAMP_FLAGS = ("future_timestamp", "old_timestamp")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    group: str = "rollup"
    consumer: str = "rollup"  # stable: a restarted worker finds its own pending entries
    lateness_s: float = 10.0  # event time a machine's minutes stay open for data of other signals
    silence_s: float = 15.0  # nothing of a machine arrived this long (worker clock): close on the clock
    grace_s: float = 5.0  # ... up to the clock minus this
    block_ms: int = 1000
    batch_count: int = 2000  # entries per stream per read
    max_future_s: float = MAX_FUTURE_S  # events stamped further ahead of their arrival are flagged, not used
    beat_every_s: float = 5.0
    retention_every_s: float = 3600.0
    claim_idle_ms: int = 60_000  # pending entries of other consumers idle this long are taken over
    lease_ms: int = 30_000  # a line belongs to one worker at a time; renewed every pass
    reread_page: int = 10_000  # stream entries per XRANGE when a late event rewinds a machine


def first_minute(plant: Plant, first_event_ts: float, now: float) -> float:
    """Where a machine's rollups start: the minute of its first event, within the stream's retention."""
    oldest = now - plant.retention.stream_days * DAY_S
    return floor_to(max(min(first_event_ts, now), oldest), 60)


def arrival_s(entry_id: str) -> float:
    """When an entry reached Redis (its stream id's milliseconds)."""
    return contract.stream_id_tuple(entry_id)[0] / 1000.0


def usable_event(line: Line, fields: Mapping[Any, Any] | None, now: float, max_future_s: float,
                 max_age_s: float = math.inf) -> Event | str | None:
    """The event of a stream entry, or why it is not used (``kind:machine``), or None for
    an empty entry. ``now``: the reference time (the entry's arrival for the worker, the
    query's now for readers). A good reading older than ``max_age_s`` is taken as of
    ``now``: the collector sends a node's value when it subscribes, with the time it last
    changed, which for an idle machine's state can be weeks ago; it is still true now."""
    if not fields:
        return None
    try:
        event = contract.decode_event(line.id, fields)
    except ValueError as exc:
        return f"bad-entry:{exc}"
    if line.machine(event.machine) is None:
        return f"machine:{event.machine}"
    if event.status in contract.BAD_TIMESTAMP_STATUSES:  # the collector did not trust its time
        return f"{'future' if event.status == contract.TIMESTAMP_FUTURE else 'old'}:{event.machine}"
    if not math.isfinite(event.ts) or event.ts > now + max_future_s:
        return f"future:{event.machine}"
    if event.ts < now - max_age_s:
        if event.is_good:  # a first value after subscribing: unchanged since long ago, true now
            return replace(event, ts=now)
        return f"old:{event.machine}"
    return event


def flag_member(machine: str, signal: str, t: float, kind: str, value: float | str | None) -> str:
    return json.dumps({"m": machine, "s": signal, "t": t, "k": kind, "v": value}, separators=(",", ":"))


def _flag_text(flag: Flag) -> tuple[str, float]:
    """Member and score of a flag from the engine for the flags set."""
    return contract.encode_flag_member(flag), flag.ts


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


@dataclass(slots=True)
class Rewind:
    """A machine rewound to ``since``: what it had written from there to ``until`` is redone."""

    since: float
    until: float


@dataclass(slots=True)
class LineBatch:
    """What one pass produced for one line, written in one transaction."""

    ack_ids: list[str] = field(default_factory=list)
    last_id: str = contract.NO_STREAM_ID  # the newest entry id read in the pass
    touched: set[str] = field(default_factory=set)
    minutes: list[tuple[str, Any]] = field(default_factory=list)
    hours: list[tuple[str, float, RollupSum]] = field(default_factory=list)
    closed_stops: list[Stop] = field(default_factory=list)
    stop_changes: list[tuple[str | None, str | None]] = field(default_factory=list)  # (old, new) members
    state_changes: list[str] = field(default_factory=list)
    flags: list[tuple[str, float]] = field(default_factory=list)  # (member, score)
    checkpoints: dict[str, dict[float, dict[str, Any]]] = field(default_factory=dict)
    rewinds: dict[str, Rewind] = field(default_factory=dict)

    def has_writes(self) -> bool:
        return bool(self.ack_ids or self.touched)


class LineWorker:
    """One line: its machines' progress and the pure part of a pass (no Redis here)."""

    def __init__(self, plant: Plant, line: Line, options: WorkerOptions) -> None:
        self.plant = plant
        self.line = line
        self.options = options
        self.machines: dict[str, MachineProgress] = {}
        self.version = 0
        self.amend = 0
        self.max_stop_s = 0.0
        self.read_pending = True
        self._warned: set[str] = set()
        # Events older than this at arrival are not used: the stream no longer holds what a
        # rewind to them would need (an hour of margin for the checkpoint before them).
        self.max_age_s = max(plant.retention.stream_days * DAY_S - 2 * HOUR_S, HOUR_S)

    def load(self, raw: dict[bytes | str, bytes | str]) -> bool:
        """Restores state from the line's bookkeeping hash. True when that hash is gone
        although this worker had written it (Redis lost its data)."""
        data = {_text(k): _text(v) for k, v in raw.items()}
        lost = self.version > 0 and "ver" not in data
        self.version = int(data.get("ver", 0))
        self.amend = int(data.get("amend", 0))
        self.max_stop_s = float(data.get("max_stop_s", 0.0))
        self.machines = {}
        for machine in self.line.machines:
            carry = data.get(contract.carry_field(machine.id))
            if carry:
                self.machines[machine.id] = MachineProgress.from_carry(self.plant, self.line, machine,
                                                                       json.loads(carry))
        self.read_pending = True
        return lost

    # a pass

    def receive(self, entries: Iterable[tuple[str, Mapping[Any, Any] | None]], now: float) -> tuple[
            LineBatch, dict[str, float]]:
        """Decodes a pass's entries and hands the new events to their machines. Returns
        the batch and the machines that got late events (machine -> oldest event time)."""
        batch = LineBatch()
        fresh: dict[str, list[Event]] = {}
        for entry_id, fields in entries:
            batch.ack_ids.append(entry_id)
            batch.last_id = entry_id
            event = self._decode(entry_id, fields, batch)
            if event is None:
                continue
            progress = self.machines.get(event.machine)
            if progress is None:
                progress = self._new_machine(event, now)
            elif contract.stream_id_tuple(entry_id) <= contract.stream_id_tuple(progress.last_id):
                continue  # applied before this entry was delivered again
            progress.last_id = entry_id
            progress.seen = now
            batch.touched.add(event.machine)
            if progress.is_repeat(event):
                continue  # a reading re-read after a reconnect: already in the figures
            progress.remember(event)
            fresh.setdefault(event.machine, []).append(event)
        late: dict[str, float] = {}
        for machine_id, events in fresh.items():
            progress = self.machines[machine_id]
            oldest = min(e.ts for e in events)
            if oldest < progress.fed_until or oldest < progress.origin:
                late[machine_id] = oldest
                progress.newest = max(progress.newest, max(e.ts for e in events))
            else:
                progress.receive(events)
        return batch, late

    def rewind(self, machine_id: str, since: float, checkpoint: dict[str, Any] | None, events: list[Event],
               batch: LineBatch) -> None:
        """Restarts a machine at ``since`` (from its checkpoint there, or empty when
        ``since`` is its new origin) with its events from ``since`` on, read back from the
        stream (those of this pass included)."""
        old = self.machines[machine_id]
        machine = self.line.machine(machine_id)
        assert machine is not None
        if checkpoint is not None:
            new = MachineProgress.from_carry(self.plant, self.line, machine,
                                             {**checkpoint, "p": [], "id": contract.NO_STREAM_ID})
        else:
            new = MachineProgress.new(self.plant, self.line, machine, since)
        new.last_id, new.seen, new.open_stop, new.last = old.last_id, old.seen, None, old.last
        new.receive(events)
        new.newest = max(new.newest, old.newest)
        batch.rewinds[machine_id] = Rewind(since, old.fed_until)  # a machine rewinds once per pass
        batch.touched.add(machine_id)
        self.machines[machine_id] = new
        if machine_id not in self._warned:
            self._warned.add(machine_id)
            log.info("line %s machine %s: late data, rollups from %s on are recomputed (logged once)",
                     self.line.id, machine_id, since)

    def close(self, now: float, backlog: bool, batch: LineBatch) -> LineBatch:
        """Advances every machine to its target (module docstring). While a backlog is
        read (``backlog``), only event time closes: more of every machine may wait."""
        for machine_id, progress in self.machines.items():
            target = self._target(progress, now, backlog)
            if target <= progress.fed_until:
                continue
            self._record(machine_id, progress, progress.advance(target), batch)
        return batch

    def _target(self, progress: MachineProgress, now: float, backlog: bool) -> float:
        target = progress.newest - self.options.lateness_s
        if not backlog and now - progress.seen >= self.options.silence_s:
            target = max(target, now - self.options.grace_s)
        return min(target, now)

    def _record(self, machine_id: str, progress: MachineProgress, closed: Closed, batch: LineBatch) -> None:
        for rollup in closed.minutes:
            batch.minutes.append((machine_id, rollup))
        batch.hours.extend((machine_id, hour, total) for hour, total in closed.hours)
        for stop in closed.stops:
            batch.closed_stops.append(stop)
            self.max_stop_s = max(self.max_stop_s, (stop.end or stop.start) - stop.start)
        current = progress.acc.current_stop()
        member = None if current is None else stop_member(current)
        changed = member != progress.open_stop
        if changed:
            batch.stop_changes.append((progress.open_stop, member))
            progress.open_stop = member
        batch.state_changes.extend(closed.state_changes)
        batch.flags.extend(_flag_text(flag) for flag in closed.flags)
        if closed.checkpoints:
            batch.checkpoints.setdefault(machine_id, {}).update(closed.checkpoints)
        if closed.minutes or closed.stops or changed or closed.state_changes or closed.flags:
            batch.touched.add(machine_id)

    def _decode(self, entry_id: str, fields: Mapping[Any, Any] | None, batch: LineBatch) -> Event | None:
        arrived = arrival_s(entry_id)
        got = usable_event(self.line, fields, arrived, self.options.max_future_s, self.max_age_s)
        if not isinstance(got, str):
            return got
        kind, _, detail = got.partition(":")
        messages = {
            "bad-entry": "line %s: skipping stream entries that are not events (first: %s: %s)",
            "machine": "line %s: ignoring events of machine %s, which is not in the plant file (first: %s)",
            "future": "line %s: events of %s stamped more than the tolerance ahead of their arrival are flagged "
                      "and not used: check its clock (first: %s)",
            "old": "line %s: events of %s older than the stream retention at arrival are flagged and not used "
                   "(first: %s)",
        }
        self._warn_once(got if kind != "bad-entry" else kind, messages[kind], self.line.id,
                        *((entry_id, detail) if kind == "bad-entry" else (detail, entry_id)))
        if kind in ("future", "old"):
            event = contract.decode_event(self.line.id, fields or {})
            value = event.ts if math.isfinite(event.ts) else str(event.ts)
            member = flag_member(event.machine, str(event.signal), value if isinstance(value, float) else arrived,
                                 TIMESTAMP_FLAGS[0] if kind == "future" else TIMESTAMP_FLAGS[1], value)
            batch.flags.append((member, arrived))
        return None

    def _new_machine(self, event: Event, now: float) -> MachineProgress:
        machine = self.line.machine(event.machine)
        assert machine is not None
        start = first_minute(self.plant, event.ts, now)
        log.info("line %s machine %s: first event, rollups start at %s", self.line.id, machine.id, start)
        progress = MachineProgress.new(self.plant, self.line, machine, start)
        self.machines[machine.id] = progress
        return progress

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


def stop_member(stop: Stop) -> str:
    return contract.encode_stop_member(stop.machine, stop.start, stop.end, str(stop.state), stop.reason)


def closing_hours(batch: LineBatch) -> list[tuple[str, float]]:
    """(machine, hour) whose minute hash the batch turns into a closed-hour string (the
    hours of rewound machines from their rewind on are redone whole: nothing to keep)."""
    out = []
    for machine_id, hour, _ in batch.hours:
        rewind = batch.rewinds.get(machine_id)
        if rewind is None or hour < floor_to(rewind.since, HOUR_S):
            out.append((machine_id, hour))
    return out


@dataclass(slots=True)
class Stored:
    """What a commit must read before its MULTI (under WATCH)."""

    minutes: dict[tuple[str, float], dict[int, str]] = field(default_factory=dict)
    stale_stops: list[str] = field(default_factory=list)
    stale_states: list[str] = field(default_factory=list)
    stale_flags: list[str] = field(default_factory=list)
    stale_checkpoints: dict[str, list[str]] = field(default_factory=dict)


def read_stored(client: Any, worker: LineWorker, batch: LineBatch) -> Stored:
    """Minute texts of the hours this batch closes, and what rewound machines had written
    from their rewind on (removed by the commit)."""
    line_id = worker.line.id
    stored = Stored(minutes=read_stored_minutes(client, line_id, closing_hours(batch)))
    for machine_id, rewind in batch.rewinds.items():
        since = rewind.since
        lo = since - worker.max_stop_s - 1.0
        for raw in client.zrangebyscore(contract.stops_key(line_id), lo, "+inf"):
            machine, _start, end, _state, _reason = contract.decode_stop_member(raw)
            if machine == machine_id and (end is None or end > since):
                stored.stale_stops.append(_text(raw))
        for raw in client.zrangebyscore(contract.states_key(line_id), since, "+inf"):
            if contract.decode_state_member(raw)[0] == machine_id:
                stored.stale_states.append(_text(raw))
        for raw in client.zrangebyscore(contract.flags_key(line_id), since, "+inf"):
            data = json.loads(_text(raw))
            if data.get("m") == machine_id and data.get("k") not in TIMESTAMP_FLAGS:
                stored.stale_flags.append(_text(raw))
        fields = [_text(f) for f in client.hkeys(contract.checkpoints_key(line_id, machine_id))]
        stored.stale_checkpoints[machine_id] = [f for f in fields if float(f) > since]
    return stored


def read_stored_minutes(client: Any, line_id: str,
                        hours: list[tuple[str, float]]) -> dict[tuple[str, float], dict[int, str]]:
    """The minute texts in the hashes of the given (machine, hour)s."""
    if not hours:
        return {}
    replies = [client.hgetall(contract.minute_rollup_key(line_id, machine, hour)) for machine, hour in hours]
    return {key: {int(k): _text(v) for k, v in raw.items()} for key, raw in zip(hours, replies, strict=True)}


def _clear_rewound(pipe: Any, line_id: str, batch: LineBatch, stored: Stored) -> None:
    """Removes what rewound machines wrote from their rewind on (queued before the writes
    that replace it, in the same MULTI)."""
    for machine_id, rewind in batch.rewinds.items():
        hour = floor_to(rewind.since, HOUR_S)
        while hour <= rewind.until:
            pipe.delete(contract.minute_rollup_key(line_id, machine_id, hour),
                        contract.closed_minutes_key(line_id, machine_id, hour))
            day = floor_to(hour, DAY_S)
            pipe.hdel(contract.hour_rollup_key(line_id, machine_id, day), str(int((hour - day) // HOUR_S)))
            hour += HOUR_S
        stale = stored.stale_checkpoints.get(machine_id)
        if stale:
            pipe.hdel(contract.checkpoints_key(line_id, machine_id), *stale)
    if stored.stale_stops:
        pipe.zrem(contract.stops_key(line_id), *stored.stale_stops)
    if stored.stale_states:
        pipe.zrem(contract.states_key(line_id), *stored.stale_states)
    if stored.stale_flags:
        pipe.zrem(contract.flags_key(line_id), *stored.stale_flags)


def write_batch(pipe: Any, worker: LineWorker, batch: LineBatch, now: float, options: WorkerOptions,
                stored: Stored) -> None:
    """Queues a line's writes on a MULTI pipeline. ``stored``: ``read_stored`` before the
    MULTI (minute texts of closing hours move into the closed hour's string)."""
    line_id = worker.line.id
    retention = worker.plant.retention
    _clear_rewound(pipe, line_id, batch, stored)
    closing = {key: dict(stored.minutes.get(key, {})) for key in closing_hours(batch)}
    for machine_id, hour, _ in batch.hours:
        closing.setdefault((machine_id, hour), {})
    expiring: dict[str, float] = {}
    for machine_id, rollup in batch.minutes:
        hour = floor_to(rollup.minute_start, HOUR_S)
        minute_of_hour = int((rollup.minute_start - hour) // 60)
        text = RollupSum.from_totals(rollup.totals).encode(rollup.minute_start)
        if (machine_id, hour) in closing:
            closing[(machine_id, hour)][minute_of_hour] = text
            continue
        key = contract.minute_rollup_key(line_id, machine_id, hour)
        pipe.hset(key, str(minute_of_hour), text)
        expiring[key] = hour + HOUR_S + retention.minute_rollup_days * DAY_S
    for (machine_id, hour), texts in closing.items():
        key = contract.closed_minutes_key(line_id, machine_id, hour)
        pipe.set(key, contract.join_minutes(texts))
        pipe.delete(contract.minute_rollup_key(line_id, machine_id, hour))
        expiring[key] = hour + HOUR_S + retention.minute_rollup_days * DAY_S
    for machine_id, hour, total in batch.hours:
        day = floor_to(hour, DAY_S)
        key = contract.hour_rollup_key(line_id, machine_id, day)
        pipe.hset(key, str(int((hour - day) // HOUR_S)), total.encode(hour))
        expiring[key] = day + DAY_S + retention.hour_rollup_days * DAY_S
    for key, at in expiring.items():
        pipe.expireat(key, int(at))
    _write_events_of_time(pipe, line_id, batch)
    for machine_id, checkpoints in batch.checkpoints.items():
        key = contract.checkpoints_key(line_id, machine_id)
        pipe.hset(key, mapping={str(int(hour)): contract.pack(json.dumps(data, separators=(",", ":")))
                                for hour, data in checkpoints.items()})
        pipe.expire(key, int(retention.stream_days * DAY_S) + 86400)
    key = contract.rollup_state_key(line_id)
    carries = {contract.carry_field(m): json.dumps(worker.machines[m].to_carry(), separators=(",", ":"))
               for m in sorted(batch.touched)}
    pipe.hset(key, mapping={**carries, "beat": repr(now), "max_stop_s": repr(worker.max_stop_s)})
    pipe.hincrby(key, "ver", 1)
    if batch.rewinds:
        pipe.hincrby(key, "amend", 1)
    if batch.ack_ids:
        pipe.xack(contract.events_key(line_id), options.group, *batch.ack_ids)


def _write_events_of_time(pipe: Any, line_id: str, batch: LineBatch) -> None:
    """Stops, state changes and flags: sorted sets scored by time."""
    stops = contract.stops_key(line_id)
    closed = {stop_member(stop): stop.start for stop in batch.closed_stops}
    removed = [old for old, _ in batch.stop_changes if old is not None]
    if removed:
        pipe.zrem(stops, *removed)
    closed.update({new: contract.decode_stop_member(new)[1] for _, new in batch.stop_changes if new is not None})
    if closed:
        pipe.zadd(stops, closed)
    if batch.state_changes:
        pipe.zadd(contract.states_key(line_id),
                  {member: contract.decode_state_member(member)[1] for member in batch.state_changes})
    if batch.flags:
        pipe.zadd(contract.flags_key(line_id), dict(batch.flags))
