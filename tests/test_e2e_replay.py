"""End to end: a scenario file replayed through the OPC UA simulator, the collector, Redis,
the rollup worker and the dashboard's HTTP API, against KPIs worked out by hand.

The chain is the product's own: ``replay_scenario`` serves the plant's nodes on a real
asyncua server and writes every CSV row with its time as the SourceTimestamp; the
collector subscribes and writes events into a real Redis; the rollup worker drains the
stream into minutes, hours and stops; ``app.create_dash`` serves the API, asked with
Starlette's test client. Nothing is computed with the engine here: the expected figures below
come from the scenario (``collectors/sim/scenarios/e2e_bw1_shift.csv``, its story in
``e2e_bw1_shift.py`` next to it) and the plant file (``PLANT_YAML``), by hand.

The scenario is dated 2026-11-23; the test moves it by whole days to three days ago
(Asia/Shanghai has no daylight saving, so local times stay as they are), because rollup
keys expire ``minute_rollup_days`` after the hour they hold. The rollup worker runs with
the wall clock *during* the 600x replay (it advances each machine in the data's time, so
the replay's speed does not matter); a last test rolls the same stream up again with a
worker started after the replay and finds the same rollups.

Nothing here waits on the wall clock: the replay is waited for until its last rows are in
the stream (with a bound on time without progress only), the worker until its consumer
group has nothing pending or undelivered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import redis

from api.context import config_of
from app import create_dash
from collectors.collector import Collector, CollectorOptions, run_collector
from collectors.sim.scenario import ScenarioRow, format_scenario, load_scenario, replay_scenario
from collectors.sim.simulator import retarget
from components.data import READER_KEY
from config.loader import load_plant
from config.settings import Settings
from domain.contract import decode_event, events_key
from domain.model import Event, Signal
from domain.plant import Plant
from store.rollup import RollupWorker, WorkerOptions, run_worker
from tests.support import Client, free_port

SCENARIO = Path(__file__).resolve().parent.parent / "collectors" / "sim" / "scenarios" / "e2e_bw1_shift.csv"
TZ = ZoneInfo("Asia/Shanghai")
DAYS_AGO = 3
# 65 scenario minutes in 6.5 s. A NotificationMessage lists each monitored item's values
# together; the collector sorts each one by time, so every machine's events are in time
# order in the stream however many values of a node a publish holds. Checked below.
SPEED = 600.0
STALL_S = 60.0  # no new stream entry for this long (a loaded machine included): the replay is broken
FAST = CollectorOptions(reconnect_initial_s=0.1, reconnect_max_s=0.5, connect_timeout_s=5.0)
# The module fixture plays the whole shift through the chain within the first test's time:
# it fails by itself when nothing progresses for STALL_S; this is only the backstop.
pytestmark = pytest.mark.timeout(300)

# The line BW1 of the demo plant cut down to two machines (same ids, nodes, PackML state
# map, shift A with its breaks, reasons 2 and 20, tariff and CO2 factor), with one change:
# gap_timeout_s 90 instead of 30. The collector's heartbeats are in the scenario's time but
# come every heartbeat_s of wall time, 25 scenario minutes here, so the readings must keep
# the machines heard: the kWh meters are read every minute.
PLANT_YAML = """\
name: E2E replay plant
timezone: Asia/Shanghai
endpoints:
  demo:
    url: opc.tcp://127.0.0.1:4840/e2e/
    timestamp: source
    publishing_interval_ms: 50
    queue_size: 1000
micro_stop_threshold_s: 120
gap_timeout_s: 90
heartbeat_s: 5
co2_kg_per_kwh: 0.5703
tariff:
  currency: CNY
  default_price_per_kwh: 0.62
  periods:
    - {name: peak, start: "08:00", end: "12:00", price_per_kwh: 0.98}
    - {name: peak, start: "18:00", end: "22:00", price_per_kwh: 0.98}
    - {name: valley, start: "23:00", end: "07:00", price_per_kwh: 0.31}
shifts:
  - name: A
    start: "07:00"
    end: "15:00"
    breaks:
      - {name: tea, start: "09:30", end: "09:45"}
      - {name: meal, start: "11:30", end: "12:00"}
      - {name: tea, start: "13:30", end: "13:45"}
reasons:
  2: {text: Weld fault (gun / transformer), category: equipment_failure}
  20: {text: Model / product changeover, category: setup_adjustment}
