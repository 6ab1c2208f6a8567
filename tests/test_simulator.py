"""The plant simulator (a real asyncua server), its machine model and scenario replay."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from asyncua import Client, ua

from collectors.sim.machine_model import Calendar, MachineModel, Phase, calendar_segments, raw_state_for
from collectors.sim.scenario import (
    ScenarioError,
    ScenarioRow,
    generate_scenario,
    load_scenario,
    longest_gaps,
    parse_scenario,
    replay,
    replay_scenario,
    shift_rows,
)
from collectors.sim.simulator import PlantSimulator, retarget
from config.loader import DEMO_PLANT, load_plant
from config.settings import Settings
from domain.calendar import shifts_overlapping
from domain.model import Signal, State
from domain.plant import MACHINERY_ITEM_STATE, Plant
from tests.support import free_port

EXAMPLE_SCENARIO = Path(__file__).resolve().parent.parent / "collectors" / "sim" / "scenarios" / "bw1_st70_shift_a.csv"


@pytest.fixture(scope="module")
def demo() -> Plant:
    return load_plant(DEMO_PLANT)


@pytest.fixture
def plant(demo: Plant) -> Plant:
    return retarget(demo, f"opc.tcp://127.0.0.1:{free_port()}/liuzhou/")


def all_nodes(plant: Plant) -> list[tuple[str, str, Signal, str]]:
    return [(line.id, m.id, s, n) for line in plant.lines for m in line.machines for s, n in m.nodes.items()]


# --- the server --------------------------------------------------------------------------


def test_serves_every_configured_node_showing_the_plants_values(plant: Plant) -> None:
    async def scenario() -> None:
        async with PlantSimulator(plant, seed=4, speed=900) as sim:
            await asyncio.sleep(1.5)
            await sim.stop_plant()
            totals = sim.totals()
            async with Client(plant.endpoints["demo"].url) as client:
                namespaces = await client.get_namespace_array()
                nodes = all_nodes(plant)
                values = await client.read_values([client.get_node(n) for *_, n in nodes])
                good_node = client.get_node("ns=2;s=BW1.ST10.good")
                good_dv = await good_node.read_data_value()
                good_type = await good_node.read_data_type_as_variant_type()
                state_type = await client.get_node("ns=2;s=BW1.ST10.state").read_data_type_as_variant_type()
        assert len(namespaces) == 3 and namespaces[2].startswith("urn:plant-simulator")
        assert len(nodes) == 19 * 6
        for (line, machine, signal, _), value in zip(nodes, values, strict=False):
            field = {Signal.ENERGY: "energy_kwh", Signal.POWER: "power_kw"}.get(signal, str(signal))
            assert value == getattr(totals[(line, machine)], field), (line, machine, signal)
        assert sum(t.good for t in totals.values()) > 19  # 1.5 s x 900 = 22 simulated minutes
        assert all(t.energy_kwh > 0 for t in totals.values())
        assert (good_type, state_type) == (ua.VariantType.UInt32, ua.VariantType.Int32)
        # Source timestamps are simulated time: 900x ahead of the wall clock.
        assert good_dv.SourceTimestamp.timestamp() <= sim.now() + 1e-3
        assert good_dv.SourceTimestamp.timestamp() > time.time() + 60 or totals[("BW1", "ST10")].good == 0

    asyncio.run(scenario())


def test_writes_any_value_and_status_for_tests(plant: Plant) -> None:
    async def scenario() -> None:
        async with PlantSimulator(plant, autorun=False) as sim:
            await sim.write("BW1", "ST10", Signal.ENERGY, float("nan"), source_ts=1_700_000_000.0)
            await sim.write("BW1", "ST10", Signal.GOOD, None, status="BadSensorFailure")
            with pytest.raises(TypeError):
                await sim.write("BW1", "ST10", Signal.REJECT, "twelve")
            with pytest.raises(ValueError, match="BadTypeMismatch"):
                await sim.write("BW1", "ST10", Signal.REJECT, "twelve", variant_type=ua.VariantType.String)
            await sim.set_value("ns=2;s=BW1.ST20.good", 42)
            async with Client(plant.endpoints["demo"].url) as client:
                energy = await client.get_node("ns=2;s=BW1.ST10.energy_kwh").read_data_value()
                good = await client.get_node("ns=2;s=BW1.ST10.good").read_data_value(raise_on_bad_status=False)
                st20 = await client.get_node("ns=2;s=BW1.ST20.good").read_value()
        assert math.isnan(energy.Value.Value)
        assert energy.SourceTimestamp.timestamp() == 1_700_000_000.0
        assert good.StatusCode.name == "BadSensorFailure"
        assert st20 == 42 and sim.totals()[("BW1", "ST20")].good == 42

    asyncio.run(scenario())


def test_only_serves_the_endpoints_it_is_asked_to(demo: Plant) -> None:
    second = demo.endpoints["demo"].model_copy(update={"url": "opc.tcp://127.0.0.1:4999/other/"})
    plant = demo.model_copy(update={"endpoints": {**demo.endpoints, "other": second}})
    lines = [plant.lines[0], plant.lines[1].model_copy(update={"machines": [
        m.model_copy(update={"endpoint": "other"}) for m in plant.lines[1].machines]}), plant.lines[2]]
    plant = plant.model_copy(update={"lines": lines})
    sim = PlantSimulator(plant, endpoints=["other"])
    assert sim.url == "opc.tcp://127.0.0.1:4999/other/"
    assert {line for line, _ in sim.models} == {"CM1"}
    with pytest.raises(ValueError, match="no such endpoint"):
        PlantSimulator(plant, endpoints=["nope"])


# --- the machine model -------------------------------------------------------------------


def local(plant: Plant, *args: int) -> float:
    return datetime(*args, tzinfo=ZoneInfo(plant.timezone)).timestamp()  # type: ignore[misc]


def run_model(plant: Plant, line: str, machine: str, start: float, end: float, seed: int = 1,
              step: float = 600.0) -> tuple[MachineModel, list]:
    cfg = plant.line(line).machine(machine)  # type: ignore[union-attr]
    tz = ZoneInfo(plant.timezone)
    model = MachineModel(plant, line, cfg, start, seed)
    writes = model.start(calendar_segments(plant, tz, start, start + 1e-3)[0][2])
    t = start
    while t < end:
        writes += model.advance(calendar_segments(plant, tz, t, min(t + step, end)))
        t += step
    return model, writes


def test_machines_stop_for_breaks_without_a_reason_and_make_nothing(demo: Plant) -> None:
    start, end = local(demo, 2025, 3, 3, 7), local(demo, 2025, 3, 4, 7)
    model, writes = run_model(demo, "BW1", "ST20", start, end)
    tz = ZoneInfo(demo.timezone)
    breaks = [b for s in shifts_overlapping(demo.shifts, tz, start, end) for b in s.breaks]
    assert len(breaks) == 9
    for b_start, b_end in breaks:
        inside = [w for w in writes if b_start <= w.ts < b_end]
        assert [w.value for w in inside if w.signal == Signal.STATE][:1] == [4]
        assert not [w for w in inside if w.signal in (Signal.GOOD, Signal.REJECT)]
        assert all(w.value == 0 for w in inside if w.signal == Signal.REASON)
    parts = model.good_total + model.reject_total
    # 21 h planned at 58 s x 1.02-1.10 minus stops: between 50 % and 100 % of ideal.
    assert 0.5 * 21 * 3600 / 58 < parts < 21 * 3600 / 58


def test_model_is_deterministic_per_seed_and_uses_the_plants_reasons(demo: Plant) -> None:
    start, end = local(demo, 2025, 3, 3, 7), local(demo, 2025, 3, 3, 23)
    _, a = run_model(demo, "CM1", "OP20", start, end, seed=3)
    _, b = run_model(demo, "CM1", "OP20", start, end, seed=3)
    _, c = run_model(demo, "CM1", "OP20", start, end, seed=4)
    assert a == b and a != c
    reasons = {w.value for w in a + c if w.signal == Signal.REASON}
    assert reasons <= {0, *demo.reasons} and len(reasons) > 2
    states = {w.value for w in a + c if w.signal == Signal.STATE}
    assert {4, 5, 6, 11} <= states <= {2, 4, 5, 6, 9, 11}


def test_counters_wrap_at_counter_bits_and_meter_only_grows(demo: Plant) -> None:
    line = demo.lines[0]
    fast = line.machines[0].model_copy(update={"counter_bits": 8, "ideal_cycle_time_s": 5.0, "reject_rate": 0.2})
    plant = demo.model_copy(update={"lines": [line.model_copy(update={"machines": [fast]})]})
    start = local(plant, 2025, 3, 3, 7)
    model, writes = run_model(plant, "BW1", "ST10", start, start + 8 * 3600)
    goods = [w.value for w in writes if w.signal == Signal.GOOD]
    assert model.good_total > 1000 and max(goods) < 256
    assert any(b < a for a, b in zip(goods, goods[1:], strict=False))  # wrapped
    assert 0.12 < model.reject_total / (model.good_total + model.reject_total) < 0.28
    energy = [w.value for w in writes if w.signal == Signal.ENERGY]
    assert energy == sorted(energy) and energy[-1] > 0
    powers = {w.value for w in writes if w.signal == Signal.POWER}
    assert min(powers) < 4 and max(powers) > 10  # idle 3 kW and running 12 kW


def test_raw_states_follow_other_state_maps() -> None:
    assert raw_state_for(MACHINERY_ITEM_STATE, Phase.RUNNING) == "Executing"
    assert MACHINERY_ITEM_STATE.map(raw_state_for(MACHINERY_ITEM_STATE, Phase.FAULT)) == State.FAULT
    assert MACHINERY_ITEM_STATE.map(raw_state_for(MACHINERY_ITEM_STATE, Phase.BREAK)) == State.IDLE


def test_calendar_segments_cover_the_window(demo: Plant) -> None:
    tz = ZoneInfo(demo.timezone)
    start, end = local(demo, 2025, 3, 3, 9), local(demo, 2025, 3, 3, 10)
    segments = calendar_segments(demo, tz, start, end)
    assert [k for *_, k in segments] == [Calendar.BUSY, Calendar.BREAK, Calendar.BUSY]
    assert segments[0][0] == start and segments[-1][1] == end
    assert segments[1][:2] == (local(demo, 2025, 3, 3, 9, 30), local(demo, 2025, 3, 3, 9, 45))


# --- scenarios ---------------------------------------------------------------------------


def test_example_scenario_is_one_shift_of_bw1_st70(demo: Plant) -> None:
    rows = load_scenario(EXAMPLE_SCENARIO, demo)
    assert len(rows) > 1000
    assert rows[0].time == local(demo, 2025, 3, 3, 7) and rows[-1].time < local(demo, 2025, 3, 3, 15)
    assert {(r.line, r.machine) for r in rows} == {("BW1", "ST70")}
    assert {r.signal for r in rows} == {Signal.STATE, Signal.GOOD, Signal.REJECT, Signal.ENERGY,
                                        Signal.POWER, Signal.REASON}
    goods = [r.value for r in rows if r.signal == Signal.GOOD]
    assert goods == list(range(len(goods)))
    # Played faster than real time there are no heartbeats between its rows: the meter,
    # read every gap_timeout_s / 2, keeps the machine heard.
    assert longest_gaps(rows) == {("BW1", "ST70"): demo.gap_timeout_s / 2}


def test_generated_scenarios_read_the_meter_every_half_gap_timeout(demo: Plant) -> None:
    start = local(demo, 2025, 3, 3, 9)
    rows = generate_scenario(demo, "CM1", "OP20", start, start + 3600, seed=2)
    energy = [r.time for r in rows if r.signal == Signal.ENERGY]
    assert max(b - a for a, b in zip(energy, energy[1:], strict=False)) <= demo.gap_timeout_s / 2
    sparse = generate_scenario(demo, "CM1", "OP20", start, start + 3600, seed=2, meter_period_s=60)
    assert len([r for r in sparse if r.signal == Signal.ENERGY]) < len(energy) / 3


def test_longest_gaps_count_only_rows_a_collector_hears() -> None:
    rows = [ScenarioRow(t, "L", "M", signal, value) for t, signal, value in (
        (0.0, Signal.STATE, 6), (10.0, Signal.ENERGY, 1.0), (40.0, Signal.STATE, 6),  # no change: not reported
        (50.0, Signal.ENERGY, 1.5), (52.0, Signal.ENERGY, 1.5))]
    assert longest_gaps(rows) == {("L", "M"): 40.0}


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("2025-03-03T07:00:00,BW1,ST70,good,1,", "no UTC offset"),
        ("2025-03-03T07:00:00+08:00,BW1,ST99,good,1,", "no machine BW1/ST99"),
        ("2025-03-03T07:00:00+08:00,BW1,ST70,hb,1,", "written by the collector"),
        ("2025-03-03T07:00:00+08:00,BW1,ST70,good,,", "empty value with a Good status"),
        ("2025-03-03T07:00:00+08:00,BW1,ST70,good,1.5,", "invalid literal"),
        ("2025-03-03T07:00:00+08:00,BW1,ST70,good,,BadNonsense", "unknown OPC UA status"),
    ],
)
def test_scenario_errors_name_the_row(demo: Plant, row: str, problem: str) -> None:
    text = "# comment\ntime,line,machine,signal,value,status\n2025-03-03T07:00:00Z,BW1,ST70,good,0,\n" + row
    with pytest.raises(ScenarioError, match=f"x.csv: data row 2: .*{problem}"):
        parse_scenario(text, demo, "x.csv")


def test_scenario_rows_play_in_time_order_with_their_times(demo: Plant) -> None:
    text = """time,line,machine,signal,value,status
