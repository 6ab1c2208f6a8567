"""Webhook channels: message formats, signing, and the sender that empties the outbox
(``store.alerts``; README "Alerts").

Formats: WeCom group robot (企业微信群机器人), DingTalk custom robot (钉钉自定义机器人,
"加签": HMAC-SHA256 of ``timestamp\\nsecret`` keyed with the secret, in the URL),
Feishu custom bot (飞书自定义机器人, "签名校验": HMAC-SHA256 keyed with
``timestamp\\nsecret``, in the body), and generic JSON (the alert as JSON, with an
``X-Signature-256: sha256=<hex HMAC of the body>`` header when a secret is set).

URLs and secrets come from the environment variables the plant file names; they are
never logged (a robot's URL carries its key). A channel whose URL variable is unset is
off, said once at INFO.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.plant import AlertChannel, ChannelType, Plant
from store.alerts import AlertStore

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
MAX_BACKOFF_S = 60.0  # a webhook back up is used again within a minute
GIVE_UP_S = 48 * 3600.0  # a message undeliverable for two days goes to the dead list
URGENCY = {"urgent": 0, "warning": 1, "info": 2}  # sending order among due messages
EVENT_WORDS = {"raised": "ALERT", "escalated": "ESCALATED", "cleared": "CLEARED", "test": "TEST"}


class DeliveryError(Exception):
    """The webhook did not take the message (HTTP error, refused, or an error code)."""


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    config: AlertChannel
    url: str | None
    secret: str | None

    @property
    def on(self) -> bool:
        return bool(self.url)


def resolve_channels(plant: Plant, env: Mapping[str, str]) -> dict[str, Channel]:
    """The plant's channels with their URL and secret from ``env``; one INFO line per
    channel that is off (its URL variable unset)."""
    out = {}
    for name, cfg in plant.alerts.channels.items():
        url = env.get(cfg.url_env) or None
        secret = env.get(cfg.secret_env) if cfg.secret_env else None
        if url is None:
            log.info("alert channel %s is off: environment variable %s is not set", name, cfg.url_env)
        elif urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            log.warning("alert channel %s is off: %s is not an http(s) URL", name, cfg.url_env)  # never the URL
            url = None
        elif cfg.type in (ChannelType.DINGTALK, ChannelType.FEISHU) and not secret and cfg.secret_env:
            log.warning("alert channel %s: environment variable %s (signing secret) is not set: sending unsigned",
                        name, cfg.secret_env)
        out[name] = Channel(name, cfg, url, secret or None)
    return out


def message_text(notice: Mapping[str, Any], plant_name: str) -> str:
    """One short plain-text message (what every chat shows in its notification)."""
    word = EVENT_WORDS.get(str(notice.get("event")), str(notice.get("event")).upper())
    severity = str(notice.get("severity") or "").upper()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(notice.get("at") or 0)))
    return f"[{word} {severity}] {notice.get('text') or ''}\n{plant_name} · {stamp}".strip()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(key=secret, msg="<timestamp ms>\\n<secret>"))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's signature: base64(HMAC-SHA256(key="<timestamp s>\\n<secret>", msg=empty))."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def json_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def build_request(channel: Channel, notice: Mapping[str, Any], plant_name: str,
                  now: float) -> tuple[str, bytes, dict[str, str]]:
    """URL, body and headers of one message."""
    assert channel.url is not None
    text = message_text(notice, plant_name)
    url = channel.url
    headers = {"Content-Type": "application/json; charset=utf-8"}
    kind = channel.config.type
    if kind == ChannelType.WECOM:
        payload: dict[str, Any] = {"msgtype": "text", "text": {"content": text}}
    elif kind == ChannelType.DINGTALK:
        payload = {"msgtype": "text", "text": {"content": text}}
        if channel.secret:
            ts = int(now * 1000)
            sign = urllib.parse.quote_plus(dingtalk_sign(channel.secret, ts))
            url += ("&" if "?" in url else "?") + f"timestamp={ts}&sign={sign}"
    elif kind == ChannelType.FEISHU:
        payload = {"msg_type": "text", "content": {"text": text}}
        if channel.secret:
            ts = int(now)
            payload = {"timestamp": str(ts), "sign": feishu_sign(channel.secret, ts), **payload}
    else:
        payload = {**notice, "plant": plant_name, "message": text}
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    if kind == ChannelType.JSON and channel.secret:
        headers["X-Signature-256"] = json_signature(channel.secret, body)
    return url, body, headers


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float = TIMEOUT_S) -> None:
    """POST; raises DeliveryError unless 2xx and (for the robots) an error code of 0.
    The message never contains the URL (it carries the robot's key)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (URL from the plant's env)
            raw = response.read(65_536)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"not reachable ({type(reason).__name__})") from None
    try:
        answer = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return  # a generic webhook may answer anything
    if isinstance(answer, dict):
        code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0)))
        if code not in (0, None, "0"):
            raise DeliveryError(f"refused: code {code} {str(answer.get('errmsg') or answer.get('msg') or '')[:80]}")