lines:
  - id: BW1
    name: Body welding line 1
    output_machine: ST70
    target_oee: 0.85
    machines:
""" + "".join(f"""\
      - id: {m}
        name: {name}
        endpoint: demo
        state_map: packml
        ideal_cycle_time_s: {ideal}
        counter_bits: 32
        nodes:
          state: "ns=2;s=BW1.{m}.state"
          good: "ns=2;s=BW1.{m}.good"
          reject: "ns=2;s=BW1.{m}.reject"
          energy_kwh: "ns=2;s=BW1.{m}.energy_kwh"
          reason: "ns=2;s=BW1.{m}.reason"
""" for m, name, ideal in (("ST60", "Sealer robot", 52), ("ST70", "Unload and inspection", 50)))

# --- The expected figures, by hand ------------------------------------------------------
#
# Window 09:00-10:00 local (shift A). Planned operation time: 60 min - the 09:30-09:45 tea
# break = 2700 s; no planned stops, so planned busy time PBT = 2700 s. Every second of it
# is known (a reading every minute, gap timeout 90 s): unknown 0.
PBT = 3600 - 900
#
# ST70, the output station (ideal cycle 50 s). States (PackML 6 Execute = running):
#   09:06:30-09:07:30  4 Idle, no reason, 60 s < 120 s threshold: micro-stop (performance)
#   09:20:30-09:26:30  11 Held = fault, reason 2 weld fault: equipment failure, 360 s
#   09:29:30-09:46:30  4 Idle, no reason, 1020 s: inside the break it costs nothing; the
#                      30 s before 09:30 and 90 s after 09:45 are unexplained down time
#   09:50:30-09:54:30  4 Idle, reason 20 changeover: setup/adjustment, 240 s
# Running: 09:00:00-06:30 (390) + 07:30-20:30 (780) + 26:30-29:30 (180) + 46:30-50:30
# (240) + 54:30-10:00 (330) = 1920 s.
ST70_RUN = 390 + 780 + 180 + 240 + 330
ST70_MICRO = 60
ST70_FAILURE, ST70_UNEXPLAINED, ST70_SETUP = 360, 30 + 90, 240
ST70_DOWN = ST70_FAILURE + ST70_UNEXPLAINED + ST70_SETUP  # 720; 1920 + 60 + 720 = 2700
# Parts: one per 60 s of running, at :45. Good counter 5000 -> 5017 by 09:19:45, then the
# PLC restarts during the fault (09:24:00: good and reject counters read 0, a reset, not
# -5017 parts), then 0 -> 12 by 09:59:45: 17 + 12 = 29 good. Reject counter 40 -> 42
# (09:03:45, 09:15:45), reset, 0 -> 1 (09:57:45): 3 rejects. Total 32.
ST70_GOOD, ST70_REJECT = 17 + 12, 2 + 1
ST70_TOTAL = ST70_GOOD + ST70_REJECT
# A = APT / PBT = (1920 + 60) / 2700 = 0.7333; P = 50 x 32 / 1980 = 0.8081;
# Q = 29 / 32 = 0.90625; OEE = 29 x 50 / 2700 = 0.5370 (= A x P x Q).
# Stops counted (availability losses that start in the window): fault, break overrun,
# changeover = 3. Losses: reduced speed = run - ideal = 1920 - 1600 = 320 s; rejects
# 3 x 50 = 150 s. TEEP = 1450 / 3600.
#
# ST60, the sealer (ideal cycle 52 s):
#   09:10:30-09:13:30  5 Suspended = starved, no reason, 180 s >= 120 s: starved/blocked
#   09:30:30-09:44:30  4 Idle, wholly inside the break: no loss, not counted
# Running: 09:00-10:30 (630) + 13:30-30:00 (990) + 45:00-10:00 (900) = 2520 s planned;
# it also ran 09:30:00-30:30 and 09:44:30-45:00 on the break: unplanned run 60 s.
ST60_RUN = 630 + 990 + 900
ST60_STARVED = 180
# Parts at :15 each running minute: 09:00:15-10:15 (11), 09:14:15-29:15 (16), 09:45:15-
# 59:15 (15) = 42 in planned time, one of them (09:20:15) a reject; the part of 09:30:15
# was made on the break: unplanned, not in OEE.
ST60_GOOD, ST60_REJECT = 11 + 16 + 15 - 1, 1
ST60_TOTAL = ST60_GOOD + ST60_REJECT
# A = 2520 / 2700 = 0.9333; P = 52 x 42 / 2520 = 0.8667; Q = 41 / 42; OEE = 41 x 52 / 2700.
#
# Energy. A meter reading counts at its own time, so the window holds the readings of
# 09:01 ... 09:59 (the one at 10:00:00 belongs to the next minute); each reading's
# increase counts as "not running" when the machine was stopped at that instant.
# ST70 draws 6 kW running, 3 kW stopped: 1200.000 -> 1204.500 = 4.5 kWh. Not running:
# 09:07 (0.075) + 09:21-26 (0.075 + 5 x 0.05) + 09:30-46 (0.075 + 16 x 0.05) + 09:51-54
# (0.075 + 3 x 0.05) = 1.5 kWh.
# ST60 draws 12 kW running, 3 kW stopped: 35210.000 -> 35219.250 = 9.25 kWh; its 09:40
# reading is BadSensorFailure: ignored, the 09:41 reading takes 09:39-09:41 (0.1), so no
# energy is lost. Not running: 09:11-13 (0.125 + 2 x 0.05) + 09:31-44 (0.125 + 8 x 0.05
# for 09:32-39 + 0.1 at 09:41 + 3 x 0.05) = 0.225 + 0.775 = 1.0 kWh.
ST70_KWH, ST70_NOT_RUNNING_KWH = 4.5, 0.075 + 0.325 + 0.875 + 0.225
ST60_KWH, ST60_NOT_RUNNING_KWH = 9.25, 0.225 + 0.775
LINE_KWH = ST70_KWH + ST60_KWH  # 13.75
PEAK_PRICE, CO2_PER_KWH = 0.98, 0.5703  # 09:00-10:00 is all in the 08:00-12:00 peak
# kWh per quarter hour (readings 09:01-14, 09:15-29, 09:30-44, 09:45-59):
#   ST70: 1.35, 1.2, 0.775, 1.175     ST60: 2.35, 3.0, 0.975, 2.925
#   line: 3.7, 4.2, 1.75, 4.1  -> average kW x 4: 14.8, 16.8, 7.0, 16.4; peak 16.8 kW.
LINE_QUARTER_KW = [14.8, 16.8, 7.0, 16.4]
#
# Downtime (both machines). Pareto by lost time: reason 2 (360 s), no reason (ST60 starved
# 180 + ST70 break overrun 120 = 300 s, 2 stops), reason 20 (240 s), small stops (60 s);
# 960 s in all. MTBF = run time of both machines / failures = (1920 + 2520) / 1; MTTR 360.


def e2e_plant(tmp_path: Path) -> Plant:
    path = tmp_path / "plant.yaml"
    path.write_text(PLANT_YAML, encoding="utf-8")
    return retarget(load_plant(path), f"opc.tcp://127.0.0.1:{free_port()}/e2e/")


def recent(rows: list[ScenarioRow]) -> list[ScenarioRow]:
    """The rows moved by whole days so that they play DAYS_AGO days ago."""
    first = datetime.fromtimestamp(rows[0].time, TZ)
    days = (datetime.now(TZ).date() - timedelta(days=DAYS_AGO) - first.date()).days
    moved = [dataclasses.replace(r, time=r.time + days * 86400) for r in rows]
    assert datetime.fromtimestamp(moved[0].time, TZ).time() == first.time()  # same local clock
    return moved


def stream(client: redis.Redis, line: str) -> list[Event]:
    entries: Any = client.xrange(events_key(line))
    return [decode_event(line, fields) for _, fields in entries]


def delivered(client: redis.Redis, rows: list[ScenarioRow]) -> bool:
    """Whether every machine's last row is in the stream (the rows before it are then too)."""
    last = {r.machine: r for r in rows}
    arrived = {(e.machine, e.signal, e.ts) for e in stream(client, "BW1")}
    return all((r.machine, r.signal, r.time) in arrived for r in last.values())


