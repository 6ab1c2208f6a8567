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
    (
        ["lines", 0, "machines", 1, "ideal_cycle_time_s"],
        "fast",
        "lines[0].machines[1].ideal_cycle_time_s",
        "valid number",
    ),
    (["lines", 1, "output_machine"], "OP99", "lines[1].output_machine", "'OP99' is not a machine of this line"),
    (["lines", 2, "machines", 0, "endpoint"], "nowhere", "lines[2].machines[0].endpoint", "no endpoint 'nowhere'"),
    (
        ["lines", 0, "machines", 0, "state_map"],
        "siemens",
        "lines[0].machines[0].state_map",
        "unknown state map 'siemens'",
    ),
    (["lines", 0, "machines", 0, "nodes", "speed"], "ns=2;s=x", "lines[0].machines[0].nodes.speed", "Input should be"),
    (["lines", 0, "machines", 0, "colour"], "red", "lines[0].machines[0].colour", "Extra inputs are not permitted"),
    (["timezone"], "Asia/Liuzhou", "timezone", "unknown time zone 'Asia/Liuzhou'"),
    (["endpoints", "demo", "url"], "http://plc:4840", "endpoints.demo.url", "must be an OPC UA endpoint"),
    (["endpoints", "demo", "timestamp"], "plc", "endpoints.demo.timestamp", "'source', 'server' or 'arrival'"),
    (["shifts", 0, "start"], "25:00", "shifts[0].start", "valid time"),
    (["shifts", 0, "breaks", 0, "start"], "16:00", "shifts[0].breaks[0]", "not inside shift 'A'"),
    (["reasons", 2, "category"], "bad_luck", "reasons.2.category", "Input should be"),
    (["lines", 0, "machines", 1, "id"], "ST10", "lines[0].machines[1].id", "duplicate machine id 'ST10'"),
    (
        ["lines", 0, "machines", 1, "nodes", "good"],
        "ns=2;s=BW1.ST10.good",
        "lines[0].machines[1].nodes.good",
        "already used by BW1/ST10.good",
    ),
    (["name"], _DELETE, "name", "Field required"),
    (["state_maps"], {"mine": {"values": {"1": "sleeping"}}}, "state_maps.mine.values.1", "Input should be"),
]


@pytest.mark.parametrize(("path", "value", "key", "problem"), BAD_CASES)
def test_bad_value_names_file_key_and_problem(
    tmp_path: Path, path: list, value: object, key: str, problem: str
) -> None:
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


# --- issue 14: every bad plant file gets a clear message, never a traceback or a hang ---

DEMO_TEXT = DEMO_PLANT.read_text(encoding="utf-8")
AFTER_DEMO = DEMO_TEXT.count("\n") + 1  # the line a key appended to the demo text is on


def _expect(text: str, key: str, problem: str) -> str:
    """parse_plant(text) fails with ``p.yaml: <key>...: ...<problem>`` on one line."""
    with pytest.raises(PlantConfigError) as err:
        parse_plant(text, "p.yaml")
    message = str(err.value)
    assert any(line.startswith(f"p.yaml: {key}") and problem in line for line in message.splitlines()), message
    return message


def _with(path: list, value: object) -> str:
    return yaml.safe_dump(_set(demo_data(), path, value))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param(DEMO_TEXT.encode("utf-16"), "encoded as UTF-16: save it as UTF-8", id="utf16-bom"),
        pytest.param(DEMO_TEXT.encode("utf-16-le"), "contains NUL bytes", id="utf16-without-bom"),
        pytest.param(DEMO_TEXT.encode("utf-32"), "encoded as UTF-32", id="utf32"),
    ],
)
def test_wrong_encoding_is_named(tmp_path: Path, raw: bytes, problem: str) -> None:
    file = tmp_path / "plant.yaml"
    file.write_bytes(raw)
    with pytest.raises(PlantConfigError) as err:
        load_plant(file)
    assert str(err.value) == f"{file}: (file): {problem}" or str(err.value).startswith(f"{file}: (file): {problem}")


