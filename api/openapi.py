"""The OpenAPI 3.1 description of the HTTP API (served at ``/api/openapi.json``).

The paths, parameters and error answers are written here; the answers' schemas are
generated from their types in ``domain.answers`` (``answer_schemas``: pydantic's JSON
Schema 2020-12 of each TypedDict, closed with ``additionalProperties: false`` and
described by the fields' ``Doc`` annotations), so the document cannot drift from what
the reader returns and the API serialises.
"""

from __future__ import annotations

import copy
import functools
import typing
from typing import Any

from pydantic import TypeAdapter
from typing_extensions import is_typeddict

from domain import answers

_REF = "#/components/schemas/{model}"

# every answer the API (or the dashboard, through the same reader) gives; their parts are added as they are used
ANSWERS: tuple[Any, ...] = (
    answers.Error, answers.LinesWithAndon, answers.Lines, answers.LineKpis, answers.MachineKpis, answers.Downtime,
    answers.Energy, answers.Health, answers.KpiSeries, answers.PowerSeries, answers.Timeline, answers.Stops,
    answers.Reasons, answers.ReasonLists, answers.Classification, answers.Handover, answers.Handovers,
    answers.Audit, answers.Login, answers.Logout, answers.Session, answers.Users, answers.User, answers.Alerts,
    answers.AlertAcknowledged,
)


@functools.cache
def answer_schemas() -> dict[str, Any]:
    """``components.schemas``: each answer type's JSON Schema and those of its parts,
    by type name. Generated once per process."""
    types = {name: t for name, t in vars(answers).items() if is_typeddict(t)}
    out: dict[str, Any] = {}
    for answer in ANSWERS:
        schema = TypeAdapter(answer).json_schema(ref_template=_REF, mode="serialization")
        out.update(schema.pop("$defs", {}))
        out[answer.__name__] = schema
    for name, schema in out.items():
        _close(schema, types[name])
    return out


def _close(schema: dict[str, Any], typed: Any) -> None:
    """No keys beyond the type's; descriptions from ``Doc``; no generated titles."""
    schema.pop("title", None)
    if "description" in schema:
        schema["description"] = " ".join(schema["description"].split())
    schema["additionalProperties"] = False
    hints = typing.get_type_hints(typed, include_extras=True)
    for key, prop in schema.get("properties", {}).items():
        prop.pop("title", None)
        doc = _doc(hints[key])
        if doc is not None:
            prop["description"] = doc


def _doc(hint: Any) -> str | None:
    while True:
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, answers.Doc):
                return meta.text
        args = typing.get_args(hint)  # look through NotRequired[...], Annotated[...] and list[...] (of segments)
        if typing.get_origin(hint) not in (typing.NotRequired, typing.Required, typing.Annotated, list) or not args:
            return None
        hint = args[0]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "bad parameter (the message names it)"),
    "404": _json(_ref("Error"), "unknown line or machine"),
    "500": _json(_ref("Error"), "internal error"),
    "503": _json(_ref("Error"), "Redis unavailable"),
}

_WINDOW_PARAMS = [
    {
        "name": "start", "in": "query", "required": False,
        "description": "ISO 8601 time with UTC offset (2026-11-25T07:00:00+08:00 or ...Z), or a named range: "
                       "shift, last_shift, today, yesterday, 7d, 30d (plant local time). "
                       "Default: the current shift (between shifts: the last one). Remember to encode '+' as %2B.",
        "schema": {"type": "string"},
    },
    {
        "name": "end", "in": "query", "required": False,
        "description": "ISO 8601 time with UTC offset; default now; capped at now; only with an ISO start. "
                       "Windows are at most 400 days.",
        "schema": {"type": "string"},
    },
    {"name": "range", "in": "query", "required": False, "description": "alias of start for named ranges",
     "schema": {"type": "string", "enum": ["shift", "last_shift", "today", "yesterday", "7d", "30d"]}},
]

_LINE = {"name": "line", "in": "path", "required": True, "schema": {"type": "string"}}
_MACHINE = {"name": "machine", "in": "path", "required": True, "schema": {"type": "string"}}
_LINE_FILTER = {"name": "line", "in": "query", "required": False, "explode": True,
                "description": "only these lines (repeat it, or separate ids with commas); 404 for an unknown one",
                "schema": {"type": "array", "items": {"type": "string"}}}