async def play(settings: Settings, path: Path, rows: list[ScenarioRow], client: redis.Redis) -> None:
    """Replay ``path`` into a simulator while the collector writes it to Redis."""
    stop_replay, start_replay = asyncio.Event(), asyncio.Event()
    replaying = asyncio.create_task(replay_scenario(settings, path, SPEED, stop_replay, start=start_replay))
    stop_collector = asyncio.Event()
    started: asyncio.Future[Collector] = asyncio.get_running_loop().create_future()
    collecting = asyncio.create_task(run_collector(settings, stop_collector, options=FAST, env={}, started=started))
    try:
        # bounds that only turn a hang into a failure: a loaded machine starts servers slowly
        collector = await asyncio.wait_for(started, STALL_S)
        await collector.wait_connected(STALL_S)
        start_replay.set()
        length, progress_at = -1, time.monotonic()
        while not delivered(client, rows):
            now_length = int(client.xlen(events_key("BW1")))
            if now_length != length:
                length, progress_at = now_length, time.monotonic()
            assert time.monotonic() - progress_at < STALL_S, "the collector stopped delivering the scenario"
            await asyncio.sleep(0.1)
    finally:
        stop_collector.set()
        await asyncio.wait_for(collecting, STALL_S)
        stop_replay.set()
    assert await asyncio.wait_for(replaying, STALL_S) == len(rows)


