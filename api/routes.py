"""The HTTP API: FastAPI routes over ``store.reader.PlantReader``.

Every answer is JSON. Bad parameters are 400 with ``{"error": "..."}`` naming the
parameter; unknown lines/machines and paths 404; Redis unavailable 503; anything else
500 - never an HTML page, never a crashed worker. Each route declares its answer's type
(``domain.answers``) as its ``response_model``: the OpenAPI document is generated from
the routes (``api.openapi``); the answers are serialised as the reader gives them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api import context
from api.openapi import ERRORS, LINE_FILTER, WINDOW_PARAMS
from domain import answers
from store.reader import KpisOf, PlantReader, UnknownLine, UnknownMachine, WindowError

log = logging.getLogger(__name__)

PREFIX = "/api"
View = Callable[..., Any]


class BadRequest(Exception):
    pass


def create_api_router(get_reader: Callable[[], PlantReader] | PlantReader | None,
                      clock: Callable[[], float] = time.time, *, shared_kpis: KpisOf | None = None) -> APIRouter:
    """The ``/api`` read routes. ``get_reader``: a function returning the process's
    PlantReader (or the reader itself); ``clock``: epoch seconds (tests pin it);
    ``shared_kpis``: how ``/api/lines`` reads each line's KPIs this shift (the dashboard's
    per-version memo, shared with the screens; default ``PlantReader.line_kpis``)."""
    reader_of = _reader_getter(get_reader)
    router = APIRouter(prefix=PREFIX, responses=ERRORS)

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
                log.warning("API %s: Redis unavailable: %s", context.request().url.path, exc)
                return _error(503, "data store unavailable")
            except Exception:
                log.exception("API %s failed", context.request().url.path)
                return _error(500, "internal error")
        return wrapper

    def window(reader: PlantReader, now: float) -> tuple[float, float, str]:
        start = _param("start") or _param("range")
        resolved = reader.resolve_window(start, _param("end"), now)
        return resolved.start, resolved.end, resolved.label

    windowed: dict[str, Any] = {"parameters": WINDOW_PARAMS}  # openapi_extra of a windowed read

    @router.get("/lines", response_model=answers.LinesWithAndon, openapi_extra={"parameters": [LINE_FILTER]},
                summary="Lines with their machines' live state, andon status and pace this shift (all, "
                        "or those named by ?line=)")
    @json_errors
    def lines(request: Request) -> Any:
        reader = reader_of()
        wanted = context.query_list(request, "line")
        for line in wanted:
            reader.line(line)  # 404 for an unknown line
        return _ok(reader.lines(clock(), only=wanted or None, with_andon=True, kpis=shared_kpis))

    @router.get("/lines/{line}/kpis", response_model=answers.LineKpis, openapi_extra=windowed,
                summary="OEE, availability, performance, quality, TEEP, losses, energy of a line and its machines")
    @json_errors
    def line_kpis(line: str) -> Any:
        reader, now = reader_of(), clock()
        reader.line(line)
        start, end, label = window(reader, now)
        return _ok(_labelled(reader.line_kpis(line, start, end, now, machines=True), label))

    @router.get("/lines/{line}/machines/{machine}/kpis", response_model=answers.MachineKpis, openapi_extra=windowed,
                summary="KPIs of one machine")
    @json_errors
    def machine_kpis(line: str, machine: str) -> Any:
        reader, now = reader_of(), clock()
        if reader.line(line).machine(machine) is None:
            raise UnknownMachine(f"unknown machine {machine!r} in line {line!r}")
        start, end, label = window(reader, now)
        return _ok(_labelled(reader.machine_kpis(line, machine, start, end, now), label))

    @router.get("/lines/{line}/downtime", response_model=answers.Downtime, openapi_extra=windowed,
                summary="Stops, Pareto by duration and count, MTBF and MTTR")
    @json_errors
    def downtime(line: str) -> Any:
        reader, now = reader_of(), clock()
        reader.line(line)
        start, end, label = window(reader, now)
        return _ok(_labelled(reader.downtime(line, start, end, now), label))

    @router.get("/lines/{line}/energy", response_model=answers.Energy, openapi_extra=windowed,
                summary="Energy, cost, CO2, peak demand per line and machine")
    @json_errors
    def energy(line: str) -> Any:
        reader, now = reader_of(), clock()
        reader.line(line)
        start, end, label = window(reader, now)
        return _ok(_labelled(reader.energy(line, start, end, now), label))

    @router.get("/health", response_model=answers.Health,
                responses={503: {"model": answers.Health, "description": "something is not ok"}},
                summary="Redis reachable, collectors' last data, rollup worker lag (503 when not ok)")
    @json_errors
    def health() -> Any:
        report = reader_of().health(clock())
        return _ok(report, 200 if report.get("ok") else 503)

    return router


def json_errors_under_api(server: Any) -> None:
    """JSON answers for routing errors under ``/api`` (404 of unknown paths, 405); other
    paths' errors as Starlette gives them."""
    server.add_exception_handler(HTTPException, _routing_error)


async def _routing_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if not (path.startswith(PREFIX + "/") or path == PREFIX):
        return Response(str(exc.detail), status_code=exc.status_code, headers=exc.headers)
    if exc.status_code == 404:
        return _error(404, f"no such endpoint: {request.method} {path}")
    return _error(exc.status_code, str(exc.detail))




def _reader_getter(get_reader: Callable[[], PlantReader] | PlantReader | None) -> Callable[[], PlantReader]:
    if get_reader is None:  # the document's routes only (api.openapi)
        def missing() -> PlantReader:
            raise RuntimeError("no reader")
        return missing
    if isinstance(get_reader, PlantReader) or hasattr(get_reader, "line_kpis"):
        reader = get_reader
        return lambda: reader  # type: ignore[return-value]
    return get_reader


def _param(name: str) -> str | None:
    value = context.request().query_params.get(name)
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
    return context.json_ok(body, status)


def _error(status: int, message: str) -> Response:
    return context.json_error(status, message)


