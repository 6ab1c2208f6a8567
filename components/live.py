"""What a line shows right now: andon status, the stop's reason, OEE, output vs target.

Pure view models built from the reader's answers (``domain.answers``: ``Lines``,
``LineKpis``, ``Downtime``), shared by the wall screen and the overview cards so
both always agree. Numbers are formatted here once; the pages only place them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components import theme
from components.i18n import _, current, local
from components.i18n import reason_text as localised_reason
from domain import answers
from domain.downtime import NO_REASON_GROUP, SMALL_STOP_GROUP
from domain.model import State
from domain.plant import Line

# Running, but slower than this share of the ideal rate over the shift: yellow.
POOR_PERFORMANCE = 0.80

# Which stopped machine a line's andon blames first.
_BLAME_ORDER = {
    State.FAULT: 0,
    State.CHANGEOVER: 1,
    State.IDLE: 2,
    State.BLOCKED: 3,
    State.STARVED: 4,
    State.PLANNED_STOP: 5,
}


@dataclass(frozen=True, slots=True)
class Pace:
    output: int | None
    target_so_far: int | None
    target_shift: int | None

    @property
    def delta(self) -> int | None:
        if self.output is None or self.target_so_far is None:
            return None
        return self.output - self.target_so_far

    @property
    def text(self) -> str:
        d = self.delta
        if d is None:
            return theme.DASH
        if d == 0:
            return _("on target")
        return (_("{n} ahead") if d > 0 else _("{n} behind")).format(n=theme.signed_count(d))


def pace(output: int | None, ideal_cycle_time_s: float, target_oee: float, planned_elapsed_s: float,
         planned_shift_s: float) -> Pace:
    """Target = planned time (shift minus breaks) / ideal cycle time x target OEE.

    So far: over the planned time elapsed, which is what the line could have made at
    its ideal rate, scaled to the OEE it is asked for; ahead when output beats it.
    """
    rate = target_oee / ideal_cycle_time_s
    return Pace(output, int(planned_elapsed_s * rate), int(planned_shift_s * rate))


def machine_is_live(machine: answers.MachineLive) -> bool:
    return not machine["stale"] and theme.state_of(machine["state"]) != State.UNKNOWN


def reason_of(machine: answers.MachineLive) -> dict[str, Any]:
    """The machine's live reason: ``{"code", "text", "category", "planned"}``, or {} without one."""
    return dict(machine["reason"] or {})


def reason_text(machine: answers.MachineLive) -> str:
    reason = reason_of(machine)
    if reason.get("text") or reason.get("code"):
        return localised_reason(reason.get("code"), reason.get("text"))
    state = theme.state_of(machine["state"])
    if state == State.STARVED:
        return _("Starved: waiting for upstream")
    if state == State.BLOCKED:
        return _("Blocked: downstream full")
    return _("No reason given")


def last_data(machines: list[answers.MachineLive]) -> float | None:
    return max((m["last_data"] for m in machines if m["last_data"] is not None), default=None)


def line_status(line: answers.LineLive, output_machine: str, performance: float | None, planned_now: bool,
                poor_performance: float = POOR_PERFORMANCE) -> dict[str, Any]:
    """Andon status of a line: the worst live machine decides, the output machine's
    pace decides between green and yellow. Outside planned time a stop is grey."""
    machines = line["machines"]
    live = [m for m in machines if machine_is_live(m)]
    if not live:
        return {"status": theme.NO_DATA, "machine": None, "since": last_data(machines), "reason": None}
    stopped = [m for m in live if theme.state_of(m["state"]) != State.RUNNING]
    running = [m for m in live if theme.state_of(m["state"]) == State.RUNNING]
    blamable = [m for m in stopped if theme.state_of(m["state"]) in _BLAME_ORDER]
    blamable.sort(key=lambda m: (_BLAME_ORDER[theme.state_of(m["state"])], m["since"] or 0))
    culprit = blamable[0] if blamable else None
    if culprit is not None:
        state = theme.state_of(culprit["state"])
        status = theme.andon_of(state, reason_of(culprit))
        if status == theme.DOWN and reason_of(culprit).get("planned"):
            status = theme.PLANNED  # e.g. planned maintenance booked on the machine
        if not planned_now and status == theme.DOWN:
            status = theme.PLANNED
        if status == theme.PLANNED and running:
            culprit = None  # a machine on a planned stop does not stop the line
        else:
            return {"status": status, "machine": culprit["id"], "since": culprit["since"],
                    "reason": reason_text(culprit), "state": str(state)}
    out = next((m for m in running if m["id"] == output_machine), running[0])
    slow = theme.is_number(performance) and float(performance) < poor_performance  # type: ignore[arg-type]
    return {"status": theme.POOR if slow else theme.RUNNING, "machine": out["id"], "since": out["since"],
            "reason": None, "state": str(State.RUNNING)}


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
              shift: Any, now: float, tz: str) -> dict[str, Any]:
    """Everything a wall tile or an overview card shows for one line, from the reader's
    answers for the current shift (``shift``: ``data.ShiftContext``). A line's counts
    are its output machine's (``domain.kpi``), so output = the line's good count."""
    planned_now = shift.planned_now
    status = line_status(live, cfg.output_machine, kpis["performance"] if kpis else None, planned_now)
    output_machine = cfg.machine(cfg.output_machine)
    p = pace(kpis["good_count"] if kpis else None, output_machine.ideal_cycle_time_s if output_machine else 60.0,
             cfg.target_oee, shift.planned_elapsed_s, shift.planned_s)
    machines = live["machines"]
    power = [m["power_kw"] for m in machines if machine_is_live(m) and m["power_kw"] is not None]
    stale_machines = [m for m in machines if not machine_is_live(m)]
    stale = [m["id"] for m in stale_machines]
    top_text, top_s = top_reason(downtime)
    since = status.get("since")
    no_data = status["status"] == theme.NO_DATA
    return {
        "line": cfg.id,
        "name": local(cfg.name) or cfg.id,
        "status": status["status"],
        "status_label": _status_label(status, planned_now),
        "machine": status.get("machine"),
        "for": since_for(since, now, tz) if not no_data else "",
        "reason": status.get("reason") or "",
        "no_data": no_data,
        "no_data_text": theme.since_text(since, now, tz) if no_data else "",
        "stale_text": (f"{', '.join(stale)}: {theme.since_text(last_data(stale_machines), now, tz)}"
                       if stale and not no_data else ""),
        "oee": kpis["oee"] if kpis else None,
        "availability": kpis["availability"] if kpis else None,
        "performance": kpis["performance"] if kpis else None,
        "quality": kpis["quality"] if kpis else None,
        "performance_over_100": bool(kpis and kpis["flags"]["performance_over_100"]),
        "untagged": downtime["summary"]["untagged_stops"] if downtime else None,  # issue 11: the queue's count
        "target_oee": cfg.target_oee,
        "output": p.output,
        "target_so_far": p.target_so_far,
        "target_shift": p.target_shift,
        "pace": p.delta,
        "pace_text": p.text,
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
        time=theme.clock(since, tz), duration=theme.duration(now - float(since)))  # type: ignore[arg-type]


def _status_label(status: dict[str, Any], planned_now: bool) -> str:
    if status["status"] == theme.PLANNED and not planned_now:
        return _("Break / no shift")
    if status["status"] == theme.DOWN and status.get("state"):
        state = theme.state_of(status["state"])
        return theme.label(theme.STATE_LABELS, state) if state != State.FAULT else _("Down")
    return theme.label(theme.ANDON_LABELS, status["status"])
