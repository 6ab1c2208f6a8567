"""Login, sessions, CSRF, tokens, roles and throttling against a real Redis and the real
Flask server: the matrix of every write endpoint x every role x own line / other line,
401 without credentials, 403 with a clear message; passwords hashed with scrypt; no
secret in logs, in Redis or on the command line's output."""

from __future__ import annotations

import io
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import app as app_module
from api.auth import secret_key
from domain import contract
from domain.roles import Action, Principal, Role, allowed, refusal
from store.audit import AuditTrail
from store.users import FREE_FAILURES, Users, check_password, failure_delay_s, hash_password, user_failures_key
from tests.operator_support import (
    IDLE,
    IDLE_ID,
    NOW,
    OTHER_ID,
    PASSWORD,
    ROLES,
    T,
    add_users,
    login,
    make_app,
    operator_plant,
    seed,
)
from tests.support import Client, api_routes

SHIFT_A = str(round(T - 2 * 3600))


# --- pure: roles and delays -----------------------------------------------------------------

@pytest.mark.parametrize(("role", "action", "line", "expected"), [
    ("operator", Action.CLASSIFY, "L1", True),
    ("operator", Action.CLASSIFY, "L2", False),
    ("operator", Action.EDIT_OTHERS, "L1", False),
    ("operator", Action.HANDOVER_SIGN, "L1", False),
    ("operator", Action.READ_AUDIT, "L1", False),
    ("supervisor", Action.EDIT_OTHERS, "L1", True),
    ("supervisor", Action.HANDOVER_SIGN, "L1", True),
    ("supervisor", Action.HANDOVER_SIGN, "L2", False),
    ("supervisor", Action.READ_AUDIT, "L2", False),
    ("supervisor", Action.MANAGE_USERS, None, False),
    ("engineer", Action.CLASSIFY, "L1", False),
    ("engineer", Action.MANAGE_REASONS, None, True),
    ("engineer", Action.MANAGE_REASONS, "L1", True),
    ("engineer", Action.MANAGE_REASONS, "L2", False),
    ("engineer", Action.MANAGE_REASONS, "*", False),  # the plant-wide list: engineers of every line only
    ("admin", Action.MANAGE_REASONS, "L2", True),
    ("supervisor", Action.MANAGE_REASONS, "L1", False),
    ("admin", Action.CLASSIFY, "L1", False),
    ("admin", Action.MANAGE_USERS, None, True),
    ("admin", Action.READ_AUDIT, "L2", True),  # the admin sees every line's trail
    ("operator", Action.ACKNOWLEDGE, "L1", True),  # alerts (api.alerts asks domain.roles)
    ("operator", Action.ACKNOWLEDGE, "L2", False),
    ("engineer", Action.ACKNOWLEDGE, "L1", True),
    ("admin", Action.ACKNOWLEDGE, "L1", False),
])
def test_role_table(role: str, action: Action, line: str | None, expected: bool) -> None:
    who = Principal("x", Role(role), ("L1",))
    assert allowed(who, action, line) is expected
    assert (refusal(who, action, line) is None) is expected


def test_every_refusal_is_a_sentence() -> None:
    nobody = Principal("x", Role.OPERATOR, ())
    for action in Action:
        message = refusal(nobody, action, "L1")
        assert message is not None and "_" not in message and message.startswith(("the role", "x is not"))


def test_every_operator_loop_route_is_in_the_openapi_document(loop: dict[str, Any]) -> None:
    from api.document import openapi_spec

    paths = openapi_spec()["paths"]
    mine = [r for r in api_routes(loop["app"].server.routes) if r.endpoint.__module__ in ("api.writes", "api.auth")
            and r.path_format.startswith("/api/")]
    assert len(mine) >= 12
    for rule in mine:
        path = rule.path_format
        if path.startswith("/api/users"):
            continue  # the admins' user management (documented in the README)
        assert path in paths, path
        assert set(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}) <= set(paths[path]), path


def test_all_lines_covers_every_line() -> None:
    assert allowed(Principal("x", Role.OPERATOR, ("*",)), Action.CLASSIFY, "ANY")


@pytest.mark.parametrize(("failures", "delay"), [(0, 0), (2, 0), (3, 1), (4, 2), (6, 8), (11, 256), (12, 300),
                                                 (40, 300)])
