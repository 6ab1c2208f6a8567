"""The HTTP API: a Flask blueprint over ``store.reader.PlantReader``.

Every answer is JSON. Bad parameters are 400 with ``{"error": "..."}`` naming the
parameter; unknown lines/machines and paths 404; Redis unreachable 503; anything else
500 - never an HTML page, never a crashed worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from api.openapi import openapi_spec
from domain import answers
from store.answer_parts import json_safe
from store.reader import PlantReader, UnknownLine, UnknownMachine, WindowError

log = logging.getLogger(__name__)

PREFIX = "/api"
View = Callable[..., Any]


class BadRequest(Exception):
    pass


def create_api_blueprint(get_reader: Callable[[], PlantReader] | PlantReader,
                         clock: Callable[[], float] = time.time) -> Blueprint:
    """The ``/api`` blueprint. ``get_reader``: a function returning the process's
    PlantReader (or the reader itself); ``clock``: epoch seconds (tests pin it)."""
    reader_of = _reader_getter(get_reader)
    bp = Blueprint("api", __name__, url_prefix=PREFIX)

    def json_errors(view: View) -> View:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except (WindowError, BadRequest) as exc:
                return _error(400, str(exc))
            except (UnknownLine, UnknownMachine) as exc:
                return _error(404, str(exc.args[0] if exc.args else exc))
            except RedisError as exc:
                log.warning("API %s: Redis unavailable: %s", request.path, exc)
                return _error(503, "data store unavailable")
            except HTTPException:
                raise
            except Exception:
                log.exception("API %s failed", request.path)
                return _error(500, "internal error")
        return wrapper

    def window(reader: PlantReader, now: float) -> tuple[float, float, str]:
        start = _param("start") or _param("range")
        resolved = reader.resolve_window(start, _param("end"), now)
        return resolved.start, resolved.end, resolved.label

    @bp.get("/lines")
    @json_errors
    def lines() -> Any:
        reader = reader_of()
        wanted = [part for value in request.args.getlist("line") for part in value.split(",") if part]
        for line in wanted:
            reader.line(line)  # 404 for an unknown line
        return _ok(reader.lines(clock(), only=wanted or None, with_andon=True))

    @bp.get("/lines/<line>/kpis")
    @json_errors
    def line_kpis(line: str) -> Any:
        reader, now = reader_of(), clock()
        reader.line(line)
        start, end, label = window(reader, now)
        return _ok(_labelled(reader.line_kpis(line, start, end, now, machines=True), label))

    @bp.get("/lines/<line>/machines/<machine>/kpis")
    @json_errors
    def machine_kpis(line: str, machine: str) -> Any:
        reader, now = reader_of(), clock()
        if reader.line(line).machine(machine) is None:
            raise UnknownMachine(f"unknown machine {machine!r} in line {line!r}")
        start, end, label = window(reader, now)
        return _ok(_labelled(reader.machine_kpis(line, machine, start, end, now), label))

    @bp.get("/lines/<line>/downtime")
    @json_errors
    def downtime(line: str) -> Any:
        reader, now = reader_of(), clock()
        reader.line(line)
        start, end, label = window(reader, now)
        return _ok(_labelled(reader.downtime(line, start, end, now), label))

    @bp.get("/lines/<line>/energy")
    @json_errors
    def energy(line: str) -> Any:
        reader, now = reader_of(), clock()
        reader.line(line)
        start, end, label = window(reader, now)
        return _ok(_labelled(reader.energy(line, start, end, now), label))

    @bp.get("/health")
    @json_errors
    def health() -> Any:
        report = reader_of().health(clock())
        return _ok(report, 200 if report.get("ok") else 503)

    @bp.get("/openapi.json")
    @json_errors
    def openapi() -> Any:
        return _ok(openapi_spec())

    @bp.route("/", defaults={"rest": ""}, methods=_ALL_METHODS)
    @bp.route("/<path:rest>", methods=_ALL_METHODS)
    def not_found(rest: str) -> Any:
        return _error(404, f"no such endpoint: {request.method} {request.path}")

    @bp.app_errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        """JSON for routing errors under /api (405, 404 of odd paths); others unchanged."""
        if not request.path.startswith(PREFIX + "/") and request.path != PREFIX:
            return exc
        return _error(exc.code or 500, exc.description or exc.name)

    return bp


_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _reader_getter(get_reader: Callable[[], PlantReader] | PlantReader) -> Callable[[], PlantReader]:
    if isinstance(get_reader, PlantReader) or hasattr(get_reader, "line_kpis"):
        reader = get_reader
        return lambda: reader  # type: ignore[return-value]
    return get_reader


def _param(name: str) -> str | None:
    value = request.args.get(name)
    if value is not None and ("\x00" in value or len(value) > 200):
        raise BadRequest(f"{name}: not an ISO 8601 time with offset or a named range")
    return value


Windowed = TypeVar("Windowed", answers.LineKpis, answers.MachineKpis, answers.Downtime, answers.Energy)


def _labelled(body: Windowed, label: str) -> Windowed:
    """The answer with its window's label (a named range's), when it has one."""
    if label:
        body["window"]["label"] = label
    return body


def _ok(body: Any, status: int = 200) -> Response:
    response = jsonify(json_safe(body))
    response.status_code = status
    return response


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status


