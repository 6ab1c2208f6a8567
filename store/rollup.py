"""The rollup worker: line event streams -> minute and hour rollups, stops and timeline.

One consumer group (``rollup``) per line stream. Each pass reads a batch with
XREADGROUP, feeds every event to its machine's ``MachineAccumulator``, closes the minutes
that ended before ``now - grace_s`` and writes, per line, in ONE MULTI/EXEC:
the closed minutes, the hours they complete, stops, state changes, every touched
machine's carry (engine state + the last stream id applied + the watermark) and the
XACK of the batch. A crash at any point leaves either all of it or none of it.

Exactly once: a machine's carry holds the last stream id applied to it, and entries at
or below it are skipped, so entries delivered again (pending entries after a crash, a
rewound group, a second worker) never count twice. Two workers on one line are also
fenced: the commit WATCHes the line's bookkeeping hash and checks its write counter;
the loser reloads its state from Redis and re-reads its pending entries.

Key layout and the rollup text format: ``domain.contract``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from domain import contract
from domain.engine import MachineAccumulator, MinuteRollup, Stop
from domain.model import Event, State
from domain.plant import Line, Machine, Plant
from domain.timeline import MachineContext, Timeline
from store.sums import RollupSum

log = logging.getLogger(__name__)

HOUR_S = 3600
DAY_S = 86400
NO_ID = "0-0"
GROUP = "rollup"
MAX_FUTURE_S = 300.0


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    group: str = GROUP
    consumer: str = "rollup"  # stable: a restarted worker finds its own pending entries
    grace_s: float = 5.0  # minutes close this long after they end: room for late events
    block_ms: int = 1000
    batch_count: int = 2000  # entries per stream per read
    max_future_s: float = MAX_FUTURE_S  # events stamped further ahead of the worker's clock are dropped
    beat_every_s: float = 5.0
    retention_every_s: float = 3600.0
    claim_idle_ms: int = 60_000  # pending entries of other consumers idle this long are taken over
    lease_ms: int = 30_000  # a line belongs to one worker at a time; renewed every pass


def stream_id_tuple(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def floor_to(ts: float, step: float) -> float:
    return math.floor(ts / step) * step


def first_minute(plant: Plant, first_event_ts: float, now: float) -> float:
    """Where a machine's rollups start: the minute of its first event, within the stream's retention."""
    oldest = now - plant.retention.stream_days * DAY_S
    return floor_to(max(min(first_event_ts, now), oldest), 60)


def usable_event(line: Line, fields: Mapping[Any, Any] | None, now: float, max_future_s: float) -> Event | str | None:
    """The event of a stream entry, or why it is not used (text), or None for an empty entry."""
    if not fields:
        return None
    try:
        event = contract.decode_event(line.id, fields)
    except ValueError as exc:
        return f"bad-entry:{exc}"
    if line.machine(event.machine) is None:
        return f"machine:{event.machine}"
    if not math.isfinite(event.ts) or event.ts > now + max_future_s:
        return f"future:{event.machine}"
    return event


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


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


@dataclass(slots=True)
class MachineProgress:
    """The worker's state for one machine; persisted as the machine's carry.

    ``shadow`` is a second ``domain.timeline.Timeline`` fed the same events as the
    accumulator: it records the effective-state changes for the timeline chart with
    exactly the rules the KPIs use.
    """

    acc: MachineAccumulator
    shadow: Timeline
    changes: StateChanges
    last_id: str = NO_ID
    hour_start: float | None = None
    hour_sum: RollupSum | None = None
    open_stop: str | None = None  # stops-set member of the ongoing stop

    @classmethod
    def new(cls, plant: Plant, line: Line, machine: Machine, start: float) -> MachineProgress:
        acc = MachineAccumulator(plant, line, machine, start)
        return cls(acc, Timeline(MachineContext.of(plant, line, machine), acc.cursor), StateChanges(machine.id))

    def feed(self, event: Event) -> None:
        self.acc.feed(event)
        self.shadow.advance(max(event.ts, self.shadow.t), self.changes)
        self.shadow.apply(event, self.changes)

    def close_until(self, t: float) -> list[MinuteRollup]:
        rollups = self.acc.close_until(t)
        self.shadow.advance(max(self.acc.processed_until, self.shadow.t), self.changes)
        self.shadow.finished = []  # its stops are the accumulator's business
        return rollups

    def to_carry(self) -> dict[str, Any]:
        hour = None
        if self.hour_start is not None and self.hour_sum is not None:
            hour = [self.hour_start, self.hour_sum.encode(self.hour_start)]
        return {
            "id": self.last_id,
            "w": self.acc.cursor,
            "acc": self.acc.carry(),
            "hour": hour,
            "stop": self.open_stop,
            "tl": self.shadow.to_dict(),
            "since": [self.changes.state, self.changes.since],
        }

    @classmethod
    def from_carry(cls, plant: Plant, line: Line, machine: Machine, data: dict[str, Any]) -> MachineProgress:
        acc = MachineAccumulator(plant, line, machine, float(data["w"]), carry=data["acc"])
        shadow = Timeline(MachineContext.of(plant, line, machine), acc.cursor)
        shadow.restore(data["tl"])
        changes = StateChanges(machine.id)
        changes.state, changes.since = data.get("since") or (None, None)
        progress = cls(acc, shadow, changes, last_id=str(data.get("id") or NO_ID), open_stop=data.get("stop"))
        if data.get("hour"):
            progress.hour_start = float(data["hour"][0])
            progress.hour_sum = RollupSum.decode(data["hour"][1], progress.hour_start)
        return progress


@dataclass(slots=True)
class LineBatch:
    """What one pass produced for one line, written in one transaction."""

    ack_ids: list[str] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    minutes: list[tuple[str, MinuteRollup]] = field(default_factory=list)
    hours: list[tuple[str, float, RollupSum]] = field(default_factory=list)
    closed_stops: list[Stop] = field(default_factory=list)
    stop_changes: list[tuple[str | None, str | None]] = field(default_factory=list)  # (old, new) members
    state_changes: list[str] = field(default_factory=list)

    def has_writes(self) -> bool:
        return bool(self.ack_ids or self.touched)


class LineConflict(Exception):
    """Another writer changed the line's bookkeeping since this worker loaded it."""


