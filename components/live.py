"""What a line shows right now: andon status, the stop's reason, OEE, output vs target.

View models built from the reader's JSON dicts (``lines``, ``line_kpis``, ``downtime``),
shared by the wall screen and the overview cards so both always agree. The rules (andon
status, pace, target so far, behind by, stale) are ``domain.andon``'s, the same function
``/api/lines`` serves them from; here they are only worded and formatted, once.
"""

from __future__ import annotations

from typing import Any

from components import theme
from components.i18n import _, current, local
from components.i18n import reason_text as localised_reason
from domain import andon
from domain.downtime import NO_REASON_GROUP, SMALL_STOP_GROUP
from domain.model import State
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
    state = theme.state_of(state)
    if state == State.STARVED:
        return _("Starved: waiting for upstream")
    if state == State.BLOCKED:
        return _("Blocked: downstream full")
    return _("No reason given")


def top_reason(downtime: dict[str, Any] | None) -> tuple[str, float | None]:
    """The stop reason that cost the most time (unplanned first) in a downtime answer."""
    if not downtime:
        return theme.DASH, None
    pareto = downtime.get("pareto_by_duration") or (downtime.get("pareto") or {}).get("by_duration") or []
    rows = [r for r in pareto if not r.get("planned")] or list(pareto)
    if not rows:
        return _("No stops"), None
    top = max(rows, key=lambda r: r.get("duration_s") or r.get("value") or 0)
    text = group_text(top)
    return str(text), top.get("duration_s") or top.get("value")


def group_text(row: dict[str, Any]) -> str:
    """A Pareto row's name in the page's language: its reason, or 'No reason' / 'Small stops'
    for the groups without a code (English: the reader's label as it is)."""
    given = row.get("label") or row.get("reason_text") or row.get("text")
    group = str(row.get("group") or row.get("reason") or NO_REASON_GROUP)
    if current() != "en" and group == SMALL_STOP_GROUP:
        return _("Small stops")
    if current() != "en" and group == NO_REASON_GROUP:
        return _("No reason")
    if row.get("reason"):
        return localised_reason(row["reason"], given)
    return str(given or _("No reason"))


def line_view(cfg: Line, live: dict[str, Any], kpis: dict[str, Any] | None, downtime: dict[str, Any] | None,
              shift: andon.ShiftContext, now: float, tz: str) -> dict[str, Any]:
    """Everything a wall tile or an overview card shows for one line, from the reader's
    answers for the current shift. Status and pace are ``domain.andon.line_andon`` of the
    same answers ``/api/lines`` computes them from (``PlantReader.andon_now``)."""
    kpis = kpis or {}
    planned_now = shift.planned_now
    energy = kpis.get("energy") or {}
    rules = andon.line_andon(cfg, live, kpis, shift)
    status, p = rules.status, rules.pace
    machines = live.get("machines", [])
    power = [m.get("power_kw") for m in machines if andon.machine_is_live(m) and theme.is_number(m.get("power_kw"))]
    stale_machines = [m for m in machines if not andon.machine_is_live(m)]
    top_text, top_s = top_reason(downtime)
    flags = kpis.get("flags") or {}
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
        "oee": kpis.get("oee"),
        "availability": kpis.get("availability"),
        "performance": kpis.get("performance"),
        "quality": kpis.get("quality"),
        "performance_over_100": bool(flags.get("performance_over_100")),
        "untagged": ((downtime or {}).get("summary") or {}).get("untagged_stops"),  # issue 11: the queue's count
        "target_oee": cfg.target_oee,
        "output": p.output,
        "target_so_far": p.target_so_far,
        "target_shift": p.target_shift,
        "pace": p.delta,
        "behind_by": p.behind_by,
        "pace_text": pace_text(p),
        "kw": sum(float(x) for x in power) if power else None,
        "kwh_per_good": energy.get("kwh_per_good_unit"),
        "top_reason": top_text,
        "top_reason_s": top_s,
        "shift": shift.label,
    }


def since_for(since: object, now: float, tz: str) -> str:
    """'since 10:18 · 14 min': when the state began (plant time) and how long it has lasted."""
    if not theme.is_number(since):
        return ""
    return _("since {time} \u00b7 {duration}").format(
        time=theme.clock(since, tz), duration=theme.duration(now - float(since)))  # type: ignore[arg-type]


def _status_label(status: andon.LineStatus, planned_now: bool) -> str:
    if status.status == andon.PLANNED and not planned_now:
        return _("Break / no shift")
    if status.status == andon.DOWN and status.state:
        state = theme.state_of(status.state)
        return theme.label(theme.STATE_LABELS, state) if state != State.FAULT else _("Down")
    return theme.label(theme.ANDON_LABELS, status.status)