def _get(summary: str, schema: str, params: list[dict[str, Any]],
         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    responses = {"200": _json(_ref(schema), summary), **_ERRORS, **(extra or {})}
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


# --- the operator loop (issue 11; api.writes): writes need a login (cookie + CSRF header) or a token ---

_AUTH_ERRORS = {
    "401": _json(_ref("Error"), "no credentials (or an invalid/revoked token): log in or send a Bearer token"),
    "403": _json(_ref("Error"), "the role or the line is not allowed, or the CSRF token is missing"),
}
_STOP_ID = {"name": "stop_id", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "stable stop id <line>~<machine>~<start epoch ms> (the stops list gives it)"}
_SHIFT_START = {"name": "shift_start", "in": "path", "required": True, "schema": {"type": "integer"},
                "description": "the shift instance's start, epoch seconds"}
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]

def _write(method: str, summary: str, schema: str, params: list[dict[str, Any]],
           body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params, "security": _SECURITY,
                          "responses": {"200": _json(_ref(schema), summary), **_ERRORS, **_AUTH_ERRORS,
                                        "409": _json(_ref("Error"), "not possible now (e.g. already signed)")}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return {method: op}


_WRITE_PATHS: dict[str, Any] = {
    "/api/lines/{line}/stops": _get("Stops of a window with stable ids, the PLC's and a person's reason "
                                    "(untagged=1: only unplanned down time without a reason)", "Stops",
                                    [_LINE, *_WINDOW_PARAMS, {"name": "untagged", "in": "query", "required": False,
                                                              "schema": {"type": "string", "enum": ["1"]}}]),
    "/api/lines/{line}/reasons": {
        **_get("The reasons a person may pick on the line, by loss category", "Reasons", [_LINE]),
        **_write("put", "Set the line's own reason list (engineers of the line, admins; null: the plant-wide "
                 "list); audited", "Reasons", [_LINE],
                 {"type": "object", "required": ["codes"], "properties": {
                     "codes": {"type": ["array", "null"], "items": {"type": "integer"}}}})},
    "/api/reasons": {
        **_get("The plant-wide reason list and each line's (managed, else the plant file's)", "ReasonLists", []),
        **_write("put", "Replace the plant-wide reason list (engineers of all lines, admins); a code still used "
                 "by a classification cannot be dropped (409): mark it retired; audited", "ReasonLists", [],
                 {"type": "object", "required": ["reasons"], "properties": {
                     "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/ReasonEntry"}}}})},
    "/api/lines/{line}/stops/{stop_id}/classification": _write(
        "put", "Set a stop's reason and comment (operators: their lines, not others' classifications)",
        "Classification", [_LINE, _STOP_ID],
        {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "integer"},
                                                                  "comment": {"type": "string", "maxLength": 500}}}),
    "/api/lines/{line}/stops/{stop_id}/split": _write(
        "post", "Split a stop at a time into two reasons", "Classification", [_LINE, _STOP_ID],
        {"type": "object", "required": ["at", "before", "after"], "properties": {
            "at": {"type": ["number", "string"], "description": "epoch s or ISO 8601 with offset, inside the stop"},
            "before": {"type": "integer"}, "after": {"type": "integer"}, "comment": {"type": "string"}}}),
    "/api/lines/{line}/handovers": _get("Handovers of the line (start/end: ISO times; default the last 30 days)",
                                        "Handovers", [_LINE, *_WINDOW_PARAMS[:2]]),
    "/api/lines/{line}/handovers/{shift_start}": _write(
        "put", "Write the shift's handover note (supervisors)", "Handover", [_LINE, _SHIFT_START],
        {"type": "object", "properties": {"note": {"type": "string"}, "open_issues": {"type": "string"}}}),
    "/api/lines/{line}/handovers/{shift_start}/sign": _write(
        "post", "Sign off as the outgoing supervisor: freezes the shift's figures", "Handover",
        [_LINE, _SHIFT_START]),
    "/api/lines/{line}/handovers/{shift_start}/acknowledge": _write(
        "post", "Acknowledge as the incoming supervisor (not the one who signed)", "Handover",
        [_LINE, _SHIFT_START]),
    "/api/audit": {"get": {
        "summary": "The audit trail, newest first (supervisors: their lines; admins: everything)",
        "security": _SECURITY,
        "parameters": [*_WINDOW_PARAMS[:2], {"name": "line", "in": "query", "required": False,
                                             "schema": {"type": "string"}}],
        "responses": {"200": _json(_ref("Audit"), "entries"), **_ERRORS, **_AUTH_ERRORS}}},
    "/api/login": {"post": {"summary": "Log in (starts a session cookie; answers the CSRF token)",
                            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                                "type": "object", "properties": {"username": {"type": "string"},
                                                                 "password": {"type": "string"}}}}}},
                            "responses": {"200": _json(_ref("Login"), "logged in"),
                                          "400": _json(_ref("Error"), "no user name or password"),
                                          "401": _json(_ref("Error"), "wrong user name or password"),
                                          "429": _json(_ref("Error"), "too many failed logins: Retry-After")}}},
    "/api/logout": {"post": {"summary": "End the session", "responses": {"200": _json(_ref("Logout"), "logged out")}}},
    "/api/session": {"get": {"summary": "Who is logged in, with the CSRF token for writes",
                             "responses": {"200": _json(_ref("Session"), "user, role, lines, csrf")}}},
    "/api/users": {
        "get": {"summary": "The users (admins)", "security": _SECURITY,
                "responses": {"200": _json(_ref("Users"), "users"), **_ERRORS, **_AUTH_ERRORS}},
        "post": {"summary": "Add a user (admins)", "security": _SECURITY,
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "properties": {"name": {"type": "string"}, "role": {"type": "string"},
                                                      "lines": {"type": "string"}, "password": {"type": "string"}}}}}},
                 "responses": {"201": _json(_ref("User"), "added"), **_ERRORS, **_AUTH_ERRORS}},
    },
    "/api/users/{name}": {"patch": {
        "summary": "Disable or enable a user, or set a password (admins; either ends their sessions)",
        "security": _SECURITY,
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"disabled": {"type": "boolean"}, "password": {"type": "string"}}}}}},
        "responses": {"200": _json(_ref("User"), "changed"), **_ERRORS, **_AUTH_ERRORS}}},
}
# --- alerts (issue 12; api.alerts): the list is a read, an acknowledgement a write ---

