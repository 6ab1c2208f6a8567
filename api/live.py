"""``GET /api/live/events?line=BW1&line=CM1``: server-sent events when a line's live view
changed, for ``assets/push.js`` (and anyone else: ``curl -N``).

One ``store.live_feed.LiveFeed`` per server process follows the streams; it starts with
the first subscriber, or, once the server runs (its lifespan), the first live read of a
screen's refresh (``serving``: ``store.live_feed.START_KEY``). Events (``text/event-stream``):

* ``hello`` on connect: ``{"lines": [{"line", "version"}...], "up": bool}``;
* ``change``: ``{"lines": [{"line", "version", "why": [...], "at"}]}`` with only the lines
  that changed since the last event (``why``: ``events`` new stream entries, ``rollup`` the
  worker committed, ``clock`` nothing new but time moved, ``restart``/``resync``; ``at``:
  when the server handed the version out, epoch seconds, absent on a resync);
* ``status``: ``{"up": false}`` while the feed cannot read Redis (the browser polls
  meanwhile), ``{"up": true}`` when it can again;
* a comment line every ``HEARTBEAT_S`` (proxies and browsers see the connection live).

With ``alerts=1`` the stream also (or, without ``line``, only) follows the alerts: a
``change`` then names ``"~alerts"`` when an alert was raised, updated, cleared or
acknowledged (``why: ["alerts"]``).

Each ``change`` has an ``id`` (``<process token>-<sequence>``): a browser reconnecting
with ``Last-Event-ID`` gets the changes it missed, or a ``change`` of all its lines with
``why: ["resync"]`` when they are no longer known (another server process, a restart).
A stream is an async generator (no thread per open screen: it awaits the feed's
``wait_async``). It ends after ``MAX_STREAM_S`` (the browser reconnects at once) and when
the server shuts down (``shutdown``: at SIGTERM, before uvicorn waits for open requests).
With ``REQUIRE_LOGIN`` the login gate of ``api.auth`` applies as to every read.
``LIVE_PUSH=0`` (or ``config_of(server)["LIVE_PUSH"] = False``) turns push off: 503, open
streams end, and the screens refresh every 2 s as before.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response, StreamingResponse

from api import context
from api.auth import error
from api.openapi import LINE_FILTER
from domain import answers
from store.live_feed import ALERTS, FEED_KEY, START_KEY, Change, LiveFeed, feed_of

log = logging.getLogger(__name__)

PATH = "/api/live/events"
ENABLED_KEY = "LIVE_PUSH"
_STARTER = "LIVE_FEED_STARTER"  # ``install``'s, until the server runs (``serving``)
HEARTBEAT_S = 15.0
POLL_S = 1.0  # a stream checks the switch and the feed's state this often
MAX_STREAM_S = 600.0
RETRY_MS = 2000


def enabled(config: dict[str, Any]) -> bool:
    return bool(config.get(ENABLED_KEY, True))


def install(server: FastAPI, client_of: Callable[[], Any] | None, lines: list[str]) -> None:
    """The event stream on ``server``; ``client_of()``: the Redis client the feed reads (None:
    a reader without one, nothing to follow)."""
    config = context.config_of(server)
    config.setdefault(ENABLED_KEY, os.environ.get("LIVE_PUSH", "1").strip().lower() not in ("0", "false", "no"))
    if client_of is not None:
        # the screens' live reads start the feed too (once the server runs: ``serving``): with
        # several server processes, the one that answers a screen's refresh may hold none of the
        # event streams (each process follows the lines and keeps its views per version on its own)
        every, follow = list(lines), client_of
        config[_STARTER] = lambda: feed_of(config, follow, every) if enabled(config) else None
    server.include_router(create_live_router(client_of, lines))


def serving(config: dict[str, Any]) -> None:
    """The server started (its lifespan, which stops the feed at its end): from now on a
    screen's live read starts the process's feed (``store.live_feed.START_KEY``)."""
    if _STARTER in config:
        config[START_KEY] = config[_STARTER]


def create_live_router(client_of: Callable[[], Any] | None, lines: list[str] | None = None) -> APIRouter:
    router = APIRouter(prefix="/api")
    every = list(lines or [])

    @router.get(PATH.removeprefix("/api"), response_class=StreamingResponse,
                summary="Server-sent events: which lines' live views changed (README 'Live push')",
                responses={404: {"model": answers.Error, "description": "unknown line"},
                           503: {"model": answers.Error,
                                 "description": "live push is off (LIVE_PUSH=0) or the server is stopping"}},
                openapi_extra={"parameters": [LINE_FILTER, {
                    "name": "alerts", "in": "query", "required": False,
                    "schema": {"type": "string", "enum": ["0", "1"]},
                    "description": "1: also (without line: only) the alerts, as a change of \"~alerts\""}, {
                    "name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"},
                    "description": "resume after this event (EventSource sends it on reconnect)"}],
                    "responses": {"200": {
                        "description": "text/event-stream: `hello`, `change` (the changed lines' "
                                       "`{line, version, why, at}`), `status`; heartbeats as comments",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}}}}})
    async def live_events(request: Request) -> Response:
        config = context.config()
        if not enabled(config) or client_of is None:
            return error(503, "live push is off (LIVE_PUSH=0): screens refresh every 2 s")
        wanted = context.query_list(request, "line")
        unknown = [line for line in wanted if line not in every]
        if unknown:
            return error(404, f"unknown line {unknown[0]!r}")
        alerts = request.query_params.get("alerts", "0").strip().lower() in ("1", "true", "yes")
        hook_sigterm(config)
        feed = feed_of(config, client_of, every)
        if feed.stopped:
            return error(503, "the server is shutting down")
        resume = _resume_seq(request.headers.get("Last-Event-ID") or request.query_params.get("last_event_id"),
                             feed.token)
        channels = [*(wanted or ([] if alerts else every)), *([ALERTS] if alerts else [])]
        body = stream(feed, channels, resume, lambda: enabled(config))
        return StreamingResponse(body, media_type="text/event-stream", headers={
            "Cache-Control": "no-cache, no-transform",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        })

    return router


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


async def stream(feed: LiveFeed, lines: list[str], resume: int | None, is_on: Callable[[], bool],
                 max_s: float = MAX_STREAM_S) -> AsyncIterator[str]:
    """The events of one subscriber (an async generator: each piece is sent as it comes)."""
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
        seq_now, changes = await feed.wait_async(seq, lines, POLL_S, was_up=up)
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
                latest[change.line] = Change(change.seq, change.line, change.version, why, change.at)
            yield event("change", {"lines": [c.to_dict() for c in latest.values()]}, f"{feed.token}-{seq}")
            beat = time.monotonic()
        elif time.monotonic() - beat >= HEARTBEAT_S:
            yield ": keep-alive\n\n"
            beat = time.monotonic()


def shutdown(config: dict[str, Any]) -> None:
    """Stops the process's feed: open streams end (at once), new ones are refused."""
    config[ENABLED_KEY] = False
    feed = config.get(FEED_KEY)
    if feed is not None:
        feed.stop()


def hook_sigterm(config: dict[str, Any]) -> None:
    """On SIGTERM (and SIGINT), end the open streams first, then do what the server does
    (uvicorn's graceful exit waits for open requests: without this, for ever). Hooked once,
    from the main thread, where uvicorn serves and has put its own handler by then."""
    if config.get("_sigterm_hooked"):
        return
    config["_sigterm_hooked"] = True
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            previous = signal.getsignal(signum)

            def handler(sig: int, frame: Any, previous: Any = previous) -> None:
                shutdown(config)
                if callable(previous):
                    previous(sig, frame)
                elif previous == signal.SIG_DFL:
                    signal.signal(sig, signal.SIG_DFL)
                    os.kill(os.getpid(), sig)

            signal.signal(signum, handler)
        except ValueError:  # not the main thread (a test's server in a thread): its stop calls shutdown
            log.debug("live push: signal %s not hooked (not the main thread)", signum)
