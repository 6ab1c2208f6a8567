"""Alerts in the HTTP API: ``GET /api/alerts`` (history and open alerts) and
``POST /api/alerts/<id>/ack`` (acknowledge, with a comment). README "Alerts".

Who may acknowledge is decided in one place, ``may_acknowledge``: the caller from the
operator loop's login (``api.auth``: a session or an API token), a role that works the
line (operator, supervisor, engineer) assigned to the alert's line. Admins manage users,
not the floor (least privilege, as for classifying stops).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from redis.exceptions import RedisError
from starlette.responses import JSONResponse

from api import context
from api.auth import JsonBody
from api.openapi import ERRORS, WRITE_ERRORS, write
from domain import answers
from store.alerts import AlertStore
from store.reader import PlantReader, WindowError

log = logging.getLogger(__name__)

ACK_ROLES = frozenset({"operator", "supervisor", "engineer"})
MAX_COMMENT = 500
HISTORY_DEFAULT_S = 7 * 86_400.0


class Refused(Exception):
    """Acknowledgement refused: HTTP status and the sentence the user reads."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def may_acknowledge(line: str, *, from_page: bool = False) -> tuple[str, str]:
    """(name, role) of the caller if it may acknowledge an alert of ``line``; else raises
    ``Refused`` (401 not logged in, 403 not allowed). ``from_page``: a Dash callback (a
    JSON POST a cross-site form cannot send) needs no CSRF header."""
    try:
        from api import auth as api_auth
        from domain import roles
    except ImportError:  # the operator loop (issue 11) is not installed in this build
        raise Refused(403, "acknowledging needs a login, which this installation does not have") from None
    if not api_auth.installed():
        raise Refused(403, "acknowledging needs a login, which this installation does not have")
    who = api_auth.current_principal()
    if who is None:
        raise Refused(401, "log in to acknowledge")
    if not from_page and who.kind == "user" and not api_auth.csrf_ok():
        raise Refused(403, f"CSRF token missing or wrong: send the {api_auth.CSRF_HEADER} header")
    action = getattr(roles.Action, "ACKNOWLEDGE", None)
    if action is not None:  # domain.roles decides once it knows acknowledging
        why = roles.refusal(who, action, line)
    elif str(who.role) not in ACK_ROLES:
        why = f"the role {who.role} may not acknowledge alerts"
    else:
        why = None if who.covers(line) else f"{who.name} is not assigned to line {line}"
    if why is not None:
        raise Refused(403, f"forbidden: {why}")
    return who.name, str(who.role)


def acknowledge(store: AlertStore, alert_id: str, comment: str, now: float, *, from_page: bool = False
                ) -> answers.AlertAck:
    """Acknowledge for the caller; the acknowledgement (the first one stands)."""
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise Refused(400, f"comment: at most {MAX_COMMENT} characters")
    alert = store.get(alert_id)
    if alert is None:
        raise Refused(404, f"unknown alert {alert_id!r}")
    name, role = may_acknowledge(alert.line, from_page=from_page)
    ack = store.acknowledge(alert_id, name, role, comment, now)
    assert ack is not None
    _audit(name, alert.line, alert_id, ack)
    return ack


def _audit(name: str, line: str, alert_id: str, ack: answers.AlertAck) -> None:
    """The acknowledgement in the operator loop's audit trail, when it is installed."""
    try:
        from api import auth as api_auth

        api_auth.auth().record(api_auth.current_principal(), "alert_ack", line=line, target=alert_id, after=ack)
    except Exception:  # noqa: BLE001 (the acknowledgement stands; the trail is the operator loop's)
        log.debug("alert acknowledgement of %s not in the audit trail", alert_id, exc_info=True)


def create_alerts_router(get_reader: Callable[[], PlantReader] | PlantReader | None,
                         clock: Callable[[], Any] | None = None) -> APIRouter:
    import time

    clock = clock or time.time
    router = APIRouter(prefix="/api")

    def store() -> AlertStore:
        reader = get_reader() if callable(get_reader) else get_reader
        return AlertStore(reader.redis)  # type: ignore[union-attr]

    @router.get("/alerts", response_model=answers.Alerts, responses=ERRORS,
                summary="Alerts raised in a range (default the last 7 days) and every open one, newest first",
                openapi_extra={"parameters": [
                    {"name": name, "in": "query", "required": False, "schema": schema}
                    for name, schema in (("start", {"type": "number"}), ("end", {"type": "number"}),
                                         ("line", {"type": "string"}),
                                         ("state", {"type": "string", "enum": ["open"]}))]})
    def alerts() -> Any:
        now = float(clock())
        args = context.request().query_params
        try:
            start = _number("start", now - HISTORY_DEFAULT_S)
            end = _number("end", now)
            line = args.get("line") or None
            open_only = args.get("state") == "open"
            items = store().history(start, end, line=line, open_only=open_only)
        except WindowError as exc:
            return _error(400, str(exc))
        except RedisError as exc:
            log.warning("API /api/alerts: Redis unavailable: %s", exc)
            return _error(503, "data store unavailable")
        return JSONResponse({"now": now, "alerts": items})

    @router.post("/alerts/{alert_id:path}/ack", response_model=answers.AlertAcknowledged,
                 responses=WRITE_ERRORS,
                 summary="Acknowledge an alert (operator, supervisor or engineer of its line): stops the wall's "
                         "flashing and the escalation",
                 openapi_extra=write({"type": "object", "properties": {
                     "comment": {"type": "string", "maxLength": 500}}}))
    def ack(alert_id: str, data: JsonBody) -> Any:
        comment = data.get("comment", "") if isinstance(data, dict) else ""
        if not isinstance(comment, str):
            return _error(400, "comment: text expected")
        try:
            return JSONResponse({"id": alert_id, "ack": acknowledge(store(), alert_id, comment,
                                                                            float(clock()))})
        except Refused as exc:
            return _error(exc.status, exc.message)
        except RedisError as exc:
            log.warning("API acknowledge: Redis unavailable: %s", exc)
            return _error(503, "data store unavailable")

    return router


def _number(name: str, default: float) -> float:
    text = context.request().query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise WindowError(f"{name}: epoch seconds expected, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise WindowError(f"{name}: a finite number expected")
    return value


def _error(status: int, message: str) -> Any:
    return context.json_error(status, message)
