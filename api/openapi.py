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
_LINE_FILTER = {"name": "line", "in": "query", "required": False, "explode": True,
                "description": "only these lines (repeat it, or separate ids with commas); 404 for an unknown one",
                "schema": {"type": "array", "items": {"type": "string"}}}

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
            "bad_nodes": {"type": "array", "description": "this machine's nodes the OPC UA server refuses: those "
                                                         "signals are not collected",
                          "items": {"type": "object", "properties": {
                              "signal": {"type": "string"}, "node_id": {"type": ["string", "null"]},
                              "status": {"type": "string"}, "since": {"type": ["number", "null"]}}}},
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
                    "closed_until": NUMBER_OR_NULL, "closed_lag_s": NUMBER_OR_NULL}},
                "bad_nodes": {"type": "array", "description": "nodes the OPC UA server refused (the rest is "
                              "collected)", "items": {"type": "object", "properties": {
                                  "machine": {"type": "string"}, "signal": {"type": "string"},
                                  "node_id": {"type": "string"}, "status": {"type": "string"},
                                  "endpoint": {"type": "string"}, "since": NUMBER_OR_NULL}}},
                "refused_endpoints": {"type": "array", "description": "endpoints whose server certificate the "
                                      "trust list refused: SHA-256 thumbprint and how to trust it",
                                      "items": {"type": "object", "properties": {
                                          "endpoint": {"type": "string"}, "status": {"type": "string"},
                                          "thumbprint": {"type": "string"}, "hint": {"type": "string"},
                                          "since": NUMBER_OR_NULL}}}}}},
        },
    },
}


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
_SECURITY = [{"bearer": []}, {"session": []}]

_SCHEMAS.update({
    "Reasons": {"type": "object", "properties": {"line": {"type": "string"}, "by_category": {
        "type": "object", "description": "loss category -> [[code, text], ...] (retired reasons left out)",
        "additionalProperties": {"type": "array", "items": {"type": "array"}}},
        "codes": {"type": ["array", "null"], "items": {"type": "integer"},
                  "description": "the line's own list; null: the plant-wide list"},
        "source": {"type": "string", "enum": ["managed", "plant file"]}}},
    "Reason": {"type": "object", "required": ["code", "text", "category"], "properties": {
        "code": {"type": "integer", "minimum": 1}, "text": {"description": "a string or {en: ..., zh-CN: ...}"},
        "category": {"type": "string", "enum": ["equipment_failure", "setup_adjustment", "small_stop",
                                                "reduced_speed", "planned", "starved_blocked", "unexplained"]},
        "planned": {"type": "boolean"},
        "retired": {"type": "boolean", "description": "kept for the stops that carry it; no longer offered"}}},
    "ReasonLists": {"type": "object", "properties": {
        "reasons": {"type": "array", "items": _ref("Reason")},
        "source": {"type": "string", "enum": ["managed", "plant file"]},
        "lines": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "codes": {"type": ["array", "null"], "items": {"type": "integer"}}, "source": {"type": "string"}}}}}},
    "Classification": {"type": "object", "properties": {
        "id": {"type": "string"}, "reason": {"type": "integer"}, "plc_reason": {"type": "integer"},
        "comment": {"type": "string"}, "by": {"type": "string"}, "at": EPOCH,
        "splits": {"type": "array", "description": "[time, reason] from which a later part of the stop has that "
                   "reason", "items": {"type": "array", "items": {"type": "number"}}},
        "end": {**NUMBER_OR_NULL, "description": "the stop's end when classified (null: it was ongoing); a stop "
                "that late data moves keeps the classification that covers most of it"}}},
    "Stops": {"type": "object", "properties": {
        "line": {"type": "string"}, "window": _ref("Window"),
        "untagged_coverage": {**NUMBER_OR_NULL, "description": "share of unplanned down time with a reason"},
        "untagged_stops": {"type": "integer"}, "untagged_down_s": {"type": "number"},
        "stops": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "machine": {"type": "string"}, "start": EPOCH,
            "end": {"type": ["number", "null"]}, "reason": {"type": "integer", "description": "the reason the "
                                                            "figures use (a person's, else the PLC's)"},
            "plc_reason": {"type": "integer"}, "plc_reason_text": {"type": ["string", "null"]},
            "classified_by": {"type": ["string", "null"]}, "comment": {"type": "string"},
            "piece": {"type": "integer", "description": "0, or 1, 2 for the parts of a split stop"},
            "lost_s": {"type": "number"}, "category": {"type": "string"}}}}}},
    "Handover": {"type": "object", "properties": {
        "line": {"type": "string"}, "shift": {"type": "string"}, "shift_start": EPOCH, "shift_end": EPOCH,
        "note": {"type": "string"}, "open_issues": {"type": "string"},
        "signed_by": {"type": ["string", "null"]}, "signed_at": NUMBER_OR_NULL,
        "figures": {"type": ["object", "null"], "description": "the shift's line KPIs frozen at sign-off"},
        "acknowledged_by": {"type": ["string", "null"]}, "acknowledged_at": NUMBER_OR_NULL}},
    "AuditEntry": {"type": "object", "properties": {
        "seq": {"type": "integer"}, "ts": EPOCH, "actor": {"type": "string"}, "kind": {"type": "string"},
        "role": {"type": "string"}, "addr": {"type": ["string", "null"]}, "action": {"type": "string"},
        "line": {"type": ["string", "null"]}, "target": {"type": ["string", "null"]}, "before": {}, "after": {},
        "ok": {"type": "boolean"}, "prev": {"type": "string"}, "hash": {"type": "string"}}},
})


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
                     "reasons": {"type": "array", "items": _ref("Reason")}}})},
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
                                        "Handover", [_LINE, *_WINDOW_PARAMS[:2]]),
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
        "responses": {"200": _json({"type": "object", "properties": {"entries": {"type": "array", "items": _ref(
            "AuditEntry")}}}, "entries"), **_ERRORS, **_AUTH_ERRORS}}},
    "/api/login": {"post": {"summary": "Log in (starts a session cookie; answers the CSRF token)",
                            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                                "type": "object", "properties": {"username": {"type": "string"},
                                                                 "password": {"type": "string"}}}}}},
                            "responses": {"200": {"description": "logged in"},
                                          "401": _json(_ref("Error"), "wrong user name or password"),
                                          "429": _json(_ref("Error"), "too many failed logins: Retry-After")}}},
    "/api/logout": {"post": {"summary": "End the session", "responses": {"200": {"description": "logged out"}}}},
    "/api/session": {"get": {"summary": "Who is logged in, with the CSRF token for writes",
                             "responses": {"200": {"description": "user, role, lines, csrf"}}}},
}
# --- alerts (issue 12; api.alerts): the list is a read, an acknowledgement a write ---