def test_failed_login_delays(failures: int, delay: float) -> None:
    assert failure_delay_s(failures) == delay


def test_scrypt_hashes_are_salted_and_checked() -> None:
    a, b = hash_password("s3cret-password"), hash_password("s3cret-password")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert check_password("s3cret-password", a) and check_password("s3cret-password", b)
    assert not check_password("s3cret-passwore", a)
    assert not check_password("s3cret-password", "md5$whatever") and not check_password("x", "garbage")


# --- the server ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def loop(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One seeded database for the module (the matrix only checks who may write)."""
    client = redis.Redis.from_url(redis_url)
    plant = operator_plant()
    reader = seed(client, plant)
    tokens = add_users(client, plant)
    app = make_app(reader, plant, tmp_path_factory.mktemp("data"), redis_url)
    yield {"client": client, "app": app, "tokens": tokens, "plant": plant}
    client.flushdb()
    client.close()


def _writes(own: bool) -> list[tuple[str, str, Any, str]]:
    """(method, path, body, action) of every write endpoint on L1 (own) or L2 (other)."""
    line, sid = ("L1", IDLE_ID) if own else ("L2", OTHER_ID)
    return [
        ("PUT", f"/api/lines/{line}/stops/{sid}/classification", {"reason": 1}, "classify"),
        ("POST", f"/api/lines/{line}/stops/{sid}/split", {"at": IDLE[0] + 60, "before": 1, "after": 2}, "classify"),
        ("PUT", f"/api/lines/{line}/handovers/{SHIFT_A}", {"note": "n"}, "handover_write"),
        ("POST", f"/api/lines/{line}/handovers/{SHIFT_A}/sign", None, "handover_sign"),
        ("POST", f"/api/lines/{line}/handovers/{SHIFT_A}/acknowledge", None, "handover_sign"),
        ("PUT", f"/api/lines/{line}/reasons", {"codes": [1, 2, 3, 5]}, "manage_reasons"),
    ]


def _forget_classifications(loop: dict[str, Any]) -> None:
    loop["client"].delete(contract.classifications_key("L1"), contract.classifications_key("L2"))


ALLOWED = {"operator": {"classify"}, "supervisor": {"classify", "handover_write", "handover_sign"},
           "engineer": {"manage_reasons"}, "admin": {"manage_reasons"}}
EVERY_LINE = {("admin", "manage_reasons")}  # the admin's reach is not limited to assigned lines
WRITE_NAMES = ["classify", "split", "handover_note", "handover_sign", "handover_ack", "line_reasons"]


