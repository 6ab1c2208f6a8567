"""Alert rules and the alert lifecycle (README "Alerts").

Pure: the evaluator loop (``store.alert_loop``) reads the figures through
``store.reader.PlantReader`` and hands them in here with ``now``; this module decides
which conditions hold, on the data's time, and what that changes: raise, clear, escalate.
Nothing here sends or stores anything.

Why on the data's time: a stop is "longer than 10 min" when its data says so (the
machine's latest event is 10 min after the stop began), not when the server happened to
receive it. Data that arrives late (a collector's outage flush) therefore finds an ended
stop ended: it is recorded in the history as late, never sent as if it were new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from domain.andon import Pace
from domain.plant import AlertKind, AlertRule, Line, Plant, Severity

# States that are a stop; ``unknown`` is no data (the no_data rule), never a stop.
STOP_STATES = frozenset({"idle", "starved", "blocked", "fault", "changeover", "planned_stop"})
# The loss category of a stop without a reason code, from its state.
STATE_CATEGORIES = {"fault": "equipment_failure", "changeover": "setup_adjustment", "starved": "starved_blocked",
                    "blocked": "starved_blocked", "planned_stop": "planned", "idle": "unexplained"}
IMPLAUSIBLE_HOLD_S = 600.0  # an implausible-value alert holds this long after the last flag
MIN_PLANNED_FOR_OEE_S = 900.0  # an hour with less planned time (a meal break) says nothing about OEE
MIN_TARGET_FOR_PERCENT = 10  # parts expected so far before a share behind says anything


@dataclass(frozen=True, slots=True)
class Condition:
    """What one rule finds about one line or machine. ``since``: the data time the
    condition began (None: not known, the first time it is seen counts); ``ended``: for a
    condition found only in late data, when it ended (``active`` is then False)."""

    rule: str
    line: str
    machine: str | None
    active: bool
    since: float | None = None
    text: str = ""
    ended: float | None = None
    message: dict[str, Any] | None = None  # the text as a key and values, for the screens' languages

    @property
    def key(self) -> str:
        return alert_key(self.rule, self.line, self.machine)


def alert_key(rule: str, line: str, machine: str | None) -> str:
    """One open alert per rule and subject: the key under which it is kept open."""
    return f"{rule}|{line}|{machine or ''}"


def alert_id(key: str, since: float) -> str:
    """The alert's id: its key and when its condition began (ms), so the same condition
    seen again (a restart, a replay, late data) is the same alert, never a second one."""
    return f"{key}|{round(since * 1000)}"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert. Times: ``since`` data time; ``raised_at``, ``notified_at``, ``cleared_at``
    wall-clock times of the evaluator. ``level``: index in the rule's channels of the last
    channel told (-1: none). ``late``: found only in late data, its condition had ended."""

    id: str
    key: str
    rule: str
    line: str
    machine: str | None
    severity: str
    text: str
    since: float
    raised_at: float
    level: int = -1
    notified_at: float | None = None
    cleared_at: float | None = None
    late: bool = False
    message: dict[str, Any] | None = None  # ``text`` as {"k": key, "p": values, "prefix": rule text}

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(frozen=True, slots=True)
class Notice:
    """A message for one channel (``event``: raised, escalated, cleared, test)."""

    alert_id: str
    channel: str
    event: str
    severity: str
    line: str
    machine: str | None
    text: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(slots=True)
class Step:
    """What one evaluation changes."""

    raised: list[Alert] = field(default_factory=list)
    updated: list[Alert] = field(default_factory=list)  # escalated or new text
    cleared: list[Alert] = field(default_factory=list)
    late: list[Alert] = field(default_factory=list)  # history only, nobody told
    notices: list[Notice] = field(default_factory=list)


