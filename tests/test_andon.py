"""The andon rules (``domain.andon``) with hand-computed cases: status, the stale rule, the
shift context, pace, target so far and behind by. The wall, the overview, ``/api/lines``
and the behind-pace alert all take them from here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from domain import andon
from domain.model import State
from tests.core_support import machine_config, make_plant

# One shift 06:00-14:00 UTC with a 30 min break at 09:00: 7.5 h = 27 000 s planned.
SHIFTS = [{"name": "day", "start": "06:00", "end": "14:00", "breaks": [{"name": "meal", "start": "09:00",
                                                                       "end": "09:30"}]}]
PLANT = make_plant(shifts=SHIFTS,
                   lines=[{"id": "L1", "output_machine": "M2", "target_oee": 0.85,
                           "machines": [machine_config("M1", ideal=40.0), machine_config("M2", ideal=50.0)]}])
LINE = PLANT.lines[0]
DAY = datetime(2026, 11, 25, tzinfo=UTC).timestamp()
NOW = DAY + 10 * 3600  # 10:00: 3.5 h of planned time elapsed (06:00-09:00, 09:30-10:00)


def at(hh_mm: str) -> float:
    h, m = hh_mm.split(":")
    return DAY + int(h) * 3600 + int(m) * 60


def machine(mid: str, state: str, since: float = 0.0, *, stale: bool = False, reason: Any = None,
            last_data: float | None = NOW - 5) -> dict[str, Any]:
    return {"id": mid, "state": state, "since": since, "stale": stale, "reason": reason, "last_data": last_data}


# --- the stale rule -----------------------------------------------------------------------------

@pytest.mark.parametrize(("last", "now", "stale"), [
    (None, NOW, True),  # never heard from
    (NOW - 30, NOW, False),  # exactly the gap timeout: still live
    (NOW - 30.001, NOW, True),
    (NOW, NOW, False),
    (NOW + 5, NOW, False),  # a clock a little ahead is not silence
])
def test_a_machine_is_stale_after_the_gap_timeout(last: float | None, now: float, stale: bool) -> None:
    assert andon.is_stale(last, now, 30.0) is stale


@pytest.mark.parametrize(("m", "live"), [
    (machine("A", "running"), True),
    (machine("A", "fault"), True),
    (machine("A", "running", stale=True), False),
    (machine("A", "unknown"), False),  # link down or a bad state reading
    (machine("A", "warp drive"), False),  # not a state
    ({"id": "A"}, False),
])
def test_machine_is_live(m: dict[str, Any], live: bool) -> None:
    assert andon.machine_is_live(m) is live


# --- status ----------------------------------------------------------------------------------

SETUP = {"code": 20, "text": "Model change", "category": "setup_adjustment", "planned": False}
MAINTENANCE = {"code": 40, "text": "Planned maintenance", "category": "planned", "planned": True}
JAM = {"code": 1, "text": "Jam", "category": "equipment_failure", "planned": False}


@pytest.mark.parametrize(("machines", "performance", "planned_now", "want"), [
    pytest.param([machine("A", "running", 10), machine("B", "running", 20)], 0.9, True,
                 andon.LineStatus(andon.RUNNING, "B", "running", 20.0), id="running: the output machine"),
    pytest.param([machine("A", "running"), machine("B", "running")], 0.79, True,
                 andon.LineStatus(andon.POOR, "B", "running", 0.0), id="slow below 80 %"),
    pytest.param([machine("A", "running"), machine("B", "running")], 0.80, True,
                 andon.LineStatus(andon.RUNNING, "B", "running", 0.0), id="80 % is not slow"),
    pytest.param([machine("A", "running"), machine("B", "running")], None, True,
                 andon.LineStatus(andon.RUNNING, "B", "running", 0.0), id="performance unknown: green"),
    pytest.param([machine("A", "running"), machine("B", "fault", 7, stale=True)], 0.9, True,
                 andon.LineStatus(andon.RUNNING, "A", "running", 0.0), id="output stale: another running one"),
    pytest.param([machine("A", "fault", 50, reason=JAM), machine("B", "idle", 10)], 0.9, True,
                 andon.LineStatus(andon.DOWN, "A", "fault", 50.0, JAM), id="fault before idle"),
    pytest.param([machine("A", "starved", 10), machine("B", "idle", 50)], 0.9, True,
                 andon.LineStatus(andon.DOWN, "B", "idle", 50.0), id="idle before starved"),
    pytest.param([machine("A", "idle", 50), machine("B", "idle", 10)], 0.9, True,
                 andon.LineStatus(andon.DOWN, "B", "idle", 10.0), id="the longest stopped first"),
    pytest.param([machine("A", "changeover", 10), machine("B", "running")], 0.9, True,
                 andon.LineStatus(andon.CHANGEOVER, "A", "changeover", 10.0), id="changeover"),
    pytest.param([machine("A", "idle", 10, reason=SETUP), machine("B", "running")], 0.9, True,
                 andon.LineStatus(andon.CHANGEOVER, "A", "idle", 10.0, SETUP), id="idle booked as setup: blue"),
    pytest.param([machine("A", "changeover", 10), machine("B", "fault", 90)], 0.9, True,
                 andon.LineStatus(andon.DOWN, "B", "fault", 90.0), id="fault before changeover"),
    pytest.param([machine("A", "idle", 10), machine("B", "idle", 10)], None, False,
                 andon.LineStatus(andon.PLANNED, "A", "idle", 10.0), id="a stop on a break is planned"),
    pytest.param([machine("A", "fault", 10, reason=MAINTENANCE), machine("B", "idle", 20)], None, True,
                 andon.LineStatus(andon.PLANNED, "A", "fault", 10.0, MAINTENANCE), id="planned reason: grey"),
    pytest.param([machine("A", "planned_stop", 10), machine("B", "running", 5)], 0.9, True,
                 andon.LineStatus(andon.RUNNING, "B", "running", 5.0), id="one planned stop: the line runs"),
    pytest.param([machine("A", "planned_stop", 10), machine("B", "planned_stop", 5)], 0.9, True,
                 andon.LineStatus(andon.PLANNED, "B", "planned_stop", 5.0), id="all on a planned stop"),
    pytest.param([machine("A", "unknown", last_data=NOW - 90), machine("B", "unknown", last_data=NOW - 60)],
                 0.9, True, andon.LineStatus(andon.NO_DATA, since=NOW - 60), id="no data since the newest"),
    pytest.param([machine("A", "running", stale=True, last_data=None)], 0.9, True,
                 andon.LineStatus(andon.NO_DATA), id="never heard from"),
    pytest.param([], 0.9, True, andon.LineStatus(andon.NO_DATA), id="no machines"),
])
def test_line_status(machines: list[dict[str, Any]], performance: float | None, planned_now: bool,
                     want: andon.LineStatus) -> None:
    assert andon.line_status(machines, "B", performance, planned_now) == want


@pytest.mark.parametrize(("state", "reason", "status"), [
    (State.IDLE, SETUP, andon.CHANGEOVER),  # PackML Stopped + a changeover reason
    (State.IDLE, {"code": 30, "category": "starved_blocked"}, andon.DOWN),
    (State.IDLE, None, andon.DOWN),
    (State.FAULT, SETUP, andon.DOWN),  # a fault is a fault whatever was booked
    (State.CHANGEOVER, None, andon.CHANGEOVER),
    (State.PLANNED_STOP, None, andon.PLANNED),
    (State.UNKNOWN, None, andon.NO_DATA),
])
def test_a_machines_andon(state: State, reason: dict[str, Any] | None, status: str) -> None:
    assert andon.andon_of(state, reason) == status


# --- shift context --------------------------------------------------------------------------

@pytest.mark.parametrize(("now", "elapsed_s", "planned_now"), [
    (at("06:00"), 0, True),
    (at("08:00"), 2 * 3600, True),
    (at("09:15"), 3 * 3600, False),  # on the break: the clock of the target stops
    (at("10:00"), 3.5 * 3600, True),
    (at("14:00"), 7.5 * 3600, False),  # after the shift: the last one, whole
    (at("23:00"), 7.5 * 3600, False),
])
def test_shift_context_counts_planned_time_only(now: float, elapsed_s: float, planned_now: bool) -> None:
    shift = andon.shift_context(PLANT, now)
    assert (shift.start, shift.end) == (at("06:00"), at("14:00"))
    assert shift.planned_s == 7.5 * 3600
    assert shift.planned_elapsed_s == elapsed_s
    assert shift.planned_now is planned_now


# --- pace ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("output", "ideal", "target_oee", "elapsed_s", "so_far", "shift", "delta", "behind"), [
    (200, 50.0, 0.85, 3 * 3600, 183, 428, 17, 0),  # 10 800 s / 50 s x 0.85 = 183.6; 25 200 s -> 428.4
    (150, 50.0, 0.85, 3 * 3600, 183, 428, -33, 33),
    (183, 50.0, 0.85, 3 * 3600, 183, 428, 0, 0),
    (None, 50.0, 0.85, 3600, 61, 428, None, None),  # output unknown: neither ahead nor behind
    (0, 50.0, 0.85, 0, 0, 428, 0, 0),  # nothing planned yet, nothing expected
    (400, 60.0, 0.85, 28_800, 408, 357, -8, 8),  # exactly 408, not 407 by binary rounding
    (849, 2.0, 0.5, 3600, 900, 6300, -51, 51),
])
def test_pace_against_the_target_over_planned_time_elapsed(output: int | None, ideal: float, target_oee: float,
                                                           elapsed_s: float, so_far: int, shift: int,
                                                           delta: int | None, behind: int | None) -> None:
    p = andon.pace(output, ideal, target_oee, elapsed_s, 7 * 3600)
    assert (p.target_so_far, p.target_shift, p.delta, p.behind_by) == (so_far, shift, delta, behind)


@pytest.mark.parametrize(("output", "so_far", "share"), [
    (800, 900, 100 / 900), (900, 900, 0.0), (950, 900, 0.0), (0, 0, 0.0), (None, 900, 0.0),
])
def test_behind_share(output: int | None, so_far: int, share: float) -> None:
    assert andon.Pace(output, so_far, 1000).behind_share == pytest.approx(share)


def test_line_pace_is_the_output_machines_good_count_at_its_ideal_cycle() -> None:
    shift = andon.shift_context(PLANT, NOW)  # 12 600 s elapsed, 27 000 s planned
    p = andon.line_pace(LINE, {"good_count": 200.0, "performance": 0.9}, shift)
    # M2 (the output machine), 50 s: 12 600 / 50 x 0.85 = 214.2; 27 000 / 50 x 0.85 = 459
    assert p == andon.Pace(200, 214, 459)
    assert andon.line_pace(LINE, None, shift) == andon.Pace(None, 214, 459)
    assert andon.line_pace(LINE, {"good_count": None}, shift).delta is None


# --- everything /api/lines serves per line ------------------------------------------------------

def test_line_andon_serves_status_pace_and_stale() -> None:
    shift = andon.shift_context(PLANT, NOW)
    live = {"id": "L1", "machines": [machine("M1", "fault", NOW - 600, reason=JAM),
                                     machine("M2", "unknown", NOW - 100, stale=True, last_data=NOW - 130)]}
    got = andon.line_andon(LINE, live, {"good_count": 230, "performance": 0.95}, shift).to_dict()
    assert got == {
        "status": "down", "status_machine": "M1", "status_state": "fault", "status_since": NOW - 600,
        "status_reason": JAM, "planned_now": True, "stale": False, "stale_machines": ["M2"],
        "output": 230, "target_so_far": 214, "target_shift": 459, "pace": 16, "behind_by": 0,
    }


def test_a_line_without_live_data_is_stale_since_its_last_data() -> None:
    shift = andon.shift_context(PLANT, at("09:15"))
    live = {"id": "L1", "machines": [machine("M1", "running", stale=True, last_data=at("09:00")),
                                     machine("M2", "unknown", stale=True, last_data=at("09:01"))]}
    got = andon.line_andon(LINE, live, {"good_count": 150}, shift)
    assert got.stale and got.status == andon.LineStatus(andon.NO_DATA, since=at("09:01"))
    assert got.stale_machines == ("M1", "M2") and got.last_data == at("09:01")
    assert (got.pace.target_so_far, got.pace.behind_by, got.planned_now) == (183, 33, False)


# --- a shift's first minutes ------------------------------------------------------------------------

@pytest.mark.parametrize(("kpis", "want"), [
    (None, (False, False)),  # the shift's first instant: no window yet
    ({"run_s": 499.0, "planned_busy_s": 499.0}, (False, False)),  # under 10 ideal cycles of M2 (50 s)
    ({"run_s": 500.0, "planned_busy_s": 500.0}, (True, True)),
    ({"run_s": 0.0, "planned_busy_s": 1200.0}, (False, True)),  # down since the shift began: OEE 0 is known
    ({"run_s": 600.0, "planned_busy_s": 600.0, "performance": 1.71}, (True, True)),
    ({"performance": 0.9}, (False, False)),  # no times: nothing to judge by
])
def test_settled_after_ten_ideal_cycles_of_the_output_machine(kpis: dict[str, Any] | None,
                                                              want: tuple[bool, bool]) -> None:
    assert andon.settled(LINE, kpis) == want


def test_a_running_line_is_not_yellow_in_the_shifts_first_minutes() -> None:
    """06:02: two minutes run, no part counted yet (performance 0): running, not running
    poorly; once ten cycles ran, the same performance makes it yellow."""
    shift = andon.shift_context(PLANT, at("06:02"))
    live = {"id": "L1", "machines": [machine("M1", "running", at("06:00")), machine("M2", "running", at("06:00"))]}
    early = {"good_count": 0, "performance": 0.0, "run_s": 120.0, "planned_busy_s": 120.0}
    assert andon.line_andon(LINE, live, early, shift).status.status == andon.RUNNING
    later = {"good_count": 5, "performance": 0.5, "run_s": 500.0, "planned_busy_s": 500.0}
    assert andon.line_andon(LINE, live, later, andon.shift_context(PLANT, at("06:09"))).status.status == andon.POOR
