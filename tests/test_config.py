"""The plant file: the demo loads; a wrong file names the file, the key path and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.loader import DEMO_PLANT, PlantConfigError, load_plant, parse_plant
from domain.model import State
from domain.plant import MACHINERY_ITEM_STATE, PACKML


def demo_data() -> dict:
    return yaml.safe_load(DEMO_PLANT.read_text())


def test_demo_plant_loads_with_three_pilot_lines() -> None:
    plant = load_plant(DEMO_PLANT)
    assert [line.id for line in plant.lines] == ["BW1", "CM1", "BR1"]
    assert all(4 <= len(line.machines) <= 8 for line in plant.lines)
    assert plant.timezone == "Asia/Shanghai"
    assert len(plant.shifts) == 3
    assert any(s.end <= s.start for s in plant.shifts), "one shift crosses midnight"


def _set(data: dict, path: list, value: object) -> dict:
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DELETE = object()

BAD_CASES = [
    (["lines", 0, "machines", 1, "ideal_cycle_time_s"], 0, "lines[0].machines[1].ideal_cycle_time_s", "greater than 0"),
    (["lines", 0, "machines", 1, "ideal_cycle_time_s"], "fast", "lines[0].machines[1].ideal_cycle_time_s", "valid number"),
    (["lines", 1, "output_machine"], "OP99", "lines[1].output_machine", "'OP99' is not a machine of this line"),
    (["lines", 2, "machines", 0, "endpoint"], "nowhere", "lines[2].machines[0].endpoint", "no endpoint 'nowhere'"),
    (["lines", 0, "machines", 0, "state_map"], "siemens", "lines[0].machines[0].state_map", "unknown state map 'siemens'"),
    (["lines", 0, "machines", 0, "nodes", "speed"], "ns=2;s=x", "lines[0].machines[0].nodes.speed", "Input should be"),
    (["lines", 0, "machines", 0, "colour"], "red", "lines[0].machines[0].colour", "Extra inputs are not permitted"),
    (["timezone"], "Asia/Liuzhou", "timezone", "unknown time zone 'Asia/Liuzhou'"),
    (["endpoints", "demo", "url"], "http://plc:4840", "endpoints.demo.url", "must be an OPC UA endpoint"),
    (["endpoints", "demo", "timestamp"], "plc", "endpoints.demo.timestamp", "'source', 'server' or 'arrival'"),
    (["shifts", 0, "start"], "25:00", "shifts[0].start", "valid time"),
    (["shifts", 0, "breaks", 0, "start"], "16:00", "shifts[0].breaks[0]", "not inside shift 'A'"),
    (["reasons", 2, "category"], "bad_luck", "reasons.2.category", "Input should be"),
    (["lines", 0, "machines", 1, "id"], "ST10", "lines[0].machines[1].id", "duplicate machine id 'ST10'"),
    (["lines", 0, "machines", 1, "nodes", "good"], "ns=2;s=BW1.ST10.good", "lines[0].machines[1].nodes.good", "already used by BW1/ST10.good"),
    (["name"], _DELETE, "name", "Field required"),
    (["state_maps"], {"mine": {"values": {"1": "sleeping"}}}, "state_maps.mine.values.1", "Input should be"),
]


@pytest.mark.parametrize(("path", "value", "key", "problem"), BAD_CASES)
def test_bad_value_names_file_key_and_problem(tmp_path: Path, path: list, value: object, key: str, problem: str) -> None:
    file = tmp_path / "plant.yaml"
    file.write_text(yaml.safe_dump(_set(demo_data(), path, value)))
    with pytest.raises(PlantConfigError) as err:
        load_plant(file)
    message = str(err.value)
    assert f"{file}: {key}: " in message
    assert problem in message


def test_security_needs_certificate_and_password_env(tmp_path: Path) -> None:
    data = demo_data()
    data["endpoints"]["demo"]["security"] = {"policy": "Basic256Sha256", "mode": "None", "username": "op"}
    with pytest.raises(PlantConfigError) as err:
        parse_plant(yaml.safe_dump(data), "p.yaml")
    assert "p.yaml: endpoints.demo.security: a security policy needs mode" in str(err.value)
    assert "p.yaml: endpoints.demo.security.password_env:" in str(err.value)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlantConfigError, match=r"p.yaml: line 2, column \d+: not valid YAML"):
        parse_plant("name: x\n  - : : [\n", "p.yaml")
    with pytest.raises(PlantConfigError, match="cannot read"):
        load_plant(tmp_path / "missing.yaml")
    with pytest.raises(PlantConfigError, match=r"\(top level\): expected a mapping"):
        parse_plant("- 1\n- 2\n", "p.yaml")


@pytest.mark.parametrize(
    ("state_map", "raw", "expected"),
    [
        (PACKML, 6, State.RUNNING),
        (PACKML, 6.0, State.RUNNING),
        (PACKML, "11", State.FAULT),
        (PACKML, 5, State.STARVED),
        (PACKML, 2, State.IDLE),
        (PACKML, 99, State.UNKNOWN),
        (MACHINERY_ITEM_STATE, "Executing", State.RUNNING),
        (MACHINERY_ITEM_STATE, "OutOfService", State.FAULT),
        (MACHINERY_ITEM_STATE, "NotExecuting", State.IDLE),
        (MACHINERY_ITEM_STATE, "NotAvailable", State.UNKNOWN),
    ],
)
def test_builtin_state_maps(state_map, raw, expected) -> None:
    assert state_map.map(raw) == expected


def test_custom_state_map_with_integer_and_string_codes() -> None:
    data = demo_data()
    data["state_maps"] = {"press": {"values": {1: "running", "SETUP": "changeover", 3: "fault"}, "default": "idle"}}
    data["lines"][0]["machines"][0]["state_map"] = "press"
    plant = parse_plant(yaml.safe_dump(data))
    machine = plant.lines[0].machines[0]
    smap = plant.state_map_for(machine)
    assert [smap.map(v) for v in (1, "SETUP", 3, 42)] == [State.RUNNING, State.CHANGEOVER, State.FAULT, State.IDLE]