def test_latin1_byte_is_located(tmp_path: Path) -> None:
    file = tmp_path / "plant.yaml"
    text = DEMO_TEXT.replace('name: {en: "Liuzhou demo plant", zh-CN: "柳州演示工厂"}', "name: Liuzhou caf\u00e9")
    file.write_bytes(text.encode().replace("\u00e9".encode(), b"\xe9"))  # one Latin-1 byte in a UTF-8 file
    with pytest.raises(PlantConfigError) as err:
        load_plant(file)
    assert str(err.value) == f"{file}: line 4, column 18: not UTF-8 (byte 0xe9): save the file as UTF-8"


def test_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    file = tmp_path / "plant.yaml"
    file.write_bytes(DEMO_TEXT.encode("utf-8-sig"))
    assert load_plant(file).name == "Liuzhou demo plant"


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    from config.plant_yaml import MAX_PLANT_BYTES

    file = tmp_path / "plant.yaml"
    file.write_bytes(DEMO_TEXT.encode() + b"#" * MAX_PLANT_BYTES)
    with pytest.raises(PlantConfigError, match=r"plant.yaml: \(file\): larger than 2,097,152 bytes"):
        load_plant(file)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(PlantConfigError, match=r": \(file\): cannot read: Is a directory"):
        load_plant(tmp_path)


def test_number_with_5000_digits() -> None:
    _expect(
        DEMO_TEXT.replace("heartbeat_s: 5", "heartbeat_s: " + "9" * 5000),
        "heartbeat_s",
        "a number with 5000 characters (at most 40) (line 17, column 14)",
    )


@pytest.mark.parametrize(
    ("path", "value", "key", "problem"),
    [
        pytest.param(["heartbeat_s"], 1e-9, "heartbeat_s", "greater than or equal to 0.1", id="heartbeat-1e-9"),
        pytest.param(["heartbeat_s"], 1e6, "heartbeat_s", "less than or equal to 3600", id="heartbeat-huge"),
        pytest.param(
            ["retention"], {"stream_days": float("inf")}, "retention.stream_days", "finite number", id="retention-inf"
        ),
        pytest.param(
            ["retention"],
            {"stream_days": 1e300},
            "retention.stream_days",
            "less than or equal to 36500",
            id="retention-1e300",
        ),
        pytest.param(
            ["lines", 0, "machines", 0, "ideal_cycle_time_s"],
            float("inf"),
            "lines[0].machines[0].ideal_cycle_time_s",
            "finite number",
            id="cycle-time-inf",
        ),
        pytest.param(
            ["lines", 0, "machines", 0, "ideal_cycle_time_s"],
            float("nan"),
            "lines[0].machines[0].ideal_cycle_time_s",
            "finite number",
            id="cycle-time-nan",
        ),
        pytest.param(
            ["tariff", "default_price_per_kwh"],
            float("inf"),
            "tariff.default_price_per_kwh",
            "finite number",
            id="price-inf",
        ),
        pytest.param(
            ["tariff", "periods", 0, "price_per_kwh"],
            float("inf"),
            "tariff.periods[0].price_per_kwh",
            "finite number",
            id="period-price-inf",
        ),
        pytest.param(["co2_kg_per_kwh"], float("inf"), "co2_kg_per_kwh", "finite number", id="co2-inf"),
        pytest.param(["co2_kg_per_kwh"], 570.3, "co2_kg_per_kwh", "less than or equal to 10", id="co2-grams"),
        pytest.param(["gap_timeout_s"], float("-inf"), "gap_timeout_s", "finite number", id="gap-minus-inf"),
        pytest.param(
            ["reasons", -3],
            {"text": "x", "category": "planned"},
            "reasons.-3",
            "greater than or equal to 0",
            id="negative-reason-code",
        ),
        pytest.param(
            ["shifts", 0, "weekdays"],
            [],
            "shifts[0].weekdays",
            "empty: a shift needs at least one weekday",
            id="empty-weekdays",
        ),
        pytest.param(
            ["shifts", 0, "weekdays"], [1, 1], "shifts[0].weekdays", "a weekday is listed twice", id="weekday-twice"
        ),
    ],
)
def test_numbers_finite_and_in_range(path: list, value: object, key: str, problem: str) -> None:
    _expect(_with(path, value), key, problem)


@pytest.mark.parametrize(
    ("zone", "problem"),
    [
        pytest.param("A" * 300, "unknown time zone 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA...'", id="300-chars"),
        pytest.param("../../etc/passwd", "unknown time zone '../../etc/passwd'", id="path"),
        pytest.param("Asia/Shanghai\x00", "unknown time zone", id="nul"),
        pytest.param("", "unknown time zone ''", id="empty"),
    ],
)
def test_time_zone_validated_by_name(zone: str, problem: str) -> None:
    _expect(_with(["timezone"], zone), "timezone", problem)


