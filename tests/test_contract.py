"""Every answer of the HTTP API validates against the OpenAPI document the API serves, whose
schemas are generated from the answer types (``domain.answers``): each endpoint, several
windows, the operator loop's writes, alerts, and the error answers (400, 401, 403, 404,
409, 503). The schemas are closed, so a field an answer has and its type lacks fails here,
as do a missing field and a field of the wrong type."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api import create_api_router
from api.alerts import create_alerts_router
from api.document import openapi_spec
from api.openapi import answer_schemas
from domain import answers, contract
from domain.alerts import Condition, step
from domain.plant import AlertRule
from domain.plausibility import IMPLAUSIBLE_DELTA, IMPLAUSIBLE_POWER, Flag
from store.alerts import AlertStore
from store.reader import PlantReader
from tests import operator_support as op
from tests.history import line_history, write_events
from tests.store_support import HOUR, RECENT, run_worker_until_drained, two_machine_plant
from tests.support import Client, api_app, api_routes

SPEC_URI = "urn:openapi"


class Contract:
    """Validates answers against a served OpenAPI document (its response schemas by path,
    method and status)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.registry: Registry[Any] = Registry().with_resource(
            SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))
        jsonschema.Draft202012Validator.check_schema({"$defs": spec["components"]["schemas"]})
        templates = []
        for template in spec["paths"]:
            pattern = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$"
            templates.append((template.count("{"), template, re.compile(pattern)))
        self.templates = sorted(templates)  # literal paths before templated ones
        self.seen: set[tuple[str, str, int]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for _, template, pattern in self.templates:
            if pattern.match(path) and method.lower() in self.spec["paths"][template]:
                return template, self.spec["paths"][template][method.lower()]
        raise AssertionError(f"{method} {path}: not in the OpenAPI document")

    def errors(self, schema_ref: str, body: Any) -> list[str]:
        validator = jsonschema.Draft202012Validator({"$ref": SPEC_URI + schema_ref}, registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        template, operation = self.operation(method, path)
        documented = operation["responses"].get(str(status))
        assert documented is not None, f"{method} {path}: status {status} not documented ({body})"
        schema = documented["content"]["application/json"]["schema"]
        assert set(schema) == {"$ref"}, f"{method} {template} {status}: not a generated schema"
        problems = self.errors(schema["$ref"], body)
        assert not problems, f"{method} {path} {status}: {problems[:5]} in {json.dumps(body)[:2000]}"
        self.seen.add((method.upper(), template, status))


class Checked:
    """A test client whose every /api answer is checked against the contract."""

    def __init__(self, client: Client, spec: Contract) -> None:
        self.client, self.spec = client, spec

    def call(self, method: str, url: str, status: int, **kwargs: Any) -> Any:
        response = self.client.open(url, method=method, **kwargs)
        assert response.status_code == status, (method, url, response.status_code, response.get_data(as_text=True))
        assert response.is_json, (method, url)
        body = response.get_json()
        self.spec.check(method, url.split("?")[0], response.status_code, body)
        return body


def iso(ts: float) -> str:
    return quote(datetime.fromtimestamp(ts, UTC).isoformat())


def served_contract(client: Client) -> Contract:
    spec = client.get("/api/openapi.json").get_json()
    assert spec == json.loads(json.dumps(openapi_spec()))  # served as generated
    return Contract(spec)


# --- a line with counts, power and implausible readings: the read API in several windows -------------

PLANT = two_machine_plant()
START = RECENT + 5 * HOUR  # 13:00 in Shanghai: shift A (06:00-14:00)
END = RECENT + 7 * HOUR
NOW = END + 5
WINDOWS = ["", "?range=shift", "?start=last_shift", "?start=today", "?start=yesterday", "?start=7d", "?start=30d",
           f"?start={iso(START)}&end={iso(START + HOUR)}",  # closed minutes only
           f"?start={iso(START + 1800)}",  # to now: through the open edge
           f"?start={iso(RECENT - 2 * HOUR)}&end={iso(START + 600)}"]  # before the first data: no data


@pytest.fixture
def history(redis_client: redis.Redis) -> Iterator[Checked]:
    write_events(redis_client, line_history(PLANT, "L1", START, END, seed=9, power_every_s=5.0))
    run_worker_until_drained(redis_client, PLANT, NOW)
    redis_client.zadd(contract.flags_key("L1"), {contract.encode_flag_member(f): f.ts for f in (
        Flag("L1", "M1", "good", START + 60, IMPLAUSIBLE_DELTA, 3_999_999_891),
        Flag("L1", "M2", "power_kw", START + 120, IMPLAUSIBLE_POWER, 1e308),
        Flag("L1", "M1", "time", START + 180, "timestamp_future", "2031-01-01T00:00:00Z"))})
    redis_client.hset(contract.nodes_key("L1"), mapping={
        "M2|power_kw": json.dumps({"endpoint": "press", "node_id": "ns=2;s=P", "status": "BadNodeIdUnknown",
                                   "since": START}),
        "@press": json.dumps({"endpoint": "press", "status": "BadCertificateUntrusted", "thumbprint": "ab" * 32,
                              "hint": "python app.py trust accept ...", "since": START})})
    redis_client.hset(contract.data_loss_key("L1"), mapping={"from": START, "to": START + 60, "detected": NOW})
    reader = PlantReader(redis_client, PLANT)

    app = api_app(create_api_router(lambda: reader, clock=lambda: NOW))
    client = Client(app)
    yield Checked(client, served_contract(client))


def test_every_read_answer_validates_in_every_window(history: Checked) -> None:
    call = history.call
    for url in ("/api/lines", "/api/lines?line=L1", "/api/lines?line=L1,L1"):
        body = call("GET", url, 200)
        assert body["lines"][0]["machines"][1]["bad_nodes"][0]["node_id"] == "ns=2;s=P"
    for window in WINDOWS:
        kpis = call("GET", f"/api/lines/L1/kpis{window}", 200)
        assert [m["id"] for m in kpis["machines"]] == ["M1", "M2"]
        machine = call("GET", f"/api/lines/L1/machines/M1/kpis{window}", 200)
        call("GET", f"/api/lines/L1/machines/M2/kpis{window}", 200)
        call("GET", f"/api/lines/L1/downtime{window}", 200)
        call("GET", f"/api/lines/L1/energy{window}", 200)
        if window == WINDOWS[7]:
            assert kpis["total_count"] > 0 and kpis["energy"]["kwh"] > 0 and "label" not in kpis["window"]
            assert {f["kind"] for f in machine["flags"]["implausible"]} == {IMPLAUSIBLE_DELTA, "timestamp_future"}
    health = call("GET", "/api/health", 503)  # the data-loss record makes it not ok
    assert health["lines"][0]["data_loss"] == {"from": START, "to": START + 60, "detected": NOW}
    assert health["lines"][0]["refused_endpoints"][0]["endpoint"] == "press"
    # error answers
    call("GET", "/api/lines/NOPE/kpis", 404)
    call("GET", "/api/lines?line=NOPE", 404)
    call("GET", "/api/lines/L1/machines/NOPE/kpis", 404)
    for bad in ("?start=yesterdayish", f"?start={iso(NOW)}&end={iso(START)}", "?start=2026-11-25T07:00:00",
                f"?start={iso(START - 500 * 86400)}", "?start=" + "x" * 300):
        call("GET", f"/api/lines/L1/kpis{bad}", 400)
        call("GET", f"/api/lines/L1/downtime{bad}", 400)
    seen = {(method, path) for method, path, _ in history.spec.seen}
    assert {("GET", p) for p in ("/api/lines", "/api/lines/{line}/kpis", "/api/lines/{line}/machines/{machine}/kpis",
                                 "/api/lines/{line}/downtime", "/api/lines/{line}/energy", "/api/health")} <= seen


def test_redis_down_answers_validate() -> None:
    broken = PlantReader(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                                     retry=Retry(NoBackoff(), 0)), PLANT)
    app = api_app(create_api_router(broken, clock=lambda: NOW))
    client = Client(app)
    checked = Checked(client, served_contract(client))
    assert checked.call("GET", "/api/health", 503)["status"] == "redis_down"
    assert checked.call("GET", "/api/lines/L1/kpis", 503) == {"error": "data store unavailable"}
    checked.call("GET", "/api/lines", 503)


# --- the operator loop and alerts: reads, writes and their refusals ---------------------------------

RULE = AlertRule.model_validate({"id": "r", "kind": "stop", "minutes": 10, "severity": "urgent"})


@pytest.fixture
def loop(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    plant = op.operator_plant()
    reader = op.seed(redis_client, plant)
    tokens = op.add_users(redis_client, plant)
    app = op.make_app(reader, plant, tmp_path, redis_url)
    app.server.include_router(create_alerts_router(reader, clock=lambda: op.NOW))
    result = step({}, [Condition("r", "L1", "M1", True, op.NOW - 900, "L1 M1: stopped")], {"r": RULE},
                  set(), set(), op.NOW)
    AlertStore(redis_client).apply(result, set(), op.NOW)
    client = Client(app.server)
    yield {"client": Checked(client, served_contract(client)), "tokens": tokens,
           "alert": result.raised[0].id, "server": app.server}


def _bearer(loop: dict[str, Any], role: str, line: str = "L1") -> dict[str, str]:
    return {"Authorization": f"Bearer {loop['tokens'][(role, line)]}"}


def test_every_operator_loop_and_alert_answer_validates(loop: dict[str, Any]) -> None:
    c = loop["client"]
    operator, supervisor, admin = (_bearer(loop, r) for r in ("operator", "supervisor", "admin"))
    past = f"?start={iso(op.PAST[0])}&end={iso(op.PAST[1])}"
    for window in ("", past, "?start=today"):
        c.call("GET", f"/api/lines/L1/stops{window}", 200)
        c.call("GET", f"/api/lines/L1/stops{window}{'&' if window else '?'}untagged=1", 200)
        c.call("GET", f"/api/lines/L1/kpis{window}", 200)
        c.call("GET", f"/api/lines/L1/downtime{window}", 200)
        c.call("GET", f"/api/lines/L1/energy{window}", 200)
    c.call("GET", "/api/lines/L1/reasons", 200)
    c.call("GET", "/api/lines", 200)
    c.call("GET", "/api/health", 200)
    c.call("GET", "/api/live/events?line=NOPE", 404)  # the stream itself is text/event-stream (test_live_feed)
    # a person's reasons: the stops list then carries who classified what
    c.call("PUT", f"/api/lines/L1/stops/{op.IDLE_ID}/classification", 200, json={"reason": 2, "comment": "jam"},
           headers=operator)
    c.call("POST", f"/api/lines/L1/stops/{op.FAULT_ID}/split", 200,
           json={"at": op.FAULT[0] + 100, "before": 1, "after": 3}, headers=operator)
    stops = c.call("GET", f"/api/lines/L1/stops{past}", 200)["stops"]
    assert {s["classified_by"] for s in stops if s.get("classified")} == {"operator-L1"}
    c.call("GET", f"/api/lines/L1/downtime{past}", 200)
    c.call("GET", f"/api/lines/L1/machines/M1/kpis{past}", 200)
    # refusals and bad requests
    c.call("PUT", f"/api/lines/L1/stops/{op.IDLE_ID}/classification", 401, json={"reason": 2})
    c.call("PUT", f"/api/lines/L2/stops/{op.OTHER_ID}/classification", 403, json={"reason": 2}, headers=operator)
    c.call("PUT", f"/api/lines/L1/stops/{op.IDLE_ID}/classification", 400, json={"reason": 99}, headers=operator)
    c.call("PUT", "/api/lines/L1/stops/L1~M1~1/classification", 404, json={"reason": 2}, headers=operator)
    # reason lists (engineers, admins): a code in use cannot be dropped
    plant_wide = c.call("GET", "/api/reasons", 200)["reasons"]
    robot = {"code": 7, "text": {"en": "Robot teach", "zh-CN": "机器人示教"}, "category": "setup_adjustment",
             "planned": False, "retired": False}
    c.call("PUT", "/api/reasons", 200, json={"reasons": [*plant_wide, robot]}, headers=admin)
    c.call("PUT", "/api/reasons", 409, json={"reasons": [r for r in plant_wide if r["code"] != 2]}, headers=admin)
    c.call("PUT", "/api/reasons", 400, json={"reasons": "x"}, headers=admin)
    c.call("PUT", "/api/reasons", 403, json={"reasons": plant_wide}, headers=operator)
    c.call("PUT", "/api/reasons", 401, json={"reasons": plant_wide})
    c.call("PUT", "/api/lines/L1/reasons", 200, json={"codes": [1, 2, 3, 5, 7]}, headers=admin)
    c.call("PUT", "/api/lines/L1/reasons", 403, json={"codes": None}, headers=operator)
    c.call("PUT", "/api/lines/L1/reasons", 400, json={"codes": "all"}, headers=admin)
    assert c.call("GET", "/api/lines/L1/reasons", 200)["source"] == "managed"
    # the handover: note, sign, acknowledge, and what is no longer possible
    shift = int(op.T - op.T % (12 * HOUR))
    c.call("PUT", f"/api/lines/L1/handovers/{shift}", 200, json={"note": "ok", "open_issues": ""}, headers=supervisor)
    c.call("POST", f"/api/lines/L1/handovers/{shift}/sign", 200, headers=supervisor)
    c.call("POST", f"/api/lines/L1/handovers/{shift}/sign", 409, headers=supervisor)
    c.call("POST", f"/api/lines/L1/handovers/{shift}/acknowledge", 409, headers=supervisor)
    c.call("PUT", f"/api/lines/L1/handovers/{shift}", 403, json={"note": "x"}, headers=operator)
    c.call("PUT", f"/api/lines/L1/handovers/{shift + 1}", 404, json={"note": "x"}, headers=supervisor)
    handovers = c.call("GET", f"/api/lines/L1/handovers?start={iso(shift - 1)}", 200)["handovers"]
    assert handovers[0]["figures"]["window"]["start"] == shift
    c.call("GET", "/api/audit", 200, headers=supervisor)
    c.call("GET", "/api/audit?line=L1", 200, headers=admin)
    c.call("GET", "/api/audit", 403, headers=operator)
    c.call("GET", "/api/audit", 401)
    # users (admins)
    c.call("GET", "/api/users", 200, headers=admin)
    c.call("POST", "/api/users", 201, json={"name": "new1", "role": "operator", "lines": "L1",
                                            "password": op.PASSWORD}, headers=admin)
    c.call("POST", "/api/users", 400, json={"name": "", "role": "operator"}, headers=admin)
    c.call("PATCH", "/api/users/new1", 200, json={"disabled": True}, headers=admin)
    c.call("PATCH", "/api/users/nobody", 404, json={"disabled": True}, headers=admin)
    c.call("GET", "/api/users", 403, headers=operator)
    # alerts
    c.call("GET", "/api/alerts", 200)
    c.call("GET", "/api/alerts?state=open&line=L1", 200)
    c.call("GET", "/api/alerts?start=abc", 400)
    c.call("POST", f"/api/alerts/{loop['alert']}/ack", 200, json={"comment": "fitter called"}, headers=operator)
    assert c.call("GET", "/api/alerts", 200)["alerts"][0]["ack"]["comment"] == "fitter called"
    c.call("POST", f"/api/alerts/{loop['alert']}/ack", 403, json={}, headers=_bearer(loop, "operator", "L2"))
    c.call("POST", f"/api/alerts/{loop['alert']}/ack", 401, json={})
    c.call("POST", "/api/alerts/r|L1|M1|1/ack", 404, json={}, headers=operator)
    c.call("POST", f"/api/alerts/{loop['alert']}/ack", 400, json={"comment": 5}, headers=operator)
    # sessions
    c.call("GET", "/api/session", 200)
    c.call("POST", "/api/login", 401, json={"username": "operator1", "password": "wrong"})
    c.call("POST", "/api/login", 400, json={"username": "operator1"})
    csrf = c.call("POST", "/api/login", 200, json={"username": "supervisor1b", "password": op.PASSWORD})["csrf"]
    assert c.call("GET", "/api/session", 200)["csrf"] == csrf
    c.call("POST", f"/api/lines/L1/handovers/{shift}/acknowledge", 403)  # no CSRF header
    c.call("POST", f"/api/lines/L1/handovers/{shift}/acknowledge", 200, headers={"X-CSRF-Token": csrf})
    c.call("POST", "/api/logout", 200)
    _every_route_was_checked(loop["server"], c.spec)


def _every_route_was_checked(server: Any, spec: Contract) -> None:
    """Each documented operation answered at least once (so a new endpoint gets a call here)."""
    documented = {(m.upper(), p) for p, ops in spec.spec["paths"].items() for m in ops}
    served = {(m, r.path_format) for r in api_routes(server.routes)
              for m in r.methods - {"HEAD", "OPTIONS"} if r.path_format.startswith("/api/")}
    seen = {(m, p) for m, p, _ in spec.seen} | {("GET", "/api/openapi.json")}  # it is the document
    assert documented - served == set(), "documented but not served"
    assert served - documented == set(), "served but not documented"
    assert documented - seen == set(), "not called by this test"


# --- the types and the document agree, and the check can fail --------------------------------------

def test_every_answer_type_is_in_the_document_closed() -> None:
    schemas = openapi_spec()["components"]["schemas"]
    for name, schema in schemas.items():
        assert schema["type"] == "object" and schema["additionalProperties"] is False, name
        assert set(schema.get("required", [])) <= set(schema["properties"]), name
    assert set(schemas["Window"]["required"]) == set(answers.Window.__required_keys__)
    assert schemas["MachineKpis"]["properties"]["flags"] == {"$ref": "#/components/schemas/MachineKpiFlags"}
    assert "epoch" in schemas["Window"]["properties"]["start"]["description"]  # Doc annotations
    assert answer_schemas() is answer_schemas()  # generated once per process


def test_the_check_fails_when_an_answer_and_its_type_disagree(history: Checked) -> None:
    spec = history.spec
    good = history.client.get("/api/lines/L1/kpis").get_json()
    assert spec.errors("#/components/schemas/LineKpis", good) == []
    extra = {**good, "pace": 3}  # a field the type does not have
    assert any("pace" in e for e in spec.errors("#/components/schemas/LineKpis", extra))
    missing = {k: v for k, v in good.items() if k != "target_oee"}
    assert any("target_oee" in e for e in spec.errors("#/components/schemas/LineKpis", missing))
    wrong = json.loads(json.dumps(good))
    wrong["machines"][0]["energy"]["kwh"] = "812"
    assert any("machines/0/energy/kwh" in e for e in spec.errors("#/components/schemas/LineKpis", wrong))
    nested = json.loads(json.dumps(good))
    nested["window"]["tz"] = "UTC"
    assert spec.errors("#/components/schemas/LineKpis", nested)
    with pytest.raises(AssertionError, match="not documented"):
        spec.check("GET", "/api/lines/L1/kpis", 418, {"error": "teapot"})
