"""OEE, TEEP, losses and energy KPIs: hand-computed tables and properties."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.engine import Stop
from domain.kpi import KpiReport, kpis, line_kpis, plant_kpis, report
from domain.model import State
from domain.totals import Totals
from tests.core_support import T0, machine_config, make_plant

PLANT = make_plant()
WINDOW = (T0, T0 + 8 * 3600, T0 + 8 * 3600)  # start, end, now


def classified(**fields: float) -> Totals:
    """Classified totals where planned_busy = run + micro + down + unknown."""
    t = Totals(**fields)  # type: ignore[arg-type]
    t.down_s = t.failure_s + t.setup_s + t.starved_blocked_s + t.unexplained_s
    t.stopped_s = t.planned_down_s + t.micro_stop_s + t.down_s
    t.planned_busy_s = t.run_s + t.micro_stop_s + t.down_s + t.unknown_s
    t.planned_operation_s = t.planned_busy_s + t.planned_down_s
    t.calendar_s = t.calendar_s or t.planned_operation_s
    return t


def worked_example(**extra: float) -> Totals:
    return classified(run_s=373 * 60, failure_s=30 * 60, setup_s=17 * 60, total_count=19271, good_count=18848,
                      reject_count=423, ideal_time_s=19271.0, reject_ideal_time_s=423.0, calendar_s=480 * 60, **extra)


def test_the_worked_example_from_totals() -> None:
    r = report(worked_example(), PLANT, *WINDOW)
    assert [round(x * 100, 2) for x in (r.availability, r.performance, r.quality, r.oee)] == [  # type: ignore[operator]
        88.81, 86.11, 97.80, 74.79]
    assert r.oee == pytest.approx(18848 * 1.0 / (420 * 60), rel=1e-12)
    assert r.availability * r.performance * r.quality == pytest.approx(r.oee, rel=1e-12)  # type: ignore[operator]
    assert r.teep == pytest.approx(18848 / (480 * 60))


def test_the_worked_example_from_raw_totals_and_stop_records() -> None:
    """What the store passes: raw minute sums (stopped_s) plus the stops of the window."""
    shift = {"name": "day", "start": "00:00", "end": "08:00",
             "breaks": [{"start": "02:00", "end": "02:15"}, {"start": "04:00", "end": "04:30"},
                        {"start": "06:00", "end": "06:15"}]}
    plant = make_plant(shifts=[shift])
    raw = Totals(calendar_s=480 * 60, planned_operation_s=420 * 60, run_s=373 * 60, stopped_s=47 * 60,
                 total_count=19271, good_count=18848, reject_count=423, ideal_time_s=19271.0, reject_ideal_time_s=423.0)
    stops = [Stop("L1", "M1", T0 + 3600, T0 + 3600 + 1800, State.FAULT, 1),
             Stop("L1", "M1", T0 + 5 * 3600, T0 + 5 * 3600 + 17 * 60, State.CHANGEOVER, 20)]  # 20: not in the file
    r = kpis(raw, stops, plant, *WINDOW)
    assert (r.totals.failure_s, r.totals.setup_s, r.totals.down_s, r.totals.stops) == (1800, 1020, 2820, 2)
    assert round(r.oee * 100, 2) == 74.79  # type: ignore[operator]


@pytest.mark.parametrize("totals, a, p, q, oee", [
    # no planned time at all: nothing is defined (never 0 %: there was no plan)
    (Totals(calendar_s=3600, unplanned_run_s=3600), None, None, None, None),
    # only unknown time: no known planned time
    (classified(unknown_s=600), None, None, None, None),
    # unknown time is excluded from A and OEE, not counted as down
    (classified(run_s=400, unexplained_s=100, unknown_s=100, total_count=300, good_count=300, ideal_time_s=300),
     0.8, 0.75, 1.0, 0.6),
    # speed loss: running all the time at half speed is 50 % OEE, not 100 %
    (classified(run_s=600, total_count=300, good_count=300, ideal_time_s=300), 1.0, 0.5, 1.0, 0.5),
    # micro-stops are production time (performance loss), not an availability loss
    (classified(run_s=300, micro_stop_s=100, failure_s=200, total_count=200, good_count=150, reject_count=50,
                ideal_time_s=200, reject_ideal_time_s=50), 400 / 600, 0.5, 0.75, 150 / 600),
    # stopped all planned time: A = 0, P undefined, OEE 0
    (classified(failure_s=600), 0.0, None, None, 0.0),
    # planned down time leaves planned busy time
    (classified(run_s=300, planned_down_s=300, total_count=300, good_count=300, ideal_time_s=300), 1.0, 1.0, 1.0, 1.0),
])
def test_ratios(totals: Totals, a: float | None, p: float | None, q: float | None, oee: float | None) -> None:
    r = report(totals, PLANT, *WINDOW)
    for got, want in ((r.availability, a), (r.performance, p), (r.quality, q), (r.oee, oee)):
        assert (got is None and want is None) or got == pytest.approx(want)


def test_performance_over_100_is_shown_and_flagged_not_clamped() -> None:
    r = report(classified(run_s=100, total_count=150, good_count=150, ideal_time_s=150), PLANT, *WINDOW)
    assert r.performance == 1.5
    data = r.to_dict()
    assert data["flags"]["performance_over_100"] is True
    assert data["losses"]["reduced_speed"] == -50
    assert report(worked_example(), PLANT, *WINDOW).to_dict()["flags"]["performance_over_100"] is False


def test_losses_and_waterfall_add_up() -> None:
    t = worked_example(micro_stop_s=0, unknown_s=600)
    t = classified(run_s=t.run_s - 700, micro_stop_s=100, failure_s=1800, setup_s=1020, starved_blocked_s=300,
                   unexplained_s=200, unknown_s=600, total_count=19271, good_count=18848, reject_count=423,
                   ideal_time_s=19271.0, reject_ideal_time_s=423.0)
    losses = report(t, PLANT, *WINDOW).to_dict()["losses"]
    assert losses["equipment_failure"] == 1800 and losses["setup_adjustment"] == 1020
    assert losses["small_stops"] == 100 and losses["reduced_speed"] == t.run_s - 19271
    assert losses["production_rejects"] == 423 and losses["startup_rejects"] == 0
    assert losses["starved_blocked"] + losses["unexplained"] + 1800 + 1020 == t.down_s
    steps = {s["step"]: s["seconds"] for s in losses["waterfall"]}
    assert list(steps) == ["planned_busy_time", "unknown", "availability_losses", "performance_losses",
                           "quality_losses", "fully_productive_time"]
    remaining = steps["planned_busy_time"] - steps["unknown"] - steps["availability_losses"] \
        - steps["performance_losses"] - steps["quality_losses"]
    assert remaining == pytest.approx(steps["fully_productive_time"]) == 18848


def test_energy_kpis() -> None:
    t = worked_example(energy_kwh=100.0, energy_not_running_kwh=25.0, energy_cost=62.0, co2_kg=57.03)
    t.quarter_kwh = {T0: 2.0, T0 + 900: 5.0}
    energy = report(t, PLANT, *WINDOW).to_dict()["energy"]
    assert energy == {
        "kwh": 100.0, "avg_kw": 12.5, "peak_kw": 20.0, "kwh_per_unit": 100 / 19271,
        "kwh_per_good_unit": 100 / 18848, "not_running_kwh": 25.0, "not_running_share": 0.25, "cost": 62.0,
        "currency": "EUR", "co2_kg": 57.03,
    }
    empty = report(Totals(), PLANT, T0, T0, T0).to_dict()["energy"]
    assert [empty[k] for k in ("avg_kw", "peak_kw", "kwh_per_unit", "not_running_share")] == [None] * 4


def test_to_dict_shape_is_json_ready() -> None:
    data = report(worked_example(), PLANT, *WINDOW).to_dict()
    assert set(data) >= {"availability", "performance", "quality", "oee", "teep", "planned_busy_s", "run_s",
                         "down_s", "unknown_s", "micro_stop_s", "total_count", "good_count", "reject_count",
                         "losses", "energy", "flags", "window"}
    assert set(data["losses"]) >= {"equipment_failure", "setup_adjustment", "small_stops", "reduced_speed",
                                   "production_rejects", "startup_rejects", "waterfall"}
    assert data["flags"] == {"performance_over_100": False, "micro_stop_threshold_s": 120}
    assert data["window"] == {"start": T0, "end": T0 + 8 * 3600}
    assert json.loads(json.dumps(data)) == data


# --- lines and the plant: sums first, ratios last ------------------------------------

LINE_PLANT = make_plant(lines=[
    {"id": "L1", "output_machine": "OUT", "machines": [machine_config("IN", ideal=1.0),
                                                       machine_config("OUT", ideal=2.0)]},
    {"id": "L2", "output_machine": "X", "machines": [machine_config("X", ideal=10.0)]},
])


def test_a_line_counts_its_output_machine_and_all_machines_energy() -> None:
    upstream = classified(run_s=3600, total_count=3600, good_count=3600, ideal_time_s=3600, energy_kwh=50.0,
                          quarter_kwh={T0: 50.0})  # type: ignore[arg-type]
    output = classified(run_s=3000, failure_s=600, total_count=1200, good_count=1100, reject_count=100,
                        ideal_time_s=2400, reject_ideal_time_s=200, energy_kwh=10.0,
                        quarter_kwh={T0: 10.0})  # type: ignore[arg-type]
    stops = [Stop("L1", "OUT", T0, T0 + 600, State.FAULT, 1), Stop("L1", "IN", T0 + 600, T0 + 900, State.FAULT, 1)]
    line = LINE_PLANT.lines[0]
    r = line_kpis({"IN": upstream, "OUT": output}, stops, LINE_PLANT, line, T0, T0 + 3600, T0 + 3600)
    assert (r.totals.total_count, r.totals.good_count) == (1200, 1100)
    assert r.availability == pytest.approx(3000 / 3600)
    assert r.oee == pytest.approx(1100 * 2.0 / 3600)
    assert r.totals.energy_kwh == 60.0 and r.totals.quarter_kwh == {T0: 60.0}
    assert r.to_dict()["energy"]["kwh_per_good_unit"] == pytest.approx(60 / 1100)


def test_the_plant_sums_times_and_counts_before_taking_ratios() -> None:
    good_line = classified(run_s=600, total_count=300, good_count=300, ideal_time_s=600, calendar_s=3600)
    bad_line = classified(run_s=1800, unexplained_s=1800, total_count=90, good_count=90, ideal_time_s=900,
                          calendar_s=3600)
    stops = [Stop("L2", "X", T0, T0 + 1800, State.IDLE, 0)]
    r = plant_kpis({"L1": {"OUT": good_line}, "L2": {"X": bad_line}}, stops, LINE_PLANT, T0, T0 + 3600, T0 + 3600)
    assert r.availability == pytest.approx((600 + 1800) / (600 + 3600))
    assert r.oee == pytest.approx((600 + 900) / (600 + 3600))
    line_oees = [report(t, LINE_PLANT, T0, T0 + 3600, T0 + 3600).oee for t in (good_line, bad_line)]
    assert r.oee != pytest.approx(sum(line_oees) / 2)  # type: ignore[arg-type]  # never average percentages
    assert r.availability * r.performance * r.quality == pytest.approx(r.oee)  # type: ignore[operator]


# --- properties ----------------------------------------------------------------------

@st.composite
def machine_totals(draw: st.DrawFn) -> Totals:
    seconds = st.one_of(st.just(0.0), st.floats(0.001, 10_000))  # times have millisecond resolution
    ideal_cycle = draw(st.floats(0.1, 100))
    good, reject = draw(st.integers(0, 5_000)), draw(st.integers(0, 500))
    return classified(run_s=draw(seconds), micro_stop_s=draw(seconds), failure_s=draw(seconds), setup_s=draw(seconds),
                      unknown_s=draw(seconds), planned_down_s=draw(seconds), total_count=good + reject,
                      good_count=good, reject_count=reject, ideal_time_s=ideal_cycle * (good + reject),
                      reject_ideal_time_s=ideal_cycle * reject)


@given(totals=machine_totals())
def test_ratios_stay_in_range_and_oee_is_good_ideal_time_over_known_planned_busy_time(totals: Totals) -> None:
    r: KpiReport = report(totals, PLANT, *WINDOW)
    known = totals.planned_busy_s - totals.unknown_s
    for value in (r.availability, r.quality):
        assert value is None or 0 <= value <= 1
    assert r.performance is None or r.performance >= 0
    apt = totals.run_s + totals.micro_stop_s
    if r.performance is not None and r.performance > 1:
        assert totals.ideal_time_s > apt  # only when parts came faster than ideal
        assert r.to_dict()["flags"]["performance_over_100"]
    if known > 0:
        good_ideal = totals.good_count * (totals.ideal_time_s / totals.total_count) if totals.total_count else 0
        assert r.oee == pytest.approx(good_ideal / known, rel=1e-9, abs=1e-12)
        if None not in (r.performance, r.quality):
            assert r.availability * r.performance * r.quality == pytest.approx(r.oee, rel=1e-9)  # type: ignore[operator]
        assert r.teep is not None and r.teep <= r.oee + 1e-12
    else:
        assert r.availability is None and r.oee is None


@given(parts=st.lists(machine_totals(), min_size=1, max_size=4))
def test_summed_oee_lies_between_the_parts(parts: list[Totals]) -> None:
    reports = [report(t, PLANT, *WINDOW) for t in parts]
    total = report(sum(parts, Totals()), PLANT, *WINDOW)
    oees = [r.oee for r in reports if r.oee is not None]
    if total.oee is not None and len(oees) == len(reports):
        assert min(oees) - 1e-9 <= total.oee <= max(oees) + 1e-9  # a weighted mean, by known planned time
    assert math.isclose(total.totals.run_s, sum(t.run_s for t in parts), rel_tol=1e-12, abs_tol=1e-9)