@pytest.mark.parametrize("own", [True, False], ids=["own_line", "other_line"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("which", range(len(WRITE_NAMES)), ids=WRITE_NAMES)
def test_write_matrix(loop: dict[str, Any], which: int, role: str, own: bool) -> None:
    """A token of ``role`` assigned to L1 on L1's (own) or L2's (other) endpoint."""
    method, path, body, action = _writes(own)[which]
    _forget_classifications(loop)  # else an operator after a supervisor may not change it
    client = Client(loop["app"].server)
    token = loop["tokens"][role, "L1"]
    answer = client.open(path, method=method, json=body, headers={"Authorization": f"Bearer {token}"})
    if (own or (role, action) in EVERY_LINE) and action in ALLOWED[role]:
        # allowed: done, or refused for what the request says (a handover not signed yet: 409), never 401/403
        assert answer.status_code in (200, 409), answer.get_json()
    else:
        assert answer.status_code == 403, answer.get_json()
        message = answer.get_json()["error"]
        assert message.startswith("forbidden: ")
        assert ("not assigned to line L2" in message) if action in ALLOWED[role] else (f"the role {role} may not" in
                                                                                       message)


@pytest.mark.parametrize("which", range(len(WRITE_NAMES)), ids=WRITE_NAMES)
def test_writes_without_credentials_are_401(loop: dict[str, Any], which: int) -> None:
    method, path, body, _ = _writes(True)[which]
    client = Client(loop["app"].server)
    answer = client.open(path, method=method, json=body)
    assert answer.status_code == 401 and answer.get_json()["error"].startswith("login required")
    bad = client.open(path, method=method, json=body, headers={"Authorization": "Bearer pdt_not-a-token"})
    assert bad.status_code == 401 and bad.get_json()["error"] == "invalid or revoked API token"


def test_user_management_is_for_admins(loop: dict[str, Any]) -> None:
    client = Client(loop["app"].server)
    body = {"name": "newop", "role": "operator", "lines": "L1", "password": "a long enough one"}
    for role in ("operator", "supervisor", "engineer"):
        token = loop["tokens"][role, "L1"]
        refused = client.post("/api/users", json=body, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403
        assert f"the role {role} may not manage users and tokens" in refused.get_json()["error"]
    assert client.post("/api/users", json=body).status_code == 401
    admin = {"Authorization": f"Bearer {loop['tokens']['admin', 'L1']}"}
    made = client.post("/api/users", json=body, headers=admin)
    assert made.status_code == 201 and made.get_json() == {"name": "newop", "role": "operator", "lines": ["L1"],
                                                           "disabled": False}
    assert client.patch("/api/users/newop", json={"disabled": True}, headers=admin).get_json()["disabled"] is True
    names = [u["name"] for u in client.get("/api/users", headers=admin).get_json()["users"]]
    assert "newop" in names


def test_session_login_csrf_and_logout(loop: dict[str, Any]) -> None:
    _forget_classifications(loop)
    client = Client(loop["app"].server)
    assert client.get("/api/session").get_json()["user"] is None
    csrf = login(client, "operator1")
    cookie = client.get_cookie("plant_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    session = client.get("/api/session").get_json()
    assert (session["user"], session["role"], session["lines"], session["csrf"]) == ("operator1", "operator", ["L1"],
                                                                                     csrf)
    url = f"/api/lines/L1/stops/{IDLE_ID}/classification"
    no_csrf = client.put(url, json={"reason": 2})
    assert no_csrf.status_code == 403 and "CSRF token missing or wrong" in no_csrf.get_json()["error"]
    wrong = client.put(url, json={"reason": 2}, headers={"X-CSRF-Token": csrf + "x"})
    assert wrong.status_code == 403
    done = client.put(url, json={"reason": 2}, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200, done.get_json()
    client.post("/api/logout")
    assert client.put(url, json={"reason": 2}, headers={"X-CSRF-Token": csrf}).status_code == 401


def test_a_password_change_or_disable_ends_sessions(loop: dict[str, Any]) -> None:
    client = Client(loop["app"].server)
    users = Users(loop["client"], ["L1", "L2"])
    users.add("temp", "supervisor", "L1", PASSWORD)
    login(client, "temp")
    assert client.get("/api/session").get_json()["user"] == "temp"
    users.set_password("temp", "another long password")
    assert client.get("/api/session").get_json()["user"] is None
    assert client.post("/api/login", json={"username": "temp", "password": PASSWORD}).status_code == 401
    login(client, "temp", "another long password")
    users.set_disabled("temp", True)
    assert client.get("/api/session").get_json()["user"] is None
    assert client.post("/api/login", json={"username": "temp", "password": "another long password"}).status_code == 401


def _copy_session(app: Any, source: Any) -> Any:
    """Another client holding a copy of ``source``'s session cookie (a stolen cookie)."""
    thief = Client(app.server)
    thief.set_cookie("plant_session", source.get_cookie("plant_session").value)
    return thief


def _user(client: Any) -> Any:
    return client.get("/api/session").get_json()["user"]


def test_a_copied_cookie_stops_working_after_logout_or_disable(loop: dict[str, Any]) -> None:
    app = loop["app"]
    Users(loop["client"], ["L1", "L2"]).add("copied", "operator", "L1", PASSWORD)
    tablet, other_tablet = Client(app.server), Client(app.server)
    login(tablet, "copied")
    csrf = login(other_tablet, "copied")
    copy = _copy_session(app, tablet)
    assert _user(copy) == "copied"
    tablet.post("/api/logout")
    assert _user(copy) is None and _user(tablet) is None  # ended on the server, not only in that browser
    assert _user(other_tablet) == "copied"  # the same user's other session goes on
    copy = _copy_session(app, other_tablet)
    url = f"/api/lines/L1/stops/{IDLE_ID}/classification"
    _forget_classifications(loop)
    assert copy.put(url, json={"reason": 2}, headers={"X-CSRF-Token": csrf}).status_code == 200
    admin = {"Authorization": f"Bearer {loop['tokens']['admin', 'L1']}"}
    assert Client(app.server).patch("/api/users/copied", json={"disabled": True},
                                          headers=admin).status_code == 200
    assert copy.put(url, json={"reason": 3}, headers={"X-CSRF-Token": csrf}).status_code == 401
    assert _user(copy) is None and _user(other_tablet) is None
    Users(loop["client"], ["L1", "L2"]).set_disabled("copied", False)  # what `users enable` does
    login(tablet, "copied")
    copy = _copy_session(app, tablet)
    Users(loop["client"], ["L1", "L2"]).set_password("copied", "a brand new password")  # `users passwd`
    assert _user(copy) is None and _user(tablet) is None


def test_revoked_tokens_stop_working(loop: dict[str, Any]) -> None:
    users = Users(loop["client"], ["L1", "L2"])
    token, tid = users.create_token("mes", "operator", "L1", NOW)
    client = Client(loop["app"].server)
    assert client.get("/api/session", headers={"Authorization": f"Bearer {token}"}).get_json()["user"] == "mes"
    users.revoke_token(tid[:8])
    answer = client.put(f"/api/lines/L1/stops/{IDLE_ID}/classification", json={"reason": 1},
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and "revoked" in answer.get_json()["error"]


def test_failed_logins_are_slowed_and_audited(loop: dict[str, Any]) -> None:
    client = Client(loop["app"].server)
    here = {"REMOTE_ADDR": "10.0.0.1"}  # an address no other test failed from
    for _ in range(FREE_FAILURES):
        answer = client.post("/api/login", json={"username": "engineer1", "password": "wrong"}, environ_base=here)
        assert answer.status_code == 401
    # the clock is pinned: the next attempt, even with the right password, must wait
    throttled = client.post("/api/login", json={"username": "engineer1", "password": PASSWORD}, environ_base=here)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert "too many failed logins" in throttled.get_json()["error"]
    # from another address the user name is still throttled
    other = client.post("/api/login", json={"username": "engineer1", "password": PASSWORD},
                        environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 429
    entries = [e for e in AuditTrail(loop["client"]).entries() if isinstance(e, dict) and e["actor"] == "engineer1"]
    assert [e["action"] for e in entries][-5:] == ["login_failed"] * 3 + ["login_throttled"] * 2
    assert {e["addr"] for e in entries} == {"10.0.0.1", "10.0.0.9"}


def test_throttle_expires_with_time(redis_client: redis.Redis) -> None:
    users = Users(redis_client, ["L1"])
    for i in range(4):
        users.record_failure("u", "1.2.3.4", 1000.0 + i)
    assert users.wait_s("u", "5.6.7.8", 1003.0) == pytest.approx(2.0)  # 4 failures: 2 s after the last
    assert users.wait_s("u", "5.6.7.8", 1005.0) == 0.0
    assert users.wait_s("v", "1.2.3.4", 1004.0) == pytest.approx(1.0)  # the address too
    assert 0 < redis_client.ttl(user_failures_key("u")) <= 900
    users.clear_failures("u")
    assert users.wait_s("u", "5.6.7.8", 1003.0) == 0.0


def test_require_login_gates_pages_and_reads(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    plant = operator_plant().model_copy(update={"require_login": True})
    reader = seed(redis_client, plant)
    add_users(redis_client, plant)
    client = Client(make_app(reader, plant, tmp_path, redis_url).server)
    assert client.get("/api/lines").status_code == 401
    page = client.get("/line/L1")
    assert page.status_code == 303 and page.headers["Location"].startswith("/login?next=/line/L1")
    assert client.get("/login").status_code == 200 and client.get("/api/health").status_code in (200, 503)
    form = client.post("/login?next=/line/L1", data={"username": "operator1", "password": PASSWORD})
    assert form.status_code == 303 and form.headers["Location"] == "/line/L1"
    assert client.get("/api/lines").status_code == 200
    evil = client.post("/login?next=//evil.example/x", data={"username": "operator1", "password": PASSWORD})
    assert evil.headers["Location"] == "/"


def test_secret_key_is_generated_once_with_0600(tmp_path: Path) -> None:
    first = secret_key(tmp_path / "data", env={})
    assert secret_key(tmp_path / "data", env={}) == first and len(first) >= 48
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "secret_key").st_mode) == 0o600
    assert secret_key(tmp_path / "data", env={"SECRET_KEY": "from-env"}) == "from-env"


def test_workers_starting_together_share_one_secret_key(tmp_path: Path) -> None:
    import threading

    keys: list[str] = []
    threads = [threading.Thread(target=lambda: keys.append(secret_key(tmp_path, env={}))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1 and len(keys[0]) >= 48
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]


def test_no_secret_in_logs_redis_or_cli_output(redis_client: redis.Redis, redis_url: str, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    password = "Sup3r-secret-Pw!"
    plant = operator_plant()
    reader = seed(redis_client, plant)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert app_module.main(["users", "add", "ada", "--role", "admin", "--lines", "*", "--password-stdin"]) == 0
    assert app_module.main(["tokens", "create", "mes", "--role", "operator", "--lines", "BW1"]) == 0
    out = capsys.readouterr()
    token = out.out.strip().splitlines()[-1]
    assert token.startswith("pdt_") and token not in out.err  # shown once, on stdout only
    assert app_module.main(["users", "list"]) == 0
    assert app_module.main(["tokens", "list"]) == 0
    assert app_module.main(["audit", "verify"]) == 0
    listed = capsys.readouterr()
    assert "audit trail OK: 2 entries" in listed.out
    # a web login, a failed one
    Users(redis_client, ["L1", "L2"]).add("olga", "operator", "L1", password)
    client = Client(make_app(reader, plant, tmp_path, redis_url).server)
    client.post("/api/login", json={"username": "olga", "password": password})
    client.post("/api/login", json={"username": "olga", "password": password + "x"})
    client.post("/api/login", json={"username": password, "password": "x"})  # the password in the name field
    everything = caplog.text + listed.out + listed.err
    dump = b"".join(_values(redis_client))
    for secret in (password, token, password + "x"):
        assert secret not in everything
        assert secret.encode() not in dump


def _values(client: redis.Redis) -> Iterator[bytes]:
    for key in client.scan_iter():
        yield key
        kind = client.type(key)
        if kind == b"string":
            yield client.get(key) or b""
        elif kind == b"hash":
            yield from (k + v for k, v in client.hgetall(key).items())
        elif kind == b"list":
            yield from client.lrange(key, 0, -1)
        elif kind == b"set":
            yield from client.smembers(key)


def test_logins_and_writes_say_503_while_redis_is_down(restartable_redis: Any, tmp_path: Path) -> None:
    client = redis.Redis.from_url(restartable_redis.url, socket_timeout=2, socket_connect_timeout=1)
    plant = operator_plant()
    reader = seed(client, plant)
    tokens = add_users(client, plant)
    web = Client(make_app(reader, plant, tmp_path, restartable_redis.url).server)
    restartable_redis.stop()
    login = web.post("/api/login", json={"username": "operator1", "password": PASSWORD})
    assert login.status_code == 503 and "data store unavailable" in login.get_json()["error"]
    write = web.put(f"/api/lines/L1/stops/{IDLE_ID}/classification", json={"reason": 1},
                    headers={"Authorization": f"Bearer {tokens['operator', 'L1']}"})
    assert write.status_code == 503 and write.get_json() == {"error": "data store unavailable"}
    assert web.get("/api/session", headers={"Authorization": f"Bearer {tokens['operator', 'L1']}"}).status_code == 503
    client.close()


def test_the_login_page_says_why_in_its_language(loop: dict[str, Any]) -> None:
    """The form (not the JSON API, which stays English) words a refused login in the page's
    language."""
    client = Client(loop["app"].server)
    for lang, expected in (("en", "wrong user name or password"), ("zh-CN", "用户名或密码错误")):
        page = client.post(f"/login?lang={lang}", data={"username": "engineer1", "password": "not it"},
                           environ_base={"REMOTE_ADDR": f"10.9.8.{7 if lang == 'en' else 6}"})
        assert page.status_code == 401 and expected in page.get_data(as_text=True), page.get_data(as_text=True)
    assert "wrong user name" in client.post("/api/login", json={"username": "engineer1", "password": "x"},
                                            environ_base={"REMOTE_ADDR": "10.9.8.5"}).get_json()["error"]
