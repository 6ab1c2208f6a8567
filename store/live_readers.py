"""The live feed's readers (``store.live_feed``), each in a thread of its own.

``follow_streams``: blocks on ``XREAD`` over a group of lines' streams (every line on a
single Redis; one line, its hash slot, on a Redis Cluster) and, after each read or each
``block_ms`` of silence, reads the rollup worker's counters (``ver``, ``amend``) and the
classifications' (one script call for the group). At 1 Hz a 50-line plant's streams wake it
about ten times a second with about 120 entries: it takes only their ids (the entries as
Redis sent them, not made into dicts), and the counters of all lines come in one reply
instead of a pipeline of two commands per line (together they were about 5 % of a core of
the dashboard's process).
``follow_alerts``: reads the alert loop's change counter every ``block_ms``.
Both only ``mark`` what changed; the feed turns marks into versions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import redis

from domain import contract
from store.clients import node_client

log = logging.getLogger("store.live_feed")

RETRY_S = 1.0  # after a Redis error, read again after this
WHY_EVENTS = "events"  # new entries in the line's stream
WHY_ROLLUP = "rollup"  # the worker committed (closed minutes, a rewind)
WHY_RESTART = "restart"  # the feed (re)connected to Redis: anything may have changed
WHY_ALERTS = "alerts"  # an alert was raised, updated, cleared or acknowledged
WHY_AMENDED = "amended"  # a person classified or split a stop (``contract.classifications_version_key``)
ALERTS = "~alerts"  # the alerts' channel beside the lines (no line id has a "~")


class Feed(Protocol):
    """What a reader needs of ``store.live_feed.LiveFeed``."""

    client: Any
    block_ms: int
    on_commit: Callable[[list[str]], None] | None

    @property
    def stopped(self) -> bool: ...

    def sleep(self, seconds: float) -> bool: ...

    def mark(self, line: str, why: str) -> None: ...

    def mark_all(self, lines: Iterable[str], why: str) -> None: ...

    def set_down(self, group: str, error: str | None) -> None: ...


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def follow_streams(feed: Feed, lines: list[str]) -> None:
    """Blocks on the streams of ``lines`` (one hash slot on a cluster); reads the worker's
    counters after every read."""
    key_of = {contract.events_key(line): line for line in lines}
    name = ",".join(lines)
    reader: Any = None
    positions: dict[str, str] | None = None
    counters: dict[str, tuple[Any, ...]] = {}
    warned = False
    while not feed.stopped:
        try:
            if positions is None:  # (re)start: from the newest entry on; everything may have changed
                reader = _Reader(node_client(feed.client, next(iter(key_of))))  # on a cluster: the slot's master now
                positions = {key: _newest_id(reader.client, key) for key in key_of}
                counters = _counters(reader, lines)
                feed.set_down(name, None)
                if warned:
                    log.info("live feed (%s): following the streams again", name)
                    warned = False
                feed.mark_all(lines, WHY_RESTART)
            reply: Any = reader.client.xread(positions, block=feed.block_ms, count=1000)
            written = []
            for stream, entries in _streams(reply):
                key = _text(stream)
                if entries:
                    positions[key] = _text(entries[-1][0])
                    written.append(key_of[key])
            feed.mark_all(written, WHY_EVENTS)
            now_counters = _counters(reader, lines)
            committed = [line for line, value in now_counters.items() if counters.get(line, ())[:2] != value[:2]]
            if committed and feed.on_commit is not None:
                try:  # before their versions: a reader pool prepares them meanwhile
                    feed.on_commit(committed)
                except Exception:  # a hint only: the views are computed in any case
                    log.exception("live feed: telling the worker's commit of %s failed", committed)
            feed.mark_all(committed, WHY_ROLLUP)
            feed.mark_all([line for line, value in now_counters.items() if counters.get(line, ())[2:] != value[2:]],
                          WHY_AMENDED)
            counters = now_counters
        except (redis.RedisError, OSError) as exc:
            if feed.stopped:
                return
            if not warned:  # once per outage
                log.warning("live feed (%s): Redis unavailable, screens fall back to polling: %s", name, exc)
                warned = True
            feed.set_down(name, str(exc))
            positions = None
            feed.sleep(RETRY_S)
        except Exception:  # never let the feed die silently: the screens would wait forever
            log.exception("live feed (%s) failed; restarting it", name)
            feed.set_down(name, "internal error")
            positions = None
            feed.sleep(RETRY_S)


def follow_alerts(feed: Feed) -> None:
    """Reads the alerts' change counter (``contract.alerts_key("ver")``) every ``block_ms``:
    the alert loop bumps it with every change, acknowledgements too. (An outage shows in
    the line readers, which take the feed down.)"""
    key = contract.alerts_key("ver")
    unread = object()
    seen: Any = unread
    warned = False
    while not feed.stopped:
        try:
            now: Any = node_client(feed.client, key).get(key)
            if now != seen:
                feed.mark(ALERTS, WHY_ALERTS if seen is not unread else WHY_RESTART)
                seen = now
            warned = False
        except (redis.RedisError, OSError) as exc:
            if not warned:
                log.warning("live feed (alerts): Redis unavailable: %s", exc)
                warned = True
            seen = unread  # read again: anything may have changed meanwhile
        feed.sleep(feed.block_ms / 1000.0)


def _newest_id(reader: Any, key: str) -> str:
    newest: Any = reader.xrevrange(key, count=1)
    return _text(newest[0][0]) if newest else "0-0"


class _Reader:
    """A client on another's connections whose ``XREAD`` answers as Redis sent it (no dict made
    per entry: only the ids are used), and the counters' script (``_counters``) on it."""

    def __init__(self, client: Any) -> None:
        self.client: Any = redis.Redis(connection_pool=client.connection_pool)
        self.client.set_response_callback("XREAD", _as_sent)
        self.counters = self.client.register_script(_COUNTERS)


def _as_sent(response: Any, **_options: Any) -> Any:
    return response


def _streams(reply: Any) -> Any:
    """(stream key, its entries [id, fields]) of an ``XREAD`` reply as sent: a map in RESP3, a
    list of pairs in RESP2 (no reply, None, when the block ended without an entry: none)."""
    return reply.items() if isinstance(reply, dict) else reply or []


# per line (KEYS: its rollup state and its classifications' counter, line after line): the
# worker's ``ver`` and ``amend``, then the classifications' counter (nil where there is none)
_COUNTERS = """
local out = {}
for i = 1, #KEYS, 2 do
  local got = redis.call('HMGET', KEYS[i], 'ver', 'amend')
  out[#out + 1] = got[1]
  out[#out + 1] = got[2]
  out[#out + 1] = redis.call('GET', KEYS[i + 1])
end
return out
"""


def _counters(reader: _Reader, lines: list[str]) -> dict[str, tuple[Any, ...]]:
    """Per line: the worker's commit counters (``ver``, ``amend``), then the classifications'
    (one command: the lines of a group share a node, one hash slot on a cluster)."""
    keys = [key for line in lines
            for key in (contract.rollup_state_key(line), contract.classifications_version_key(line))]
    replies = reader.counters(keys=keys)
    return {line: tuple(replies[3 * i:3 * i + 3]) for i, line in enumerate(lines)}
