"""Live answers computed once per line version, however many screens ask.

A change of a line is pushed to every screen showing it at once (``assets/push.js``), so
ten walls, five overviews and every line page of that line ask the server within a few
milliseconds, most of them with the same request. A callback marked ``@answer(*ticks)`` is
answered once per version of the lines it shows: ``SharedAnswers``, an ASGI layer on Dash's
callback route, lets the first request through to Dash and keeps its answer (the response
as Dash wrote it, before compression) with the version of each line its figures were read
at (``components.data.versions_consulted``); requests arriving meanwhile wait for it
(single flight) and later ones get the kept answer while those lines (and the alerts'
channel) keep their versions. A line page's answer outlives the other lines' changes; the
wall's moves on with any of its lines. A shared answer skips Dash's dispatch, the callback
and the JSON encoding. An answer that read no line's figures is kept only while no line
moves on.

An answer is as fresh as the live reads it is made of (``components.data``: kept per line
version too): every line gets a new version at least every ``store.live_feed.QUIET_S``, so
texts that follow the clock ("down since 10:18 · 14 min") move on with it.

Two requests share an answer only when everything the answer depends on is the same: the
callback, its inputs and states (except the values of ``ticks``: an Interval's
``n_intervals`` or a panel's pulse only count ticks, and differ from screen to screen),
its outputs (pattern-matching outputs name the lines on the page), what triggered it, the
language, the caller (as the server checked it: user or API token, role and lines) and the
versions above (a request after a newer change of its lines never gets an older answer).
Without a live feed (no push), nothing is shared. Only answers Dash gave with 200 or 204
are shared; a waiter whose leader failed asks Dash itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import auth
from api.security import BODY_SCOPE_KEY, UPDATE_ROUTE
from components import data
from components.i18n import current as current_language

F = TypeVar("F", bound=Callable[..., Any])
TICKS_ATTR = "_shared_ticks"
MAX_KEPT = 512  # answers kept per process (least recently used out first)
MAX_KEPT_BYTES = 32 * 1024 * 1024
SHAREABLE = (200, 204)


def answer(*ticks: str) -> Callable[[F], F]:
    """Marks a live callback as shared (module docstring); ``ticks``: the ids of its inputs
    whose values only count ticks. The function itself is returned unchanged (tests call
    it directly); ``components.delivery.LightDash.callback`` tells the app's
    ``SharedAnswers`` of it."""
    def mark(func: F) -> F:
        setattr(func, TICKS_ATTR, frozenset(ticks))
        return func
    return mark


def ticks_of(func: Callable[..., Any]) -> frozenset[str] | None:
    """The ticks ``func`` was marked with, None when it is not shared."""
    return getattr(func, TICKS_ATTR, None)


def _without_ticks(items: Any, ticks: frozenset[str]) -> Any:
    """A request's ``inputs`` or ``state`` with the values of ``ticks`` left out."""
    if isinstance(items, list):
        return [_without_ticks(item, ticks) for item in items]
    if isinstance(items, dict) and isinstance(items.get("id"), str) and items["id"] in ticks:
        return {**items, "value": None}
    return items


def _caller() -> Hashable:
    """Who asks, as the server has checked it (``api.auth.current_principal``: a revoked
    session or a wrong token is anonymous): kind, name, role and lines; None: anonymous
    (or no users at all)."""
    if not auth.installed():
        return None
    who = auth.current_principal()
    return None if who is None else (who.kind, who.name, str(who.role), tuple(who.lines))


def request_key(ticks: frozenset[str], body: Any) -> Hashable:
    """What the answer to a callback request (its parsed body: Dash's ``output`` key of the
    callback, ``inputs``, ``state``, ``outputs``, ``changedPropIds``) depends on apart from
    the lines' versions (module docstring); asked while the live feed runs."""
    request = orjson.dumps([_without_ticks(body.get("inputs", []), ticks), _without_ticks(body.get("state", []), ticks),
                            body.get("outputs"), sorted(body.get("changedPropIds") or [])],
                           option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=repr)
    return str(body.get("output")), request, current_language(), _caller(), data.live_token()


Versions = tuple[tuple[str, int], ...]


def depends_on(consulted: dict[str, int | None], versions: dict[str, int]) -> Versions | None:
    """The versions an answer stays right for: of the lines it read (``consulted``) and of
    the alerts' channel; every line's (``versions``, when it was asked) when it read none;
    None (never reused) when it read a line at two versions."""
    if not consulted:
        return tuple(sorted(versions.items()))
    if any(v is None for v in consulted.values()):
        return None
    got: dict[str, int] = {line: v for line, v in consulted.items() if v is not None}
    if data.ALERTS in versions:
        got.setdefault(data.ALERTS, versions[data.ALERTS])
    return tuple(sorted(got.items()))


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    versions: Versions  # the versions it is right for (``depends_on``)

    def holds(self, versions: dict[str, int]) -> bool:
        return all(versions.get(line) == v for line, v in self.versions)

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": list(self.headers)})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class _Flight:
    """One answer being computed; the requests waiting for it, on their own event loops."""

    __slots__ = ("answer", "done", "waiters")

    def __init__(self) -> None:
        self.answer: Answer | None = None
        self.done = False
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []


