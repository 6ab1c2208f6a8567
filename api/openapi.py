"""The OpenAPI 3.1 description of the HTTP API (served at ``/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

NUMBER_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}
EPOCH = {"type": "number", "description": "epoch seconds, UTC"}


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

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Window": {
        "type": "object",
        "description": "The window the numbers are for: start floored to the minute; end capped at now "
                       "(exact when the window reaches into the last open minute, else floored to the minute).",
        "properties": {
            "start": EPOCH, "end": EPOCH, "now": EPOCH,
            "start_iso": {"type": "string"}, "end_iso": {"type": "string"},
            "live": {"type": "boolean", "description": "the window reaches now"},
            "label": {"type": "string", "description": "e.g. '2026-11-25 A' for a shift"},
        },
    },
    "Kpis": {
        "type": "object",
        "description": "ISO 22400 KPIs; ratios are 0..1 (performance may exceed 1: see flags), null when undefined.",
        "properties": {
            **{k: NUMBER_OR_NULL for k in ("availability", "performance", "quality", "oee", "teep")},
            **{k: {"type": "number"} for k in (
                "calendar_s", "planned_operation_s", "planned_down_s", "planned_busy_s", "known_planned_busy_s",
                "run_s", "down_s", "unknown_s", "micro_stop_s", "unplanned_run_s", "ideal_time_s")},
            **{k: {"type": "integer"} for k in (
                "stops", "total_count", "good_count", "reject_count", "unplanned_good_count",
                "unplanned_reject_count")},
            "losses": {"type": "object", "description": "Six Big Losses in seconds and a waterfall"},
            "energy": _ref("EnergyKpis"),
            "flags": {"type": "object", "properties": {
                "performance_over_100": {"type": "boolean"}, "micro_stop_threshold_s": {"type": "number"}}},
        },
    },
    "EnergyKpis": {
        "type": "object",
        "properties": {
            "kwh": {"type": "number"}, "avg_kw": NUMBER_OR_NULL, "peak_kw": NUMBER_OR_NULL,
            "kwh_per_unit": NUMBER_OR_NULL, "kwh_per_good_unit": NUMBER_OR_NULL,
            "not_running_kwh": {"type": "number"}, "not_running_share": NUMBER_OR_NULL,
            "cost": {"type": "number"}, "currency": {"type": "string"}, "co2_kg": {"type": "number"},
        },
    },
    "MachineKpis": {
        "allOf": [_ref("Kpis"), {"type": "object", "properties": {
            "line": {"type": "string"}, "machine": {"type": "string"}, "window": _ref("Window"),
            "flags": {"type": "object", "properties": {
                "implausible": {"type": "array", "items": _ref("Flag"),
                                "description": "readings not counted because the machine cannot have made them, "
                                               "in the window, newest first, at most 100"}}}}}],
    },
    "Flag": {
        "type": "object",
        "description": "An implausible reading: a counter or meter delta above what the machine can make in the "
                       "time since the previous reading, or a kW reading above its maximum power. Not counted.",
        "properties": {
            "machine": {"type": "string"},
            "signal": {"type": "string", "description": "good, reject, energy_kwh, power_kw (any for timestamps)"},
            "time": {"type": "string", "description": "event time (a timestamp flag: arrival), ISO 8601 in the "
                                                      "plant's time zone"},
            "ts": EPOCH,
            "kind": {"type": "string", "description": "implausible_delta, implausible_power, or a timestamp flag"},
            "value": {"type": ["number", "string", "null"],
                      "description": "the rejected delta (parts, kWh) or reading (kW); for a timestamp flag the "
                                     "event's bad timestamp"},
        },
    },
    "LineKpis": {
        "allOf": [_ref("Kpis"), {"type": "object", "properties": {
            "line": {"type": "string"},
            "output_machine": {"type": "string", "description": "time and counts of the line come from it"},
            "target_oee": {"type": "number"},
            "window": _ref("Window"),
            "machines": {"type": "array", "items": {"allOf": [_ref("Kpis"), {"type": "object", "properties": {
                "id": {"type": "string"}, "name": {"type": "string"}}}]}},
        }}],
    },
    "Downtime": {
        "type": "object",
        "properties": {
            "line": {"type": "string"}, "window": _ref("Window"),
            "micro_stop_threshold_s": {"type": "number"},
            "events": {"type": "array", "items": {"type": "object", "properties": {
                "machine": {"type": "string"}, "start": EPOCH, "end": {"type": ["number", "null"]},
                "ongoing": {"type": "boolean"}, "duration_s": {"type": "number"},
                "in_window_s": {"type": "number"}, "lost_s": {"type": "number"},
                "state": {"type": "string"}, "reason": {"type": "integer"}, "reason_text": {"type": "string"},
                "category": {"type": "string"}, "planned": {"type": "boolean"}, "micro": {"type": "boolean"}}}},
            "pareto": {"type": "object", "properties": {
                "by_duration": {"type": "array", "items": {"type": "object"}},
                "by_count": {"type": "array", "items": {"type": "object"}}}},
            "by_machine": {"type": "array", "items": {"type": "object"}},
            "summary": {"type": "object"},
            "failures": {"type": "integer"}, "mtbf_s": NUMBER_OR_NULL, "mttr_s": NUMBER_OR_NULL,
        },
    },
    "Energy": {
        "allOf": [_ref("EnergyKpis"), {"type": "object", "properties": {
            "line": {"type": "string"}, "window": _ref("Window"), "co2_kg_per_kwh": {"type": "number"},
            "good_count": {"type": "integer"}, "total_count": {"type": "integer"},
            "quarters": {"type": "array", "description": "[quarter start (epoch s), average kW]",
                         "items": {"type": "array", "items": {"type": "number"}}},
            "machines": {"type": "array", "items": _ref("EnergyKpis")},
        }}],
    },
    "Lines": {
        "type": "object",
        "properties": {
            "now": EPOCH, "gap_timeout_s": {"type": "number"},
            "lines": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "name": {"type": "string"}, "output_machine": {"type": "string"},
                "target_oee": {"type": "number"}, "last_data": {"type": ["number", "null"]},
                "machines": {"type": "array", "items": _ref("MachineLive")}}}},
        },
    },
    "MachineLive": {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "name": {"type": "string"},
            "state": {"type": "string", "enum": ["running", "idle", "starved", "blocked", "fault", "changeover",
                                                 "planned_stop", "unknown"]},
            "since": {"type": ["number", "null"], "description": "when the state began (epoch s)"},
            "reason": {"type": ["object", "null"], "properties": {
                "code": {"type": "integer"}, "text": {"type": "string"}, "category": {"type": ["string", "null"]},
                "planned": {"type": "boolean"}}},
            "good": NUMBER_OR_NULL, "reject": NUMBER_OR_NULL, "power_kw": NUMBER_OR_NULL,
            "energy_kwh": NUMBER_OR_NULL, "last_data": {"type": ["number", "null"]},
            "stale": {"type": "boolean", "description": "no data for longer than gap_timeout_s"},
            "link": {"type": ["string", "null"]},
        },
    },
    "Health": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"}, "now": EPOCH,
            "status": {"type": "string", "enum": ["ok", "data_lost", "degraded", "redis_down"]},
            "redis": {"type": "object", "properties": {"ok": {"type": "boolean"}, "latency_ms": {"type": "number"},
                                                         "error": {"type": "string"}}},
            "durability": {"type": ["object", "null"], "description": "does Redis keep its data (not part of ok)",
                           "properties": {
                "ok": {"type": "boolean"}, "checked": {"type": "boolean"},
                "source": {"type": "string", "enum": ["config", "info", "none"]},
                "persistent": {"type": ["boolean", "null"]}, "aof": {"type": ["boolean", "null"]},
                "aof_fsync": {"type": ["string", "null"]}, "rdb_save": {"type": ["string", "null"]},
                "eviction_policy": {"type": ["string", "null"]}, "maxmemory_bytes": {"type": ["integer", "null"]},
                "error": {"type": ["string", "null"]}, "warnings": {"type": "array", "items": {"type": "string"}}}},
            "lines": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "ok": {"type": "boolean"},
                "status": {"type": "string", "enum": ["ok", "data_lost", "no_data", "stale", "worker_behind"]},
                "data_loss": {"type": ["object", "null"], "description": "the rollup worker found its bookkeeping "
                              "gone while data existed: figures in [from, to] are incomplete",
                              "properties": {"from": NUMBER_OR_NULL, "to": NUMBER_OR_NULL, "detected": NUMBER_OR_NULL}},
                "last_data": {"type": ["number", "null"]},
                "last_data_age_s": NUMBER_OR_NULL, "stream_length": {"type": ["integer", "null"]},
                "worker": {"type": "object", "properties": {
                    "ok": {"type": "boolean"}, "beat": NUMBER_OR_NULL, "beat_age_s": NUMBER_OR_NULL,
                    "pending": {"type": ["integer", "null"]}, "undelivered_s": {
                        "type": "number", "description": "age of the oldest entry not yet delivered (0: none)"},
                    "closed_until": NUMBER_OR_NULL, "closed_lag_s": NUMBER_OR_NULL}}}}},
        },
    },
}


def _get(summary: str, schema: str, params: list[dict[str, Any]],
         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    responses = {"200": _json(_ref(schema), summary), **_ERRORS, **(extra or {})}
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


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
            "/api/lines": _get("Lines with their machines' live state", "Lines", []),
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
            "/api/openapi.json": {"get": {"summary": "This description", "responses": {
                "200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {}}}}}},
        },
        "components": {"schemas": _SCHEMAS},
    }
