"""The rules people act on: a line's andon status, its pace against target and the stale rule.

Pure: the reader's live line (``store.live.lines_now``: machines with state, since, reason,
last data, stale) and the line's KPIs of the current shift go in with the shift context;
status, output, target so far, pace and "behind by" come out. ``/api/lines`` serves them
(``PlantReader.andon_now``), the wall and the overview only format them, the behind-pace
alert judges them: one definition, so an MES reading the API, a supervisor reading the
wall and the shift chat told by an alert see the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from domain import calendar
from domain.model import State, parse_state
from domain.plant import Line, Plant

# Andon statuses a line or machine can show (what the colours say, not a machine state).
RUNNING = "running"
POOR = "poor"  # running, but slower than POOR_PERFORMANCE of the ideal rate this shift
DOWN = "down"
CHANGEOVER = "changeover"
PLANNED = "planned"
NO_DATA = "nodata"
STATUSES = (RUNNING, POOR, DOWN, CHANGEOVER, PLANNED, NO_DATA)

# Running, but the shift's performance is below this share of the ideal rate: yellow.
POOR_PERFORMANCE = 0.80

# A shift younger than this many ideal cycles of its output machine says nothing yet about
# speed: a part counted in its first minutes was mostly made before it (its cycle began in
# the previous shift), and one part more or less moves the performance by more than a tenth.
EARLY_CYCLES = 10

# Canonical machine state -> andon status (before the running-poorly check).
STATE_ANDON = {
    State.RUNNING: RUNNING,
    State.IDLE: DOWN,
    State.STARVED: DOWN,
    State.BLOCKED: DOWN,
    State.FAULT: DOWN,
    State.CHANGEOVER: CHANGEOVER,
    State.PLANNED_STOP: PLANNED,
    State.UNKNOWN: NO_DATA,
}

_PART_TOLERANCE = 1e-6  # of a part, in the target's rounding down

# Which stopped machine a line's andon blames first (then the longest stopped).
BLAME_ORDER = {
    State.FAULT: 0,
    State.CHANGEOVER: 1,
    State.IDLE: 2,
    State.BLOCKED: 3,
    State.STARVED: 4,
    State.PLANNED_STOP: 5,
}


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# --- the stale rule ---------------------------------------------------------------------------

def is_stale(last_data: float | None, now: float, gap_timeout_s: float) -> bool:
    """A machine not heard from for longer than ``gap_timeout_s`` (or never) is stale: its
    last state is not shown as if it still held, it is unknown (DOMAIN: gaps are unknown)."""
    return last_data is None or now - last_data > gap_timeout_s


def machine_is_live(machine: Mapping[str, Any]) -> bool:
    """A machine the andon can judge: not stale and in a known state (a link down or a bad
    state reading is unknown too)."""
    return not machine.get("stale") and parse_state(machine.get("state")) != State.UNKNOWN


def last_data(machines: Sequence[Mapping[str, Any]]) -> float | None:
    """The newest data of any of ``machines`` (for "no data since")."""
    times = [_number(m.get("last_data")) for m in machines]
    known = [t for t in times if t is not None]
    return max(known) if known else None


# --- andon status ------------------------------------------------------------------------------

def reason_of(machine: Mapping[str, Any]) -> dict[str, Any]:
    """The reader's live reason ``{"code", "text", "category", "planned"}``, or ``{}``."""
    reason = machine.get("reason")
    if isinstance(reason, Mapping):
        return dict(reason)
    if reason:
        return {"code": reason, "text": machine.get("reason_text"), "category": None, "planned": False}
    return {}


def andon_of(state: State, reason: Mapping[str, object] | None = None) -> str:
    """A machine's andon status. A stop booked as setup (a changeover or setup reason,
    e.g. PackML's Stopped with reason 20) is a changeover: blue, not red."""
    if state == State.IDLE and (reason or {}).get("category") == "setup_adjustment":
        return CHANGEOVER
    return STATE_ANDON[state]