def check_every_row_arrived_in_order(client: redis.Redis, plant: Plant, rows: list[ScenarioRow]) -> None:
    """Every row is in the stream with its own time and status, and per machine the stream
    is in time order, the collector's own events included, from a "link up" at the first
    row: nothing coalesced, nothing applied late (else the figures would be off for reasons
    that are not the product's)."""
    line = plant.lines[0]
    everything = stream(client, "BW1")
    for machine in line.machines:
        mine = [e for e in everything if e.machine == machine.id]
        assert (mine[0].signal, mine[0].value, mine[0].ts) == (Signal.LINK, "up", rows[0].time), machine.id
        assert [e.ts for e in mine] == sorted(e.ts for e in mine), f"{machine.id}: events out of time order"
        assert all(e.ts <= rows[-1].time + 60 for e in mine), f"{machine.id}: an event after the scenario"
    events = [e for e in everything
              if e.signal not in (Signal.HEARTBEAT, Signal.LINK) and e.status != "BadWaitingForInitialData"]
    for machine in line.machines:
        state_map = plant.state_map_for(machine)

        def expected_value(r: ScenarioRow, state_map: Any = state_map) -> object:
            if r.status != "Good":
                return None
            return str(state_map.map(r.value)) if r.signal == Signal.STATE else r.value

        played = sorted((round(r.time, 3), str(r.signal), r.status, expected_value(r))
                        for r in rows if r.machine == machine.id)
        seen = [e for e in events if e.machine == machine.id]
        got = sorted((round(e.ts, 3), str(e.signal), e.status, e.value if e.is_good else None) for e in seen)
        assert got == played, f"{machine.id}: the stream differs from the scenario"
        times = [e.ts for e in seen]
        assert times == sorted(times), f"{machine.id}: events reordered"


def wait_caught_up(client: redis.Redis, line: str, stall_s: float = STALL_S) -> None:
    """Until the worker's group has delivered and acknowledged every entry of the line."""
    last, progress_at = None, time.monotonic()
    while True:
        group = next(g for g in client.xinfo_groups(events_key(line)) if g["name"] in (b"rollup", "rollup"))
        newest = client.xinfo_stream(events_key(line))["last-generated-id"]  # "lag" needs Redis 7
        state = (newest, group["pending"], group["last-delivered-id"])
        if group["pending"] == 0 and group["last-delivered-id"] == newest:
            return
        if state != last:
            last, progress_at = state, time.monotonic()
        assert time.monotonic() - progress_at < stall_s, f"the rollup worker stopped: {state}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def replayed(redis_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[Settings, float, redis.Redis] | Exception]:
    """The scenario through the whole chain, once for the module: its settings, the first
    row's time and the client; or what went wrong (so that the next tests fail at once
    instead of replaying again)."""
    try:
        tmp_path = tmp_path_factory.mktemp("e2e")
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        plant = e2e_plant(tmp_path)
        rows = recent(load_scenario(SCENARIO, plant))
        path = tmp_path / "scenario.csv"
        path.write_text(format_scenario(rows, TZ), encoding="utf-8")
        settings = Settings(plant_path=tmp_path / "plant.yaml", plant=plant, redis_url=redis_url,
                            data_dir=tmp_path / "collector")

        # The worker with the wall clock, running while the scenario plays at 600x: it starts
        # each machine at its first event, the collector's "link up" at the scenario's first row.
        stop = threading.Event()
        worker_client = redis.Redis.from_url(redis_url)
        during = threading.Thread(target=run_worker, args=(worker_client, plant, stop),
                                  kwargs={"options": WorkerOptions(block_ms=100)}, daemon=True)
        during.start()
        try:
            asyncio.run(play(settings, path, rows, client))
            check_every_row_arrived_in_order(client, plant, rows)
            wait_caught_up(client, "BW1")
        finally:
            stop.set()
            during.join(STALL_S)
            worker_client.close()
        assert not during.is_alive()
        # days after the scenario the machines are silent: the next pass closes them on the clock
        worker = RollupWorker(client, plant)
        worker.drain()
        worker.close()
    except Exception as exc:  # noqa: BLE001 - reported by ``api`` in every test of the module
        yield exc
        return
    yield settings, rows[0].time, client
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def api(replayed: tuple[Settings, float, redis.Redis] | Exception) -> Iterator[tuple[Client, float]]:
    """The API after the scenario went through the whole chain; and 09:00 of its day."""
    if isinstance(replayed, Exception):
        raise AssertionError(f"the replay through the chain failed: {replayed!r}") from replayed
    settings, first, _ = replayed
    app = create_dash(settings)  # the API's clock is the wall clock: days after the scenario
    yield Client(app.server), first
    config_of(app.server)[READER_KEY].redis.close()

