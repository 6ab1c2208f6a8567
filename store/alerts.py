"""Alert state, history, acknowledgements and the notification outbox in Redis
(key names: ``domain.contract.alerts_key``; README "Alerts").

Why an outbox: evaluation must never wait for a chat server. The evaluator writes its
step and the messages it calls for in one transaction; the sender (``store.notify``)
takes them from there, retries with backoff, and deletes a message only once a webhook
took it. A webhook down for an hour, or the whole process restarted meanwhile, loses
nothing: the messages wait in Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, cast

import redis

from domain import answers, contract
from domain.alerts import Alert, Notice, Step, flashing

HISTORY_DAYS = 90.0  # alerts older than this are trimmed from the history
KNOWN_IDS_S = 3 * 86_400.0  # how far back "raised before" is remembered for a condition seen again


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def message_id(notice: Notice) -> str:
    """Deterministic: the same notice written twice (an evaluation retried) is one message."""
    return f"{notice.alert_id}>{notice.channel}>{notice.event}" if notice.event != "test" else (
        f"test>{notice.channel}>{notice.at!r}")


class AlertStore:
    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client
        self.k = {part: contract.alerts_key(part) for part in contract.ALERT_PARTS}

    # --- state ------------------------------------------------------------------------------

    def open_alerts(self) -> dict[str, Alert]:
        """Open alerts by key."""
        ids = [_text(v) for v in self.redis.hvals(self.k["open"])]
        return {alert.key: alert for alert in self.get_many(ids) if alert.cleared_at is None}

    def get_many(self, ids: list[str]) -> list[Alert]:
        if not ids:
            return []
        raws: Any = self.redis.hmget(self.k["all"], ids)
        return [Alert.from_dict(json.loads(raw)) for raw in raws if raw]

    def get(self, alert_id: str) -> Alert | None:
        found = self.get_many([alert_id])
        return found[0] if found else None

    def known_ids(self, now: float) -> set[str]:
        """Ids raised (or recorded late) recently: a condition seen again is not raised again."""
        return {_text(v) for v in self.redis.zrangebyscore(self.k["log"], now - KNOWN_IDS_S, "+inf")}

    def acknowledged(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids:
            return set()
        raws: Any = self.redis.hmget(self.k["ack"], ids)
        return {alert_id for alert_id, raw in zip(ids, raws, strict=True) if raw}

    def apply(self, step: Step, channels_on: set[str], now: float) -> None:
        """One evaluation's changes and the messages it calls for (to channels that are on),
        in one transaction."""
        with self.redis.pipeline(transaction=True) as pipe:
            for alert in [*step.raised, *step.updated, *step.cleared, *step.late]:
                pipe.hset(self.k["all"], alert.id, json.dumps(alert.to_dict(), separators=(",", ":")))
            for alert in step.raised:
                pipe.hset(self.k["open"], alert.key, alert.id)
            for alert in [*step.raised, *step.late]:
                pipe.zadd(self.k["log"], {alert.id: alert.raised_at})
            for alert in step.cleared:
                pipe.hdel(self.k["open"], alert.key)
            for notice in step.notices:
                if notice.channel in channels_on:
                    self._enqueue(pipe, notice, now)
            if step.raised or step.updated or step.cleared or step.late:
                pipe.incr(self.k["ver"])  # the screens' live feed: alerts changed
            pipe.execute()

    def acknowledge(self, alert_id: str, by: str, role: str, comment: str, now: float) -> answers.AlertAck | None:
        """Record who acknowledged, when and why; the first acknowledgement stands (None:
        no such alert)."""
        if not self.redis.hexists(self.k["all"], alert_id):
            return None
        record = {"by": by, "role": role, "at": now, "comment": comment}
        if self.redis.hsetnx(self.k["ack"], alert_id, json.dumps(record, separators=(",", ":"))):
            self.redis.incr(self.k["ver"])  # the screens' live feed: it stops flashing
        return self.ack_of(alert_id)

    def version(self) -> int:
        """The alerts' change counter (``plant:{alerts}:ver``; 0 before any change)."""
        return int(self.redis.get(self.k["ver"]) or 0)

    def ack_of(self, alert_id: str) -> answers.AlertAck | None:
        raw = self.redis.hget(self.k["ack"], alert_id)
        return json.loads(raw) if raw else None

    def history(self, start: float, end: float, *, line: str | None = None, open_only: bool = False,
                limit: int = 500) -> list[answers.Alert]:
        """Alerts raised in [start, end] (and every open one), newest first, each with its
        acknowledgement and whether the wall flashes for it."""
        ids = [_text(v) for v in self.redis.zrevrangebyscore(self.k["log"], end, start, start=0, num=limit)]
        ids += [_text(v) for v in self.redis.hvals(self.k["open"]) if _text(v) not in ids]
        alerts = [a for a in self.get_many(ids) if line is None or a.line == line]
        if open_only:
            alerts = [a for a in alerts if a.cleared_at is None]
        acks: Any = self.redis.hmget(self.k["ack"], [a.id for a in alerts]) if alerts else []
        out: list[answers.Alert] = []
        for alert, raw in zip(alerts, acks, strict=True):
            ack = json.loads(raw) if raw else None
            out.append(cast(answers.Alert, {**alert.to_dict(), "ack": ack,
                                            "flashing": flashing(alert, ack is not None)}))
        return sorted(out, key=lambda a: a["raised_at"], reverse=True)

    def count(self, line: str, start: float, end: float) -> int:
        """Alerts of ``line`` whose condition began in [start, end) (data time: a shift's
        alerts, late ones included)."""
        ids = [_text(v) for v in self.redis.zrangebyscore(self.k["log"], start, end + 86_400.0)]
        return sum(1 for a in self.get_many(ids) if a.line == line and start <= a.since < end)

    def trim(self, now: float) -> int:
        """Forget alerts older than ``HISTORY_DAYS`` (never an open one)."""
        cutoff = now - HISTORY_DAYS * 86_400.0
        old = [_text(v) for v in self.redis.zrangebyscore(self.k["log"], "-inf", cutoff)]
        open_ids = {_text(v) for v in self.redis.hvals(self.k["open"])}
        old = [i for i in old if i not in open_ids]
        if old:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.k["log"], *old)
                pipe.hdel(self.k["all"], *old)
                pipe.hdel(self.k["ack"], *old)
                pipe.execute()
        return len(old)

    # --- outbox -------------------------------------------------------------------------------

    def _enqueue(self, pipe: Any, notice: Notice, now: float) -> None:
        mid = message_id(notice)
        body = {"channel": notice.channel, "notice": notice.to_dict(), "tries": 0, "first": now}
        pipe.hsetnx(self.k["outbox:msg"], mid, json.dumps(body, separators=(",", ":")))
        pipe.zadd(self.k["outbox"], {mid: now}, nx=True)

    def enqueue(self, notice: Notice, now: float) -> str:
        with self.redis.pipeline(transaction=True) as pipe:
            self._enqueue(pipe, notice, now)
            pipe.execute()
        return message_id(notice)

    def due(self, now: float, limit: int = 100) -> list[tuple[str, dict[str, Any]]]:
        """Messages due by ``now``, oldest first."""
        ids = [_text(v) for v in self.redis.zrangebyscore(self.k["outbox"], "-inf", now, start=0, num=limit)]
        if not ids:
            return []
        raws: Any = self.redis.hmget(self.k["outbox:msg"], ids)
        out = []
        for mid, raw in zip(ids, raws, strict=True):
            if raw:
                out.append((mid, json.loads(raw)))
            else:  # a message without a body cannot be sent: drop its entry
                self.redis.zrem(self.k["outbox"], mid)
        return out

    def pending(self) -> int:
        return int(self.redis.zcard(self.k["outbox"]))

    def delivered(self, mid: str) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.k["outbox"], mid)
            pipe.hdel(self.k["outbox:msg"], mid)
            pipe.execute()

    def retry(self, mid: str, message: dict[str, Any], due_at: float) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.k["outbox:msg"], mid, json.dumps({**message, "tries": message.get("tries", 0) + 1},
                                                            separators=(",", ":")))
            pipe.zadd(self.k["outbox"], {mid: due_at}, xx=True)
            pipe.execute()

    def give_up(self, mid: str, message: dict[str, Any], why: str) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self.k["dead"], json.dumps({**message, "id": mid, "why": why}, separators=(",", ":")))
            pipe.zrem(self.k["outbox"], mid)
            pipe.hdel(self.k["outbox:msg"], mid)
            pipe.execute()

    def channel_state(self, channel: str) -> tuple[float, int]:
        """(time before which nothing goes to the channel, failures in a row)."""
        raw: Any = self.redis.hmget(self.k["chan"], [f"{channel}:next", f"{channel}:fails"])
        return float(raw[0] or 0.0), int(raw[1] or 0)

    def set_channel_state(self, channel: str, next_at: float, fails: int) -> None:
        self.redis.hset(self.k["chan"], mapping={f"{channel}:next": repr(next_at), f"{channel}:fails": fails})
