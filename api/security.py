"""Security headers on every response, and 4xx (not 500) for malformed Dash callback requests.

``install(app)`` (the callback guard) and ``install_headers(server, ...)`` (the headers)
are called once where the Dash app is built; both are ASGI middleware on its FastAPI server. Everything
the browser loads comes from this server (factory networks are often offline), so the
Content-Security-Policy allows only 'self' for scripts, plus the SHA-256 hash of the one
inline script Dash writes into its page (``new DashRenderer()``; ``Dash.csp_hashes()``).
The ``_dash-config`` block is ``application/json``, which the browser never executes.
Styles need ``'unsafe-inline'``: Plotly injects ``<style>`` elements and style attributes
when it draws a figure; scripts do not.

Frames: no one may frame the dashboard (``frame-ancestors 'none'``, ``X-Frame-Options:
DENY``) unless ``FRAME_ANCESTORS`` names the kiosk or portal origins allowed to embed it.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from dash import Dash
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import context
from config.settings import parse_frame_ancestors

log = logging.getLogger(__name__)

UPDATE_ROUTE = "_dash-update-component"
BODY_SCOPE_KEY = "plant.callback_body"  # a checked callback request's parsed body, for the layers inside
MAX_CALLBACK_BODY = 2 * 1024 * 1024  # the largest legitimate request is a few KB


class BadCallbackRequest(Exception):
    """A callback request the browser's Dash renderer would never send."""


def content_security_policy(script_hashes: list[str], frame_ancestors: tuple[str, ...] = ()) -> str:
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],  # Plotly's injected styles
        "img-src": ["'self'", "data:", "blob:"],  # Plotly's "download as PNG", Bootstrap's SVG icons
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": list(frame_ancestors) or ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


BAD_VALUE = "bad_callback_value"
BAD_VALUE_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError)


def install(app: Dash) -> None:
    """The guard on ``app``'s callback route (middleware; add it inside ``RequestContext``).
    Callbacks must be declared through ``flag_bad_values`` (``components.delivery.LightDash``)."""
    app.server.add_middleware(CallbackGuard, dash_app=app)


def install_headers(server: Any, frame_ancestors: str | None = None,
                    script_hashes: Callable[[], Sequence[str]] = tuple) -> None:
    """The security headers on every response of ``server``. ``script_hashes``: the CSP
    hashes of the inline scripts the pages carry (``Dash.csp_hashes``)."""
    server.add_middleware(SecurityHeaders, frame_ancestors=frame_ancestors, script_hashes=script_hashes)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, frame_ancestors: str | None = None,
                 script_hashes: Callable[[], Sequence[str]] = tuple) -> None:
        self.app = app
        self.ancestors = parse_frame_ancestors(frame_ancestors)
        self.script_hashes = script_hashes
        self.policy = ""  # computed at the first response: Dash adds inline scripts until then

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if not self.policy:
                    self.policy = content_security_policy(list(self.script_hashes()), self.ancestors)
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = self.policy
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                if not self.ancestors:
                    headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, with_headers)


