"""Shared by the operator-loop tests: two lines with hand-made stops in Redis, rolled up
by the real worker, the dashboard app (read API + write API) on a pinned clock, users
and tokens of every role.

Timeline (UTC; shifts A 00:00-12:00 and B 12:00-24:00, no breaks), T = 02:00 of a
recent day:
* L1/M1 (output): runs from T; idle without a reason [T+1 h, T+1 h 10 min) (600 s);
  PLC reason 1 (Jam) with a fault [T+2 h, T+2 h 5 min) (300 s); data until T+4 h.
* L2/M9: runs from T; idle without a reason [T+1 h, T+1 h 10 min).
NOW = T+4 h; the "past window" is [T, T+3 h), all of it in closed minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from config.loader import DEMO_PLANT
from config.settings import Settings
from domain.classification import stop_id
from domain.model import Event, Signal
from domain.plant import Plant
from store.reader import PlantReader
from store.users import Users
from tests.core_support import machine_config, make_plant
from tests.history import write_events
from tests.store_support import HOUR, RECENT, run_worker_until_drained

T = RECENT + 2 * HOUR
NOW = T + 4 * HOUR
PAST = (T, T + 3 * HOUR)
IDLE = (T + HOUR, T + HOUR + 600)
FAULT = (T + 2 * HOUR, T + 2 * HOUR + 300)
IDLE_ID = stop_id("L1", "M1", IDLE[0])
FAULT_ID = stop_id("L1", "M1", FAULT[0])
OTHER_ID = stop_id("L2", "M9", IDLE[0])
PASSWORD = "correct horse battery"
ROLES = ("operator", "supervisor", "engineer", "admin")


def operator_plant() -> Plant:
    shifts = [{"name": "A", "start": "00:00", "end": "12:00"}, {"name": "B", "start": "12:00", "end": "00:00"}]
    lines = [{"id": "L1", "output_machine": "M1", "machines": [machine_config("M1", ideal=30.0)],
              "reasons": [1, 2, 3, 5]},
             {"id": "L2", "output_machine": "M9", "machines": [machine_config("M9", ideal=30.0)]}]
    return make_plant(shifts=shifts, lines=lines, timezone="UTC")


def _machine_events(line: str, machine: str, stops: list[tuple[float, float, str, int]]) -> list[Event]:
    def event(signal: Signal, value: object, ts: float) -> Event:
        return Event(line, machine, signal, value, "Good", ts)  # type: ignore[arg-type]

    out = [event(Signal.STATE, "running", T), event(Signal.GOOD, 0, T)]
    for a, b, state, reason in stops:
        if reason:
            out.append(event(Signal.REASON, reason, a - 1))
        out.append(event(Signal.STATE, state, a))
        out.append(event(Signal.STATE, "running", b))
        if reason:
            out.append(event(Signal.REASON, 0, b + 1))
    n, t = 0, T + 10
    while t < NOW:
        out.append(event(Signal.HEARTBEAT, None, t))
        if (t - T) % 60 == 30 and not any(a <= t < b for a, b, _, _ in stops):
            n += 1
            out.append(event(Signal.GOOD, n, t))
        t += 10
    return sorted(out, key=lambda e: e.ts)


def seed(client: redis.Redis, plant: Plant) -> PlantReader:
    client.flushdb()
    events = _machine_events("L1", "M1", [(*IDLE, "idle", 0), (*FAULT, "fault", 1)])
    events += _machine_events("L2", "M9", [(*IDLE, "idle", 0)])
    write_events(client, sorted(events, key=lambda e: e.ts))
    run_worker_until_drained(client, plant, NOW)
    return PlantReader(client, plant)


def make_app(reader: PlantReader, plant: Plant, data_dir: Path, redis_url: str) -> Any:
    from api import create_api_router
    from components.app_factory import create_app

    settings = Settings(plant_path=DEMO_PLANT, plant=plant, redis_url=redis_url, data_dir=data_dir)
    app = create_app(settings, lambda: reader, clock=lambda: NOW)
    app.server.include_router(create_api_router(reader, clock=lambda: NOW))
    return app


def add_users(client: redis.Redis, plant: Plant) -> dict[tuple[str, str], str]:
    """A user per role on L1 (``<role>1``) and an operator on L2 (``operator2``), a second
    supervisor on L1 (``supervisor1b``); and a token per role and line: {(role, line): token}."""
    users = Users(client, [line.id for line in plant.lines])
    for role in ROLES:
        users.add(f"{role}1", role, "L1", PASSWORD)
    users.add("supervisor1b", "supervisor", "L1", PASSWORD)
    users.add("operator2", "operator", "L2", PASSWORD)
    return {(role, line): users.create_token(f"{role}-{line}", role, line, NOW)[0]
            for role in ROLES for line in ("L1", "L2")}


def login(client: Any, name: str, password: str = PASSWORD) -> str:
    """Logs the test client in; returns the CSRF token."""
    answer = client.post("/api/login", json={"username": name, "password": password})
    assert answer.status_code == 200, answer.get_json()
    return str(answer.get_json()["csrf"])
