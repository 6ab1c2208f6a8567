"""The one stream writer: a line's events into its stream (``contract.events_key``) and the
latest value per signal into its live hash (``contract.live_key``), by one Lua script.

Both writers of line streams use it: the collector's sink (live: ``*`` ids, Redis stamps
them at arrival; asyncio client) and the demo history (explicit ids ``<ms>-<seq>`` at the
events' past times; sync client). Per call the script runs ``XADD <stream> MINID ~ <minid>
<id> <fields>`` for every entry, then ``HSET <live>`` of the values given, atomically: a
line's batch is stored whole or not at all. A batch travels as JSON arguments, which keeps
redis-py's per-event work small (it packs and parses every argument and reply in Python);
the field names and their encoding come from ``domain.contract``.

On a Redis Cluster every key of a line shares one hash slot (``contract.line_tag``), so a
line's script runs on one node: the asyncio writer sends one ``EVAL`` per line, routed by
the cluster client (its pipeline refuses scripts; a ``MOVED`` answer means the script did
not run there, so the redirect writes each entry once); the sync writer pipelines on the
client of the master holding the line's slot (``store.clients.node_client``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.contract import (
    BAD_TIMESTAMP_STATUSES,
    FIELDS,
    encode_event,
    encode_live,
    events_key,
    live_key,
    stream_id,
    stream_id_tuple,
)
from domain.model import Event
from store.clients import is_async_cluster, node_client

# ARGV: minid, field names (JSON), entries (JSON: [[<id>?, <FIELDS values>...], ...]),
# live (JSON: [field, value, field, value, ...]), explicit ids ("1": each entry starts
# with its id; "0": ids are '*').
STREAM_SCRIPT = """
local minid, names = ARGV[1], cjson.decode(ARGV[2])
local entries, live = cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
local offset = (ARGV[5] == '1') and 1 or 0
local args = {KEYS[1], 'MINID', '~', minid, '*'}
for _, entry in ipairs(entries) do
  if offset == 1 then args[5] = entry[1] end
  for i = 1, #names do
    args[4 + 2 * i] = names[i]
    args[5 + 2 * i] = entry[i + offset]
  end
  redis.call('XADD', unpack(args))
