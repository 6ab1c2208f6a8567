"""Implausible-reading flags: stored as the contract says, read back by the reader and the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import redis
from dash import html

from api import create_api_router
from api.document import openapi_spec
from components import machine_page
from domain import contract
from domain.model import Event
from domain.plausibility import IMPLAUSIBLE_DELTA, IMPLAUSIBLE_POWER, Flag
from store.reader import PlantReader
from tests.core_support import ev
from tests.history import write_events
from tests.store_support import HOUR, RECENT, run_worker_until_drained, two_machine_plant
from tests.support import Client, api_app

PLANT = two_machine_plant()  # Asia/Shanghai: +08:00
START = RECENT + 5 * HOUR  # 13:00 local
NOW = START + HOUR

FLAGS = [
    Flag("L1", "M1", "good", START - 1, IMPLAUSIBLE_DELTA, 500),  # before the window
    Flag("L1", "M1", "good", START, IMPLAUSIBLE_DELTA, 3_999_999_891),
    Flag("L1", "M2", "power_kw", START + 60, IMPLAUSIBLE_POWER, 1e308),
    Flag("L1", "M1", "energy_kwh", START + 90.25, IMPLAUSIBLE_DELTA, 1e308),
    Flag("L1", "M1", "reject", NOW, IMPLAUSIBLE_DELTA, 70_000),  # at now: after the window
]


def store(client: redis.Redis, flags: list[Flag]) -> None:
    """What the rollup worker does with ``MachineAccumulator.drain_flags()``."""
    client.zadd(contract.flags_key("L1"), {contract.encode_flag_member(f): f.ts for f in flags})


@pytest.mark.parametrize("flag", FLAGS)
def test_flag_members_round_trip(flag: Flag) -> None:
    assert contract.decode_flag_member("L1", contract.encode_flag_member(flag).encode()) == flag


@pytest.mark.parametrize("raw", [b"", b"{}", b"[1]", b'{"m": "M1", "s": "good", "t": 1, "k": "x", "v": [1]}',
                                 b"M1|good|1"])
def test_what_is_not_a_flag_member_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        contract.decode_flag_member("L1", raw)


def test_a_flag_produced_again_is_the_same_member(redis_client: redis.Redis) -> None:
    store(redis_client, FLAGS)
    store(redis_client, [Flag("L1", "M1", "good", START + 0.0001, IMPLAUSIBLE_DELTA, 3_999_999_891)])  # same ms
    assert redis_client.zcard(contract.flags_key("L1")) == len(FLAGS)


def test_reader_lists_a_machines_flags_in_the_window_newest_first(redis_client: redis.Redis) -> None:
    store(redis_client, FLAGS)
    redis_client.zadd(contract.flags_key("L1"), {"not a flag": START + 10})
    reader = PlantReader(redis_client, PLANT)
    assert reader.flags("L1", "M1", START, NOW + HOUR, NOW) == [
        {"machine": "M1", "signal": "energy_kwh", "time": f"{_local_date()}T13:01:30+08:00", "ts": START + 90.25,
         "kind": "implausible_delta", "value": 1e308},
        {"machine": "M1", "signal": "good", "time": f"{_local_date()}T13:00:00+08:00", "ts": START,
         "kind": "implausible_delta", "value": 3_999_999_891},
    ]
    assert [f["machine"] for f in reader.flags("L1", None, START, NOW, NOW)] == ["M1", "M2", "M1"]
    assert [f["ts"] for f in reader.flags("L1", None, START, NOW, NOW, limit=1)] == [START + 90.25]
    assert reader.flags("L1", "M2", START + 61, NOW, NOW) == []


def test_flags_are_found_past_other_machines_flags(redis_client: redis.Redis) -> None:
    store(redis_client, [Flag("L1", "M2", "good", START + i, IMPLAUSIBLE_DELTA, 99) for i in range(30)])
    store(redis_client, [Flag("L1", "M1", "good", START - 5, IMPLAUSIBLE_DELTA, 77)])
    reader = PlantReader(redis_client, PLANT)
    assert [f["value"] for f in reader.flags("L1", "M1", START - 60, NOW, NOW, page=7)] == [77]


def test_a_flag_is_listed_at_its_score(redis_client: redis.Redis) -> None:
    """A timestamp flag of the worker is scored at its arrival; its bad timestamp is the value."""
    member = '{"m":"M2","s":"hb","t":4102444800.0,"k":"future_timestamp","v":4102444800.0}'
    redis_client.zadd(contract.flags_key("L1"), {member: START + 30})
    assert PlantReader(redis_client, PLANT).flags("L1", "M2", START, NOW, NOW) == [
        {"machine": "M2", "signal": "hb", "time": f"{_local_date()}T13:00:30+08:00", "ts": START + 30,
         "kind": "future_timestamp", "value": 4102444800.0}]


def test_machine_kpis_answer_carries_the_flags(redis_client: redis.Redis) -> None:
    store(redis_client, FLAGS)
    app = api_app(create_api_router(PlantReader(redis_client, PLANT), clock=lambda: NOW))
    start = quote(f"{_local_date()}T13:00:00+08:00")
    response = Client(app).get(f"/api/lines/L1/machines/M1/kpis?start={start}")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [(f["signal"], f["value"]) for f in body["flags"]["implausible"]] == [("energy_kwh", 1e308),
                                                                                  ("good", 3_999_999_891)]
    assert body["flags"]["performance_over_100"] is False  # the KPI flags are still there
    assert body["good_count"] == 0 and body["energy"]["kwh"] == 0  # flags never count


def test_openapi_describes_the_flags() -> None:
    schemas = openapi_spec()["components"]["schemas"]
    assert schemas["MachineKpis"]["properties"]["flags"] == {"$ref": "#/components/schemas/MachineKpiFlags"}
    flags = schemas["MachineKpiFlags"]["properties"]
    assert flags["implausible"]["items"] == {"$ref": "#/components/schemas/Flag"}
    assert set(schemas["Flag"]["properties"]) == {"machine", "signal", "time", "ts", "kind", "value"}


def _local_date() -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(START, ZoneInfo("Asia/Shanghai")).date().isoformat()


# --- the machine page's list ---------------------------------------------------------

@pytest.mark.parametrize("value, unit, text", [
    (3_999_999_891, "parts", "3\u2009999\u2009999\u2009891 parts"),
    (1e308, "kWh", "1e+308 kWh"),
    (2.5, "kWh", "2.50 kWh"),
    (120.0, "kW", "120 kW"),
    (None, "", "\u2014"),
    ("inf", "", "inf"),
])
def test_rejected_values_read_well(value: object, unit: str, text: str) -> None:
    assert machine_page.rejected_text(value, unit) == text


def test_machine_page_lists_flags_with_time_signal_rejected_and_kind() -> None:
    flags = [{"machine": "M1", "signal": "energy_kwh", "ts": START + 90, "kind": "implausible_delta", "value": 1e308},
             {"machine": "M1", "signal": "hb", "ts": START, "kind": "future_timestamp", "value": 4102444800.0}]
    table = str(machine_page.flags_list(flags, "Asia/Shanghai"))
    assert "Flags" in table
    assert f"{_local_date()} 13:01:30" in table and "Energy meter" in table and "1e+308 kWh" in table
    assert "Implausible jump (not counted)" in table and "Timestamp in the future" in table
    assert str(machine_page.flags_list([], "Asia/Shanghai")) == str(html.Div())


# --- through the rollup worker (real Redis) --------------------------------------------

def _machine_history(glitches: bool) -> list[Event]:
    """M1 running 10 min from START: a part every 60 s, the meter every 60 s (+0.1 kWh);
    with ``glitches``, a good counter reading of 4e9 and a meter reading of 1e308 between
    two equal readings (nothing made or used meanwhile)."""
    events = [ev("state", "running", START, line="L1")]
    good, kwh = 100, 500.0
    for i in range(11):
        t = START + 60 * i
        events += [ev("good", good, t), ev("energy_kwh", round(kwh, 3), t), ev("hb", None, t + 30)]
        if i == 4:
            events += [ev("good", good, t + 10)] + ([ev("good", 4_000_000_000, t + 5)] if glitches else [])
            events += [ev("energy_kwh", round(kwh, 3), t + 10)] + ([ev("energy_kwh", 1e308, t + 5)] if glitches else [])
        good, kwh = good + 1, kwh + 0.1
    return sorted(events, key=lambda e: e.ts)


def _machine_answer(client: redis.Redis, glitches: bool) -> dict[str, Any]:
    client.flushdb()
    write_events(client, _machine_history(glitches))
    now = START + 900
    run_worker_until_drained(client, PLANT, now)
    app = api_app(create_api_router(PlantReader(client, PLANT), clock=lambda: now))
    start = quote(f"{_local_date()}T13:00:00+08:00")
    body: dict[str, Any] = Client(app).get(f"/api/lines/L1/machines/M1/kpis?start={start}").get_json()
    return body


def test_glitches_through_the_worker_are_flagged_and_change_nothing_else(redis_client: redis.Redis) -> None:
    clean = _machine_answer(redis_client, glitches=False)
    dirty = _machine_answer(redis_client, glitches=True)
    assert clean["good_count"] == dirty["good_count"] == 10
    assert clean["energy"]["kwh"] == pytest.approx(1.0) and dirty["energy"] == pytest.approx(clean["energy"])
    assert dirty["oee"] == pytest.approx(clean["oee"])
    assert clean["flags"]["implausible"] == []
    assert sorted((f["signal"], f["ts"], f["kind"], f["value"]) for f in dirty["flags"]["implausible"]) == [
        ("energy_kwh", START + 245, "implausible_delta", pytest.approx(1e308)),
        ("good", START + 245, "implausible_delta", 4_000_000_000 - 104),
    ]
