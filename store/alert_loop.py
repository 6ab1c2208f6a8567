"""The alert evaluator: a part of its own (``python app.py alerts``; ``python app.py``
starts it beside the rollup worker). Every second it reads the figures the rules need
through ``store.reader.PlantReader`` (live state, health, KPIs, downtime, flags), lets
``domain.alerts`` decide, and writes the step and its messages to ``store.alerts``; a
sender thread (``store.notify.Sender``) delivers them, so a slow webhook never delays
an evaluation.

Reads are paced by what they cost: live state (stops, silence) every pass, the worker's
health every 5 s, KPI rules (pace, OEE) and late stops every 15 s. A rule not evaluated
in a pass keeps its alerts as they are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from domain import alerts, answers
from domain.alerts import Condition, Notice, Step
from domain.andon import LineAndon
from domain.plant import AlertKind, Plant
from store.alerts import AlertStore
from store.notify import Sender, resolve_channels
from store.reader import PlantReader

log = logging.getLogger(__name__)

HEALTH_EVERY_S = 5.0
KPI_EVERY_S = 15.0
LATE_LOOKBACK_S = 2 * 3600.0  # late stops are looked for in the last two hours


class Evaluator:
    def __init__(self, reader: PlantReader, store: AlertStore, plant: Plant, channels_on: set[str]) -> None:
        self.reader = reader
        self.store = store
        self.plant = plant
        self.rules = {rule.id: rule for rule in plant.alerts.rules}
        self.channels_on = channels_on
        self._last: dict[str, float] = {}
        self.started: float | None = None  # the first evaluation's time: silence is counted from it

    def _due(self, what: str, every_s: float, now: float, force: bool) -> bool:
        if force or now - self._last.get(what, -1e18) >= every_s:
            self._last[what] = now
            return True
        return False

    def conditions(self, now: float, *, force: bool = False) -> list[Condition]:
        """What the rules find at ``now`` (``force``: every rule, whatever its pace)."""
        kinds = alerts.kinds_needed(self.rules.values())
        if self.started is None:
            self.started = now
        out: list[Condition] = []
        lines_now: Mapping[str, Any] = {}
        if kinds & {AlertKind.STOP, AlertKind.NO_DATA}:
            lines_now = self.reader.lines(now)
        health = None
        if AlertKind.WORKER_LAG in kinds and self._due("health", HEALTH_EVERY_S, now, force):
            health = {line["id"]: line for line in self.reader.health(now).get("lines", [])}
        slow = self._due("kpis", KPI_EVERY_S, now, force)
        late_stops: dict[str, list[answers.StopEvent]] = {}
        andons: dict[str, LineAndon] | None = None
        for rule in self.rules.values():
            lines = alerts.rule_lines(rule, self.plant)
            if rule.kind == AlertKind.STOP:
                if slow:
                    for line in lines:
                        if line.id not in late_stops:
                            late_stops[line.id] = self.reader.downtime(line.id, now - LATE_LOOKBACK_S, now,
                                                                       now)["events"]
                out += alerts.stop_conditions(rule, self.plant, lines_now, late_stops)
            elif rule.kind == AlertKind.NO_DATA:
                out += alerts.no_data_conditions(rule, self.plant, lines_now, now, self.started)
            elif rule.kind == AlertKind.WORKER_LAG and health is not None:
                out += [alerts.worker_lag_condition(rule, health[line.id], now) for line in lines if line.id in health]
            elif rule.kind == AlertKind.BEHIND_PACE and slow:
                if andons is None:  # each line's pace this shift, as /api/lines serves it
                    andons = self.reader.andon_now(now, dict(lines_now) or None)[1]
                out += [alerts.pace_condition(rule, line, andons[line.id].pace) for line in lines]
            elif rule.kind == AlertKind.OEE_BELOW and slow:
                found = (alerts.oee_condition(rule, line, self.reader.line_kpis(line.id, now - 3600.0, now, now))
                         for line in lines)
                out += [cond for cond in found if cond is not None]
            elif rule.kind == AlertKind.IMPLAUSIBLE:
                hold = rule.seconds or alerts.IMPLAUSIBLE_HOLD_S
                out += [c for line in lines
                        for c in alerts.implausible_conditions(rule, line, self.reader.flags(line.id, rule.machine,
                                                                                            now - hold, now, now))]
        return out

    def evaluate(self, now: float, *, force: bool = False) -> Step:
        """One pass: conditions, lifecycle, written with its messages in one transaction."""
        open_alerts = self.store.open_alerts()
        conditions = self.conditions(now, force=force)
        acked = self.store.acknowledged(a.id for a in open_alerts.values())
        step = alerts.step(open_alerts, conditions, self.rules, acked, self.store.known_ids(now), now)
        if step.raised or step.updated or step.cleared or step.late:
            self.store.apply(step, self.channels_on, now)
            for alert in step.raised:
                log.info("alert raised: %s (%s)", alert.text, alert.severity)
            for alert in step.cleared:
                log.info("alert cleared: %s", alert.text)
        return step


def send_test(plant: Plant, channel_name: str, env: Mapping[str, str],
              clock: Callable[[], float] = time.time) -> str:
    """Send one test message now, straight to the webhook (not through the outbox: the
    person at the console wants the answer). Returns what happened, in words."""
    from store.notify import DeliveryError, build_request, post

    channels = resolve_channels(plant, env)
    channel = channels.get(channel_name)
    if channel is None:
        known = ", ".join(channels) or "none"
        raise SystemExit(f"no alert channel {channel_name!r} in the plant file (known: {known})")
    if not channel.on:
        raise SystemExit(f"alert channel {channel_name} is off: set the environment variable {channel.config.url_env}")
    now = clock()
    notice = Notice("test", channel_name, "test", "info", "-", None, f"Test message to channel {channel_name}", now)
    url, body, headers = build_request(channel, notice.to_dict(), str(plant.name), now)
    try:
        post(url, body, headers)
    except DeliveryError as exc:
        raise SystemExit(f"alert channel {channel_name}: test message not delivered: {exc}") from None
    return f"alert channel {channel_name} ({channel.config.type}): test message delivered"


def run_alerts(redis_client: redis.Redis, plant: Plant, stop: threading.Event, env: Mapping[str, str], *,
               interval_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
    """Evaluator and sender until ``stop``. Redis errors are logged once per outage."""
    if not plant.alerts.rules:
        log.info("no alert rules in the plant file: the alert evaluator idles")
    store = AlertStore(redis_client)
    channels = resolve_channels(plant, env)
    sender = Sender(store, plant, channels, clock=clock)
    sender_thread = threading.Thread(target=sender.run, args=(stop,), name="alert-sender", daemon=True)
    sender_thread.start()
    evaluator = Evaluator(PlantReader(redis_client, plant), store, plant,
                          {name for name, ch in channels.items() if ch.on})
    down = False
    last_trim = 0.0
    while not stop.is_set():
        started = time.monotonic()
        try:
            now = clock()
            if plant.alerts.rules:
                evaluator.evaluate(now)
            if now - last_trim > 3600.0:
                store.trim(now)
                last_trim = now
            if down:
                log.info("alert evaluator: Redis answers again")
                down = False
        except redis.RedisError as exc:
            if not down:
                log.warning("alert evaluator: Redis unavailable (%s)", exc)
                down = True
        except Exception:
            log.exception("alert evaluation failed")
        stop.wait(max(0.05, interval_s - (time.monotonic() - started)))
    sender_thread.join(10)


def main(settings: Any, action: str | None, channel: str | None) -> int:
    """``python app.py alerts``: evaluator and sender until SIGTERM or Ctrl-C;
    ``python app.py alerts test CHANNEL``: one test message to a channel."""
    import os
    import signal

    from store.clients import client_for

    if action == "test":
        if not channel:
            raise SystemExit("usage: python app.py alerts test CHANNEL")
        print(send_test(settings.plant, channel, os.environ), flush=True)
        return 0
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is not set: the alert evaluator needs the Redis the collectors write to")
    client = client_for(settings, "worker")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_alerts(client, settings.plant, stop, os.environ)
    except KeyboardInterrupt:
        stop.set()
    return 0