def test_duplicate_keys_are_refused() -> None:
    text = DEMO_TEXT.replace("endpoints:\n", "endpoints:\n  demo:\n    url: opc.tcp://10.0.0.9:4840/\n", 1)
    _expect(text, "endpoints.demo: ", "duplicate key 'demo' (first on line 8) (line 10, column 3)")


def test_duplicate_nested_key_names_its_path() -> None:
    text = DEMO_TEXT.replace(
        "        ideal_cycle_time_s: 58\n", "        ideal_cycle_time_s: 58\n        ideal_cycle_time_s: 5\n", 1
    )
    _expect(text, "lines[0].machines[1].ideal_cycle_time_s: ", "duplicate key 'ideal_cycle_time_s'")


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        pytest.param("not a node id", "not an OPC UA node id like 'ns=2;s=Line1.Press.State'", id="words"),
        pytest.param("ns=x;i=1", "not an OPC UA node id", id="bad-namespace"),
        pytest.param("ns=2;i=abc", "not an OPC UA node id", id="bad-numeric"),
        pytest.param("ns=2;s=", "empty identifier", id="empty-identifier"),
        pytest.param("ns=70000;i=1", "namespace index 70000 is out of range", id="namespace-range"),
    ],
)
def test_node_ids_parsed_at_load(node: str, problem: str) -> None:
    _expect(_with(["lines", 0, "machines", 0, "nodes", "state"], node), "lines[0].machines[0].nodes.state", problem)


def test_not_a_node_id_fails_check_through_the_command_line(tmp_path: Path) -> None:
    import app

    file = tmp_path / "plant.yaml"
    file.write_text(_with(["lines", 0, "machines", 0, "nodes", "state"], "not a node id"))
    assert app.main(["--plant", str(file), "check"]) == 2
    assert app.main(["--plant", str(DEMO_PLANT), "check"]) == 0


def _shift(name: str, start: str, end: str, weekdays: list[int] | None = None, breaks: list | None = None) -> dict:
    out: dict = {"name": name, "start": start, "end": end, "breaks": breaks or []}
    if weekdays is not None:
        out["weekdays"] = weekdays
    return out


@pytest.mark.parametrize(
    ("shifts", "key", "problem"),
    [
        pytest.param(
            [_shift("A", "06:00", "14:00"), _shift("B", "13:00", "22:00")],
            "shifts[1]",
            "shift 'B' overlaps shift 'A' (shifts[0]) on Monday",
            id="same-day",
        ),
        pytest.param(
            [_shift("N", "22:00", "06:00", [4]), _shift("S", "05:00", "13:00", [5])],
            "shifts[1]",
            "shift 'S' overlaps shift 'N' (shifts[0]) on Friday",
            id="across-midnight",
        ),
        pytest.param(
            [_shift("N", "22:00", "06:00", [6]), _shift("M", "05:00", "13:00", [0])],
            "shifts[1]",
            "overlaps shift 'N' (shifts[0]) on Sunday",
            id="across-the-week-end",
        ),
        pytest.param(
            [_shift("A", "06:00", "14:00"), _shift("A", "14:00", "22:00")],
            "shifts[1].name",
            "duplicate shift name 'A' (also shifts[0])",
            id="duplicate-name",
        ),
        pytest.param(
            [_shift("A", "06:00", "14:00", breaks=[{"start": "06:00", "end": "14:00"}])],
            "shifts[0].breaks[0]",
            "break 06:00-14:00 is as long as shift 'A'",
            id="break-as-long-as-shift",
        ),
        pytest.param(
            [_shift("A", "06:00", "14:00", breaks=[{"start": "13:00", "end": "15:00"}])],
            "shifts[0].breaks[0]",
            "break 13:00-15:00 is not inside shift 'A'",
            id="break-outside",
        ),
        pytest.param(
            [
                _shift(
                    "A",
                    "06:00",
                    "14:00",
                    breaks=[{"start": "09:00", "end": "10:00"}, {"start": "09:30", "end": "09:45"}],
                )
            ],
            "shifts[0].breaks[1]",
            "overlaps another break",
            id="breaks-overlap",
        ),
    ],
)
def test_shift_calendar_rules(shifts: list, key: str, problem: str) -> None:
    _expect(_with(["shifts"], shifts), key, problem)