def window(nine: float) -> str:
    start = datetime.fromtimestamp(nine, TZ).isoformat()
    end = datetime.fromtimestamp(nine + 3600, TZ).isoformat()
    return f"start={quote(start)}&end={quote(end)}"


def get(api: tuple[Client, float], path: str) -> dict[str, Any]:
    client, nine = api
    response = client.get(f"/api/lines/BW1/{path}?{window(nine)}")
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    assert (body["window"]["start"], body["window"]["end"]) == (nine, nine + 3600)
    return body


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-6, abs=1e-9)


def assert_figures(body: dict[str, Any], expected: Mapping[str, float]) -> None:
    got = {key: body[key] for key in expected}
    assert got == {key: approx(value) for key, value in expected.items()}


ST70_FIGURES = {
    "calendar_s": 3600, "planned_operation_s": PBT, "planned_down_s": 0, "planned_busy_s": PBT,
    "known_planned_busy_s": PBT, "unknown_s": 0,
    "run_s": ST70_RUN, "micro_stop_s": ST70_MICRO, "down_s": ST70_DOWN, "unplanned_run_s": 0, "stops": 3,
    "total_count": ST70_TOTAL, "good_count": ST70_GOOD, "reject_count": ST70_REJECT,
    "unplanned_good_count": 0, "unplanned_reject_count": 0, "ideal_time_s": 50 * ST70_TOTAL,
    "availability": (ST70_RUN + ST70_MICRO) / PBT,  # 0.7333
    "performance": 50 * ST70_TOTAL / (ST70_RUN + ST70_MICRO),  # 0.8081
    "quality": ST70_GOOD / ST70_TOTAL,  # 0.90625
    "oee": ST70_GOOD * 50 / PBT,  # 0.5370
    "teep": ST70_GOOD * 50 / 3600,
}
ST70_LOSSES = {
    "equipment_failure": ST70_FAILURE, "setup_adjustment": ST70_SETUP, "small_stops": ST70_MICRO,
    "reduced_speed": ST70_RUN - 50 * ST70_TOTAL, "production_rejects": 50 * ST70_REJECT, "startup_rejects": 0,
    "starved_blocked": 0, "unexplained": ST70_UNEXPLAINED, "unknown": 0,
}
ST60_FIGURES = {
    "calendar_s": 3600, "planned_busy_s": PBT, "unknown_s": 0,
    "run_s": ST60_RUN, "micro_stop_s": 0, "down_s": ST60_STARVED, "unplanned_run_s": 60, "stops": 1,
    "total_count": ST60_TOTAL, "good_count": ST60_GOOD, "reject_count": ST60_REJECT,
    "unplanned_good_count": 1, "unplanned_reject_count": 0,
    "availability": ST60_RUN / PBT,  # 0.9333
    "performance": 52 * ST60_TOTAL / ST60_RUN,  # 0.8667
    "quality": ST60_GOOD / ST60_TOTAL,  # 0.9762
    "oee": ST60_GOOD * 52 / PBT,  # 0.7896
}
ST60_LOSSES = {
    "equipment_failure": 0, "setup_adjustment": 0, "small_stops": 0, "reduced_speed": ST60_RUN - 52 * ST60_TOTAL,
    "production_rejects": 52 * ST60_REJECT, "starved_blocked": ST60_STARVED, "unexplained": 0, "unknown": 0,
}


