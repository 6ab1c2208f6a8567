"""Alert rules and lifecycle (domain.alerts): hand-computed tables, no I/O."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from domain import alerts, andon
from domain.alerts import Alert, Condition
from domain.plant import AlertRule
from tests.core_support import machine_config, make_plant

T0 = 1_700_000_000.0
CHANNELS = {"chat": {"type": "json", "url_env": "A_URL"}, "boss": {"type": "wecom", "url_env": "B_URL"}}


def plant_with(rules: list[dict[str, Any]]) -> Any:
    return make_plant(machines=[machine_config("M1"), machine_config("M2")],
                      alerts={"channels": CHANNELS, "rules": rules})


def rule(**kw: Any) -> AlertRule:
    return AlertRule.model_validate({"id": "r", "channels": ["chat", "boss"], **kw})


def live(state: str, since: float | None, last: float | None, reason: dict[str, Any] | None = None,
         machine: str = "M1") -> dict[str, Any]:
    return {"lines": [{"id": "L1", "machines": [
        {"id": machine, "name": "", "state": state, "since": since, "last_data": last, "reason": reason}]}]}


FAILURE = {"code": 1, "text": "Jam", "category": "equipment_failure", "planned": False}
MAINT = {"code": 4, "text": "Maintenance", "category": "planned", "planned": True}


@pytest.mark.parametrize(("state", "since", "last", "reason", "extra", "active"), [
    ("fault", T0, T0 + 599, None, {}, False),  # 9 min 59 s of a 10 min rule
    ("fault", T0, T0 + 600, None, {}, True),  # exactly 10 min: crossed
    ("idle", T0, T0 + 900, FAILURE, {}, True),
    ("running", T0, T0 + 900, None, {}, False),
    ("planned_stop", T0, T0 + 900, None, {"unplanned_only": True}, False),
    ("idle", T0, T0 + 900, MAINT, {"unplanned_only": True}, False),
    ("idle", T0, T0 + 900, FAILURE, {"unplanned_only": True}, True),
    ("changeover", T0, T0 + 900, None, {"category": "setup_adjustment"}, True),
    ("fault", T0, T0 + 900, None, {"category": "setup_adjustment"}, False),
    ("starved", T0, T0 + 900, None, {"category": "starved_blocked"}, True),
])
def test_stop_rule_on_data_time(state: str, since: float, last: float, reason: Any, extra: dict[str, Any],
                                active: bool) -> None:
    plant = plant_with([])
    found = alerts.stop_conditions(rule(kind="stop", minutes=10, **extra), plant,
                                   live(state, since, last, reason), {})
    m1 = [c for c in found if c.machine == "M1"]
    assert [c.active for c in m1] == [active]
    assert (m1[0].since == since) is active


def test_stop_measured_to_the_data_not_the_clock() -> None:
    """A machine whose data is 20 min old but 5 min into a stop is 5 min into it."""
    found = alerts.stop_conditions(rule(kind="stop", minutes=10), plant_with([]), live("fault", T0, T0 + 300), {})
    assert not found[0].active


def test_stop_of_an_unknown_machine_says_nothing() -> None:
    assert alerts.stop_conditions(rule(kind="stop", minutes=10), plant_with([]), live("unknown", T0, T0 + 900),
                                  {}) == []


@pytest.mark.parametrize(("start", "end", "late"), [(T0, T0 + 700, True), (T0, T0 + 500, False)])
def test_ended_stop_in_late_data_is_a_late_condition(start: float, end: float, late: bool) -> None:
    stops = {"L1": [{"machine": "M1", "start": start, "end": end, "state": "fault", "reason": 1,
                     "reason_text": "Jam", "category": "equipment_failure", "planned": False}]}
    found = alerts.stop_conditions(rule(kind="stop", minutes=10), plant_with([]), live("running", end, end + 5),
                                   stops)
    lates = [c for c in found if c.ended is not None]
    assert [(c.since, c.ended, c.active) for c in lates] == ([(start, end, False)] if late else [])


@pytest.mark.parametrize(("elapsed_s", "good", "kw", "active", "behind"), [
    # ideal 2 s, target 0.5: 3600 s planned time elapsed -> 900 parts expected
    (3600, 900, {"parts": 50}, False, 0),
    (3600, 851, {"parts": 50}, False, 49),
    (3600, 849, {"parts": 50}, True, 51),
    (3600, 800, {"percent": 10}, True, 100),  # 11.1 % behind
    (3600, 820, {"percent": 10}, False, 80),  # 8.9 %
    (0, 0, {"parts": 1, "percent": 1}, False, 0),  # nothing planned yet: nothing expected
    (3600, 1000, {"parts": 1}, False, 0),  # ahead
    (3600, None, {"parts": 1}, False, None),  # output unknown: not judged
    # a shift's first minutes: 40 s elapsed -> 10 parts expected; 36 s -> 9
    (40, 8, {"percent": 15}, True, 2),  # 20 % of 10
    (36, 0, {"percent": 15}, False, 9),  # 100 % of 9, but too few expected to say
    (36, 0, {"parts": 5, "percent": 15}, True, 9),  # the parts rule judges at once
])
def test_pace(elapsed_s: float, good: int | None, kw: dict[str, Any], active: bool, behind: int | None) -> None:
    """The alert judges the pace the wall shows and /api/lines serves (``domain.andon``)."""
    plant = make_plant(machines=[machine_config("M1", ideal=2.0)], lines=None)
    line = plant.lines[0].model_copy(update={"target_oee": 0.5})
    shift = andon.ShiftContext("all", "all", 0.0, 86400.0, 8 * 3600.0, elapsed_s, True)
    pace = andon.line_pace(line, {"good_count": good}, shift)
    assert pace.behind_by == behind
    assert alerts.pace_condition(rule(kind="behind_pace", **kw), line, pace).active is active


@pytest.mark.parametrize(("oee", "busy_s", "result"), [
    (0.59, 3600, True), (0.60, 3600, False), (0.2, 899, None), (None, 3600, None),
])
def test_oee_last_hour(oee: float | None, busy_s: float, result: bool | None) -> None:
    cond = alerts.oee_condition(rule(kind="oee_below", below=0.6), plant_with([]).lines[0],
                                {"oee": oee, "known_planned_busy_s": busy_s})
    assert (None if cond is None else cond.active) is result


@pytest.mark.parametrize(("last", "now", "active"), [
    (T0, T0 + 60, False), (T0, T0 + 61, True),
    (None, T0 + 60, False), (None, T0 + 61, True),  # never heard from: counted from the evaluator's start, T0
    # silent since 10 min before the evaluator's start (a restart after a pause): not
    # judged (None: not reported, an open alert stays) until it watched 60 s itself
    (T0 - 600, T0 + 1, None), (T0 - 600, T0 + 60, None), (T0 - 600, T0 + 61, True),
    (T0 - 30, T0 + 20, False),  # heard from lately: judged at once
])
def test_no_data(last: float | None, now: float, active: bool | None) -> None:
    found = alerts.no_data_conditions(rule(kind="no_data", seconds=60, machine="M1"), plant_with([]),
                                      live("fault", T0, last), now, watching_since=T0)
    assert [(c.machine, c.active) for c in found] == ([] if active is None else [("M1", active)])


def test_implausible_per_machine() -> None:
    flags = [{"machine": "M2", "ts": T0 + 5, "signal": "good", "kind": "counter_jump"},
             {"machine": "M2", "ts": T0, "signal": "good", "kind": "counter_jump"}]
    found = alerts.implausible_conditions(rule(kind="implausible"), plant_with([]).lines[0], flags)
    assert [(c.machine, c.active, c.since) for c in found] == [("M1", False, None), ("M2", True, T0)]


@pytest.mark.parametrize(("worker", "active"), [
    ({"undelivered_s": 10, "beat_age_s": 2, "closed_lag_s": 100}, False),
    ({"undelivered_s": 130, "beat_age_s": 2, "closed_lag_s": 100}, True),
    ({"undelivered_s": 0, "beat_age_s": 2, "closed_lag_s": 200}, True),  # 140 s past the open minute
    ({"undelivered_s": 0, "beat_age_s": 121, "closed_lag_s": None}, True),
    ({"undelivered_s": 0, "beat_age_s": None, "beat": None, "closed_lag_s": None}, True),  # never ran
])
def test_worker_lag(worker: dict[str, Any], active: bool) -> None:
    health = {"id": "L1", "worker": {"beat": T0, **worker}, "last_data": T0}
    cond = alerts.worker_lag_condition(rule(kind="worker_lag", seconds=120), health, T0)
    assert cond.active is active


# --- lifecycle --------------------------------------------------------------------------------

RULES = {"r": rule(kind="stop", minutes=10, escalate_after_min=5, severity="urgent")}


def on(since: float = T0) -> Condition:
    return Condition("r", "L1", "M1", True, since, "L1 M1: stopped 10 min")


def off() -> Condition:
    return Condition("r", "L1", "M1", False)


def test_raise_once_then_escalate_then_clear() -> None:
    first = alerts.step({}, [on()], RULES, set(), set(), now=T0 + 601)
    assert [n.channel for n in first.notices] == ["chat"]
    alert = first.raised[0]
    assert (alert.since, alert.level, alert.severity) == (T0, 0, "urgent")
    assert alerts.flashing(alert, acknowledged=False) and not alerts.flashing(alert, acknowledged=True)

    again = alerts.step({alert.key: alert}, [on()], RULES, set(), {alert.id}, now=T0 + 602)
    assert again.raised == [] and again.notices == []  # not raised twice
    # a restart that lost the open alert but knows its id: still not raised again
    assert alerts.step({}, [on()], RULES, set(), {alert.id}, now=T0 + 603).raised == []

    not_yet = alerts.step({alert.key: alert}, [on()], RULES, set(), {alert.id}, now=T0 + 601 + 299)
    assert not_yet.notices == []
    up = alerts.step({alert.key: alert}, [on()], RULES, set(), {alert.id}, now=T0 + 601 + 300)
    assert [(n.channel, n.event) for n in up.notices] == [("boss", "escalated")]
    escalated = up.updated[0]
    assert escalated.level == 1
    # no channel after the last: no further escalation
    assert alerts.step({alert.key: escalated}, [on()], RULES, set(), set(), now=T0 + 9999).notices == []

    gone = alerts.step({alert.key: escalated}, [off()], RULES, set(), set(), now=T0 + 1000)
    assert gone.cleared[0].cleared_at == T0 + 1000
    assert [(n.channel, n.event) for n in gone.notices] == [("chat", "cleared"), ("boss", "cleared")]


def test_acknowledged_alert_does_not_escalate() -> None:
    alert = alerts.step({}, [on()], RULES, set(), set(), now=T0 + 601).raised[0]
    later = alerts.step({alert.key: alert}, [on()], RULES, {alert.id}, set(), now=T0 + 5000)
    assert later.notices == [] and later.updated == []


def test_unreported_condition_keeps_the_alert_open_and_a_removed_rule_clears_it() -> None:
    alert = alerts.step({}, [on()], RULES, set(), set(), now=T0 + 601).raised[0]
    assert alerts.step({alert.key: alert}, [], RULES, {alert.id}, set(), now=T0 + 700).cleared == []
    assert [a.id for a in alerts.step({alert.key: alert}, [], {}, set(), set(), now=T0 + 700).cleared] == [alert.id]


def test_late_condition_is_recorded_once_and_sent_nowhere() -> None:
    late = Condition("r", "L1", "M1", False, T0, "late", ended=T0 + 900)
    result = alerts.step({}, [late], RULES, set(), set(), now=T0 + 4000)
    assert result.notices == [] and result.raised == []
    assert [(a.late, a.cleared_at) for a in result.late] == [(True, T0 + 900)]
    assert not alerts.flashing(result.late[0], acknowledged=False)
    assert alerts.step({}, [late], RULES, set(), {result.late[0].id}, now=T0 + 4001).late == []


def test_alert_round_trips_through_a_dict() -> None:
    alert = alerts.step({}, [on()], RULES, set(), set(), now=T0 + 601).raised[0]
    assert Alert.from_dict(alert.to_dict()) == alert


@pytest.mark.parametrize(("rules", "problem"), [
    ([{"id": "a", "kind": "stop"}], "needs minutes"),
    ([{"id": "a", "kind": "behind_pace"}], "needs parts or percent"),
    ([{"id": "a", "kind": "oee_below", "below": 0.5, "machine": "M1"}], "about a line"),
    ([{"id": "a", "kind": "no_data", "seconds": 5, "unplanned_only": True}], "stop rules only"),
    ([{"id": "a", "kind": "stop", "minutes": 5, "channels": ["nope"]}], "not in alerts.channels"),
    ([{"id": "a", "kind": "stop", "minutes": 5, "line": "X"}], "no line 'X'"),
    ([{"id": "a", "kind": "stop", "minutes": 5, "machine": "M9"}], "no machine 'M9'"),
    ([{"id": "a", "kind": "implausible"}, {"id": "a", "kind": "implausible"}], "used twice"),
])
def test_rules_validated_at_load(rules: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        plant_with(rules)