_SCHEMAS["Alert"] = {"type": "object", "properties": {
    "id": {"type": "string", "description": "<rule>|<line>|<machine>|<condition start, epoch ms>"},
    "rule": {"type": "string"}, "line": {"type": "string"}, "machine": {"type": ["string", "null"]},
    "severity": {"type": "string", "enum": ["info", "warning", "urgent"]}, "text": {"type": "string"},
    "since": {**EPOCH, "description": "data time the condition began"}, "raised_at": EPOCH,
    "level": {"type": "integer", "description": "index of the last channel told (-1: none)"},
    "notified_at": NUMBER_OR_NULL, "cleared_at": NUMBER_OR_NULL,
    "late": {"type": "boolean", "description": "found only in late data, its condition had ended: sent nowhere"},
    "flashing": {"type": "boolean"},
    "ack": {"type": ["object", "null"], "properties": {"by": {"type": "string"}, "role": {"type": "string"},
                                                       "at": EPOCH, "comment": {"type": "string"}}}}}
_ALERT_PATHS: dict[str, Any] = {
    "/api/alerts": {"get": {
        "summary": "Alerts raised in a range (default the last 7 days) and every open one, newest first",
        "parameters": [{"name": name, "in": "query", "required": False, "schema": schema}
                       for name, schema in (("start", {"type": "number"}), ("end", {"type": "number"}),
                                            ("line", {"type": "string"}),
                                            ("state", {"type": "string", "enum": ["open"]}))],
        "responses": {"200": _json({"type": "object", "properties": {"now": EPOCH, "alerts": {
            "type": "array", "items": _ref("Alert")}}}, "alerts"), **_ERRORS}}},
    "/api/alerts/{alert_id}/ack": _write(
        "post", "Acknowledge an alert (operator, supervisor or engineer of its line): stops the wall's "
        "flashing and the escalation", "Alert",
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
            "/api/lines": _get("Lines with their machines' live state (all, or those named by ?line=)", "Lines",
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
            "/api/openapi.json": {"get": {"summary": "This description", "responses": {
                "200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {}}}}}},
            **_WRITE_PATHS,
            **_ALERT_PATHS,
        },
        "components": {"schemas": _SCHEMAS, "securitySchemes": _SECURITY_SCHEMES},
    }