# Renews the lease if we hold it (1), takes it if free (2), else 0.
_LEASE_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LineWorker:
    """One line: its machines' progress and the pure part of a pass (no Redis here)."""

    def __init__(self, plant: Plant, line: Line, options: WorkerOptions) -> None:
        self.plant = plant
        self.line = line
        self.options = options
        self.machines: dict[str, MachineProgress] = {}
        self.version = 0
        self.max_stop_s = 0.0
        self.read_pending = True
        self._warned: set[str] = set()

    def load(self, raw: dict[bytes | str, bytes | str]) -> None:
        """Restores state from the line's bookkeeping hash."""
        data = {_text(k): _text(v) for k, v in raw.items()}
        self.version = int(data.get("ver", 0))
        self.max_stop_s = float(data.get("max_stop_s", 0.0))
        self.machines = {}
        for machine in self.line.machines:
            carry = data.get(contract.carry_field(machine.id))
            if carry:
                self.machines[machine.id] = MachineProgress.from_carry(self.plant, self.line, machine,
                                                                       json.loads(carry))
        self.read_pending = True

    def apply(self, entries: Iterable[tuple[str, dict[bytes, bytes] | None]], now: float, backlog: bool) -> LineBatch:
        batch = LineBatch()
        newest = -math.inf
        for entry_id, fields in entries:
            batch.ack_ids.append(entry_id)
            event = self._decode(entry_id, fields, now)
            if event is None:
                continue
            if self._feed(entry_id, event, now, batch):
                newest = max(newest, event.ts)
        close_to = now - self.options.grace_s
        if backlog:  # more entries wait: close only as far as the data read so far
            if newest == -math.inf:
                return batch
            close_to = min(close_to, newest - self.options.grace_s)
        for machine_id, progress in self.machines.items():
            self._close(machine_id, progress, close_to, batch)
        return batch

    def _decode(self, entry_id: str, fields: dict[bytes, bytes] | None, now: float) -> Event | None:
        got = usable_event(self.line, fields, now, self.options.max_future_s)
        if isinstance(got, str):
            kind, _, detail = got.partition(":")
            messages = {
                "bad-entry": "line %s: skipping stream entries that are not events (first: %s: %s)",
                "machine": "line %s: ignoring events of machine %s, which is not in the plant file (first: %s)",
                "future": "line %s: dropping events of %s stamped in the future: check its clock (first: %s)",
            }
            self._warn_once(got if kind != "bad-entry" else kind, messages[kind], self.line.id,
                            *((entry_id, detail) if kind == "bad-entry" else (detail, entry_id)))
            return None
        return got

    def _feed(self, entry_id: str, event: Event, now: float, batch: LineBatch) -> bool:
        progress = self.machines.get(event.machine)
        if progress is None:
            progress = self._new_machine(event, now)
        elif stream_id_tuple(entry_id) <= stream_id_tuple(progress.last_id):
            return False  # applied before this entry was delivered again
        progress.feed(event)
        progress.last_id = entry_id
        batch.touched.add(event.machine)
        return True

    def _new_machine(self, event: Event, now: float) -> MachineProgress:
        machine = self.line.machine(event.machine)
        assert machine is not None
        start = first_minute(self.plant, event.ts, now)
        log.info("line %s machine %s: first event, rollups start at %s", self.line.id, machine.id, start)
        progress = MachineProgress.new(self.plant, self.line, machine, start)
        self.machines[machine.id] = progress
        return progress

    def _close(self, machine_id: str, progress: MachineProgress, close_to: float, batch: LineBatch) -> None:
        rollups = progress.close_until(close_to)
        for rollup in rollups:
            batch.minutes.append((machine_id, rollup))
            self._add_to_hour(machine_id, progress, rollup, batch)
        stopped = progress.acc.drain_stops()
        for stop in stopped:
            batch.closed_stops.append(stop)
            self.max_stop_s = max(self.max_stop_s, (stop.end or stop.start) - stop.start)
        current = progress.acc.current_stop()
        member = None if current is None else _stop_member(current)
        changed = member != progress.open_stop
        if changed:
            batch.stop_changes.append((progress.open_stop, member))
            progress.open_stop = member
        state_changes, progress.changes.changes = progress.changes.changes, []
        batch.state_changes.extend(state_changes)
        if rollups or stopped or changed or state_changes:
            batch.touched.add(machine_id)

    def _add_to_hour(self, machine_id: str, progress: MachineProgress, rollup: MinuteRollup, batch: LineBatch) -> None:
        hour = floor_to(rollup.minute_start, HOUR_S)
        if progress.hour_start is not None and progress.hour_sum is not None and progress.hour_start != hour:
            batch.hours.append((machine_id, progress.hour_start, progress.hour_sum))  # an hour cut short
            progress.hour_sum = None
        if progress.hour_sum is None:
            progress.hour_start, progress.hour_sum = hour, RollupSum()
        progress.hour_sum.add(RollupSum.from_totals(rollup.totals))
        if rollup.minute_start + 60 >= hour + HOUR_S:
            batch.hours.append((machine_id, hour, progress.hour_sum))
            progress.hour_start, progress.hour_sum = None, None

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