def flag_bad_values(func: Callable[..., Any]) -> Callable[..., Any]:
    """A callback that marks the request when a value it was sent cannot be used (a dict
    where a date belongs, ...): the renderer never sends that, so ``CallbackGuard``
    answers 400 instead of Dash's 500."""

    @functools.wraps(func)
    def callback(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BAD_VALUE_ERRORS as exc:
            log.warning("callback %s refused a value: %s: %s", func.__name__, type(exc).__name__, exc)
            context.g()[BAD_VALUE] = True
            raise

    return callback


class CallbackGuard:
    """The callback route, answering 400 with a short JSON message to requests whose body
    is not the shape Dash's renderer sends, or whose values a callback cannot use."""

    def __init__(self, app: ASGIApp, dash_app: Dash) -> None:
        self.app = app
        self.dash_app = dash_app
        self.path = dash_app.config.routes_pathname_prefix + UPDATE_ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            raw = await _read_body(scope, receive)
            body = _parse(raw)
            check_callback_request(self.dash_app, body)
        except BadCallbackRequest as exc:
            log.info("callback request refused: %s", exc)
            await _bad(str(exc))(scope, receive, send)
            return
        scope[BODY_SCOPE_KEY] = body  # for the layers inside (components.shared)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 500 and context.g().get(BAD_VALUE):
                replaced = True
                await _bad("a value in the request cannot be used by this callback")(scope, receive, send)
                return
            if not replaced:
                await send(message)

        await self.app(scope, replay, guarded_send)


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    length = dict(scope["headers"]).get(b"content-length")
    if length is not None and length.isdigit() and int(length) > MAX_CALLBACK_BODY:
        raise BadCallbackRequest("request body too large")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_CALLBACK_BODY:
            raise BadCallbackRequest("request body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BadCallbackRequest("the body is not JSON") from None


def _is_prop(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("id"), (str, dict)) and isinstance(item.get("property"), str)


def _check_props(name: str, items: Any, specs: list[dict[str, Any]]) -> None:
    """``items`` answers ``specs`` one to one: a plain spec by a ``{"id", "property"}``
    with the same id and property; a pattern-matching spec by one such or a list of them."""
    if not isinstance(items, list) or len(items) != len(specs):
        raise BadCallbackRequest(f"'{name}' must be a list of {len(specs)} items")
    for i, (item, spec) in enumerate(zip(items, specs, strict=True)):
        pattern = str(spec.get("id", "")).startswith("{")
        if pattern:
            group = item if isinstance(item, list) else [item]
            if not all(_is_prop(x) and isinstance(x["id"], dict) for x in group):
                raise BadCallbackRequest(f"'{name}[{i}]' is not a pattern-matching id and property")
        elif not _is_prop(item) or item["id"] != spec.get("id") or item["property"] != spec.get("property"):
            raise BadCallbackRequest(f"'{name}[{i}]' must be {spec.get('id')}.{spec.get('property')}")


def check_callback_request(app: Dash, body: Any) -> None:
    """Raises ``BadCallbackRequest`` unless ``body`` has the shape the renderer sends for
    one of the app's callbacks: ``output``, ``outputs``, ``inputs``, ``state``,
    ``changedPropIds``."""
    if not isinstance(body, dict):
        raise BadCallbackRequest("the body must be a JSON object")
    output = body.get("output")
    if not isinstance(output, str) or "callback" not in app.callback_map.get(output, {}):
        raise BadCallbackRequest("unknown callback output")  # clientside callbacks run in the browser
    spec = app.callback_map[output]
    _check_props("inputs", body.get("inputs"), spec.get("inputs", []))
    _check_props("state", body.get("state", []), spec.get("state", []))
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(x, str) for x in changed):
        raise BadCallbackRequest("'changedPropIds' must be a list of strings")
    if spec.get("no_output"):
        return
    declared = spec.get("output")
    many = isinstance(declared, (list, tuple))  # declared as a list: the renderer sends a list
    wanted = list(declared) if many else [declared]
    group = body.get("outputs") if many else [body.get("outputs")]
    if not isinstance(group, list) or len(group) != len(wanted):
        raise BadCallbackRequest(f"'outputs' must describe {len(wanted)} output(s)")
    for i, (item, out) in enumerate(zip(group, wanted, strict=True)):
        component_id = getattr(out, "component_id", None)
        if isinstance(component_id, dict):  # pattern-matching: one match or a list of them
            ok = (_is_prop(item) and isinstance(item["id"], dict)) or (
                isinstance(item, list) and all(_is_prop(x) and isinstance(x["id"], dict) for x in item)
            )
        else:
            # an output declared with allow_duplicate comes as "<property>@<hash>"
            ok = (_is_prop(item) and item["id"] == component_id
                  and item["property"].split("@", 1)[0] == out.component_property)
        if not ok:
            raise BadCallbackRequest(f"'outputs[{i}]' is not the callback's output {out}")
