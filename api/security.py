"""Security headers on every response, and 4xx (not 500) for malformed Dash callback requests.

``install(app, frame_ancestors)`` is called once where the Dash app is built. Everything
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
from dash.exceptions import PreventUpdate
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from config.settings import parse_frame_ancestors

log = logging.getLogger(__name__)

UPDATE_ROUTE = "_dash-update-component"
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


def install(app: Dash, frame_ancestors: str | None = None) -> None:
    """Headers on every response of ``app.server`` (pages, assets, callbacks, ``/api``)
    and a guard on the callback route. Call after the app's callbacks are declared."""
    install_headers(app.server, frame_ancestors, app.csp_hashes)
    endpoint = app.config.routes_pathname_prefix + UPDATE_ROUTE
    view = app.server.view_functions.get(endpoint)
    if view is not None:
        app.server.view_functions[endpoint] = _guarded(app, view)


def install_headers(
    server: Flask, frame_ancestors: str | None = None, script_hashes: Callable[[], Sequence[str]] = tuple
) -> None:
    """The security headers on every response of ``server``. ``script_hashes``: the CSP
    hashes of the inline scripts the pages carry (``Dash.csp_hashes``)."""
    ancestors = parse_frame_ancestors(frame_ancestors)
    policy: list[str] = []  # computed at the first response: Dash adds inline scripts until then

    @server.after_request
    def security_headers(response: Response) -> Response:
        if not policy:
            policy.append(content_security_policy(list(script_hashes()), ancestors))
        response.headers["Content-Security-Policy"] = policy[0]
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if not ancestors:
            response.headers["X-Frame-Options"] = "DENY"
        return response


def _guarded(app: Dash, view: Callable[..., Any]) -> Callable[..., Any]:
    """The callback route, answering 400 with a short JSON message to requests whose body
    is not the shape Dash's renderer sends, or whose values a callback cannot use."""

    @functools.wraps(view)
    def dispatch(*args: Any, **kwargs: Any) -> Any:
        try:
            check_callback_request(app, _json_body())
        except BadCallbackRequest as exc:
            log.info("callback request refused: %s", exc)
            return _bad(str(exc))
        try:
            return view(*args, **kwargs)
        except (PreventUpdate, HTTPException):
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            # The shape was right but a value was not (a dict where a date belongs, ...):
            # the renderer never sends that, so it is the request's fault, not the server's.
            log.warning("callback %s refused a value: %s: %s", _output_of(), type(exc).__name__, exc)
            return _bad("a value in the request cannot be used by this callback")

    return dispatch


def _bad(message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), 400


def _output_of() -> str:
    body = request.get_json(silent=True)
    return str(body.get("output"))[:120] if isinstance(body, dict) else "?"


def _json_body() -> Any:
    if request.content_length is not None and request.content_length > MAX_CALLBACK_BODY:
        raise BadCallbackRequest("request body too large")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_CALLBACK_BODY:
        raise BadCallbackRequest("request body too large")
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