def _stop_member(stop: Stop) -> str:
    return contract.encode_stop_member(stop.machine, stop.start, stop.end, str(stop.state), stop.reason)


def closing_hours(batch: LineBatch) -> list[tuple[str, float]]:
    """(machine, hour) whose minute hash the batch turns into a closed-hour string."""
    return [(machine_id, hour) for machine_id, hour, _ in batch.hours]


def write_batch(pipe: Any, worker: LineWorker, batch: LineBatch, now: float, options: WorkerOptions,
                stored_minutes: dict[tuple[str, float], dict[int, str]]) -> None:
    """Queues a line's writes on a MULTI pipeline. ``stored_minutes``: the minute texts
    already in the hashes of the hours this batch closes (``read_stored_minutes`` before
    the MULTI): they move into the closed hour's string."""
    line_id = worker.line.id
    retention = worker.plant.retention
    closing = {key: dict(stored_minutes.get(key, {})) for key in closing_hours(batch)}
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
    stops = contract.stops_key(line_id)
    closed = {_stop_member(stop): stop.start for stop in batch.closed_stops}
    removed = [old for old, _ in batch.stop_changes if old is not None]
    if removed:
        pipe.zrem(stops, *removed)
    closed.update({new: contract.decode_stop_member(new)[1] for _, new in batch.stop_changes if new is not None})
    if closed:
        pipe.zadd(stops, closed)
    if batch.state_changes:
        pipe.zadd(contract.states_key(line_id),
                  {member: contract.decode_state_member(member)[1] for member in batch.state_changes})
    key = contract.rollup_state_key(line_id)
    carries = {contract.carry_field(m): json.dumps(worker.machines[m].to_carry(), separators=(",", ":"))
               for m in sorted(batch.touched)}
    pipe.hset(key, mapping={**carries, "beat": repr(now), "max_stop_s": repr(worker.max_stop_s)})
    pipe.hincrby(key, "ver", 1)
    if batch.ack_ids:
        pipe.xack(contract.events_key(line_id), options.group, *batch.ack_ids)


