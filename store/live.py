"""Live state and health: what the collectors' live hashes and the worker's bookkeeping
say right now (``PlantReader.lines`` and ``PlantReader.health``)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from functools import lru_cache
from operator import attrgetter
from typing import Any, cast

import redis

from domain import andon, answers, contract, downtime
from domain.model import Event, Signal, State
from domain.plant import Line, Plant
from store.bookkeeping import watermarks_of
from store.clients import is_cluster
from store.durability import durability_of
from store.rollup import GROUP

_STATES = frozenset(state.value for state in State)
WORKER_SILENT_S = 60.0  # a worker not heard from for this long is not ok


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


# --- live state -------------------------------------------------------------------------

def lines_now(redis_client: redis.Redis, plant: Plant, now: float,
              only: Sequence[str] | None = None, answered: Answered | None = None) -> answers.Lines:
    """Every line (or the lines in ``only``) with its machines' live state: only those lines'
    live hashes and collector records are read and parsed (the worker's bookkeeping is not)."""
    wanted = None if only is None else set(only)
    lines = [line for line in plant.lines if wanted is None or line.id in wanted]
    with redis_client.pipeline(transaction=False) as pipe:
        for line in lines:
            for name, args in live_reads(line.id):
                getattr(pipe, name)(*args)
        replies = pipe.execute()
    out = [line_live(plant, line, replies[2 * i], replies[2 * i + 1], now, answered) for i, line in enumerate(lines)]
    return {"now": now, "gap_timeout_s": plant.gap_timeout_s, "lines": out}


def live_reads(line_id: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The commands that read what ``line_live`` needs of a line (the live hash and the
    collectors' record of refused nodes), to send with other reads of the line."""
    return [("hgetall", (contract.live_key(line_id),)), ("hgetall", (contract.nodes_key(line_id),))]


def line_live(plant: Plant, line: Line, live_raw: Any, nodes_raw: Any, now: float,
              answered: Answered | None = None) -> answers.LineLive:
    """A line with its machines' live state, from the replies to ``live_reads``."""
    live = live_events(line, live_raw if isinstance(live_raw, dict) else {})
    refused = collector_problems(nodes_raw if isinstance(nodes_raw, dict) else {})["bad_nodes"]
    machines = [machine_now(plant, line, m.id, live.get(m.id, {}), now, answered) for m in line.machines]
    for machine in machines:  # nodes the OPC UA server refuses: that signal is not collected
        machine["bad_nodes"] = [cast(answers.MachineBadNode, {k: v for k, v in node.items() if k != "machine"})
                                for node in refused if node["machine"] == machine["id"]]
    return {
        "id": line.id,
        "name": line.name or line.id,
        "output_machine": line.output_machine,
        "target_oee": line.target_oee,
        "last_data": max((m["last_data"] for m in machines if m["last_data"] is not None), default=None),
        "machines": machines,
    }


def live_events(line: Line, raw: dict[Any, Any] | None) -> dict[str, dict[str, Event]]:
    """machine -> signal -> latest event, from a live hash."""
    by_machine: dict[str, dict[str, Event]] = {}
    line_id = line.id
    for field, value in (raw or {}).items():
        got = _live_event(line_id, field, value)
        if got is not None:
            machine, signal, event = got
            signals = by_machine.get(machine)
            if signals is None:
                by_machine[machine] = {signal: event}
            else:
                signals[signal] = event
    return by_machine


@lru_cache(maxsize=50_000)
def _live_event(line: str, field: bytes | str, value: bytes | str) -> tuple[str, str, Event] | None:
    """A live hash's field decoded: its machine, its signal's name and the event (None: not
    an event). Kept: live views are read again at every change of their line, and most of a
    line's fields have not changed since the last read (an ``Event`` is frozen, so one
    decoded event is shared)."""
    try:
        event = contract.decode_live(line, field, value)
    except ValueError:
        return None
    return event.machine, str(event.signal), event


_ts = attrgetter("ts")

# per machine: the last answer of ``machine_now`` and what it came from (plant, events, stale)
Answered = dict[tuple[str, str], tuple[Plant, tuple[Event, ...], bool, answers.MachineLive]]


def machine_now(plant: Plant, line: Line, machine_id: str, live: dict[str, Event],
                now: float, answered: Answered | None = None) -> answers.MachineLive:
    """State (unknown when stale, link down or bad), since when, reason, counters, power.
    Depends on ``now`` only through staleness: the answer is kept in ``answered`` (a
    reader's) per machine while its events (mostly the very objects: ``_live_event`` shares
    them) and the plant stay the same."""
    if answered is None:
        answered = {}
    events = tuple(live.values())
    last = max(map(_ts, events)) if events else None
    stale = andon.is_stale(last, now, plant.gap_timeout_s)
    kept = answered.get((line.id, machine_id))
    if kept is not None and kept[0] is plant and kept[2] == stale and kept[1] == events:  # (the same objects, mostly)
        return {**kept[3], "bad_nodes": []}
    got = _machine_now(plant, line, machine_id, live, last, stale, now)
    answered[(line.id, machine_id)] = (plant, events, stale, got)
    return {**got, "bad_nodes": []}


def _machine_now(plant: Plant, line: Line, machine_id: str, live: dict[str, Event], last: float | None,
                 stale: bool, now: float) -> answers.MachineLive:
    machine = line.machine(machine_id)
    assert machine is not None
    link = live.get(str(Signal.LINK))
    state_event = live.get(str(Signal.STATE))
    state = str(state_event.value) if state_event is not None and state_event.is_good else State.UNKNOWN.value
    if stale or (link is not None and str(link.value).lower() == "down") or state not in _STATES:
        state = State.UNKNOWN.value
    reason = _number(live.get(str(Signal.REASON)))
    return {
        "id": machine_id,
        "name": machine.name or machine_id,
        "state": cast(answers.MachineState, state),  # one of State's values
        "since": _since(plant, state, state_event, link, last, now),
        "reason": reason_info(plant, int(reason)) if reason and state != State.RUNNING else None,
        "good": _number(live.get(str(Signal.GOOD))),
        "reject": _number(live.get(str(Signal.REJECT))),
        "power_kw": _number(live.get(str(Signal.POWER))),
        "energy_kwh": _number(live.get(str(Signal.ENERGY))),
        "last_data": last,
        "stale": stale,
        "link": None if link is None else str(link.value),
        "bad_nodes": [],  # the line's answer fills them in (``lines_now``)
    }


def _since(plant: Plant, state: str, state_event: Event | None, link: Event | None, last: float | None,
           now: float) -> float | None:
    """When the shown state began, from the data, not from when the data arrived or was
    processed:

    * a state read from the live state event: that event's time, the state change's
      source timestamp. A re-read of the unchanged value (a collector reconnect or
      restart subscribes again) carries the same time, so "since" survives it; the
      worker's recorded change does not (the link gap is unknown time to it, so its
      state "began again" at the reconnect: "DOWN 1 min" for a fault 3.5 min old).
    * unknown because silent: the last data + ``gap_timeout_s``; because the link is
      down: the "link down"; because the state is bad or not a state: that state event.

    Events whose time the collector flagged (``BadTimestampFuture``...) never reach the
    live hash, so they cannot move it either.
    """
    if state == State.UNKNOWN:
        if last is not None and andon.is_stale(last, now, plant.gap_timeout_s):
            return last + plant.gap_timeout_s
        if link is not None and str(link.value).lower() == "down":
            return float(link.ts)
    return None if state_event is None else float(state_event.ts)


def reason_info(plant: Plant, code: int) -> answers.LiveReason:
    reason = plant.reasons.get(code)
    return {
        "code": code,
        "text": downtime.reason_text(plant, code),
        "category": None if reason is None else str(reason.category),
        "planned": bool(reason and reason.planned),
    }


def _number(event: Event | None) -> float | int | None:
    if event is None or not event.is_good or not isinstance(event.value, int | float):
        return None
    return event.value if math.isfinite(event.value) else None


# --- health ------------------------------------------------------------------------------

def health(redis_client: redis.Redis, plant: Plant, now: float) -> answers.Health:
    """Redis reachable; per line: the collectors' last data, the worker's heartbeat and lag,
    and data the worker found lost; whether Redis keeps its data at all (``durability``,
    reported beside ``ok``: a Redis without persistence works until it restarts).
    All lines are read in one pipeline (one round trip; on a cluster one per node), plus one
    more for the lines whose worker has entries waiting. Never raises for Redis errors:
    they are the answer."""
    started = time.perf_counter()
    try:
        redis_client.ping()
        latency_ms = (time.perf_counter() - started) * 1000.0
        lines = lines_health(redis_client, plant, plant.lines, now)
    except redis.RedisError as exc:
        return {"ok": False, "status": "redis_down", "now": now, "redis": {"ok": False, "error": str(exc)},
                "lines": [], "durability": None}
    ok = all(line["ok"] for line in lines)
    status: answers.HealthStatus = ("data_lost" if any(line["data_loss"] for line in lines)
                                    else "ok" if ok else "degraded")
    return {"ok": ok, "status": status, "now": now, "redis": {"ok": True, "latency_ms": round(latency_ms, 3)},
            "lines": lines, "durability": durability_of(redis_client).to_dict()}


_HEALTH_READS = 7  # per line, in ``lines_health``'s pipeline


def lines_health(redis_client: redis.Redis, plant: Plant, lines: Sequence[Line],
                 now: float) -> list[answers.LineHealth]:
    """Each line; not ok when its data is old, its worker is behind or silent, or a data-loss
    record exists (``status`` says which; ``data_loss`` has the affected range)."""
    cluster = is_cluster(redis_client)
    with redis_client.pipeline(transaction=False) as pipe:
        if not cluster:  # a cluster pipeline takes only keyed commands
            pipe.time()
        for line in lines:
            stream = contract.events_key(line.id)
            pipe.hgetall(contract.live_key(line.id))
            pipe.hgetall(contract.rollup_state_key(line.id))
            pipe.xrevrange(stream, count=1)
            pipe.execute_command("XINFO", "GROUPS", stream)
            pipe.xlen(stream)
            pipe.hgetall(contract.data_loss_key(line.id))
            pipe.hgetall(contract.nodes_key(line.id))
        replies = pipe.execute(raise_on_error=False)
    if cluster:
        replies.insert(0, _time_or_error(redis_client))
    server_time, replies = replies[0], replies[1:]
    server_now = server_time[0] + server_time[1] / 1e6 if isinstance(server_time, tuple | list) else now
    per_line = [replies[i * _HEALTH_READS:(i + 1) * _HEALTH_READS] for i in range(len(lines))]
    waiting = _oldest_undelivered_all(redis_client, [contract.events_key(line.id) for line in lines],
                                      [(reply[2], _group_info(reply[3], GROUP)) for reply in per_line])
    return [_line_health(plant, line, reply, oldest, now, server_now)
            for line, reply, oldest in zip(lines, per_line, waiting, strict=True)]


def _time_or_error(redis_client: Any) -> Any:
    try:
        return redis_client.time()
    except redis.RedisError as exc:
        return exc


def _line_health(plant: Plant, line: Line, reply: list[Any], oldest_waiting: str | None, now: float,
                 server_now: float) -> answers.LineHealth:
    live_raw, state_raw, _newest, groups, length, loss_raw, nodes_raw = reply
    live = live_events(line, live_raw if isinstance(live_raw, dict) else {})
    last_data = max((e.ts for events in live.values() for e in events.values()), default=None)
    worker = worker_health(watermarks_of(state_raw if isinstance(state_raw, dict) else {}), groups, now,
                           oldest_waiting=oldest_waiting, server_now=server_now)
    fresh = not andon.is_stale(last_data, now, plant.gap_timeout_s)
    loss = data_loss_of(loss_raw if isinstance(loss_raw, dict) else {})
    status: answers.LineStatus = ("data_lost" if loss else "no_data" if last_data is None else "stale" if not fresh
              else "worker_behind" if not worker["ok"] else "ok")
    return {
        "id": line.id,
        "ok": status == "ok",
        "status": status,
        "data_loss": loss,
        "last_data": last_data,
        "last_data_age_s": None if last_data is None else now - last_data,
        "stream_length": length if isinstance(length, int) else None,
        "worker": worker,
        **collector_problems(nodes_raw if isinstance(nodes_raw, dict) else {}),
    }


def collector_problems(raw: dict[Any, Any]) -> answers.CollectorProblems:
    """The collector's record of what the OPC UA side refuses (``contract.nodes_key``):
    ``bad_nodes`` (machine, signal, node id, status, endpoint) and ``refused_endpoints``
    (an untrusted server certificate: status, SHA-256 thumbprint, how to trust it).
    They do not make the line unhealthy: the rest of it is collected."""
    bad_nodes: list[answers.BadNode] = []
    endpoints: list[answers.RefusedEndpoint] = []
    for field, value in sorted((_text(f), _text(v)) for f, v in raw.items()):
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if contract.endpoint_of_field(field) is not None:
            endpoints.append(cast(answers.RefusedEndpoint, record))
            continue
        try:
            machine, signal = contract.split_live_field(field)
        except ValueError:
            continue
        bad_nodes.append(cast(answers.BadNode, {"machine": machine, "signal": signal, **record}))
    return {"bad_nodes": bad_nodes, "refused_endpoints": endpoints}


def data_loss_of(raw: dict[Any, Any]) -> answers.DataLoss | None:
    """The worker's data-loss record (``contract.data_loss_key``): the affected range and
    when it was found; None when there is none."""
    if not raw:
        return None
    fields = {_text(k): _text(v) for k, v in raw.items()}

    def number(name: str) -> float | None:
        try:
            value = float(fields[name])
        except (KeyError, ValueError):
            return None
        return value if math.isfinite(value) else None

    return {"from": number("from"), "to": number("to"), "detected": number("detected")}


def _oldest_undelivered_all(redis_client: redis.Redis, streams: Sequence[str],
                            heads: Sequence[tuple[Any, dict[str, Any]]]) -> list[str | None]:
    """Per stream, the id of the oldest entry the worker's group has not been given yet
    (None: none waits). A group that has delivered nothing (``0-0``) or does not exist yet
    waits for the whole stream; one whose last id was trimmed away waits for the stream's
    first. The streams with entries waiting are read in one pipeline. ``heads``: per stream,
    its XREVRANGE COUNT 1 reply and its group's info."""
    asks: list[tuple[int, str]] = []
    for i, (newest, group) in enumerate(heads):
        newest_id = _text(newest[0][0]) if isinstance(newest, list) and newest else None
        delivered = str(group.get("last-delivered-id") or contract.NO_STREAM_ID)
        if newest_id is not None and contract.stream_id_tuple(newest_id) > contract.stream_id_tuple(delivered):
            asks.append((i, delivered))
    out: list[str | None] = [None] * len(streams)
    if not asks:
        return out
    with redis_client.pipeline(transaction=False) as pipe:
        for i, delivered in asks:
            pipe.xrange(streams[i], min=contract.after_stream_id(delivered), count=1)
        replies = pipe.execute()
    for (i, _), first in zip(asks, replies, strict=True):
        out[i] = _text(first[0][0]) if first else None
    return out


def worker_health(progress: tuple[dict[str, float], float | None], groups: Any, now: float, *,
                  oldest_waiting: str | None = None, server_now: float | None = None) -> answers.WorkerHealth:
    """Heartbeat age, how long the oldest entry not yet delivered to the worker has waited
    (``undelivered_s``, by Redis's clock, which stamped the entry ids; 0 when none waits),
    pending (delivered, not acknowledged) and how far behind now its closed minutes are.
    ``progress``: each machine's watermark and the heartbeat (``store.bookkeeping.watermarks_of``)."""
    group = _group_info(groups, GROUP)
    backlog_s = 0.0
    if oldest_waiting is not None:
        waited_from = contract.stream_id_tuple(oldest_waiting)[0] / 1000.0
        backlog_s = max(0.0, (now if server_now is None else server_now) - waited_from)
    watermarks, beat = progress
    closed_until = min(watermarks.values()) if watermarks else None
    beat_age = None if beat is None else now - beat
    return {
        "ok": beat_age is not None and beat_age < WORKER_SILENT_S and backlog_s < WORKER_SILENT_S,
        "beat": beat,
        "beat_age_s": beat_age,
        "pending": group.get("pending"),
        "undelivered_s": round(backlog_s, 3),
        "closed_until": closed_until,
        "closed_lag_s": None if closed_until is None else now - closed_until,
    }


def _group_info(groups: Any, name: str) -> dict[str, Any]:
    """XINFO GROUPS (a list of flat lists or of dicts, by protocol) -> the named group."""
    if not isinstance(groups, list):
        return {}
    for group in groups:
        if isinstance(group, dict):
            info = {_text(k): (_text(v) if isinstance(v, bytes) else v) for k, v in group.items()}
        else:
            info = {_text(group[i]): (_text(group[i + 1]) if isinstance(group[i + 1], bytes) else group[i + 1])
                    for i in range(0, len(group), 2)}
        if info.get("name") == name:
            return info
    return {}
