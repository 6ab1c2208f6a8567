"""``GET /api/live/events?line=BW1&line=CM1``: server-sent events when a line's live view
changed, for ``assets/push.js`` (and anyone else: ``curl -N``).

One ``store.live_feed.LiveFeed`` per server process follows the streams; it starts with
the first subscriber. Events (``text/event-stream``):

* ``hello`` on connect: ``{"lines": [{"line", "version"}...], "up": bool}``;
* ``change``: ``{"lines": [{"line", "version", "why": [...]}]}`` with only the lines that
  changed since the last event (``why``: ``events`` new stream entries, ``rollup`` the
  worker committed, ``clock`` nothing new but time moved, ``restart``/``resync``);
* ``status``: ``{"up": false}`` while the feed cannot read Redis (the browser polls
  meanwhile), ``{"up": true}`` when it can again;
* a comment line every ``HEARTBEAT_S`` (proxies and browsers see the connection live).

Each ``change`` has an ``id`` (``<process token>-<sequence>``): a browser reconnecting
with ``Last-Event-ID`` gets the changes it missed, or a ``change`` of all its lines with
``why: ["resync"]`` when they are no longer known (another server process, a restart).
A stream ends after ``MAX_STREAM_S`` (the browser reconnects at once) and when the server
shuts down. With ``REQUIRE_LOGIN`` the login gate of ``api.auth`` applies as to every read.
``LIVE_PUSH=0`` (or ``config["LIVE_PUSH"] = False``) turns push off: 503, open streams end,
and the screens refresh every 2 s as before.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, current_app, request

from api.auth import error
from store.live_feed import FEED_KEY, Change, LiveFeed, feed_of

log = logging.getLogger(__name__)

PATH = "/api/live/events"
ENABLED_KEY = "LIVE_PUSH"
HEARTBEAT_S = 15.0
POLL_S = 1.0  # a stream checks the switch and the feed's state this often
MAX_STREAM_S = 600.0
RETRY_MS = 2000


def enabled(config: dict[str, Any]) -> bool:
    return bool(config.get(ENABLED_KEY, True))


def install(server: Flask, client_of: Callable[[], Any], lines: list[str]) -> None:
    """The event stream on ``server``; ``client_of()``: the Redis client the feed reads."""
    server.config.setdefault(ENABLED_KEY, os.environ.get("LIVE_PUSH", "1").strip().lower() not in ("0", "false", "no"))

    @server.get(PATH)
    def live_events() -> Any:
        config = current_app.config
        if not enabled(config):
            return error(503, "live push is off (LIVE_PUSH=0): screens refresh every 2 s")
        known = set(lines)
        wanted = [part for value in request.args.getlist("line") for part in value.split(",") if part]
        unknown = [line for line in wanted if line not in known]
        if unknown:
            return error(404, f"unknown line {unknown[0]!r}")
        feed = feed_of(config, client_of, lines)
        if feed.stopped:
            return error(503, "the server is shutting down")
        resume = _resume_seq(request.headers.get("Last-Event-ID") or request.args.get("last_event_id"), feed.token)
        body = stream(feed, wanted or list(lines), resume, lambda: enabled(config))
        return Response(body, mimetype="text/event-stream", headers={
            "Cache-Control": "no-cache, no-transform",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            "Connection": "keep-alive",
        })


def _resume_seq(last_id: str | None, token: str) -> int | None:
    """The sequence number in a ``Last-Event-ID`` of this process's feed; None otherwise."""
    if not last_id:
        return None
    got_token, _, seq = last_id.strip().rpartition("-")
    if got_token != token or not seq.isdigit():
        return -1  # another process's or an older run's: resync
    return int(seq)


def event(kind: str, payload: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def stream(feed: LiveFeed, lines: list[str], resume: int | None, is_on: Callable[[], bool],
           max_s: float = MAX_STREAM_S) -> Iterator[str]:
    """The events of one subscriber (a generator: Flask sends each piece as it comes)."""
    started = time.monotonic()
    seq = feed.seq
    versions = feed.versions() or {}
    up = feed.up
    yield f"retry: {RETRY_MS}\n\n"
    yield event("hello", {"lines": [{"line": line, "version": versions.get(line)} for line in lines], "up": up},
                f"{feed.token}-{seq}")
    if resume is not None and resume != seq:
        missed = feed.changes_since(resume, lines) if resume >= 0 else None
        if missed is None:
            missed = [Change(seq, line, versions.get(line, 0), ("resync",)) for line in lines]
        if missed:
            yield event("change", {"lines": [c.to_dict() for c in missed]}, f"{feed.token}-{seq}")
    beat = time.monotonic()
    while not feed.stopped and is_on() and time.monotonic() - started < max_s:
        seq_now, changes = feed.wait(seq, lines, POLL_S, was_up=up)
        if feed.up != up:
            up = feed.up
            yield event("status", {"up": up})
        if changes is None:  # more changes than the feed remembers: everything
            now = feed.versions() or {}
            changes = [Change(seq_now, line, now.get(line, 0), ("resync",)) for line in lines]
        seq = seq_now
        if changes:
            latest: dict[str, Change] = {}
            for change in changes:  # one entry per line: its newest version, every reason
                old = latest.get(change.line)
                why = tuple(sorted(set(change.why) | set(old.why if old else ())))
                latest[change.line] = Change(change.seq, change.line, change.version, why)
            yield event("change", {"lines": [c.to_dict() for c in latest.values()]}, f"{feed.token}-{seq}")
            beat = time.monotonic()
        elif time.monotonic() - beat >= HEARTBEAT_S:
            yield ": keep-alive\n\n"
            beat = time.monotonic()


def shutdown(server: Flask) -> None:
    """Stops the process's feed: open streams end (within ``POLL_S``), new ones are refused."""
    server.config[ENABLED_KEY] = False
    feed = server.config.get(FEED_KEY)
    if feed is not None:
        feed.stop()


def stop_on_sigterm(server: Flask) -> None:
    """On SIGTERM, end the open streams first, then do what was to be done (a gunicorn
    worker's graceful exit waits for open requests: without this, for ``--graceful-timeout``).
    Only from the main thread (where gunicorn loads the app); elsewhere nothing is changed."""
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: Any) -> None:
            shutdown(server)
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        log.debug("live push: SIGTERM not hooked (not the main thread)")