def step(open_alerts: Mapping[str, Alert], conditions: Iterable[Condition], rules: Mapping[str, AlertRule],
         acknowledged: set[str], known_ids: set[str], now: float) -> Step:
    """The lifecycle for one evaluation at wall-clock ``now``.

    * an active condition without an open alert raises one (unless its id is known: the
      same condition was raised before) and tells the rule's first channel;
    * an open alert whose condition is reported inactive, or whose rule is gone, clears
      (the channels told so far hear it); conditions not reported keep their alerts open
      (a line whose figures could not be read clears nothing);
    * an open alert unacknowledged ``escalate_after_min`` after its last notice goes to
      the next channel;
    * a condition found ended in late data is recorded as late, once, and sent nowhere.
    """
    out = Step()
    reported: dict[str, Condition] = {}
    for cond in conditions:
        rule = rules.get(cond.rule)
        if rule is None:
            continue
        if cond.active:
            reported[cond.key] = cond
            if cond.key not in open_alerts:
                _raise(out, cond, rule, known_ids, now)
        elif cond.ended is not None and cond.since is not None:
            _record_late(out, cond, rule, known_ids, now)
        else:
            reported.setdefault(cond.key, cond)
    for key, alert in open_alerts.items():
        rule = rules.get(alert.rule)
        seen = reported.get(key)
        if rule is None or (seen is not None and not seen.active):
            cleared = replace(alert, cleared_at=now)
            out.cleared.append(cleared)
            out.notices.extend(_notices(cleared, rule, "cleared", range(alert.level + 1), now))
            continue
        current = replace(alert, text=seen.text, message=seen.message) if seen is not None and seen.text else alert
        if alert.id not in acknowledged:
            current = _escalate(out, current, rule, now)
        if current != alert:
            out.updated.append(current)
    return out


def _raise(out: Step, cond: Condition, rule: AlertRule, known_ids: set[str], now: float) -> None:
    since = now if cond.since is None else cond.since
    new = Alert(alert_id(cond.key, since), cond.key, rule.id, cond.line, cond.machine, str(rule.severity),
                cond.text, since, now, message=cond.message)
    if new.id in known_ids:
        return
    if rule.channels:
        new = replace(new, level=0, notified_at=now)
    out.raised.append(new)
    out.notices.extend(_notices(new, rule, "raised", range(min(1, len(rule.channels))), now))


def _record_late(out: Step, cond: Condition, rule: AlertRule, known_ids: set[str], now: float) -> None:
    assert cond.since is not None and cond.ended is not None
    late = Alert(alert_id(cond.key, cond.since), cond.key, rule.id, cond.line, cond.machine, str(rule.severity),
                 cond.text, cond.since, now, cleared_at=cond.ended, late=True, message=cond.message)
    if late.id not in known_ids:
        out.late.append(late)


def _escalate(out: Step, alert: Alert, rule: AlertRule, now: float) -> Alert:
    if rule.escalate_after_min is None or alert.level + 1 >= len(rule.channels):
        return alert
    last = alert.notified_at if alert.notified_at is not None else alert.raised_at
    if now - last < rule.escalate_after_min * 60.0:
        return alert
    escalated = replace(alert, level=alert.level + 1, notified_at=now)
    out.notices.extend(_notices(escalated, rule, "escalated", [escalated.level], now))
    return escalated


def _notices(alert: Alert, rule: AlertRule | None, event: str, levels: Iterable[int], now: float) -> list[Notice]:
    if rule is None:
        return []
    return [Notice(alert.id, rule.channels[i], event, alert.severity, alert.line, alert.machine, alert.text, now)
            for i in levels if 0 <= i < len(rule.channels)]


def flashing(alert: Alert, acknowledged: bool) -> bool:
    """The wall flashes for an open, unacknowledged urgent alert."""
    return alert.severity == Severity.URGENT and alert.cleared_at is None and not acknowledged and not alert.late


# --- rules: conditions from the reader's answers ------------------------------------------------

def rule_lines(rule: AlertRule, plant: Plant) -> list[Line]:
    return [line for line in plant.lines if rule.line is None or line.id == rule.line]


def rule_machines(rule: AlertRule, line: Line) -> list[str]:
    return [m.id for m in line.machines if rule.machine is None or m.id == rule.machine]


def _prefix(rule: AlertRule) -> str:
    return f"{rule.text}: " if rule.text else ""


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


def _message(rule: AlertRule, key: str, **values: Any) -> dict[str, Any]:
    """An alert's text as data (the screens word it in their language; the text itself is
    English, for logs and work-chat messages)."""
    return {"k": key, "p": values, "prefix": rule.text or ""}


def stop_category(state: str, reason: Mapping[str, Any] | None) -> tuple[str, bool]:
    """Loss category and planned flag of a stop: from its reason, else from its state."""
    if reason and reason.get("category"):
        return str(reason["category"]), bool(reason.get("planned"))
    return STATE_CATEGORIES.get(state, "unexplained"), state == "planned_stop"


