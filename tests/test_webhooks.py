"""Webhook channels against real HTTP servers on loopback: each format and its signature
as the receiving robot checks it, the outbox across an outage and a restart, the test
command."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest
import redis

from domain.alerts import Notice
from store.alert_loop import send_test
from store.alerts import AlertStore
from store.notify import Sender, resolve_channels
from tests.core_support import make_plant
from tests.support import free_port

SECRET = "SEC0123456789abcdef"  # noqa: S105 (test secret)
T0 = 1_764_000_000.0


class Hook:
    """A loopback webhook: records requests, answers like the robot of its kind."""

    def __init__(self, port: int | None = None, answer: dict[str, Any] | None = None, status: int = 200) -> None:
        self.port = port or free_port()
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answer = answer if answer is not None else {"errcode": 0, "errmsg": "ok"}
        self.status = status
        self.got = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.requests.append((self.path, dict(self.headers), body))
                data = json.dumps(hook.answer).encode()
                self.send_response(hook.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                hook.got.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?key=robot-key"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def plant_with(kind: str, secret: bool) -> Any:
    channel = {"type": kind, "url_env": "HOOK_URL", **({"secret_env": "HOOK_SECRET"} if secret else {})}
    return make_plant(alerts={"channels": {"c": channel}, "rules": []})


def deliver(redis_client: redis.Redis, kind: str, hook: Hook, secret: bool = True) -> tuple[str, dict[str, str], bytes]:
    p = plant_with(kind, secret)
    env = {"HOOK_URL": hook.url, **({"HOOK_SECRET": SECRET} if secret else {})}
    store = AlertStore(redis_client)
    store.enqueue(Notice("L1|M1|1", "c", "raised", "urgent", "L1", "M1", "L1 M1: stopped 10 min", T0), T0)
    sender = Sender(store, p, resolve_channels(p, env), clock=lambda: T0 + 1)
    assert sender.pass_once() == 1
    assert store.pending() == 0
    (request,) = hook.requests
    return request


def test_wecom_group_robot(redis_client: redis.Redis, hook: Hook) -> None:
    path, _, body = deliver(redis_client, "wecom", hook, secret=False)
    data = json.loads(body)
    assert path == "/hook?key=robot-key"
    assert data["msgtype"] == "text" and "L1 M1: stopped 10 min" in data["text"]["content"]
    assert "[ALERT URGENT]" in data["text"]["content"]


def test_dingtalk_custom_robot_signature(redis_client: redis.Redis, hook: Hook) -> None:
    path, _, body = deliver(redis_client, "dingtalk", hook)
    query = parse_qs(urlsplit(path).query)
    assert query["key"] == ["robot-key"]
    timestamp = query["timestamp"][0]
    assert int(timestamp) == int((T0 + 1) * 1000)
    # the robot's check: HmacSHA256(key=secret, "timestamp\nsecret"), Base64, URL-encoded
    expected = base64.b64encode(hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected]  # parse_qs decodes the URL encoding once
    assert json.loads(body)["text"]["content"].startswith("[ALERT URGENT]")


def test_feishu_bot_signature(redis_client: redis.Redis, hook: Hook) -> None:
    hook.answer = {"code": 0, "msg": "success"}
    _, _, body = deliver(redis_client, "feishu", hook)
    data = json.loads(body)
    # the bot's check: HmacSHA256(key="timestamp\nsecret", empty message), Base64
    expected = base64.b64encode(hmac.new(f"{data['timestamp']}\n{SECRET}".encode(), b"",
                                         hashlib.sha256).digest()).decode()
    assert data["sign"] == expected and data["timestamp"] == str(int(T0 + 1))
    assert data["msg_type"] == "text" and "stopped 10 min" in data["content"]["text"]


def test_generic_json_with_hmac_header(redis_client: redis.Redis, hook: Hook) -> None:
    hook.answer = {}
    _, headers, body = deliver(redis_client, "json", hook)
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Signature-256"] == expected
    data = json.loads(body)
    assert (data["event"], data["severity"], data["line"], data["machine"]) == ("raised", "urgent", "L1", "M1")
    assert unquote_plus(data["alert_id"]) == "L1|M1|1"


def test_robot_error_code_is_a_failure_kept_for_retry(redis_client: redis.Redis, hook: Hook) -> None:
    hook.answer = {"errcode": 45009, "errmsg": "api freq out of limit"}
    p = plant_with("wecom", secret=False)
    store = AlertStore(redis_client)
    store.enqueue(Notice("a", "c", "raised", "info", "L1", None, "x", T0), T0)
    assert Sender(store, p, resolve_channels(p, {"HOOK_URL": hook.url}), clock=lambda: T0).pass_once() == 0
    assert store.pending() == 1 and store.channel_state("c") == (T0 + 1.0, 1)


def test_outbox_survives_an_hour_of_outage_and_a_restart(redis_client: redis.Redis) -> None:
    port = free_port()
    p = plant_with("json", secret=False)
    channels = resolve_channels(p, {"HOOK_URL": f"http://127.0.0.1:{port}/hook"})
    store = AlertStore(redis_client)
    for i in range(3):
        store.enqueue(Notice(f"a{i}", "c", "raised", "warning", "L1", None, f"alert {i}", T0 + i), T0 + i)
    clock = [T0 + 10]
    sender = Sender(store, p, channels, clock=lambda: clock[0])
    while clock[0] < T0 + 3600:  # nothing listens on the port: an hour of refused connections
        assert sender.pass_once() == 0
        clock[0] += 61
    assert store.pending() == 3
    assert store.channel_state("c")[1] >= 20  # it kept trying, backing off to a minute
    # the process restarts (new store and sender), the webhook comes back
    hook = Hook(port=port, answer={})
    try:
        restarted = Sender(AlertStore(redis.Redis.from_url(_url(redis_client))), p, channels, clock=lambda: clock[0])
        delivered = 0
        for _ in range(10):
            delivered += restarted.pass_once()
            clock[0] += 3.0  # the channel's rate limit
            if delivered == 3:
                break
        assert delivered == 3 and AlertStore(redis_client).pending() == 0
        assert sorted(json.loads(body)["text"] for _, _, body in hook.requests) == ["alert 0", "alert 1", "alert 2"]
    finally:
        hook.close()


def _url(client: redis.Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"


def test_test_command_sends_and_says_so(hook: Hook) -> None:
    p = plant_with("dingtalk", secret=True)
    said = send_test(p, "c", {"HOOK_URL": hook.url, "HOOK_SECRET": SECRET}, clock=lambda: T0)
    assert "delivered" in said and SECRET not in said and "robot-key" not in said
    assert "Test message to channel c" in json.loads(hook.requests[0][2])["text"]["content"]
    with pytest.raises(SystemExit, match="set the environment variable HOOK_URL"):
        send_test(p, "c", {})
    with pytest.raises(SystemExit, match="no alert channel 'x'"):
        send_test(p, "x", {})
    hook.status = 500
    with pytest.raises(SystemExit, match="not delivered: HTTP 500"):
        send_test(p, "c", {"HOOK_URL": hook.url, "HOOK_SECRET": SECRET})


def test_only_http_urls_make_a_channel(caplog: pytest.LogCaptureFixture) -> None:
    p = plant_with("json", secret=False)
    assert resolve_channels(p, {"HOOK_URL": "https://chat.example/hook?key=k"})["c"].on
    for url in ("file:///etc/passwd", "ftp://x/y", "no-scheme"):
        assert not resolve_channels(p, {"HOOK_URL": url})["c"].on
    assert "passwd" not in caplog.text and "HOOK_URL is not an http(s) URL" in caplog.text