_ALERT_PATHS: dict[str, Any] = {
    "/api/alerts": {"get": {
        "summary": "Alerts raised in a range (default the last 7 days) and every open one, newest first",
        "parameters": [{"name": name, "in": "query", "required": False, "schema": schema}
                       for name, schema in (("start", {"type": "number"}), ("end", {"type": "number"}),
                                            ("line", {"type": "string"}),
                                            ("state", {"type": "string", "enum": ["open"]}))],
        "responses": {"200": _json(_ref("Alerts"), "alerts"), **_ERRORS}}},
    "/api/alerts/{alert_id}/ack": _write(
        "post", "Acknowledge an alert (operator, supervisor or engineer of its line): stops the wall's "
        "flashing and the escalation", "AlertAcknowledged",
        [{"name": "alert_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        {"type": "object", "properties": {"comment": {"type": "string", "maxLength": 500}}}),
}

_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "API token (python app.py tokens create)"},
    "session": {"type": "apiKey", "in": "cookie", "name": "plant_session",
                "description": "after POST /api/login; writes also need the X-CSRF-Token header"},
}


def openapi_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Smart-factory OEE dashboard API",
            "version": "1.0.0",
            "description": "Read-only KPIs, downtime, energy and live state of the plant's lines. "
                           "Times are ISO 8601 with a UTC offset in requests, epoch seconds (and ISO) in answers.",
        },
        "paths": {
            "/api/lines": _get("Lines with their machines' live state, andon status and pace this shift (all, "
                               "or those named by ?line=)", "LinesWithAndon",
                               [_LINE_FILTER]),
            "/api/lines/{line}/kpis": _get("OEE, availability, performance, quality, TEEP, losses, energy of a line "
                                           "and its machines", "LineKpis", [_LINE, *_WINDOW_PARAMS]),
            "/api/lines/{line}/machines/{machine}/kpis": _get("KPIs of one machine", "MachineKpis",
                                                              [_LINE, _MACHINE, *_WINDOW_PARAMS]),
            "/api/lines/{line}/downtime": _get("Stops, Pareto by duration and count, MTBF and MTTR", "Downtime",
                                               [_LINE, *_WINDOW_PARAMS]),
            "/api/lines/{line}/energy": _get("Energy, cost, CO2, peak demand per line and machine", "Energy",
                                             [_LINE, *_WINDOW_PARAMS]),
            "/api/health": _get("Redis reachable, collectors' last data, rollup worker lag (503 when not ok)",
                                "Health", [], {"503": _json(_ref("Health"), "something is not ok")}),
            "/api/live/events": {"get": {
                "summary": "Server-sent events: which lines' live views changed (README 'Live push')",
                "parameters": [_LINE_FILTER, {
                    "name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"},
                    "description": "resume after this event (EventSource sends it on reconnect)"}],
                "responses": {
                    "200": {"description": "text/event-stream: `hello`, `change` (the changed lines' "
                                           "`{line, version, why}`), `status`; heartbeats as comments",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    "404": _json(_ref("Error"), "unknown line"),
                    "503": _json(_ref("Error"), "live push is off (LIVE_PUSH=0) or the server is stopping"),
                }}},
            "/api/openapi.json": {"get": {"summary": "This description", "responses": {
                "200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {}}}}}},
            **_WRITE_PATHS,
            **_ALERT_PATHS,
        },
        "components": {"schemas": copy.deepcopy(answer_schemas()), "securitySchemes": _SECURITY_SCHEMES},
    }
