"""The hash-chained audit trail (store.audit) against a real Redis: it verifies, detects a
changed, removed, reordered or truncated entry, stays a chain under concurrent writers;
and GET /api/audit shows supervisors their lines' trail and admins all of it.
(tests/test_audit.py is the CI dependency audit.)"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import redis

import app as app_module
from domain import contract
from store.audit import AuditTrail
from tests.operator_support import IDLE_ID, add_users, login, make_app, operator_plant, seed
from tests.support import Client


def _fill(trail: AuditTrail, n: int) -> None:
    for i in range(n):
        trail.append(ts=1000.0 + i, actor=f"user{i % 3}", role="operator", action="classify", addr="10.0.0.1",
                     line="L1", target=f"L1~M1~{i}", before={"reason": 0}, after={"reason": i})


def test_an_untouched_trail_verifies(redis_client: redis.Redis) -> None:
    trail = AuditTrail(redis_client)
    assert trail.verify().ok and trail.verify().entries == 0
    _fill(trail, 5)
    verdict = trail.verify()
    assert verdict.ok and verdict.entries == 5
    entries = list(trail.entries())
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]  # type: ignore[index]
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))  # type: ignore[index]


@pytest.mark.parametrize("tamper", ["change_value", "change_and_rehash", "remove_middle", "swap", "truncate",
                                    "not_json"])
def test_tampering_is_detected(redis_client: redis.Redis, tamper: str) -> None:
    trail = AuditTrail(redis_client)
    _fill(trail, 5)
    key = contract.audit_key()
    third = json.loads(redis_client.lindex(key, 2))  # type: ignore[arg-type]
    if tamper == "change_value":
        third["after"] = {"reason": 99}
        redis_client.lset(key, 2, json.dumps(third))
    elif tamper == "change_and_rehash":  # recomputing its own hash breaks the next entry's link
        from store.audit import entry_hash
        third["actor"] = "someone_else"
        third["hash"] = entry_hash(third)
        redis_client.lset(key, 2, json.dumps(third))
    elif tamper == "remove_middle":
        redis_client.lrem(key, 1, redis_client.lindex(key, 2))  # type: ignore[arg-type]
    elif tamper == "swap":
        second = redis_client.lindex(key, 1)
        redis_client.lset(key, 1, redis_client.lindex(key, 2))  # type: ignore[arg-type]
        redis_client.lset(key, 2, second)  # type: ignore[arg-type]
    elif tamper == "truncate":
        redis_client.rpop(key)
    else:
        redis_client.lset(key, 2, b"{oops")
    verdict = trail.verify()
    assert not verdict.ok
    assert verdict.seq == {"change_value": 3, "change_and_rehash": 4, "remove_middle": 3, "swap": 2, "truncate": 5,
                           "not_json": 3}[tamper]
    assert verdict.problem


def test_concurrent_writers_keep_one_chain(redis_client: redis.Redis, redis_url: str) -> None:
    def writer() -> None:
        client = redis.Redis.from_url(redis_url)
        _fill(AuditTrail(client), 25)
        client.close()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = AuditTrail(redis_client).verify()
    assert verdict.ok and verdict.entries == 100


def test_the_verify_command(redis_client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    _fill(AuditTrail(redis_client), 3)
    assert app_module.main(["audit", "verify"]) == 0
    assert "audit trail OK: 3 entries" in capsys.readouterr().out
    redis_client.lset(contract.audit_key(), 0, b'{"seq": 1}')
    assert app_module.main(["audit", "verify"]) == 1
    assert "BROKEN: entry 1" in capsys.readouterr().err


def test_the_api_shows_supervisors_their_lines(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    plant = operator_plant()
    reader = seed(redis_client, plant)
    tokens = add_users(redis_client, plant)
    client = Client(make_app(reader, plant, tmp_path, redis_url).server)
    csrf = login(client, "operator1")
    assert client.put(f"/api/lines/L1/stops/{IDLE_ID}/classification", json={"reason": 3, "comment": "c"},
                      headers={"X-CSRF-Token": csrf, "X-Forwarded-For": "ignored"}).status_code == 200
    assert client.get("/api/audit").status_code == 403  # operators do not read the trail
    other = client.put("/api/lines/L2/stops/x/classification", json={"reason": 1}, headers={"X-CSRF-Token": csrf})
    assert other.status_code == 403
    client.post("/api/logout")

    def audit(role: str, assigned: str, **params: Any) -> Any:
        return client.get("/api/audit", query_string={"start": "2000-01-01T00:00:00Z", **params},
                          headers={"Authorization": f"Bearer {tokens[role, assigned]}"})

    own = audit("supervisor", "L1").get_json()["entries"]
    classify = next(e for e in own if e["action"] == "classify")
    assert (classify["actor"], classify["line"], classify["target"], classify["addr"]) == (
        "operator1", "L1", IDLE_ID, "127.0.0.1")
    assert classify["before"] == {"plc_reason": 0} and classify["after"]["reason"] == 3
    assert {e["line"] for e in own} == {"L1"}  # no plant-wide entries (logins) for a supervisor
    assert audit("supervisor", "L1", line="L2").status_code == 403
    everything = audit("admin", "L1").get_json()["entries"]
    actions = [e["action"] for e in everything]
    assert {"login", "logout", "classify", "denied"} <= set(actions)
    denied = next(e for e in everything if e["action"] == "denied")
    assert denied["line"] == "L2" and denied["ok"] is False and "not assigned to line L2" in denied["after"]
    assert AuditTrail(redis_client).verify().ok


def test_behind_a_proxy_the_forwarded_address_is_audited(redis_client: redis.Redis, redis_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_HOPS", "1")
    plant = operator_plant()
    reader = seed(redis_client, plant)
    add_users(redis_client, plant)
    client = Client(make_app(reader, plant, tmp_path, redis_url).server)
    answer = client.post("/api/login", json={"username": "operator1", "password": "wrong password"},
                         headers={"X-Forwarded-For": "10.1.2.3"})
    assert answer.status_code == 401
    entry = next(e for e in AuditTrail(redis_client).entries() if isinstance(e, dict) and e["action"] == "login_failed")
    assert entry["addr"] == "10.1.2.3" and entry["actor"] == "operator1"