@dataclass(frozen=True, slots=True)
class LineStatus:
    """What a line's andon shows: ``status`` (one of ``STATUSES``), the machine that decides
    it (the blamed stopped machine, else the running output machine; None without data),
    that machine's state, since when (no data: the line's last data) and its reason."""

    status: str
    machine: str | None = None
    state: str | None = None
    since: float | None = None
    reason: dict[str, Any] | None = None

    @property
    def stopped(self) -> bool:
        """A stopped machine decides the status (its reason is what the screens show)."""
        return self.status in (DOWN, CHANGEOVER, PLANNED)


def line_status(machines: Sequence[Mapping[str, Any]], output_machine: str, performance: float | None,
                planned_now: bool, poor_performance: float = POOR_PERFORMANCE) -> LineStatus:
    """The worst live machine decides; with all running, the shift's performance decides
    between green and yellow. A stop outside planned time (a break, no shift) or booked
    with a planned reason is grey; a planned stop of one machine while others run does not
    stop the line. No live machine at all: no data."""
    live = [m for m in machines if machine_is_live(m)]
    if not live:
        return LineStatus(NO_DATA, since=last_data(machines))
    running = [m for m in live if parse_state(m.get("state")) == State.RUNNING]
    blamable = [m for m in live if parse_state(m.get("state")) in BLAME_ORDER]
    blamable.sort(key=lambda m: (BLAME_ORDER[parse_state(m.get("state"))], _number(m.get("since")) or 0.0))
    if blamable:
        culprit = blamable[0]
        state = parse_state(culprit.get("state"))
        reason = reason_of(culprit)
        status = andon_of(state, reason)
        if status == DOWN and (reason.get("planned") or not planned_now):
            status = PLANNED  # e.g. planned maintenance booked on the machine, or a stop on a break
        if not (status == PLANNED and running):
            return LineStatus(status, _text(culprit.get("id")), str(state), _number(culprit.get("since")),
                              reason or None)
    out = next((m for m in running if m.get("id") == output_machine), running[0])
    perf = _number(performance)
    slow = perf is not None and perf < poor_performance
    return LineStatus(POOR if slow else RUNNING, _text(out.get("id")), str(State.RUNNING), _number(out.get("since")))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# --- shift context and pace ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ShiftContext:
    """The current shift (or the last one, between shifts) as targets and pace need it."""

    name: str
    label: str
    start: float
    end: float
    planned_s: float  # shift minus breaks
    planned_elapsed_s: float  # of that, up to now
    planned_now: bool  # inside the shift and not on a break

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def shift_context(plant: Plant, at: float) -> ShiftContext:
    inst = calendar.current_or_last_shift(plant.shifts, ZoneInfo(plant.timezone), at)
    planned = inst.planned_busy()
    elapsed = calendar.total(calendar.clip(planned, inst.start, min(at, inst.end)))
    planned_now = any(s <= at < e for s, e in planned)
    return ShiftContext(inst.name, inst.label, inst.start, inst.end, calendar.total(planned), elapsed, planned_now)


@dataclass(frozen=True, slots=True)
class Pace:
    """Output (good parts this shift) against the target so far and for the whole shift."""

    output: int | None
    target_so_far: int | None
    target_shift: int | None

    @property
    def delta(self) -> int | None:
        """Parts ahead (+) or behind (-) the target so far; None when the output is unknown."""
        if self.output is None or self.target_so_far is None:
            return None
        return self.output - self.target_so_far

    @property
    def behind_by(self) -> int | None:
        """Parts short of the target so far (0 on or ahead of it)."""
        d = self.delta
        return None if d is None else max(0, -d)

    @property
    def behind_share(self) -> float:
        """``behind_by`` as a share of the target so far (0 when nothing is expected yet)."""
        if not self.behind_by or not self.target_so_far:
            return 0.0
        return self.behind_by / self.target_so_far