def _stop_counts(rule: AlertRule, state: str, reason: Mapping[str, Any] | None) -> bool:
    category, planned = stop_category(state, reason)
    if rule.unplanned_only and (planned or category == "planned"):
        return False
    return rule.category is None or category == str(rule.category)


def stop_conditions(rule: AlertRule, plant: Plant, lines_now: Mapping[str, Any],
                    recent_stops: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Condition]:
    """A stop longer than ``minutes``: a machine's live stop measured to its latest data
    (``store.live``: state, since, last_data); stops in ``recent_stops`` (the reader's
    downtime events per line) that ended and were that long are late conditions."""
    assert rule.minutes is not None
    limit = rule.minutes * 60.0
    live = {line["id"]: {m["id"]: m for m in line["machines"]} for line in lines_now.get("lines", [])}
    out: list[Condition] = []
    for line in rule_lines(rule, plant):
        machines = rule_machines(rule, line)
        for machine_id in machines:
            m = live.get(line.id, {}).get(machine_id)
            if m is None:
                continue
            state, since, last = m.get("state"), m.get("since"), m.get("last_data")
            stopped = state in STOP_STATES and since is not None and last is not None
            if stopped and not _stop_counts(rule, str(state), m.get("reason")):
                stopped = False
            active = stopped and last - since >= limit
            reason = (m.get("reason") or {}).get("text")
            text = f"{_prefix(rule)}{line.id} {m.get('name') or machine_id}: stopped {_minutes(last - since)}" + (
                f" ({reason})" if reason else "") if active else ""
            if state == "unknown":  # no data says nothing about the stop: keep what is open
                continue
            message = _message(rule, "stopped_reason" if reason else "stopped", line=line.id, machine=machine_id,
                               minutes=round((last - since) / 60), reason=reason or "",
                               code=(m.get("reason") or {}).get("code")) if active else None
            out.append(Condition(rule.id, line.id, machine_id, active, since if active else None, text,
                                 message=message))
        for event in recent_stops.get(line.id, ()):
            if event.get("machine") not in machines or event.get("end") is None:
                continue
            start, end = float(event["start"]), float(event["end"])
            reason = {"category": event.get("category"), "planned": event.get("planned")}
            if end - start >= limit and _stop_counts(rule, str(event.get("state")), reason):
                text = (f"{_prefix(rule)}{line.id} {event['machine']}: stopped {_minutes(end - start)}"
                        + (f" ({event['reason_text']})" if event.get("reason") else "") + " (late data)")
                message = _message(rule, "stopped_late", line=line.id, machine=event["machine"],
                                   minutes=round((end - start) / 60))
                out.append(Condition(rule.id, line.id, event["machine"], False, start, text, ended=end,
                                     message=message))
    return out


def pace_condition(rule: AlertRule, line: Line, pace: Pace) -> Condition:
    """Behind pace (``domain.andon``: the line's pace this shift, as ``/api/lines`` serves
    it and the wall shows it) by more than ``parts`` or ``percent`` of the target so far;
    ``percent`` only once the target so far is ``MIN_TARGET_FOR_PERCENT`` parts (one part
    late in a shift's first minutes is 100 % behind)."""
    behind = pace.behind_by or 0
    share = 100.0 * pace.behind_share
    judged = (pace.target_so_far or 0) >= MIN_TARGET_FOR_PERCENT
    active = behind > 0 and ((rule.parts is not None and behind > rule.parts)
                             or (rule.percent is not None and judged and share > rule.percent))
    text = f"{_prefix(rule)}{line.id}: {behind} parts behind pace ({share:.0f} %)" if active else ""
    message = _message(rule, "behind_pace", line=line.id, behind=behind, share=round(share)) if active else None
    return Condition(rule.id, line.id, None, active, None, text, message=message)


def oee_condition(rule: AlertRule, line: Line, hour_kpis: Mapping[str, Any]) -> Condition | None:
    """OEE of the last hour below ``below``; None (nothing said) when the hour had less
    than 15 min of known planned time."""
    assert rule.below is not None
    oee = hour_kpis.get("oee")
    if oee is None or float(hour_kpis.get("known_planned_busy_s") or 0.0) < MIN_PLANNED_FOR_OEE_S:
        return None
    active = float(oee) < rule.below
    text = f"{_prefix(rule)}{line.id}: OEE last hour {100 * oee:.0f} % (below {100 * rule.below:.0f} %)"
    message = _message(rule, "oee_low", line=line.id, oee=round(100 * oee), below=round(100 * rule.below))
    return Condition(rule.id, line.id, None, active, None, text if active else "", message=message if active else None)