class Sender:
    """Empties the outbox: per channel in order, at most one message per
    ``min_interval_s``, after a failure backing off (1, 2, 4 ... 60 s) for the channel."""

    def __init__(self, store: AlertStore, plant: Plant, channels: Mapping[str, Channel],
                 clock: Callable[[], float] = time.time,
                 transport: Callable[[str, bytes, Mapping[str, str]], None] = post) -> None:
        self.store = store
        self.plant = plant
        self.channels = channels
        self.clock = clock
        self.transport = transport
        self._warned: set[str] = set()

    def pass_once(self) -> int:
        """Send what is due; returns how many messages went out."""
        now = self.clock()
        sent = 0
        blocked: set[str] = set()
        # urgent first: a rate-limited channel must not hold a stop behind a pile of warnings
        due = sorted(self.store.due(now), key=lambda item: URGENCY.get(str(item[1]["notice"].get("severity")), 1))
        for mid, message in due:
            name = str(message.get("channel"))
            channel = self.channels.get(name)
            if channel is None or not channel.on:
                self.store.give_up(mid, message, "channel unknown or off")
                continue
            if name in blocked:
                continue
            next_at, fails = self.store.channel_state(name)
            if now < next_at:
                blocked.add(name)  # rate limit or backoff: keep the channel's order
                continue
            if self._send(channel, mid, message, fails, now):
                sent += 1
            blocked.add(name)  # one message per channel per pass: the rate limit is re-read next pass
            now = self.clock()
        return sent

    def _send(self, channel: Channel, mid: str, message: dict[str, Any], fails: int, now: float) -> bool:
        url, body, headers = build_request(channel, message["notice"], str(self.plant.name), now)
        try:
            self.transport(url, body, headers)
        except DeliveryError as exc:
            backoff = min(MAX_BACKOFF_S, 2.0 ** fails)
            if channel.name not in self._warned:
                log.warning("alert channel %s: %s; retrying with backoff, messages kept", channel.name, exc)
                self._warned.add(channel.name)
            if now - float(message.get("first", now)) > GIVE_UP_S:
                log.error("alert channel %s: message %s undeliverable for 48 h, moved to the dead list",
                          channel.name, mid)
                self.store.give_up(mid, message, str(exc))
            else:
                self.store.retry(mid, message, now + backoff)
            self.store.set_channel_state(channel.name, now + backoff, fails + 1)
            return False
        if channel.name in self._warned:
            log.info("alert channel %s delivers again", channel.name)
            self._warned.discard(channel.name)
        self.store.delivered(mid)
        self.store.set_channel_state(channel.name, now + channel.config.min_interval_s, 0)
        return True

    def run(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Until ``stop``: a pass every ``poll_s``; Redis errors are logged once and retried."""
        import redis

        down = False
        while not stop.is_set():
            try:
                self.pass_once()
                if down:
                    log.info("alert sender: Redis answers again")
                    down = False
            except redis.RedisError as exc:
                if not down:
                    log.warning("alert sender: Redis unavailable (%s); messages wait in the outbox", exc)
                    down = True
            stop.wait(poll_s)