def test_shifts_on_different_weekdays_may_share_hours() -> None:
    shifts = [_shift("W", "06:00", "18:00", [0, 1, 2, 3, 4]), _shift("E", "06:00", "18:00", [5, 6])]
    assert [s.name for s in parse_plant(_with(["shifts"], shifts)).shifts] == ["W", "E"]


@pytest.mark.parametrize(
    ("periods", "problem"),
    [
        pytest.param(
            [("08:00", "12:00"), ("11:00", "13:00")],
            "11:00-13:00 overlaps tariff.periods[0] (08:00-12:00)",
            id="same-day",
        ),
        pytest.param(
            [("22:00", "06:00"), ("05:00", "07:00")],
            "05:00-07:00 overlaps tariff.periods[0] (22:00-06:00)",
            id="across-midnight",
        ),
        pytest.param(
            [("08:00", "08:00"), ("12:00", "13:00")], "overlaps tariff.periods[0] (08:00-08:00)", id="whole-day"
        ),
    ],
)
def test_tariff_periods_must_not_overlap(periods: list, problem: str) -> None:
    value = [{"start": a, "end": b, "price_per_kwh": 1.0} for a, b in periods]
    _expect(_with(["tariff", "periods"], value), "tariff.periods[1]", problem)


def test_touching_tariff_periods_are_fine() -> None:
    value = [{"start": a, "end": b, "price_per_kwh": 1.0} for a, b in [("08:00", "12:00"), ("12:00", "08:00")]]
    assert len(parse_plant(_with(["tariff", "periods"], value)).tariff.periods) == 2


def _security(tmp_path: Path, **fields: object) -> str:
    return _with(["endpoints", "demo", "security"], fields)


