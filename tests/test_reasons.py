"""Reason lists managed by engineers and admins outside the plant file (issue 11): stored in
Redis over the plant file's lists, read by everyone, written by engineers of the line (all
lines for the plant-wide list) and admins, audited with before and after; a code in use
cannot be dropped, only retired; pickers and figures use the managed lists. Real Redis,
the real app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from domain import contract
from store.audit import AuditTrail
from store.users import Users
from tests.operator_support import FAULT_ID, IDLE_ID, NOW, PAST, add_users, make_app, operator_plant, seed
from tests.support import Client

ROBOT = {"code": 7, "text": {"en": "Robot teach", "zh-CN": "机器人示教"}, "category": "setup_adjustment"}


@pytest.fixture
def env(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    plant = operator_plant()
    reader = seed(redis_client, plant)
    tokens = add_users(redis_client, plant)
    users = Users(redis_client, ["L1", "L2"])
    tokens["engineer", "*"] = users.create_token("eng-all", "engineer", "*", NOW)[0]
    app = make_app(reader, plant, tmp_path, redis_url)
    yield {"reader": reader, "client": Client(app.server), "tokens": tokens, "redis": redis_client}


def _as(env: dict[str, Any], role: str, line: str = "L1") -> dict[str, str]:
    return {"Authorization": f"Bearer {env['tokens'][role, line]}"}


def _catalogue(env: dict[str, Any], extra: list[dict[str, Any]] | None = None,
               drop: int | None = None) -> list[dict[str, Any]]:
    now = env["client"].get("/api/reasons").get_json()["reasons"]
    return [r for r in now if r["code"] != drop] + (extra or [])


def _pareto_texts(env: dict[str, Any]) -> dict[str, str]:
    report = env["reader"].downtime("L1", *PAST, NOW)
    return {row["group"]: row["label"] for row in report["pareto"]["by_duration"]}


def test_the_plant_file_is_the_seed_and_everyone_reads(env: dict[str, Any]) -> None:
    client = env["client"]
    plant_wide = client.get("/api/reasons").get_json()
    assert plant_wide["source"] == "plant file"
    assert [r["code"] for r in plant_wide["reasons"]] == [1, 2, 3, 4, 5, 6]
    assert plant_wide["lines"] == {"L1": {"codes": [1, 2, 3, 5], "source": "plant file"},
                                   "L2": {"codes": None, "source": "plant file"}}
    line = client.get("/api/lines/L1/reasons").get_json()
    assert line["codes"] == [1, 2, 3, 5] and line["source"] == "plant file"


def test_an_engineer_adds_a_reason_a_line_offers_it_and_the_figures_name_it(env: dict[str, Any]) -> None:
    client = env["client"]
    body = {"reasons": _catalogue(env, [ROBOT])}
    refused = client.put("/api/reasons", json=body, headers=_as(env, "engineer"))  # assigned to L1 only
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "forbidden: engineer-L1 is not assigned to all lines (*)"
    assert client.put("/api/reasons", json=body).status_code == 401
    assert client.put("/api/reasons", json=body, headers=_as(env, "supervisor")).status_code == 403
    done = client.put("/api/reasons", json=body, headers=_as(env, "engineer", "*"))
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["source"] == "managed" and done.get_json()["reasons"][-1]["code"] == 7

    # the line's own list: an operator may not pick 7 until the line offers it
    put = f"/api/lines/L1/stops/{IDLE_ID}/classification"
    not_yet = client.put(put, json={"reason": 7}, headers=_as(env, "operator"))
    assert not_yet.status_code == 400 and "not in line L1's reason list" in not_yet.get_json()["error"]
    assert client.put("/api/lines/L2/reasons", json={"codes": [1, 7]},
                      headers=_as(env, "engineer")).status_code == 403  # not the engineer's line
    line = client.put("/api/lines/L1/reasons", json={"codes": [1, 2, 3, 5, 7]}, headers=_as(env, "engineer"))
    assert line.status_code == 200, line.get_json()
    assert line.get_json()["by_category"]["setup_adjustment"] == [[2, "Changeover"], [7, "Robot teach"]]
    assert line.get_json()["source"] == "managed"
    assert client.put(put, json={"reason": 7}, headers=_as(env, "operator")).status_code == 200
    assert _pareto_texts(env)["7"] == "Robot teach"  # the figures use the managed list
    unknown = client.put("/api/lines/L1/reasons", json={"codes": [1, 99]}, headers=_as(env, "admin"))
    assert unknown.status_code == 409 and "99" in unknown.get_json()["error"]

    # audited, with before and after
    entries = [e for e in AuditTrail(env["redis"]).query(0, NOW + 10, None) if e["action"] == "reasons"]
    by_target = {e["target"]: e for e in entries if e["ok"]}
    assert "7" not in by_target["plant"]["before"] and by_target["plant"]["after"]["7"]["text"] == ROBOT["text"]
    assert by_target["line L1"]["before"] == [1, 2, 3, 5] and by_target["line L1"]["after"] == [1, 2, 3, 5, 7]
    assert AuditTrail(env["redis"]).verify().ok


def test_a_reason_in_use_is_retired_not_dropped(env: dict[str, Any]) -> None:
    client = env["client"]
    admin = _as(env, "admin")
    assert client.put("/api/reasons", json={"reasons": _catalogue(env, [ROBOT])}, headers=admin).status_code == 200
    assert client.put("/api/lines/L1/reasons", json={"codes": None}, headers=admin).status_code == 200  # plant-wide
    assert client.put(f"/api/lines/L1/stops/{IDLE_ID}/classification", json={"reason": 7},
                      headers=_as(env, "operator")).status_code == 200
    dropped = client.put("/api/reasons", json={"reasons": _catalogue(env, drop=7)}, headers=admin)
    assert dropped.status_code == 409
    said = dropped.get_json()["error"]
    assert said.startswith(f"reason codes still in use: 7 by 1 classification(s), e.g. {IDLE_ID}")
    assert "retired" in dropped.get_json()["error"]
    retired = [{**r, "retired": True} if r["code"] == 7 else r for r in _catalogue(env)]
    assert client.put("/api/reasons", json={"reasons": retired}, headers=admin).status_code == 200
    offered = client.get("/api/lines/L1/reasons").get_json()["by_category"]
    assert 7 not in [code for reasons in offered.values() for code, _text in reasons]  # no longer offered
    assert _pareto_texts(env)["7"] == "Robot teach"  # still named in the figures
    again = client.put(f"/api/lines/L1/stops/{FAULT_ID}/classification", json={"reason": 7},
                       headers=_as(env, "operator"))
    assert again.status_code == 400
    # a code nobody uses goes
    assert client.put("/api/reasons", json={"reasons": _catalogue(env, drop=6)}, headers=admin).status_code == 200
    assert 6 not in [r["code"] for r in client.get("/api/reasons").get_json()["reasons"]]


@pytest.mark.parametrize(("reasons", "message"), [
    ("nope", "reasons: a list"),
    ([{"code": 0, "text": "x", "category": "planned"}], "reasons[0].code"),
    ([{"code": 1, "text": "x", "category": "coffee"}], "reasons[0].category"),
    ([{"code": 1, "text": "x", "category": "planned"}, {"code": 1, "text": "y", "category": "planned"}], "twice"),
    ([{"code": 1, "text": "x", "category": "planned", "colour": "red"}], "reasons[0].colour"),
])
def test_a_malformed_list_is_400(env: dict[str, Any], reasons: Any, message: str) -> None:
    answer = env["client"].put("/api/reasons", json={"reasons": reasons}, headers=_as(env, "admin"))
    assert answer.status_code == 400 and message in answer.get_json()["error"]
    assert env["redis"].hget(contract.reasons_key(), "plant") is None


def test_a_line_list_naming_a_dropped_code_must_change_first(env: dict[str, Any]) -> None:
    client = env["client"]
    answer = client.put("/api/reasons", json={"reasons": _catalogue(env, drop=5)}, headers=_as(env, "admin"))
    assert answer.status_code == 409 and answer.get_json()["error"].startswith("line L1's reason list names [5]")


def test_other_processes_see_the_managed_list(env: dict[str, Any], redis_client: redis.Redis) -> None:
    """Another worker's reader (its own cache) reads what this one stored."""
    from store.reader import PlantReader

    other = PlantReader(redis_client, operator_plant())
    assert 7 not in other.plant.reasons
    stored = {str(r["code"]): {k: v for k, v in r.items() if k != "code"} for r in _catalogue(env, [ROBOT])}
    redis_client.hset(contract.reasons_key(), "plant", json.dumps(stored))
    other.reason_lists._cached = None  # what REFRESH_S does after a second
    assert other.plant.reasons[7].category == "setup_adjustment"
    read = other.plant
    other.reason_lists._cached = None
    assert other.plant is read, "the same lists read again give the same plant (the readers' caches stay)"
    redis_client.hset(contract.reasons_key(), "line:L1", json.dumps([7]))
    other.reason_lists._cached = None
    assert other.plant is not read and other.plant.line("L1").reasons == [7]


def test_a_reason_filed_under_another_loss_category_moves_in_the_figures(env: dict[str, Any]) -> None:
    """Jam (the PLC's code 1 on a 300 s fault) re-filed from equipment failure to setup:
    the line's loss categories follow, past windows included."""
    reader = env["reader"]
    before = reader.line_kpis("L1", *PAST, NOW)["losses"]
    assert (before["equipment_failure"], before["setup_adjustment"]) == (300.0, 0.0)
    refiled = [{**r, "category": "setup_adjustment"} if r["code"] == 1 else r for r in _catalogue(env)]
    answer = env["client"].put("/api/reasons", json={"reasons": refiled}, headers=_as(env, "admin"))
    assert answer.status_code == 200, answer.get_json()
    after = reader.line_kpis("L1", *PAST, NOW)["losses"]
    assert (after["equipment_failure"], after["setup_adjustment"]) == (0.0, 300.0)