def test_line_kpis_are_the_output_stations_with_the_lines_energy(api: tuple[Client, float]) -> None:
    body = get(api, "kpis")
    assert body["output_machine"] == "ST70"
    assert_figures(body, ST70_FIGURES)
    assert_figures(body["losses"], ST70_LOSSES)
    assert body["flags"] == {"performance_over_100": False, "micro_stop_threshold_s": 120}
    assert_figures(body["energy"], {
        "kwh": LINE_KWH, "not_running_kwh": ST70_NOT_RUNNING_KWH + ST60_NOT_RUNNING_KWH,
        "kwh_per_unit": LINE_KWH / ST70_TOTAL, "kwh_per_good_unit": LINE_KWH / ST70_GOOD,
        "peak_kw": 16.8, "avg_kw": LINE_KWH, "cost": LINE_KWH * PEAK_PRICE, "co2_kg": LINE_KWH * CO2_PER_KWH,
    })
    machines = {m["id"]: m for m in body["machines"]}
    assert list(machines) == ["ST60", "ST70"]
    assert_figures(machines["ST60"], ST60_FIGURES)
    assert_figures(machines["ST70"], ST70_FIGURES)


@pytest.mark.parametrize(("machine", "figures", "losses", "kwh", "not_running_kwh"), [
    ("ST70", ST70_FIGURES, ST70_LOSSES, ST70_KWH, ST70_NOT_RUNNING_KWH),
    ("ST60", ST60_FIGURES, ST60_LOSSES, ST60_KWH, ST60_NOT_RUNNING_KWH),
])
def test_machine_kpis(api: tuple[Client, float], machine: str, figures: dict[str, float],
                      losses: dict[str, float], kwh: float, not_running_kwh: float) -> None:
    body = get(api, f"machines/{machine}/kpis")
    assert body["machine"] == machine
    assert_figures(body, figures)
    assert_figures(body["losses"], losses)
    assert_figures(body["energy"], {"kwh": kwh, "not_running_kwh": not_running_kwh})


def test_downtime_list_pareto_and_reliability(api: tuple[Client, float]) -> None:
    body = get(api, "downtime")
    nine = api[1]

    def at(minutes: float) -> float:
        return nine + minutes * 60

    events = [(e["machine"], e["start"], e["end"], e["state"], e["reason"], e["category"], e["micro"], e["planned"],
               e["lost_s"]) for e in body["events"]]
    assert events == [
        ("ST70", at(6.5), at(7.5), "idle", 0, "small_stop", True, False, 60),
        ("ST60", at(10.5), at(13.5), "starved", 0, "starved_blocked", False, False, 180),
        ("ST70", at(20.5), at(26.5), "fault", 2, "equipment_failure", False, False, 360),
        ("ST70", at(29.5), at(46.5), "idle", 0, "unexplained", False, False, 120),  # 30 s + 90 s outside the break
        ("ST60", at(30.5), at(44.5), "idle", 0, "unexplained", False, False, 0),  # on the break: no loss
        ("ST70", at(50.5), at(54.5), "idle", 20, "setup_adjustment", False, False, 240),
    ]
    # down time with a reason: the weld fault (360) and the changeover (240); without one:
    # the starved stop (180) and the break overrun (120), 2 stops: coverage 600 / 900
    assert body["summary"] == {"stops": 4, "micro_stops": 1, "planned_stops": 0, "down_s": 180 + 360 + 120 + 240,
                               "micro_stop_s": 60, "planned_down_s": 0, "tagged_down_s": 360 + 240,
                               "untagged_down_s": 180 + 120, "untagged_stops": 2,
                               "untagged_coverage": approx((360 + 240) / 900)}
    by_duration = [(r["group"], r["count"], r["duration_s"], r["share"], r["cumulative_share"])
                   for r in body["pareto"]["by_duration"]]
    assert by_duration == [
        ("2", 1, 360, approx(360 / 960), approx(360 / 960)),
        ("no_reason", 2, 300, approx(300 / 960), approx(660 / 960)),
        ("20", 1, 240, approx(240 / 960), approx(900 / 960)),
        ("small_stops", 1, 60, approx(60 / 960), approx(1.0)),
    ]
    assert [r["label"] for r in body["pareto"]["by_duration"]] == [
        "Weld fault (gun / transformer)", "No reason", "Model / product changeover", "Small stops (no reason, < 120 s)"]
    assert [(r["group"], r["count"]) for r in body["pareto"]["by_count"]] == [
        ("no_reason", 2), ("2", 1), ("20", 1), ("small_stops", 1)]
    assert [(r["machine"], r["count"], r["duration_s"]) for r in body["by_machine"]] == [
        ("ST70", 4, 60 + 360 + 120 + 240), ("ST60", 1, 180)]
    assert (body["failures"], body["failure_down_s"], body["run_s"], body["mtbf_s"], body["mttr_s"]) == (
        1, 360, ST70_RUN + ST60_RUN, ST70_RUN + ST60_RUN, 360)


