"""The plant simulator (a real asyncua server), its machine model and scenario replay."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from asyncua import Client, ua

from collectors.machine_model import Calendar, MachineModel, Phase, calendar_segments, raw_state_for
from collectors.scenario import ScenarioError, load_scenario, parse_scenario, replay
from collectors.simulator import PlantSimulator, retarget
from config.loader import DEMO_PLANT, load_plant
from domain.calendar import shifts_overlapping
from domain.model import Signal, State
from domain.plant import MACHINERY_ITEM_STATE, Plant
from tests.support import free_port

EXAMPLE_SCENARIO = Path(__file__).resolve().parent.parent / "collectors" / "scenarios" / "bw1_st70_shift_a.csv"


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