end
for i = 1, #live, 1000 do
  redis.call('HSET', KEYS[2], unpack(live, i, math.min(i + 999, #live)))
end
return #entries
"""
_FIELD_NAMES = json.dumps(list(FIELDS))
CHUNK_EVENTS = 10_000  # stream entries per script call of the sync writer


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def minid_for(now_s: float, retention_s: float) -> str:
    """The ``MINID`` (ms) below which a stream's entries are trimmed: ``now - retention``."""
    return str(max(round(now_s * 1000) - round(retention_s * 1000), 0))


def latest_live(events: Iterable[Event]) -> dict[str, str]:
    """The live hash fields of ``events`` (in order): the last value of each (machine,
    signal), except values whose timestamp the collector flagged
    (``contract.BAD_TIMESTAMP_STATUSES``): a time 70 years ahead must not become a
    machine's "last data"."""
    latest: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for event in reversed(list(events)):  # encode each field once: the last event wins
        key = (event.machine, event.signal)
        if key not in seen and event.status not in BAD_TIMESTAMP_STATUSES:
            seen.add(key)
            field, value = encode_live(event)
            latest[field] = value
    return latest


@dataclass(frozen=True, slots=True)
class LineBatch:
    """One line's entries for one script call: each the ``FIELDS`` values of an event,
    preceded by its stream id when ``explicit_ids``; and the live hash fields to set."""

    line: str
    entries: list[list[str]]
    live: Mapping[str, str]
    explicit_ids: bool = False

    def argv(self, minid: str) -> list[str]:
        return [minid, _FIELD_NAMES, _json(self.entries), _json([x for pair in self.live.items() for x in pair]),
                "1" if self.explicit_ids else "0"]


def live_batches(events: Sequence[Event]) -> list[LineBatch]:
    """``events`` (in arrival order) as one live batch per line (``*`` ids), the live hash
    fields as ``latest_live`` gives them (the collector's hot path: one pass each way)."""
    per_line: dict[str, tuple[list[list[str]], dict[str, str]]] = {}
    for event in events:
        got = per_line.get(event.line)
        if got is None:
            got = per_line[event.line] = ([], {})
        got[0].append(list(encode_event(event).values()))
    seen: set[tuple[str, str, str]] = set()
    for event in reversed(events):  # the live hash takes the last event of each signal
        key = (event.line, event.machine, event.signal)
        if key not in seen and event.status not in BAD_TIMESTAMP_STATUSES:
            seen.add(key)
            field, value = encode_live(event)
            per_line[event.line][1][field] = value
    return [LineBatch(line, entries, live) for line, (entries, live) in per_line.items()]


async def write_async(client: Any, batches: Sequence[LineBatch], minid: str) -> None:
    """The batches through an asyncio client (``redis.asyncio.Redis``: one pipeline;
    a cluster: one ``EVAL`` per line, concurrently, each routed to its slot's master).
    Raises the first error (``RedisError``, ``OSError``)."""
    commands = [("EVAL", STREAM_SCRIPT, 2, events_key(b.line), live_key(b.line), *b.argv(minid)) for b in batches]
    if not commands:
        return
    if is_async_cluster(client):
        results = await asyncio.gather(*(client.execute_command(*c) for c in commands), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    await pipe.execute()


def write_line(client: Any, batch: LineBatch, minid: str, chunk_events: int = CHUNK_EVENTS) -> None:
    """One line's batch through a sync client, ``chunk_events`` entries per script call,
    in one pipeline on the node holding the line (the live hash with the last call)."""
    stream = events_key(batch.line)
    node = node_client(client, stream)
    script = node.register_script(STREAM_SCRIPT)
    keys = [stream, live_key(batch.line)]
    starts = range(0, len(batch.entries), chunk_events) if batch.entries else range(1)
    with node.pipeline(transaction=False) as pipe:
        for start in starts:
            last = start + chunk_events >= len(batch.entries)
            part = LineBatch(batch.line, batch.entries[start:start + chunk_events], batch.live if last else {},
                             batch.explicit_ids)
            script(keys=keys, args=part.argv(minid), client=pipe)
        pipe.execute()


def stream_ids(events: Sequence[Event], after: tuple[int, int] = (0, 0)) -> list[str]:
    """Ids ``<ms>-<seq>`` at the events' times (time ordered), all above the id ``after``."""
    ids: list[str] = []
    last_ms, seq = after
    for event in events:
        ms = round(event.ts * 1000)
        if ms > last_ms:
            last_ms, seq = ms, 0
        else:
            seq += 1
        ids.append(stream_id(last_ms, seq))
    return ids


def last_id(client: Any, stream: str) -> tuple[int, int]:
    """The last id a stream generated, (ms, seq); (0, 0) if there is no stream."""
    if not client.exists(stream):
        return 0, 0
    raw = client.xinfo_stream(stream)["last-generated-id"]
    return stream_id_tuple(raw)


def write_history(client: Any, line: str, events: Sequence[Event], now: float, retention_s: float) -> int:
    """One line's past events (time ordered) into its stream with ids at their times
    (``MINID`` retention as the collector's, so they are trimmed by age as live entries
    are), then its live hash with the latest value per signal. Returns the events written.

    Raises ValueError if the stream has entries later than the first event: history only
    goes before what is there (or continues it)."""
    if not events:
        return 0
    stream = events_key(line)
    after = last_id(client, stream)
    first_ms = round(events[0].ts * 1000)
    if after[0] > first_ms:
        raise ValueError(f"stream {stream} has entries up to {after[0]} ms, later than the history's first "
                         f"event ({first_ms} ms): history goes into empty streams only")
    entries = [[entry_id, *encode_event(event).values()]
               for entry_id, event in zip(stream_ids(events, after), events, strict=True)]
    write_line(client, LineBatch(line, entries, latest_live(events), explicit_ids=True), minid_for(now, retention_s))
    return len(events)


def has_entries(client: Any, lines: Iterable[str]) -> bool:
    """Whether any of the lines' streams holds an entry."""
    with client.pipeline(transaction=False) as pipe:
        for line in lines:
            pipe.xlen(events_key(line))
        return any(int(n) for n in pipe.execute())
