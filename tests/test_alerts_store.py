"""Alert evaluator and store on a real Redis: rules raised and cleared from the data the
collectors and the worker write, acknowledgement, escalation, no double raise, late data
recorded but not sent, the outbox across a restart."""

from __future__ import annotations

from typing import Any

import redis

from domain import contract
from domain.model import Event, Signal
from store.alert_loop import Evaluator
from store.alerts import AlertStore
from store.reader import PlantReader
from tests.core_support import machine_config, make_plant

T0 = float(int(__import__("time").time()) // 3600 * 3600 - 6 * 3600)  # a recent whole hour
CHANNELS = {"chat": {"type": "json", "url_env": "CHAT_URL"}, "boss": {"type": "json", "url_env": "BOSS_URL"}}


def plant(rules: list[dict[str, Any]]) -> Any:
    return make_plant(machines=[machine_config("M1"), machine_config("M2")],
                      alerts={"channels": CHANNELS, "rules": rules})


STOP_RULE = {"id": "long_stop", "kind": "stop", "minutes": 10, "severity": "urgent", "channels": ["chat", "boss"],
             "escalate_after_min": 5}


def write_live(client: redis.Redis, machine: str, state: str, since: float, last: float) -> None:
    """What the collector writes: the state event at its source time, a heartbeat later."""
    for event in (Event("L1", machine, Signal.STATE, state, "Good", since),
                  Event("L1", machine, Signal.HEARTBEAT, None, "Good", last)):
        field, value = contract.encode_live(event)
        client.hset(contract.live_key("L1"), field, value)


def evaluator(client: redis.Redis, rules: list[dict[str, Any]], on: set[str] | None = None) -> Evaluator:
    p = plant(rules)
    return Evaluator(PlantReader(client, p), AlertStore(client), p, {"chat", "boss"} if on is None else on)


def outbox(client: redis.Redis) -> list[tuple[str, str]]:
    store = AlertStore(client)
    return sorted((m["channel"], m["notice"]["event"]) for _, m in store.due(float("inf")))


def test_stop_raised_once_escalated_acknowledged_cleared(redis_client: redis.Redis) -> None:
    ev = evaluator(redis_client, [STOP_RULE])
    write_live(redis_client, "M1", "fault", T0, T0 + 590)
    assert ev.evaluate(T0 + 591, force=True).raised == []  # 9 min 50 s: not yet
    write_live(redis_client, "M1", "fault", T0, T0 + 601)
    step = ev.evaluate(T0 + 602, force=True)
    assert [(a.machine, a.since, a.severity) for a in step.raised] == [("M1", T0, "urgent")]
    assert outbox(redis_client) == [("chat", "raised")]
    # a new evaluator (a restart) does not raise it again
    assert evaluator(redis_client, [STOP_RULE]).evaluate(T0 + 603, force=True).raised == []
    store = AlertStore(redis_client)
    (alert,) = store.open_alerts().values()
    assert store.history(T0, T0 + 700)[0]["flashing"] is True

    write_live(redis_client, "M1", "fault", T0, T0 + 902)
    step = ev.evaluate(T0 + 903, force=True)  # 5 min after the first notice, unacknowledged
    assert [a.level for a in step.updated] == [1]
    assert outbox(redis_client) == [("boss", "escalated"), ("chat", "raised")]

    ack = store.acknowledge(alert.id, "li.wei", "supervisor", "fitter on the way", T0 + 910)
    assert ack is not None and ack["by"] == "li.wei"
    assert store.acknowledge(alert.id, "someone.else", "operator", "", T0 + 911)["by"] == "li.wei"  # type: ignore[index]
    assert store.history(T0, T0 + 1000)[0]["flashing"] is False
    assert store.acknowledge("no-such-alert", "x", "operator", "", T0) is None

    write_live(redis_client, "M1", "running", T0 + 1200, T0 + 1201)
    step = ev.evaluate(T0 + 1202, force=True)
    assert [a.id for a in step.cleared] == [alert.id]
    assert store.open_alerts() == {}
    assert ("chat", "cleared") in outbox(redis_client) and ("boss", "cleared") in outbox(redis_client)
    (entry,) = store.history(T0, T0 + 2000)
    assert entry["cleared_at"] == T0 + 1202 and entry["ack"]["comment"] == "fitter on the way"


def test_late_stop_is_recorded_not_sent(redis_client: redis.Redis) -> None:
    """An outage flush brings a 15-min stop that ended before the data arrived: history
    says so (late), no channel is told, the wall does not flash."""
    ev = evaluator(redis_client, [STOP_RULE])
    redis_client.zadd(contract.stops_key("L1"),
                      {contract.encode_stop_member("M1", T0, T0 + 900, "fault", 0): T0})
    write_live(redis_client, "M1", "running", T0 + 900, T0 + 1500)
    step = ev.evaluate(T0 + 1501, force=True)
    assert step.raised == [] and step.notices == []
    assert [(a.machine, a.since, a.cleared_at, a.late) for a in step.late] == [("M1", T0, T0 + 900, True)]
    assert outbox(redis_client) == []
    (entry,) = AlertStore(redis_client).history(T0 - 1, T0 + 2000)
    assert entry["late"] is True and entry["flashing"] is False
    assert ev.evaluate(T0 + 1520, force=True).late == []  # recorded once


def test_channel_off_gets_nothing_and_no_data_rule(redis_client: redis.Redis) -> None:
    rule = {"id": "silent", "kind": "no_data", "seconds": 60, "machine": "M2", "channels": ["chat"]}
    ev = evaluator(redis_client, [rule], on=set())
    write_live(redis_client, "M2", "running", T0, T0)
    assert ev.evaluate(T0, force=True).raised == []  # watching from T0 (a silence from before is judged later)
    assert ev.evaluate(T0 + 30, force=True).raised == []
    step = ev.evaluate(T0 + 61, force=True)
    assert [a.machine for a in step.raised] == ["M2"]
    assert outbox(redis_client) == []  # the channel is off
    write_live(redis_client, "M2", "running", T0, T0 + 62)
    assert [a.machine for a in ev.evaluate(T0 + 63, force=True).cleared] == ["M2"]


def test_implausible_and_worker_lag(redis_client: redis.Redis) -> None:
    from domain.plausibility import Flag

    rules = [{"id": "odd", "kind": "implausible", "seconds": 300},
             {"id": "lag", "kind": "worker_lag", "seconds": 120}]
    ev = evaluator(redis_client, rules)
    flag = Flag("L1", "M1", "good", T0 + 10, "counter_jump", 5_000_000)
    redis_client.zadd(contract.flags_key("L1"), {contract.encode_flag_member(flag): flag.ts})
    redis_client.hset(contract.rollup_state_key("L1"), "beat", T0 - 200)  # the worker's last pass
    step = ev.evaluate(T0 + 20, force=True)
    assert sorted((a.rule, a.machine) for a in step.raised) == [("lag", None), ("odd", "M1")]
    redis_client.hset(contract.rollup_state_key("L1"), "beat", T0 + 395)
    assert sorted(a.rule for a in ev.evaluate(T0 + 400, force=True).cleared) == ["lag", "odd"]


def test_outbox_survives_a_restart_and_keeps_retrying(redis_client: redis.Redis) -> None:
    from store.notify import Channel, DeliveryError, Sender, resolve_channels

    p = plant([])
    ev = evaluator(redis_client, [STOP_RULE])
    write_live(redis_client, "M1", "fault", T0, T0 + 700)
    ev.evaluate(T0 + 701, force=True)
    channels: dict[str, Channel] = resolve_channels(p, {"CHAT_URL": "http://127.0.0.1:9/x", "BOSS_URL": "http://b"})
    clock = [T0 + 702]
    tried: list[str] = []

    def down(url: str, body: bytes, headers: Any) -> None:
        tried.append(url)
        raise DeliveryError("not reachable")

    sender = Sender(AlertStore(redis_client), p, channels, clock=lambda: clock[0], transport=down)
    for _ in range(12):  # an hour of outage in backoff steps
        sender.pass_once()
        clock[0] += 300
    assert len(tried) == 12 and AlertStore(redis_client).pending() == 1
    delivered: list[bytes] = []
    restarted = Sender(AlertStore(redis_client), p, channels, clock=lambda: clock[0],
                       transport=lambda url, body, headers: delivered.append(body))
    assert restarted.pass_once() == 1
    assert b'"event":"raised"' in delivered[0] and AlertStore(redis_client).pending() == 0


def test_rate_limit_per_channel(redis_client: redis.Redis) -> None:
    from domain.alerts import Notice
    from store.notify import Sender, resolve_channels

    p = plant([])
    store = AlertStore(redis_client)
    for i in range(3):
        store.enqueue(Notice(f"a{i}", "chat", "raised", "info", "L1", None, f"n{i}", T0 + i), T0 + i)
    clock = [T0 + 10]
    sent: list[bytes] = []
    sender = Sender(store, p, resolve_channels(p, {"CHAT_URL": "http://c"}), clock=lambda: clock[0],
                    transport=lambda url, body, headers: sent.append(body))
    assert sender.pass_once() == 1
    clock[0] += 2.9  # min_interval_s 3
    assert sender.pass_once() == 0
    clock[0] += 0.1
    assert sender.pass_once() == 1
    assert [b'"text":"n0"' in sent[0], b'"text":"n1"' in sent[1]] == [True, True]


def test_urgent_messages_go_first_on_a_rate_limited_channel(redis_client: redis.Redis) -> None:
    from domain.alerts import Notice
    from store.notify import Sender, resolve_channels

    p = plant([])
    store = AlertStore(redis_client)
    for i in range(3):
        store.enqueue(Notice(f"w{i}", "chat", "raised", "warning", "L1", None, f"w{i}", T0 + i), T0 + i)
    store.enqueue(Notice("u", "chat", "raised", "urgent", "L1", "M1", "stop", T0 + 5), T0 + 5)
    sent: list[dict[str, Any]] = []
    sender = Sender(store, p, resolve_channels(p, {"CHAT_URL": "http://c"}), clock=lambda: T0 + 6,
                    transport=lambda url, body, headers: sent.append(__import__("json").loads(body)))
    assert sender.pass_once() == 1
    assert sent[0]["alert_id"] == "u"


def test_oee_and_pace_rules_from_the_worker_rollups(redis_client: redis.Redis) -> None:
    """A replayed production from the shift's start at 02:00: an hour at half speed (OEE
    50 %, 41 % behind pace), then an hour at full speed; the rules read the worker's
    figures through the reader (pace: ``domain.andon``, as /api/lines serves it)."""
    from tests.history import write_events
    from tests.store_support import RECENT, run_worker_until_drained

    t0 = RECENT + 2 * 3600.0
    p = make_plant(machines=[machine_config("M1", ideal=30.0)], shifts=[{"name": "day", "start": "02:00",
                                                                         "end": "14:00"}],
                   alerts={"channels": CHANNELS, "rules": [
        {"id": "low_oee", "kind": "oee_below", "below": 0.6, "channels": ["chat"]},
        {"id": "pace", "kind": "behind_pace", "percent": 20, "channels": ["chat"]}]})

    def hour(start: float, every_s: float, first_count: int) -> list[Event]:
        events = [Event("L1", "M1", Signal.STATE, "running", "Good", start)] if first_count == 0 else []
        events += [Event("L1", "M1", Signal.HEARTBEAT, None, "Good", start + s) for s in range(5, 3600, 10)]
        n, t = first_count, start
        while t < start + 3600.0:
            t += every_s
            n += 1
            events.append(Event("L1", "M1", Signal.GOOD, n, "Good", t))
        return sorted(events, key=lambda e: e.ts)

    ev = Evaluator(PlantReader(redis_client, p), AlertStore(redis_client), p, {"chat"})
    write_events(redis_client, [Event("L1", "M1", Signal.GOOD, 0, "Good", t0), *hour(t0, 60.0, 0)])
    run_worker_until_drained(redis_client, p, t0 + 3600.0 + 120)
    step = ev.evaluate(t0 + 3600.0 + 1, force=True)
    assert sorted(a.rule for a in step.raised) == ["low_oee", "pace"]
    assert outbox(redis_client) == [("chat", "raised"), ("chat", "raised")]

    write_events(redis_client, hour(t0 + 3600.0, 30.0, 60))
    run_worker_until_drained(redis_client, p, t0 + 7200.0 + 120)
    step = ev.evaluate(t0 + 7200.0 + 1, force=True)
    assert sorted(a.rule for a in step.cleared) == ["low_oee", "pace"]  # OEE 100 %; 180 of 204 parts: 12 % behind


def test_outage_flush_mid_way_does_not_page(redis_client: redis.Redis) -> None:
    """A collector flushes 25 min of buffered data after an outage: half-way through, the
    live hash says "fault for 12 min" but that data is minutes old (the machine is
    unknown now, not stopped); at the end it says running. Nothing is raised or sent;
    the 15-min stop is in the history as late once the worker has written it."""
    ev = evaluator(redis_client, [STOP_RULE])
    now = T0 + 1500  # the wall clock during the flush
    write_live(redis_client, "M1", "fault", T0, T0 + 720)  # flushed so far
    assert ev.evaluate(now, force=True).raised == []
    write_live(redis_client, "M1", "running", T0 + 900, now - 2)  # the flush is through
    redis_client.zadd(contract.stops_key("L1"), {contract.encode_stop_member("M1", T0, T0 + 900, "fault", 0): T0})
    step = ev.evaluate(now + 1, force=True)
    assert step.raised == [] and step.notices == [] and [a.late for a in step.late] == [True]
    assert outbox(redis_client) == []


def test_every_change_and_acknowledgement_bumps_the_screens_counter(redis_client: redis.Redis) -> None:
    store = AlertStore(redis_client)
    ev = evaluator(redis_client, [STOP_RULE])
    assert store.version() == 0
    write_live(redis_client, "M1", "fault", T0, T0 + 590)
    ev.evaluate(T0 + 591, force=True)  # nothing raised yet: nothing to tell the screens
    assert store.version() == 0
    write_live(redis_client, "M1", "fault", T0, T0 + 601)
    ev.evaluate(T0 + 602, force=True)  # raised
    assert store.version() == 1
    ev.evaluate(T0 + 603, force=True)  # the same: no change
    assert store.version() == 1
    (alert,) = store.open_alerts().values()
    store.acknowledge(alert.id, "li.wei", "supervisor", "", T0 + 610)
    assert store.version() == 2
    store.acknowledge(alert.id, "someone.else", "operator", "", T0 + 611)  # the first one stands: no change
    assert store.version() == 2
    write_live(redis_client, "M1", "running", T0 + 1200, T0 + 1201)
    ev.evaluate(T0 + 1202, force=True)  # cleared
    assert store.version() == 3