def pace(output: int | None, ideal_cycle_time_s: float, target_oee: float, planned_elapsed_s: float,
         planned_shift_s: float) -> Pace:
    """Target = planned time (shift minus breaks) / ideal cycle time x target OEE, in whole parts.

    So far: over the planned time elapsed, which is what the line could have made at its
    ideal rate, scaled to the OEE it is asked for; ahead when the output beats it. Whole
    parts, rounded down (a part not yet finished is not expected); the tolerance keeps
    binary rounding from taking a part off an exact target (28 800 s x 0.85 / 60 s = 408).
    """
    def parts(seconds: float) -> int:
        return math.floor(seconds * target_oee / ideal_cycle_time_s + _PART_TOLERANCE)

    return Pace(output, parts(planned_elapsed_s), parts(planned_shift_s))


def line_pace(line: Line, shift_kpis: Mapping[str, Any] | None, shift: ShiftContext) -> Pace:
    """The line's pace this shift: its output machine's good count (``domain.kpi``: a line's
    counts are its output machine's) against its target at that machine's ideal cycle time."""
    good = _number((shift_kpis or {}).get("good_count"))
    output = line.machine(line.output_machine)
    ideal = output.ideal_cycle_time_s if output is not None else 60.0
    return pace(None if good is None else round(good), ideal, line.target_oee, shift.planned_elapsed_s,
                shift.planned_s)


# --- everything /api/lines serves per line -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class LineAndon:
    """A line's andon status and pace now, as ``/api/lines`` serves them (``to_dict``)."""

    status: LineStatus
    pace: Pace
    planned_now: bool
    stale: bool  # no machine with live data: the screens say "no data since" (``last_data``)
    stale_machines: tuple[str, ...]  # machines without live data (silent, link down, unknown state)
    last_data: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.status,
            "status_machine": self.status.machine,
            "status_state": self.status.state,
            "status_since": self.status.since,
            "status_reason": self.status.reason,
            "planned_now": self.planned_now,
            "stale": self.stale,
            "stale_machines": list(self.stale_machines),
            "output": self.pace.output,
            "target_so_far": self.pace.target_so_far,
            "target_shift": self.pace.target_shift,
            "pace": self.pace.delta,
            "behind_by": self.pace.behind_by,
        }


def settled(line: Line, shift_kpis: Mapping[str, Any] | None) -> tuple[bool, bool]:
    """Whether the shift's performance, and its OEE, say anything yet (pure): the output
    machine ran, for the performance, and was planned to run, for the OEE, at least
    ``EARLY_CYCLES`` ideal cycles. Before that the screens show neither (a dash, as at the
    shift's first instant) and a running line is not yellow for them: one part made mostly
    in the previous shift showed 171 % the first half minute of a shift, none showed 0 %.
    The API's KPIs stay exact; only what people read across the hall waits."""
    machine = line.machine(line.output_machine)
    if not shift_kpis or machine is None:
        return False, False
    least = EARLY_CYCLES * machine.ideal_cycle_time_s
    run, planned = _number(shift_kpis.get("run_s")), _number(shift_kpis.get("planned_busy_s"))
    return (run is not None and run >= least), (planned is not None and planned >= least)


def line_andon(line: Line, live_line: Mapping[str, Any], shift_kpis: Mapping[str, Any] | None,
               shift: ShiftContext) -> LineAndon:
    """A line's andon from its live state (``live_line``: the reader's line with its
    ``machines``) and its KPIs over the current shift up to now (``shift_kpis``; the
    performance only once it is ``settled``)."""
    machines: Sequence[Mapping[str, Any]] = live_line.get("machines") or []
    performance = _number((shift_kpis or {}).get("performance")) if settled(line, shift_kpis)[0] else None
    status = line_status(machines, line.output_machine, performance, shift.planned_now)
    not_live = tuple(str(m.get("id")) for m in machines if not machine_is_live(m))
    return LineAndon(status, line_pace(line, shift_kpis, shift), shift.planned_now, status.status == NO_DATA,
                     not_live, last_data(machines))