def read_stored_minutes(client: Any, line_id: str,
                        hours: list[tuple[str, float]]) -> dict[tuple[str, float], dict[int, str]]:
    """The minute texts in the hashes of the given (machine, hour)s."""
    if not hours:
        return {}
    replies = [client.hgetall(contract.minute_rollup_key(line_id, machine, hour)) for machine, hour in hours]
    return {key: {int(k): _text(v) for k, v in raw.items()} for key, raw in zip(hours, replies, strict=True)}


class RollupWorker:
    """All lines of a plant, one pass at a time (``process_once``); ``run_worker`` loops."""

    def __init__(self, redis_client: redis.Redis, plant: Plant, *, options: WorkerOptions | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis_client
        self.plant = plant
        self.options = options or WorkerOptions()
        self.clock = clock
        self.lines = {line.id: LineWorker(plant, line, self.options) for line in plant.lines}
        self._ready = False
        self._last_retention = -math.inf
        self._last_beat: dict[str, float] = {}
        self.token = uuid.uuid4().hex
        self._lease = self.redis.register_script(_LEASE_SCRIPT)
        self._release = self.redis.register_script(_RELEASE_SCRIPT)
        self._held: set[str] = set()

    def setup(self) -> None:
        """Creates the consumer groups, takes over stale pending entries and loads all carries."""
        for line_id, worker in self.lines.items():
            stream = contract.events_key(line_id)
            try:
                self.redis.xgroup_create(stream, self.options.group, id="0", mkstream=True)
                log.info("line %s: created consumer group %r", line_id, self.options.group)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._claim_stale(stream)
            worker.load(self.redis.hgetall(contract.rollup_state_key(line_id)))
        self._ready = True

    def _claim_stale(self, stream: str) -> None:
        start = NO_ID
        while True:
            reply = self.redis.xautoclaim(stream, self.options.group, self.options.consumer,
                                          self.options.claim_idle_ms, start_id=start, count=1000)
            start = _text(reply[0])
            if start == NO_ID:
                return

    def process_once(self, block_ms: int = 0) -> int:
        """One pass over the lines this worker holds: read, apply, close minutes, commit.
        Returns the entries read."""
        if not self._ready:
            self.setup()
        held = self._renew_leases()
        if not held:
            time.sleep(min(block_ms, 1000) / 1000.0)
            return 0
        try:
            replies = self._read(held, block_ms)
        except Exception:
            self._ready = False  # entries may have been delivered: re-read pending after setup()
            raise
        now = self.clock()
        count = 0
        failure: Exception | None = None
        for line_id in held:
            worker = self.lines[line_id]
            entries = replies.get(line_id, [])
            count += len(entries)
            was_pending = worker.read_pending
            # pending entries are older than what waits behind them: never close past them
            backlog = was_pending or len(entries) >= self.options.batch_count
            try:
                self._process_line(worker, entries, now, backlog)
            except Exception as exc:
                self._reload(worker)
                failure = failure or exc
                continue
            if was_pending and not entries:
                worker.read_pending = False
        if failure is not None:
            raise failure
        self._retention(now)
        return count

    def close(self) -> None:
        """Gives the lines back at once (a stopped worker's lease would otherwise run out)."""
        for line_id in sorted(self._held):
            self._release(keys=[contract.rollup_lease_key(line_id)], args=[self.token])
        self._held = set()

    def _renew_leases(self) -> list[str]:
        """The lines this worker may process now (a line has one worker at a time)."""
        held = []
        for line_id, worker in self.lines.items():
            got = int(self._lease(keys=[contract.rollup_lease_key(line_id)], args=[self.token, self.options.lease_ms]))
            if got == 2 or (got == 1 and line_id not in self._held):
                log.info("line %s: this worker (%s) took over", line_id, self.token[:8])
                worker.load(self.redis.hgetall(contract.rollup_state_key(line_id)))
            if got:
                held.append(line_id)
            elif line_id in self._held:
                log.warning("line %s: lease lost to another rollup worker", line_id)
        self._held = set(held)
        return held

    def drain(self, max_passes: int = 100_000, wait_s: float = 60.0) -> int:
        """Passes until nothing is left to read (tests and backfills); waits up to
        ``wait_s`` for lines another worker holds."""
        total = 0
        deadline = time.monotonic() + wait_s
        for _ in range(max_passes):
            pending_pass = not self._ready or any(self.lines[line].read_pending for line in self._held)
            got = self.process_once()
            total += got
            if len(self._held) < len(self.lines):
                if time.monotonic() > deadline:
                    raise TimeoutError("rollup worker: lines held by another worker")
                time.sleep(0.02)
                continue
            if got == 0 and not pending_pass:
                return total
        raise RuntimeError("rollup worker: stream not drained")

    def _read(self, lines: list[str], block_ms: int) -> dict[str, list[tuple[str, dict[bytes, bytes] | None]]]:
        streams = {contract.events_key(line): ("0" if self.lines[line].read_pending else ">") for line in lines}
        pending = any(v == "0" for v in streams.values())
        block = None if pending or block_ms <= 0 else block_ms
        reply: Any = self.redis.xreadgroup(self.options.group, self.options.consumer, streams,  # type: ignore[arg-type]
                                           count=self.options.batch_count, block=block)
        by_stream: Any = reply.items() if isinstance(reply, dict) else (reply or [])
        out: dict[str, list[tuple[str, dict[bytes, bytes] | None]]] = {}
        for stream, entries in by_stream:
            line_id = _line_of_stream(_text(stream))
            if entries and isinstance(entries[0], list):
                entries = entries[0]  # the RESP3 shape wraps the entries once more
            out[line_id] = [(_text(entry_id), fields) for entry_id, fields in entries or [] if entry_id is not None]
        return out

    def _process_line(self, worker: LineWorker, entries: list[tuple[str, dict[bytes, bytes] | None]],
                      now: float, backlog: bool) -> None:
        batch = worker.apply(entries, now, backlog)
        if batch.has_writes():
            self._commit(worker, batch, now)
            self._last_beat[worker.line.id] = now
        elif now - self._last_beat.get(worker.line.id, -math.inf) >= self.options.beat_every_s:
            self.redis.hset(contract.rollup_state_key(worker.line.id), "beat", repr(now))
            self._last_beat[worker.line.id] = now

    def _commit(self, worker: LineWorker, batch: LineBatch, now: float) -> None:
        key = contract.rollup_state_key(worker.line.id)
        lease = contract.rollup_lease_key(worker.line.id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.watch(key, lease)  # type: ignore[no-untyped-call]
            version: Any = pipe.hget(key, "ver")
            if int(version or 0) != worker.version:
                raise LineConflict(f"line {worker.line.id}: bookkeeping at version {version!r}, "
                                   f"expected {worker.version}")
            if _text(pipe.get(lease) or b"") != self.token:
                self._held.discard(worker.line.id)
                raise LineConflict(f"line {worker.line.id}: lease lost before the commit")
            stored = read_stored_minutes(pipe, worker.line.id, closing_hours(batch))
            pipe.multi()
            write_batch(pipe, worker, batch, now, self.options, stored)
            pipe.execute()
        worker.version += 1

    def _reload(self, worker: LineWorker) -> None:
        """After a failed pass the in-memory state may be ahead of Redis: start again from Redis."""
        try:
            worker.load(self.redis.hgetall(contract.rollup_state_key(worker.line.id)))
        except redis.RedisError:
            self._ready = False  # setup() reloads everything on the next pass

    def _retention(self, now: float) -> None:
        if now - self._last_retention < self.options.retention_every_s:
            return
        self._last_retention = now
        apply_retention(self.redis, self.plant, now)


def apply_retention(redis_client: redis.Redis, plant: Plant, now: float) -> None:
    """Drops stops and state changes past their retention; rollup keys expire by themselves."""
    keep = plant.retention
    for line in plant.lines:
        stops = redis_client.zremrangebyscore(contract.stops_key(line.id), "-inf",
                                              f"({now - keep.downtime_days * DAY_S}")
        states = redis_client.zremrangebyscore(contract.states_key(line.id), "-inf",
                                               f"({now - keep.minute_rollup_days * DAY_S}")
        if stops or states:
            log.info("line %s: retention removed %d stops and %d state changes", line.id, stops, states)


def _line_of_stream(stream: str) -> str:
    # plant:{<line>}:events
    return stream[stream.index("{") + 1: stream.rindex("}")]


def run_worker(redis_client: redis.Redis, plant: Plant, stop: threading.Event,
               now: Callable[[], float] = time.time, options: WorkerOptions | None = None) -> None:
    """Runs passes until ``stop`` is set; survives Redis outages (logged once each)."""
    worker = RollupWorker(redis_client, plant, options=options, clock=now)
    block_ms = worker.options.block_ms
    outage_since: float | None = None
    while not stop.is_set():
        try:
            worker.process_once(block_ms=block_ms)
            if outage_since is not None:
                log.info("rollup worker: Redis is back after %.0f s", time.monotonic() - outage_since)
                outage_since = None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if outage_since is None:
                outage_since = time.monotonic()
                log.warning("rollup worker: Redis unavailable (%s); retrying", exc)
            stop.wait(1.0)
        except (LineConflict, redis.WatchError) as exc:
            log.warning("rollup worker: %s; reloaded the line's state from Redis", exc or "concurrent write")
        except Exception:
            log.exception("rollup worker: pass failed; retrying")
            stop.wait(1.0)
    with contextlib.suppress(redis.RedisError):  # else the lease runs out by itself
        worker.close()
    log.info("rollup worker stopped")
