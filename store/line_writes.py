"""What a line's commit writes: the rollup worker's pass (``store.line_worker``) turned
into Redis commands, queued on the worker's MULTI pipeline with the XACK of the batch.

``read_stored`` reads, under the commit's WATCH and before its MULTI, what the writes
depend on: the minute texts of the hours the batch closes (they move into the closed
hour's string) and what rewound machines had written from their rewind on (removed, then
written again). ``write_batch`` queues the writes: the closed minutes and the hours they
complete with their expiry, stops, state changes, flags, checkpoints, every touched
machine's carry, the line's version (the fence of the next commit) and the XACK.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from domain import contract
from store.bookkeeping import carry_text, head_text
from store.line_worker import DAY_S, TIMESTAMP_FLAGS, LineBatch, LineWorker, WorkerOptions, stop_member
from store.progress import HOUR_S, floor_to
from store.sums import RollupSum


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


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
    carries = {}
    for m in sorted(batch.touched):
        carry = worker.machines[m].to_carry()
        text = carry_text(carry)
        carries[contract.carry_field(m)] = text
        carries[contract.head_field(m)] = head_text(text, carry)  # what readers need at every commit
    pipe.hset(key, mapping={**carries, "beat": repr(now), "max_stop_s": repr(worker.max_stop_s)})
    # the hash's epoch, written by its first commit: a Redis that lost the hash gets a new one, so a
    # reader drops what it kept of the old (a commit counter that starts again may pass its old value)
    pipe.hsetnx(key, "epoch", uuid.uuid4().hex[:16])
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
