"""GET /api/alerts and POST /api/alerts/<id>/ack through the real app and the operator
loop's login (tokens and sessions with CSRF): who may acknowledge which line's alert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from api.alerts import create_alerts_router
from api.context import serving
from domain.alerts import Condition, step
from domain.plant import AlertRule
from store.alerts import AlertStore
from store.reader import PlantReader
from tests.callback_support import call
from tests.operator_support import NOW, add_users, login, make_app, operator_plant, seed
from tests.support import Client, in_request

RULE = AlertRule.model_validate({"id": "r", "kind": "stop", "minutes": 10, "severity": "urgent"})


def raise_alert(client: redis.Redis, line: str, machine: str, since: float) -> str:
    result = step({}, [Condition("r", line, machine, True, since, f"{line} {machine}: stopped")], {"r": RULE},
                  set(), set(), NOW)
    AlertStore(client).apply(result, set(), NOW)
    return result.raised[0].id


@pytest.fixture
def setup(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> dict[str, Any]:
    plant = operator_plant()
    reader = seed(redis_client, plant)
    tokens = add_users(redis_client, plant)
    app = make_app(reader, plant, tmp_path, redis_url)
    app.server.include_router(create_alerts_router(reader, clock=lambda: NOW))
    return {"client": Client(app.server), "tokens": tokens, "redis": redis_client, "app": app}


@pytest.mark.parametrize(("role", "token_line", "status"), [
    ("operator", "L1", 200), ("supervisor", "L1", 200), ("engineer", "L1", 200),
    ("operator", "L2", 403),  # not assigned to the alert's line
    ("admin", "L1", 403),  # manages users, not the floor
])
def test_acknowledge_by_token(setup: dict[str, Any], role: str, token_line: str, status: int) -> None:
    alert_id = raise_alert(setup["redis"], "L1", "M1", NOW - 900)
    answer = setup["client"].post(f"/api/alerts/{alert_id}/ack", json={"comment": "fitter called"},
                                  headers={"Authorization": f"Bearer {setup['tokens'][(role, token_line)]}"})
    assert answer.status_code == status, answer.get_json()
    ack = AlertStore(setup["redis"]).ack_of(alert_id)
    if status == 200:
        assert answer.get_json()["ack"] == ack
        assert ack is not None and ack["role"] == role and ack["comment"] == "fitter called" and ack["at"] == NOW
    else:
        assert ack is None and "forbidden" in answer.get_json()["error"]


def test_acknowledge_needs_a_login_and_csrf(setup: dict[str, Any]) -> None:
    client = setup["client"]
    alert_id = raise_alert(setup["redis"], "L1", "M1", NOW - 900)
    assert client.post(f"/api/alerts/{alert_id}/ack", json={}).status_code == 401
    csrf = login(client, "operator1")
    assert client.post(f"/api/alerts/{alert_id}/ack", json={}).status_code == 403  # no CSRF header
    answer = client.post(f"/api/alerts/{alert_id}/ack", json={"comment": "on it"}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200 and answer.get_json()["ack"]["by"] == "operator1"
    assert client.post("/api/alerts/nope/ack", json={}, headers={"X-CSRF-Token": csrf}).status_code == 404
    assert client.post(f"/api/alerts/{alert_id}/ack", json={"comment": 5},
                       headers={"X-CSRF-Token": csrf}).status_code == 400


def test_alert_list(setup: dict[str, Any]) -> None:
    client = setup["client"]
    first = raise_alert(setup["redis"], "L1", "M1", NOW - 900)
    second = raise_alert(setup["redis"], "L2", "M9", NOW - 800)
    listed = client.get("/api/alerts").get_json()["alerts"]
    assert {a["id"] for a in listed} == {first, second} and all(a["flashing"] for a in listed)
    assert [a["id"] for a in client.get("/api/alerts?line=L2&state=open").get_json()["alerts"]] == [second]
    assert client.get("/api/alerts?start=soon").status_code == 400


def test_the_comment_box_shows_only_while_an_alert_can_be_acknowledged(setup: dict[str, Any]) -> None:
    """The list's "Comment (optional)" box goes with its Acknowledge buttons: hidden with
    no alerts, and once every listed alert is acknowledged."""
    from components import alerts_panel

    def box_shown(line: str | None) -> bool:
        rows, _message, box = call(setup["app"], alerts_panel.list_refresh, 1, [], line, None)
        return "d-none" not in box.split()

    with in_request(setup["app"]):
        assert "d-none" in str(alerts_panel.alert_list(None))  # hidden until the list says otherwise
    assert not box_shown(None)
    alert_id = raise_alert(setup["redis"], "L1", "M1", NOW - 900)
    assert box_shown(None) and box_shown("L1")
    assert not box_shown("L2")  # the L2 list has nothing to acknowledge
    AlertStore(setup["redis"]).acknowledge(alert_id, "supervisor1", "supervisor", "", NOW)
    assert not box_shown(None)


def test_a_refresh_leaves_the_acknowledgement_message_as_it_is(setup: dict[str, Any]) -> None:
    """The acknowledgement changes the alert, so its push refreshes the list at once: that
    refresh must not blank the "Acknowledged by ..." the click has just shown."""
    from dash import no_update

    from components import alerts_panel

    raise_alert(setup["redis"], "L1", "M1", NOW - 900)
    _rows, message, _box = call(setup["app"], alerts_panel.list_refresh, 2, [], None, None)
    assert message is no_update


def test_alert_counts_per_shift_in_the_shift_table(setup: dict[str, Any], redis_client: redis.Redis,
                                                   tmp_path: Path, redis_url: str) -> None:
    from components import data, oee_panel

    raise_alert(setup["redis"], "L1", "M1", NOW - 900)
    raise_alert(setup["redis"], "L1", "M1", NOW - 7 * 3600)  # the shift before (B of the day before)
    raise_alert(setup["redis"], "L2", "M9", NOW - 800)  # another line
    plant = operator_plant()
    app = make_app(PlantReader(redis_client, plant), plant, tmp_path, redis_url)
    with serving(app.server):
        window = data.resolve_window(plant, "today", None, NOW)
        rows = oee_panel.shift_rows(oee_panel.shift_kpis("L1", window, NOW))
        table = str(oee_panel.shift_table(rows))
    assert [(r["shift"].split()[-1], r["alerts"]) for r in rows] == [("A", 1)]
    assert "Alerts" in table
    assert oee_panel.shifts_csv(rows).splitlines()[0].split(",")[-1] == "down_s"  # the CSV keeps its columns
    assert AlertStore(redis_client).count("L1", NOW - 8 * 3600, NOW) == 2


def test_alert_routes_are_in_the_openapi_document(setup: dict[str, Any]) -> None:
    spec = setup["client"].get("/api/openapi.json").get_json()
    assert spec["paths"]["/api/alerts/{alert_id}/ack"]["post"]["security"]
    assert "Alert" in spec["components"]["schemas"] and "/api/alerts" in spec["paths"]
