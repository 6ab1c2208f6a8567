"""The rollup worker's per-line processing: stream entries -> machines' progress -> what
one pass produced for a line (``LineBatch``; pure: no Redis here).

A pass over a line: ``receive`` decodes the entries and hands each machine its new
events (entries at or below the machine's last applied stream id were applied before
and are skipped: exactly once); a machine that got an event older than the time it has
already processed is *late* and is rewound (``rewind``: the worker supplies the
checkpoint and the machine's events since, read back from the stream); ``close``
advances every machine to its target: its watermark (newest event time minus
``lateness_s``), or, once nothing of it has arrived for ``silence_s`` of the worker's
clock, the worker's clock minus ``grace_s`` (so a silent machine's minutes close and turn
unknown by the gap rule). ``store.line_writes`` turns the batch into the writes the
worker runs in one MULTI/EXEC with the XACK.
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
    # ``run_worker`` starts a pass at most this often while no line has a backlog: a machine's
    # carry is written once per pass that touched it, so a pass of more events costs less per
    # event (readers read the stream past the carries: the screens do not wait for it)
    pass_every_s: float = 1.0
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
