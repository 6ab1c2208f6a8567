"""Rewinds on late data: what the rollup worker reads back from Redis when a machine got
an event older than the time it has already processed.

Each such machine restarts at its checkpoint before the oldest late event (its hourly
checkpoints, ``contract.checkpoints_key``), or at its new origin when none is usable,
with its events since read back from the line's stream (one read for all of them);
``LineWorker.rewind`` recomputes it, and the commit writes the affected minutes, hours,
stops and timeline entries again.
"""

from __future__ import annotations

import json
import math
from typing import Any

import redis

from domain import contract
from domain.model import Event
from store.line_worker import LineBatch, LineWorker, WorkerOptions, arrival_s, usable_event
from store.progress import floor_to


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def rewind_late(redis_client: redis.Redis, worker: LineWorker, late: dict[str, float], batch: LineBatch,
                options: WorkerOptions) -> None:
    """Rewinds each machine that got late data to the checkpoint before its oldest late
    event (or to its new origin), with its events since read back from the stream (one
    read for all of them)."""
    line_id = worker.line.id
    with redis_client.pipeline(transaction=False) as pipe:
        for machine_id in late:
            pipe.hkeys(contract.checkpoints_key(line_id, machine_id))
        hour_lists = pipe.execute()
    starts: dict[str, tuple[float, str | None]] = {}
    for (machine_id, oldest), fields in zip(late.items(), hour_lists, strict=True):
        progress = worker.machines[machine_id]
        usable = [h for h in (float(_text(f)) for f in fields) if progress.origin <= h <= oldest]
        if usable:
            starts[machine_id] = (max(usable), str(int(max(usable))))
        else:
            starts[machine_id] = (min(progress.origin, floor_to(oldest, 60)), None)
    with redis_client.pipeline(transaction=False) as pipe:
        for machine_id, (_, field) in starts.items():
            pipe.hget(contract.checkpoints_key(line_id, machine_id), field or "none")
        raws = pipe.execute()
    since = {m: start for m, (start, _) in starts.items()}
    events = events_since(redis_client, worker, since, batch.last_id, options)
    for (machine_id, (start, field)), raw in zip(starts.items(), raws, strict=True):
        checkpoint = json.loads(contract.unpack(raw)) if field is not None and raw else None
        if field is not None and checkpoint is None:  # gone meanwhile (retention): start from scratch
            start = min(worker.machines[machine_id].origin, start)
        worker.rewind(machine_id, start, checkpoint, events[machine_id], batch)


def events_since(redis_client: redis.Redis, worker: LineWorker, since: dict[str, float], upto: str,
                 options: WorkerOptions) -> dict[str, list[Event]]:
    """Each machine's usable events from its ``since`` (event time) in the entries up to
    ``upto``. An event reaches Redis after it happened (up to ``max_future_s`` before,
    for a clock ahead), so entries from ``since - max_future_s`` on hold them all."""
    stream = contract.events_key(worker.line.id)
    low = contract.stream_id(max(0, math.floor((min(since.values()) - options.max_future_s) * 1000)))
    out: dict[str, list[Event]] = {m: [] for m in since}
    page = options.reread_page
    line = worker.line
    while True:
        entries: Any = redis_client.xrange(stream, min=low, max=upto, count=page)
        for entry_id, fields in entries:
            machine = _text(fields.get(b"m", b"")) if fields else ""
            if machine not in since:
                continue
            got = usable_event(line, fields, arrival_s(_text(entry_id)), options.max_future_s, worker.max_age_s)
            if isinstance(got, Event) and got.ts >= since[machine]:
                out[machine].append(got)
        if len(entries) < page:
            return out
        low = contract.after_stream_id(entries[-1][0])