def no_data_conditions(rule: AlertRule, plant: Plant, lines_now: Mapping[str, Any], now: float,
                       watching_since: float | None = None) -> list[Condition]:
    """Nothing heard from a machine for ``seconds`` (wall clock: silence has no data time).
    A machine never heard from counts from ``watching_since`` (the evaluator's start), so
    a plant starting up is not a wall of alerts. Nor is a restart after a pause: a machine
    silent since before the evaluator started is not reported (its alert, open or not,
    stays as it is) until the evaluator has watched for ``seconds`` itself, the time its
    collector has to reconnect."""
    assert rule.seconds is not None
    live = {line["id"]: {m["id"]: m for m in line["machines"]} for line in lines_now.get("lines", [])}
    out = []
    for line in rule_lines(rule, plant):
        for machine_id in rule_machines(rule, line):
            m = live.get(line.id, {}).get(machine_id, {})
            last = m.get("last_data")
            silent_from = last if last is not None else (now if watching_since is None else watching_since)
            active = now - silent_from > rule.seconds
            if active and watching_since is not None and now - watching_since <= rule.seconds:
                continue  # silent since before the start: not judged yet
            text = (f"{_prefix(rule)}{line.id} {m.get('name') or machine_id}: no data"
                    + (f" for {_minutes(now - last)}" if last is not None else "")) if active else ""
            message = None
            if active:
                message = (_message(rule, "no_data_for", line=line.id, machine=machine_id,
                                    minutes=round((now - last) / 60)) if last is not None
                           else _message(rule, "no_data", line=line.id, machine=machine_id))
            since = None if last is None else last + rule.seconds
            out.append(Condition(rule.id, line.id, machine_id, active, since if active else None, text,
                                 message=message))
    return out


def implausible_conditions(rule: AlertRule, line: Line, flags: Sequence[Mapping[str, Any]]) -> list[Condition]:
    """A machine with an implausible reading (the reader's flags of the hold period)."""
    out = []
    for machine_id in rule_machines(rule, line):
        mine = [f for f in flags if f.get("machine") == machine_id]
        active = bool(mine)
        text = ""
        message = None
        if active:
            newest = max(mine, key=lambda f: float(f["ts"]))
            text = f"{_prefix(rule)}{line.id} {machine_id}: implausible {newest.get('signal')} ({newest.get('kind')})"
            message = _message(rule, "implausible", line=line.id, machine=machine_id,
                               signal=str(newest.get("signal")), kind=str(newest.get("kind")))
        since = min(float(f["ts"]) for f in mine) if active else None
        out.append(Condition(rule.id, line.id, machine_id, active, since, text, message=message))
    return out


def worker_lag_condition(rule: AlertRule, line_health: Mapping[str, Any], now: float) -> Condition:
    """The rollup worker behind by more than ``seconds``: its closed minutes or the oldest
    event not yet given to it (``store.live.worker_health``), or a silent worker."""
    assert rule.seconds is not None
    worker = line_health.get("worker") or {}
    lags = [float(worker.get(name) or 0.0) for name in ("undelivered_s", "beat_age_s")]
    if worker.get("closed_lag_s") is not None:
        lags.append(float(worker["closed_lag_s"]) - 60.0)  # the open minute is never closed
    lag = max(lags)
    silent = worker.get("beat") is None and line_health.get("last_data") is not None  # data, never a worker
    active = silent or lag > rule.seconds
    text = (f"{_prefix(rule)}{line_health.get('id')}: rollup worker "
            + ("not running" if silent else f"{_minutes(lag)} behind")) if active else ""
    message = None
    if active:
        message = (_message(rule, "worker_silent", line=str(line_health.get("id"))) if silent
                   else _message(rule, "worker_behind", line=str(line_health.get("id")), minutes=round(lag / 60)))
    return Condition(rule.id, str(line_health.get("id")), None, active, None, text, message=message)


def kinds_needed(rules: Iterable[AlertRule]) -> set[AlertKind]:
    return {rule.kind for rule in rules}
