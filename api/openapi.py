"""What the OpenAPI 3.1 description of the HTTP API says beyond the routes themselves (the
document is ``api.document``: served at ``/api/openapi.json``).

FastAPI generates it from the API's routes (``api.routes``, ``api.writes``, ``api.auth``,
``api.alerts``, ``api.live``): their paths, summaries, parameters, and answers by status
(each route's ``response_model`` and its error answers). The answers' schemas are their
types in ``domain.answers`` (``answer_schemas``: pydantic's JSON Schema 2020-12 of each
TypedDict, closed with ``additionalProperties: false`` and described by the fields'
``Doc`` annotations), so the document cannot drift from what the reader returns and the
API serialises. The query parameters the views read themselves (windows, filters) are
declared beside the routes with the constants below.
"""

from __future__ import annotations

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


def _error(description: str) -> dict[str, Any]:
    return {"model": answers.Error, "description": description}


# the error answers every read route may give (FastAPI ``responses``)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("bad parameter (the message names it)"),
    404: _error("unknown line or machine"),
    500: _error("internal error"),
    503: _error("Redis unavailable"),
}
# and those of the writes
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("no credentials (or an invalid/revoked token): log in or send a Bearer token"),
    403: _error("the role or the line is not allowed, or the CSRF token is missing"),
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, **AUTH_ERRORS,
                                                  409: _error("not possible now (e.g. already signed)")}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]

WINDOW_PARAMS: list[dict[str, Any]] = [
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
LINE_FILTER: dict[str, Any] = {
    "name": "line", "in": "query", "required": False, "explode": True,
    "description": "only these lines (repeat it, or separate ids with commas); 404 for an unknown one",
    "schema": {"type": "array", "items": {"type": "string"}}}


def body(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose view reads a JSON body itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def write(schema: dict[str, Any] | None = None, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``openapi_extra`` of a write: its security, its body, its extra parameters."""
    extra: dict[str, Any] = {"security": SECURITY, **(body(schema) if schema is not None else {})}
    if parameters:
        extra["parameters"] = parameters
    return extra


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "API token (python app.py tokens create)"},
    "session": {"type": "apiKey", "in": "cookie", "name": "plant_session",
                "description": "after POST /api/login; writes also need the X-CSRF-Token header"},
}
TITLE = "Smart-factory OEE dashboard API"
VERSION = "1.0.0"
DESCRIPTION = ("Read-only KPIs, downtime, energy and live state of the plant's lines. "
               "Times are ISO 8601 with a UTC offset in requests, epoch seconds (and ISO) in answers.")