def _pki(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "client.der", tmp_path / "client.pem"
    cert.write_bytes(b"\x30\x82")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    return str(cert), str(key)


def test_policy_none_with_sign_and_encrypt_is_an_error(tmp_path: Path) -> None:
    _expect(
        _security(tmp_path, policy="None", mode="SignAndEncrypt"),
        "endpoints.demo.security.mode",
        "mode SignAndEncrypt needs a security policy",
    )


def test_certificate_and_key_must_be_readable(tmp_path: Path) -> None:
    cert, _key = _pki(tmp_path)
    text = _security(
        tmp_path,
        policy="Basic256Sha256",
        mode="SignAndEncrypt",
        certificate=cert,
        private_key=str(tmp_path / "missing.pem"),
        server_certificate=str(tmp_path),
    )
    message = _expect(text, "endpoints.demo.security.private_key", "missing.pem': No such file or directory")
    assert "p.yaml: endpoints.demo.security.server_certificate: cannot read" in message
    assert "security.certificate" not in message


def test_unreadable_key_file(tmp_path: Path) -> None:
    import os

    cert, key = _pki(tmp_path)
    Path(key).chmod(0)
    if os.access(key, os.R_OK):
        pytest.skip("running as root: every file is readable")
    text = _security(tmp_path, policy="Basic256Sha256", mode="Sign", certificate=cert, private_key=key)
    _expect(text, "endpoints.demo.security.private_key", "Permission denied")


@pytest.mark.parametrize(
    ("security", "ok"),
    [
        pytest.param({"username": "op", "password_env": "PW"}, False, id="policy-none"),
        pytest.param(
            {"username": "op", "password_env": "PW", "policy": "Basic256Sha256", "mode": "Sign"}, False, id="sign-only"
        ),
        pytest.param(
            {"username": "op", "password_env": "PW", "policy": "Basic256Sha256", "mode": "SignAndEncrypt"},
            True,
            id="encrypted",
        ),
        pytest.param(
            {"username": "op", "password_env": "PW", "allow_unencrypted_password": True},
            True,
            id="explicitly-allowed-for-tests",
        ),
    ],
)
def test_password_only_over_an_encrypted_channel(tmp_path: Path, security: dict, ok: bool) -> None:
    if security.get("policy"):
        security["certificate"], security["private_key"] = _pki(tmp_path)
        security["trust_dir"] = str(tmp_path / "trust")
    text = _security(tmp_path, **security)
    if ok:
        assert parse_plant(text, "p.yaml").endpoints["demo"].security.username == "op"
    else:
        _expect(text, "endpoints.demo.security.username", "a password is sent only over mode SignAndEncrypt")


def test_valid_secure_endpoint_loads(tmp_path: Path) -> None:
    cert, key = _pki(tmp_path)
    text = _security(tmp_path, policy="Aes256_Sha256_RsaPss", mode="SignAndEncrypt", certificate=cert, private_key=key,
                     trust_dir=str(tmp_path / "trust"))
    assert parse_plant(text).endpoints["demo"].security.mode == "SignAndEncrypt"


def test_a_secured_endpoint_must_check_the_servers_certificate(tmp_path: Path) -> None:
    """Encryption with a server nobody verified is encryption to whoever answers."""
    cert, key = _pki(tmp_path)
    text = _security(tmp_path, policy="Basic256Sha256", mode="SignAndEncrypt", certificate=cert, private_key=key)
    _expect(text, "endpoints.demo.security.trust_dir", "any server at the address would be believed")
    pinned = _security(tmp_path, policy="Basic256Sha256", mode="SignAndEncrypt", certificate=cert, private_key=key,
                       server_certificate=cert)
    assert parse_plant(pinned).endpoints["demo"].security.server_certificate == cert


def test_3000_deep_map_is_refused_before_parsing() -> None:
    _expect(
        DEMO_TEXT + "deep: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
        f"deep (line {AFTER_DEMO})",
        "nested deeper than 24 levels",
    )


def test_5000_deep_list_is_refused_before_parsing() -> None:
    _expect(DEMO_TEXT + "deep: " + "[" * 5000 + "]" * 5000 + "\n", f"deep (line {AFTER_DEMO})",
            "nested deeper than 24 levels")


def test_deep_block_nesting_names_its_path() -> None:
    text = DEMO_TEXT + "deep:\n" + "".join("  " * i + "- \n" for i in range(1, 60))
    _expect(text, "deep[0][0][0]", "nested deeper than 24 levels (line")


def test_quoted_brackets_do_not_count_as_nesting() -> None:
    demo_name = 'name: {en: "Liuzhou demo plant", zh-CN: "柳州演示工厂"}'
    text = DEMO_TEXT.replace(demo_name, "name: '" + "[" * 100 + "' # " + "{" * 100)
    assert parse_plant(text).name == "[" * 100


def test_alias_bomb_is_bounded() -> None:
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    _expect(DEMO_TEXT + "\n".join(rows) + "\n", "a", "more than 200,000 values in the file")


def test_self_referring_alias_is_bounded() -> None:
    _expect(DEMO_TEXT + "loop: &loop [*loop]\n", "loop[0][0]", "nested deeper than 24 levels (through aliases)")


def test_python_tags_are_not_constructed() -> None:
    _expect(
        DEMO_TEXT + "x: !!python/object/apply:os.system [echo]\n",
        f"line {AFTER_DEMO}, column 4",
        "not valid YAML: could not determine a constructor",
    )


def test_control_characters_in_a_key_stay_on_one_message_line() -> None:
    """Found by the property test: a form feed in a key split the message in two."""
    text = DEMO_TEXT.replace("      - id: ST20\n", '      - "x\\fy": 1\n        id: ST20\n', 1)
    message = _expect(text, "lines[0].machines[1].'x\\x0cy'", "Extra inputs are not permitted")
    assert len(message.splitlines()) == 1


def test_lines_and_machines_are_found_by_id_also_in_a_changed_copy() -> None:
    """``Plant.line`` and ``Line.machine`` look up an index built once per list; a copy of the
    plant with other lines (as the managed reason lists make every second) finds its own."""
    plant = load_plant(DEMO_PLANT)
    first = plant.lines[0]
    assert plant.line(first.id) is first and plant.line("nope") is None
    assert first.machine(first.machines[-1].id) is first.machines[-1] and first.machine("nope") is None
    fewer = first.model_copy(update={"machines": first.machines[:1]})
    assert fewer.machine(first.machines[-1].id) is None and fewer.machine(first.machines[0].id) is first.machines[0]
    renamed = plant.model_copy(update={"lines": [first.model_copy(update={"name": "renamed"}), *plant.lines[1:]]})
    assert renamed.line(first.id).name == "renamed" and plant.line(first.id) is first  # type: ignore[union-attr]
