"""The operator loop's HTTP endpoints: stops with stable ids, classifying and splitting
stops, shift handovers, the audit trail, reason lists and users (for admins). FastAPI
routes next to the read API; the rules are ``api.operations`` (shared with the pages).
``install_operator_loop`` puts the login, the session cookie and these routes on the
dashboard's server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from fastapi import APIRouter, FastAPI
from redis.exceptions import RedisError
from starlette.responses import JSONResponse

from api import context
from api.auth import Denied, JsonBody, auth, check, error, require
from api.openapi import AUTH_ERRORS, ERRORS, SECURITY, WINDOW_PARAMS, WRITE_ERRORS, write
from api.operations import (
    OpError,
    add_user,
    change_user_of,
    classify,
    handover_acknowledge,
    handover_note,
    handover_sign,
    line_reasons,
    reason_catalogue,
    set_line_reasons,
    set_reason_catalogue,
    split,
    untagged_stops,
)
from domain import answers
from domain.roles import Action, Role
from store.handovers import Handovers
from store.reader import PlantReader, WindowError, parse_time

log = logging.getLogger(__name__)

_STOP_ID = {"name": "stop_id", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "stable stop id <line>~<machine>~<start epoch ms> (the stops list gives it)"}
_SHIFT_START = {"name": "shift_start", "in": "path", "required": True, "schema": {"type": "integer"},
                "description": "the shift instance's start, epoch seconds"}


def create_writes_router(get_reader: Callable[[], PlantReader] | None) -> APIRouter:
    router = APIRouter(prefix="/api")
    reader_of: Callable[[], PlantReader] = get_reader or _no_reader

    def guarded(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except Denied as exc:
                return exc.response
            except OpError as exc:
                return error(exc.status, exc.message)
            except WindowError as exc:
                return error(400, str(exc))
            except LookupError as exc:
                return error(404, str(exc.args[0] if exc.args else exc))
            except RedisError as exc:
                log.warning("API %s: Redis unavailable: %s", context.request().url.path, exc)
                return error(503, "data store unavailable")
        return wrapper

    def fields(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise OpError(400, "the body must be a JSON object")
        return data

    def arg(name: str) -> str | None:
        return context.request().query_params.get(name)

    def ok(answer: Any, status: int = 200) -> JSONResponse:
        return context.json_ok(answer, status)

    @router.get("/lines/{line}/stops", response_model=answers.Stops, responses=ERRORS,
                summary="Stops of a window with stable ids, the PLC's and a person's reason "
                        "(untagged=1: only unplanned down time without a reason)",
                openapi_extra={"parameters": [*WINDOW_PARAMS, {"name": "untagged", "in": "query",
                                                                    "required": False,
                                                                    "schema": {"type": "string", "enum": ["1"]}}]})
    @guarded
    def stops(line: str) -> Any:
        reader, now = reader_of(), auth().clock()
        reader.line(line)
        w = reader.resolve_window(arg("start"), arg("end"), now)
        return ok(untagged_stops(reader, line, w.start, w.end, now, arg("untagged") == "1"))

    @router.get("/lines/{line}/reasons", response_model=answers.Reasons, responses=ERRORS,
                summary="The reasons a person may pick on the line, by loss category")
    @guarded
    def reasons(line: str) -> Any:
        return ok(line_reasons(reader_of(), line))

    @router.put("/lines/{line}/reasons", response_model=answers.Reasons, responses=WRITE_ERRORS,
                summary="Set the line's own reason list (engineers of the line, admins; null: the plant-wide "
                        "list); audited",
                openapi_extra=write({"type": "object", "required": ["codes"], "properties": {
                    "codes": {"type": ["array", "null"], "items": {"type": "integer"}}}}))
    @guarded
    def put_reasons(line: str, data: JsonBody) -> Any:
        who = require(Action.MANAGE_REASONS, line)
        data = fields(data)
        if "codes" not in data:
            raise OpError(400, 'send {"codes": [reason codes]} (null: the plant-wide list)')
        return ok(set_line_reasons(reader_of(), who, line, data["codes"]))

    @router.get("/reasons", response_model=answers.ReasonLists, responses=ERRORS,
                summary="The plant-wide reason list and each line's (managed, else the plant file's)")
    @guarded
    def plant_reasons() -> Any:
        return ok(reason_catalogue(reader_of()))

    @router.put("/reasons", response_model=answers.ReasonLists, responses=WRITE_ERRORS,
                summary="Replace the plant-wide reason list (engineers of all lines, admins); a code still used "
                        "by a classification cannot be dropped (409): mark it retired; audited",
                openapi_extra=write({"type": "object", "required": ["reasons"], "properties": {
                    "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/ReasonEntry"}}}}))
    @guarded
    def put_plant_reasons(data: JsonBody) -> Any:
        who = require(Action.MANAGE_REASONS)
        return ok(set_reason_catalogue(reader_of(), who, fields(data).get("reasons")))

    @router.put("/lines/{line}/stops/{stop_id}/classification", response_model=answers.Classification,
                responses=WRITE_ERRORS,
                summary="Set a stop's reason and comment (operators: their lines, not others' classifications)",
                openapi_extra=write({"type": "object", "required": ["reason"], "properties": {
                    "reason": {"type": "integer"}, "comment": {"type": "string", "maxLength": 500}}}, [_STOP_ID]))
    @guarded
    def put_classification(line: str, stop_id: str, data: JsonBody) -> Any:
        who = require(Action.CLASSIFY, line)
        data = fields(data)
        return ok(classify(reader_of(), who, line, stop_id, data.get("reason"), data.get("comment"), auth().clock()))

    @router.post("/lines/{line}/stops/{stop_id}/split", response_model=answers.Classification,
                 responses=WRITE_ERRORS, summary="Split a stop at a time into two reasons",
                 openapi_extra=write({"type": "object", "required": ["at", "before", "after"], "properties": {
                     "at": {"type": ["number", "string"],
                            "description": "epoch s or ISO 8601 with offset, inside the stop"},
                     "before": {"type": "integer"}, "after": {"type": "integer"}, "comment": {"type": "string"}}},
                     [_STOP_ID]))
    @guarded
    def post_split(line: str, stop_id: str, data: JsonBody) -> Any:
        who = require(Action.CLASSIFY, line)
        data = fields(data)
        return ok(split(reader_of(), who, line, stop_id, data.get("at"), data.get("before"), data.get("after"),
                        data.get("comment"), auth().clock()))

    @router.get("/lines/{line}/handovers", response_model=answers.Handovers, responses=ERRORS,
                summary="Handovers of the line (start/end: ISO times; default the last 30 days)",
                openapi_extra={"parameters": WINDOW_PARAMS[:2]})
    @guarded
    def list_handovers(line: str) -> Any:
        reader, now = reader_of(), auth().clock()
        reader.line(line)
        start, end = arg("start"), arg("end")
        lo = parse_time("start", start) if start else now - 30 * 86400
        hi = parse_time("end", end) if end else now + 1
        return ok({"line": line, "handovers": Handovers(reader.redis).history(line, lo, hi)})

    @router.put("/lines/{line}/handovers/{shift_start}", response_model=answers.Handover, responses=WRITE_ERRORS,
                summary="Write the shift's handover note (supervisors)",
                openapi_extra=write({"type": "object", "properties": {
                    "note": {"type": "string"}, "open_issues": {"type": "string"}}}, [_SHIFT_START]))
    @guarded
    def put_handover(line: str, shift_start: str, data: JsonBody) -> Any:
        who = require(Action.HANDOVER_WRITE, line)
        data = fields(data)
        return ok(handover_note(reader_of(), who, line, shift_start, data.get("note"), data.get("open_issues"),
                                auth().clock()))

    @router.post("/lines/{line}/handovers/{shift_start}/sign", response_model=answers.Handover,
                 responses=WRITE_ERRORS, summary="Sign off as the outgoing supervisor: freezes the shift's figures",
                 openapi_extra=write(None, [_SHIFT_START]))
    @guarded
    def sign_handover(line: str, shift_start: str) -> Any:
        who = require(Action.HANDOVER_SIGN, line)
        return ok(handover_sign(reader_of(), who, line, shift_start, auth().clock()))

    @router.post("/lines/{line}/handovers/{shift_start}/acknowledge", response_model=answers.Handover,
                 responses=WRITE_ERRORS, summary="Acknowledge as the incoming supervisor (not the one who signed)",
                 openapi_extra=write(None, [_SHIFT_START]))
    @guarded
    def acknowledge_handover(line: str, shift_start: str) -> Any:
        who = require(Action.HANDOVER_SIGN, line)
        return ok(handover_acknowledge(reader_of(), who, line, shift_start, auth().clock()))

    @router.get("/audit", response_model=answers.Audit, responses={**ERRORS, **AUTH_ERRORS},
                summary="The audit trail, newest first (supervisors: their lines; admins: everything)",
                openapi_extra={"security": SECURITY, "parameters": [
                    *WINDOW_PARAMS[:2], {"name": "line", "in": "query", "required": False,
                                         "schema": {"type": "string"}}]})
    @guarded
    def audit() -> Any:
        line = arg("line")
        result = check(Action.READ_AUDIT, line, write=False)
        if not hasattr(result, "role"):
            return result
        reader, now = reader_of(), auth().clock()
        if line is not None:
            reader.line(line)
        start, end = arg("start"), arg("end")
        lo = parse_time("start", start) if start else now - 86400
        hi = parse_time("end", end) if end else now + 1
        every = [ln.id for ln in reader.plant.lines]
        if line is not None:
            lines: set[str] | None = {line}
        elif result.role == Role.ADMIN:
            lines = None  # everything, logins and user changes included
        else:
            lines = set(result.visible_lines(every))  # type: ignore[union-attr]
        return ok({"entries": auth().audit.query(lo, hi, lines)})

    @router.get("/users", response_model=answers.Users, responses={**ERRORS, **AUTH_ERRORS},
                summary="The users (admins)", openapi_extra={"security": SECURITY})
    @guarded
    def list_users() -> Any:
        require(Action.MANAGE_USERS)
        return ok({"users": [u.public() for u in auth().users.all()]})

    @router.post("/users", response_model=answers.User, status_code=201, responses={**ERRORS, **AUTH_ERRORS},
                 summary="Add a user (admins)", openapi_extra=write({"type": "object", "properties": {
                     "name": {"type": "string"}, "role": {"type": "string"}, "lines": {"type": "string"},
                     "password": {"type": "string"}}}))
    @guarded
    def post_user(data: JsonBody) -> Any:
        who = require(Action.MANAGE_USERS)
        data = fields(data)
        return ok(add_user(who, data.get("name"), data.get("role"), data.get("lines"), data.get("password")), 201)

    @router.patch("/users/{name}", response_model=answers.User, responses={**ERRORS, **AUTH_ERRORS},
                  summary="Disable or enable a user, or set a password (admins; either ends their sessions)",
                  openapi_extra=write({"type": "object", "properties": {
                      "disabled": {"type": "boolean"}, "password": {"type": "string"}}}))
    @guarded
    def patch_user(name: str, data: JsonBody) -> Any:
        who = require(Action.MANAGE_USERS)
        data = fields(data)
        return ok(change_user_of(who, name, data.get("disabled"), data.get("password")))

    return router


def _no_reader() -> PlantReader:
    raise RuntimeError("no reader")


def install_operator_loop(server: FastAPI, reader: Any, plant: Any, clock: Callable[[], float], data_dir: Any,
                          env: dict[str, str] | None = None) -> bool:
    """Login, the write endpoints and (with ``REQUIRE_LOGIN``) the login gate on the
    dashboard's server; True if installed (then the caller adds ``session_layers``).
    ``env``: ``SECRET_KEY``, ``REQUIRE_LOGIN=1``, ``SESSION_COOKIE_SECURE=1`` (behind TLS),
    ``PROXY_HOPS=1`` (trust that many proxies' X-Forwarded-For/-Proto for the audited
    address). A reader without Redis (tests' samples) gets none of it."""
    import os

    from api import auth as api_auth

    if getattr(reader, "redis", None) is None:
        return False
    env = dict(os.environ) if env is None else env
    the_auth = api_auth.Auth(reader.redis, plant, clock, require_login=_flag(env.get("REQUIRE_LOGIN")))
    api_auth.install(server, the_auth)
    server.include_router(create_writes_router(lambda: reader))
    return True


def session_layers(server: FastAPI, data_dir: Any, env: dict[str, str] | None = None) -> None:
    """The session cookie and, behind proxies, the client's address and scheme from their
    headers (middleware: add after the inner ones, ``components.app_factory``)."""
    import os
    from pathlib import Path

    from api import auth as api_auth
    from api.proxy import ProxyHeaders

    env = dict(os.environ) if env is None else env
    api_auth.session_middleware(server, api_auth.secret_key(Path(data_dir), env),
                                secure_cookies=_flag(env.get("SESSION_COOKIE_SECURE")))
    hops = int(env.get("PROXY_HOPS") or 0)  # behind a TLS reverse proxy: the client's address from X-Forwarded-For
    if hops > 0:
        server.add_middleware(ProxyHeaders, hops=hops)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")