class SharedAnswers:
    """The layer on ``dash_app``'s callback route that answers shared callbacks once per
    version (module docstring). Add it inside ``api.security.CallbackGuard`` (which checks
    the request and parses its body) and ``api.context.RequestContext``."""

    def __init__(self, app: ASGIApp, dash_app: Any, max_kept: int = MAX_KEPT,
                 max_kept_bytes: int = MAX_KEPT_BYTES) -> None:
        self.app = app
        self.path = dash_app.config.routes_pathname_prefix + UPDATE_ROUTE
        self.ticks: dict[str, frozenset[str]] = shared_callbacks(dash_app)
        self.max_kept = max_kept
        self.max_kept_bytes = max_kept_bytes
        self._lock = threading.Lock()  # the app may be served from several event loops (tests)
        self._flights: dict[Hashable, _Flight] = {}
        self._kept: OrderedDict[Hashable, Answer] = OrderedDict()
        self._kept_bytes = 0
        self.led = 0  # answers computed by Dash (tests, benchmarks)
        self.joined = 0  # requests that waited for another's answer and got it
        self.reused = 0  # requests answered from the kept answers
        self.waiting = 0  # requests waiting for another's answer now
        dash_app.shared_answers = self  # tests, benchmarks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = scope.get(BODY_SCOPE_KEY) if scope["type"] == "http" and scope["path"] == self.path else None
        ticks = self.ticks.get(str(body.get("output"))) if isinstance(body, dict) else None
        versions = data.live_versions() if ticks is not None else None
        if ticks is None or not versions:
            await self.app(scope, receive, send)
            return
        key = request_key(ticks, body)
        moment = (key, tuple(sorted(versions.items())))  # requests asking at once, with every line as now
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept.holds(versions):
                self._kept.move_to_end(key)
                self.reused += 1
            else:
                kept = None
            flight = self._flights.get(moment) if kept is None else None
            lead = kept is None and flight is None
            if lead:
                flight = self._flights[moment] = _Flight()
                self.led += 1
        if kept is not None:
            await kept.send(send)
        elif not lead:
            assert flight is not None
            got = await self._wait(flight)
            if got is None:  # the leader failed: ask Dash ourselves (and see our own error)
                await self.app(scope, receive, send)
            else:
                await got.send(send)
        else:
            assert flight is not None
            await self._lead(key, moment, versions, flight, scope, receive, send)

    async def _lead(self, key: Hashable, moment: Hashable, versions: dict[str, int], flight: _Flight, scope: Scope,
                    receive: Receive, send: Send) -> None:
        start: Message | None = None
        chunks: list[bytes] = []
        complete = False

        async def keeping(message: Message) -> None:
            nonlocal start, complete
            if message["type"] == "http.response.start":
                start = {**message, "headers": list(message.get("headers", []))}  # outer layers add to theirs
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        got: Answer | None = None
        keep = False
        try:
            with data.versions_consulted() as consulted:
                await self.app(scope, receive, keeping)
            holds = depends_on(consulted, versions)
            if start is not None and complete and start["status"] in SHAREABLE:
                got = Answer(start["status"], tuple((bytes(k), bytes(v)) for k, v in start["headers"]),
                             b"".join(chunks), holds or ())
                keep = holds is not None
        finally:
            self._finish(key, moment, flight, got, keep=keep)

    def _finish(self, key: Hashable, moment: Hashable, flight: _Flight, got: Answer | None, *, keep: bool) -> None:
        with self._lock:
            del self._flights[moment]
            flight.answer, flight.done = got, True
            waiters, flight.waiters = flight.waiters, []
            if keep and got is not None and len(got.body) <= self.max_kept_bytes:
                old = self._kept.pop(key, None)
                if old is not None:
                    self._kept_bytes -= len(old.body)
                self._kept[key] = got
                self._kept_bytes += len(got.body)
                while len(self._kept) > self.max_kept or self._kept_bytes > self.max_kept_bytes:
                    _old, dropped = self._kept.popitem(last=False)
                    self._kept_bytes -= len(dropped.body)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that request's loop is gone
                loop.call_soon_threadsafe(event.set)

    async def _wait(self, flight: _Flight) -> Answer | None:
        event = asyncio.Event()
        with self._lock:
            done = flight.done
            if not done:
                flight.waiters.append((asyncio.get_running_loop(), event))
                self.waiting += 1
        if not done:
            try:
                await event.wait()
            finally:
                with self._lock:
                    self.waiting -= 1
        got = flight.answer
        if got is not None:
            with self._lock:
                self.joined += 1
        return got


def shared_callbacks(dash_app: Any) -> dict[str, frozenset[str]]:
    """``dash_app``'s shared callbacks, by Dash's key of each (its ``output``): their ticks
    (filled in by ``components.delivery.LightDash.callback`` as they are declared)."""
    got: dict[str, frozenset[str]] | None = getattr(dash_app, "shared_ticks", None)
    if got is None:
        got = {}
        dash_app.shared_ticks = got
    return got


def install(dash_app: Any) -> None:
    """``SharedAnswers`` on ``dash_app``'s server (add it before ``api.security.install``,
    so that it runs inside the guard)."""
    dash_app.server.add_middleware(SharedAnswers, dash_app=dash_app)
