"""What a line shows right now: andon status, the stop's reason, OEE, output vs target.

View models built from the reader's answers (``domain.answers``: ``Lines``, ``LineKpis``,
``Downtime``), shared by the wall screen and the overview cards so both always agree. The rules (andon
status, pace, target so far, behind by, stale) are ``domain.andon``'s, the same function
``/api/lines`` serves them from; here they are only worded and formatted, once.
"""

from __future__ import annotations

from typing import Any

from components import theme
from components.i18n import _, current, local
from components.i18n import reason_text as localised_reason
from domain import andon, answers
from domain.downtime import NO_REASON_GROUP, SMALL_STOP_GROUP
from domain.model import State, parse_state
from domain.plant import Line


def pace_text(p: andon.Pace) -> str:
    """'+17 ahead', '−33 behind', 'on target'; a dash when the output is unknown."""
    d = p.delta
    if d is None:
        return theme.DASH
    if d == 0:
        return _("on target")
    return (_("{n} ahead") if d > 0 else _("{n} behind")).format(n=theme.signed_count(d))


def reason_text(reason: dict[str, Any] | None, state: object) -> str:
    """A stopped machine's reason (the reader's ``{"code", "text", ...}``) in the page's
    language; without one, starved and blocked say so."""
    reason = reason or {}
    if reason.get("text") or reason.get("code"):
        return localised_reason(reason.get("code"), reason.get("text"))
    state = parse_state(state)
    if state == State.STARVED:
        return _("Starved: waiting for upstream")
    if state == State.BLOCKED:
        return _("Blocked: downstream full")
    return _("No reason given")


def top_reason(downtime: answers.Downtime | None) -> tuple[str, float | None]:
    """The stop reason that cost the most time in a downtime answer (its Pareto rows are
    the unplanned losses)."""
    if not downtime:
        return theme.DASH, None
    rows = downtime["pareto"]["by_duration"]
    if not rows:
        return _("No stops"), None
    top = max(rows, key=lambda r: r["duration_s"])
    return group_text(top), top["duration_s"]


def group_text(row: answers.ParetoRow) -> str:
    """A Pareto row's name in the page's language (``group_name``)."""
    return group_name(row["group"], row["reason"], row["label"])


def group_name(group: str, reason: int | None, given: str | None) -> str:
    """A stop group's name in the page's language: its reason, or 'No reason' / 'Small stops'
    for the groups without a code (English: the reader's text ``given`` as it is)."""
    if current() != "en" and group == SMALL_STOP_GROUP:
        return _("Small stops")
    if current() != "en" and group == NO_REASON_GROUP:
        return _("No reason")
    if reason:
        return localised_reason(reason, given)
    return given or _("No reason")


def line_view(cfg: Line, live: answers.LineLive, kpis: answers.LineKpis | None, downtime: answers.Downtime | None,
              shift: andon.ShiftContext, now: float, tz: str) -> dict[str, Any]:
    """Everything a wall tile or an overview card shows for one line, from the reader's
    answers for the current shift. Status and pace are ``domain.andon.line_andon`` of the
    same answers ``/api/lines`` computes them from (``PlantReader.andon_now``)."""
    planned_now = shift.planned_now
    rules = andon.line_andon(cfg, live, kpis, shift)
    status, p = rules.status, rules.pace
    machines = live["machines"]
    power = [m["power_kw"] for m in machines if andon.machine_is_live(m) and m["power_kw"] is not None]
    stale_machines = [m for m in machines if not andon.machine_is_live(m)]
    top_text, top_s = top_reason(downtime)
    perf_settled, oee_settled = andon.settled(cfg, kpis)  # a shift's first minutes: neither says anything yet
    return {
        "line": cfg.id,
        "name": local(cfg.name) or cfg.id,
        "status": status.status,
        "status_label": _status_label(status, planned_now),
        "machine": status.machine,
        "for": since_for(status.since, now, tz) if not rules.stale else "",
        "reason": reason_text(status.reason, status.state) if status.stopped else "",
        "no_data": rules.stale,
        "no_data_text": theme.since_text(status.since, now, tz) if rules.stale else "",
        "stale_text": (f"{', '.join(rules.stale_machines)}: "
                       f"{theme.since_text(andon.last_data(stale_machines), now, tz)}"
                       if rules.stale_machines and not rules.stale else ""),
        "oee": kpis["oee"] if kpis and oee_settled else None,
        "availability": kpis["availability"] if kpis else None,
        "performance": kpis["performance"] if kpis and perf_settled else None,
        "quality": kpis["quality"] if kpis else None,
        "performance_over_100": bool(kpis and perf_settled and kpis["flags"]["performance_over_100"]),
        "untagged": downtime["summary"]["untagged_stops"] if downtime else None,  # issue 11: the queue's count
        "target_oee": cfg.target_oee,
        "output": p.output,
        "target_so_far": p.target_so_far,
        "target_shift": p.target_shift,
        "pace": p.delta,
        "behind_by": p.behind_by,
        "pace_text": pace_text(p),
        "kw": sum(float(x) for x in power) if power else None,
        "kwh_per_good": kpis["energy"]["kwh_per_good_unit"] if kpis else None,
        "top_reason": top_text,
        "top_reason_s": top_s,
        "shift": shift.label,
    }


def since_for(since: object, now: float, tz: str) -> str:
    """'since 10:18 · 14 min': when the state began (plant time) and how long it has lasted."""
    if not theme.is_number(since):
        return ""
    return _("since {time} \u00b7 {duration}").format(
        time=theme.clock(since, tz), duration=theme.duration(now - float(since)))


def _status_label(status: andon.LineStatus, planned_now: bool) -> str:
    if status.status == andon.PLANNED and not planned_now:
        return _("Break / no shift")
    if status.status == andon.DOWN and status.state:
        state = parse_state(status.state)
        return theme.label(theme.STATE_LABELS, state) if state != State.FAULT else _("Down")
    return theme.label(theme.ANDON_LABELS, status.status)