def test_energy(api: tuple[Client, float]) -> None:
    body = get(api, "energy")
    assert_figures(body, {
        "kwh": LINE_KWH, "not_running_kwh": ST70_NOT_RUNNING_KWH + ST60_NOT_RUNNING_KWH,
        "not_running_share": 2.5 / LINE_KWH, "peak_kw": 16.8, "avg_kw": LINE_KWH,
        "kwh_per_unit": LINE_KWH / ST70_TOTAL, "kwh_per_good_unit": LINE_KWH / ST70_GOOD,
        "cost": LINE_KWH * PEAK_PRICE, "co2_kg": LINE_KWH * CO2_PER_KWH,
        "good_count": ST70_GOOD, "total_count": ST70_TOTAL,
    })
    assert body["currency"] == "CNY"
    nine = api[1]
    assert body["quarters"] == [[nine + 900 * i, approx(kw)] for i, kw in enumerate(LINE_QUARTER_KW)]
    machines = {m["id"]: m for m in body["machines"]}
    assert_figures(machines["ST70"], {
        "kwh": ST70_KWH, "not_running_kwh": ST70_NOT_RUNNING_KWH, "peak_kw": 1.35 * 4,
        "kwh_per_unit": ST70_KWH / ST70_TOTAL, "kwh_per_good_unit": ST70_KWH / ST70_GOOD,
        "cost": ST70_KWH * PEAK_PRICE, "co2_kg": ST70_KWH * CO2_PER_KWH,
    })
    assert_figures(machines["ST60"], {
        "kwh": ST60_KWH, "not_running_kwh": ST60_NOT_RUNNING_KWH, "peak_kw": 3.0 * 4,
        "kwh_per_unit": ST60_KWH / ST60_TOTAL, "kwh_per_good_unit": ST60_KWH / ST60_GOOD,
        "cost": ST60_KWH * PEAK_PRICE, "co2_kg": ST60_KWH * CO2_PER_KWH,
    })


def rolled_up(client: redis.Redis, until: float) -> dict[bytes, Any]:
    """The rollups, stops and state changes up to ``until`` (what the worker wrote for
    readers; later minutes are the clock's silence and depend on when a worker ran)."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match=b"plant:*"):
        kind = client.type(key)
        stamp = key.rsplit(b":", 1)[-1]
        if kind == b"zset":
            out[key] = client.zrangebyscore(key, "-inf", until, withscores=True)
        elif (b":min" in key or b":hour:" in key) and stamp.isdigit():
            hour_of = datetime.strptime(stamp.decode(), "%Y%m%d%H" if len(stamp) == 10 else "%Y%m%d")
            if hour_of.replace(tzinfo=ZoneInfo("UTC")).timestamp() <= until:
                out[key] = client.hgetall(key) if kind == b"hash" else client.get(key)
    return out


def test_a_worker_started_after_the_replay_writes_the_same_rollups(api: tuple[Client, float],
                                                                  redis_url: str, tmp_path: Path) -> None:
    """Last in this module: it rolls the stream up again from scratch."""
    client = redis.Redis.from_url(redis_url)
    try:
        until = api[1] + 2 * 3600  # the scenario's 65 minutes and then some
        during = rolled_up(client, until)
        assert any(b":min60:" in k for k in during)
        for key in client.scan_iter(match=b"plant:*"):
            if not key.endswith(b":events"):
                client.delete(key)
        client.xgroup_destroy(events_key("BW1"), "rollup")
        worker = RollupWorker(client, e2e_plant(tmp_path))
        assert worker.drain() > 0
        worker.close()
        after = rolled_up(client, until)
        assert after.keys() == during.keys()
        for key in during:
            assert after[key] == during[key], key
    finally:
        client.close()