2025-03-03T08:00:00+08:00,BW1,ST70,good,3,
2025-03-03T07:00:00+08:00,BW1,ST70,good,1,
2025-03-03T07:30:00+08:00,BW1,ST70,good,2,
2025-03-03T07:30:00+08:00,BW1,ST70,energy_kwh,,BadSensorFailure
"""
    rows = parse_scenario(text, demo)
    assert [r.value for r in rows] == [1, 2, None, 3]
    assert rows[2].status == "BadSensorFailure"
    plant = retarget(demo, f"opc.tcp://127.0.0.1:{free_port()}/liuzhou/")

    async def scenario() -> list[tuple[int, float]]:
        seen: list[tuple[int, float]] = []
        async with PlantSimulator(plant, autorun=False) as sim, Client(sim.url) as client:
            sub = await client.create_subscription(20, None, queue_maxsize=0)
            await sub.subscribe_data_change(client.get_node("ns=2;s=BW1.ST70.good"), queuesize=100)
            started = time.monotonic()
            assert await replay(sim, rows, speed=3600) == 4  # one hour in one second
            elapsed = time.monotonic() - started
            while len(seen) < 4:
                ev = await asyncio.wait_for(sub.__anext__(), 5)
                dv = ev.data.monitored_item.Value  # type: ignore[union-attr]
                seen.append((dv.Value.Value, dv.SourceTimestamp.timestamp()))
            assert 0.9 < elapsed < 2.0
        return seen

    seen = asyncio.run(scenario())
    assert seen[1:] == [(r.value, r.time) for r in rows if r.signal == Signal.GOOD]


def test_replay_warns_when_rows_are_further_apart_than_the_gap_timeout(
        plant: Plant, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "sparse.csv"
    path.write_text("time,line,machine,signal,value\n"
                    "2025-03-03T09:00:00+08:00,BW1,ST70,energy_kwh,1.0\n"
                    "2025-03-03T09:01:00+08:00,BW1,ST70,energy_kwh,1.1\n"
                    "2025-03-03T09:01:10+08:00,BW1,ST60,energy_kwh,1.1\n", encoding="utf-8")
    settings = Settings(plant_path=DEMO_PLANT, plant=plant, redis_url=None)
    caplog.set_level(logging.WARNING, logger="collectors.sim.scenario")
    assert asyncio.run(replay_scenario(settings, path, speed=600, lead_in_s=0, linger_s=0)) == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "collectors.sim.scenario"]
    assert len(warnings) == 1 and "BW1/ST70 (60 s)" in warnings[0] and "ST60" not in warnings[0]
    caplog.clear()
    dense = tmp_path / "dense.csv"
    dense.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:2]) +
                     "2025-03-03T09:00:30+08:00,BW1,ST70,energy_kwh,1.1\n", encoding="utf-8")
    assert asyncio.run(replay_scenario(settings, dense, speed=600, lead_in_s=0, linger_s=0)) == 2
    assert not [r for r in caplog.records if r.name == "collectors.sim.scenario"]


# --- moving a scenario in time -----------------------------------------------------------------


SHANGHAI = ZoneInfo("Asia/Shanghai")


def shift_a(day: tuple[int, int, int], tz: ZoneInfo = SHANGHAI) -> list[ScenarioRow]:
    """Rows from 07:00:00.250 to 15:00 local (a shift), one every 30 min, and one at 11:11:11.111."""
    start = datetime(*day, 7, tzinfo=tz).timestamp()
    times = sorted([start + 0.25 + 1800 * i for i in range(16)] + [start + 4 * 3600 + 671.111, start + 8 * 3600])
    return [ScenarioRow(round(t, 3), "BW1", "ST70", Signal.GOOD, i) for i, t in enumerate(times)]


def played_at(rows: list[ScenarioRow], i: int, starts_at: float, speed: float) -> float:
    return starts_at + (rows[i].time - rows[0].time) / speed


def test_shift_exact_ends_the_scenario_when_the_replay_ends() -> None:
    rows = shift_a((2025, 3, 3))
    starts_at = 1_795_600_000.123456
    for speed in (480.0, 60.0, 1.0, 0.5):
        moved = shift_rows(rows, SHANGHAI, speed=speed, starts_at=starts_at, shift="exact")
        delta = moved[0].time - rows[0].time
        assert [m.time for m in moved] == [pytest.approx(r.time + delta, abs=1e-6) for r in rows]
        assert round(delta * 1000) == pytest.approx(delta * 1000, abs=1e-3)  # whole milliseconds
        # Never a row played before its time; at speed >= 1 the last one at the end of the
        # replay, slower than real time the first one at its start.
        assert all(m.time <= played_at(rows, i, starts_at, speed) + 1e-6 for i, m in enumerate(moved))
        edge = -1 if speed >= 1 else 0
        assert moved[edge].time == pytest.approx(played_at(rows, edge % len(rows), starts_at, speed), abs=1e-3)
    live = shift_rows(rows, SHANGHAI, speed=1.0, starts_at=starts_at, shift="exact")
    assert live[0].time == pytest.approx(starts_at, abs=1e-3)  # speed 1: it plays live


def test_shift_days_keeps_the_local_clock_times() -> None:
    rows = shift_a((2025, 3, 3))
    at = datetime(2026, 11, 25, 16, 0, tzinfo=SHANGHAI).timestamp()  # after today's shift A
    moved = shift_rows(rows, SHANGHAI, speed=480, starts_at=at, shift="days")
    assert datetime.fromtimestamp(moved[0].time, SHANGHAI) == datetime(2026, 11, 25, 7, 0, 0, 250000, tzinfo=SHANGHAI)
    assert [datetime.fromtimestamp(m.time, SHANGHAI).time() for m in moved] == [
        datetime.fromtimestamp(r.time, SHANGHAI).time() for r in rows]
    # 8 h at 480x take a minute: at 14:59 the replay ends at 15:00, with the shift; at
    # 14:58 it would end before the shift does: yesterday's.
    for hhmm, day in (((14, 59, 1), 25), ((14, 58, 59), 24), ((9, 0, 0), 24)):
        at = datetime(2026, 11, 25, *hhmm, tzinfo=SHANGHAI).timestamp()
        moved = shift_rows(rows, SHANGHAI, speed=480, starts_at=at, shift="days")
        assert datetime.fromtimestamp(moved[0].time, SHANGHAI).date() == datetime(2026, 11, day).date(), hhmm
        assert moved[-1].time <= at + 8 * 3600 / 480
    # A scenario dated after the replay moves back.
    future = shift_rows(shift_a((2027, 1, 1)), SHANGHAI, speed=480, starts_at=at, shift="days")
    assert datetime.fromtimestamp(future[0].time, SHANGHAI).date() == datetime(2026, 11, 24).date()
    assert shift_rows(rows, SHANGHAI, speed=480, starts_at=at, shift="none") == rows


def test_shift_days_across_daylight_saving_keeps_the_local_clock() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    rows = shift_a((2025, 1, 15), berlin)  # winter time, +01:00
    at = datetime(2025, 7, 1, 18, 0, tzinfo=berlin).timestamp()  # summer time, +02:00
    moved = shift_rows(rows, berlin, speed=60, starts_at=at, shift="days")
    local = [datetime.fromtimestamp(m.time, berlin) for m in moved]
    assert local[0] == datetime(2025, 7, 1, 7, 0, 0, 250000, tzinfo=berlin)
    assert [t.time() for t in local] == [datetime.fromtimestamp(r.time, berlin).time() for r in rows]
    assert all(m.time <= played_at(rows, i, at, 60) for i, m in enumerate(moved))


def test_replay_plays_a_moved_scenario_with_its_moved_times(plant: Plant, tmp_path: Path) -> None:
    path = tmp_path / "hour.csv"
    path.write_text("time,line,machine,signal,value\n" + "".join(
        f"2025-03-03T09:{m:02d}:00+08:00,BW1,ST70,good,{m}\n" for m in range(0, 60, 6)), encoding="utf-8")
    rows = load_scenario(path, plant)
    settings = Settings(plant_path=DEMO_PLANT, plant=plant, redis_url=None)

    async def scenario() -> tuple[list[tuple[int, float]], float, float]:
        seen: list[tuple[int, float]] = []
        start, stop = asyncio.Event(), asyncio.Event()
        began = time.time()
        replaying = asyncio.create_task(
            replay_scenario(settings, path, speed=3600, stop=stop, start=start, shift="exact"))
        for _ in range(100):  # until the server is up
            client = Client(plant.endpoints["demo"].url)
            try:
                await client.connect()
                break
            except OSError:
                await asyncio.sleep(0.1)
        try:
            sub = await client.create_subscription(20, None, queue_maxsize=0)
            await sub.subscribe_data_change(client.get_node("ns=2;s=BW1.ST70.good"), queuesize=100)
            start.set()
            while len(seen) < len(rows) + 1:  # the initial value and every row
                ev = await asyncio.wait_for(sub.__anext__(), 5)
                dv = ev.data.monitored_item.Value  # type: ignore[union-attr]
                seen.append((dv.Value.Value, dv.SourceTimestamp.timestamp()))
                assert dv.SourceTimestamp.timestamp() <= time.time()  # never in the future
        finally:
            await client.disconnect()
            stop.set()
        assert await replaying == len(rows)
        return seen, began, time.time()

    seen, began, ended = asyncio.run(scenario())
    delta = seen[1][1] - rows[0].time
    assert [(v, round(t - delta, 3)) for v, t in seen[1:]] == [(r.value, r.time) for r in rows]
    assert began <= seen[-1][1] <= ended  # ends when the replay ends (the server started first)
    assert seen[0][1] == pytest.approx(seen[1][1], abs=1e-3)  # the initial value at the first row's time


def test_replay_command_line_options() -> None:
    from app import build_parser

    parser = build_parser()
    args = parser.parse_args(["replay", "x.csv", "--speed", "480"])
    assert (args.scenario, args.speed, args.shift, args.keep_times) == ("x.csv", 480.0, "exact", False)
    assert parser.parse_args(["replay", "x.csv", "--shift", "days"]).shift == "days"
    assert parser.parse_args(["replay", "x.csv", "--keep-times"]).keep_times
    with pytest.raises(SystemExit):
        parser.parse_args(["replay", "x.csv", "--shift", "days", "--keep-times"])
