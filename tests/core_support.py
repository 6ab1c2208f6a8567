"""Builders for the pure-core tests: small plants and events with hand-checkable numbers."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from domain.model import Event, Signal
from domain.plant import Plant
from domain.totals import Totals

# Monday 2024-01-01 00:00 UTC: weekday 0, far from any DST change.
T0 = 1_704_067_200.0
HOUR = 3600.0

DEFAULT_SHIFTS: list[dict[str, Any]] = [{"name": "all", "start": "00:00", "end": "00:00"}]
DEFAULT_REASONS: dict[int, dict[str, Any]] = {
    1: {"text": "Jam", "category": "equipment_failure"},
    2: {"text": "Changeover", "category": "setup_adjustment"},
    3: {"text": "No material", "category": "starved_blocked"},
    4: {"text": "Maintenance", "category": "planned", "planned": True},
    5: {"text": "Slow feeder", "category": "small_stop"},
    6: {"text": "Team meeting", "category": "unexplained", "planned": True},
}


def machine_config(machine_id: str, ideal: float = 1.0, meter: bool = True, **extra: Any) -> dict[str, Any]:
    nodes = {"state": f"{machine_id}.s", "good": f"{machine_id}.g", "reject": f"{machine_id}.r",
             "reason": f"{machine_id}.rs", "power_kw": f"{machine_id}.p"}
    if meter:
        nodes["energy_kwh"] = f"{machine_id}.e"
    return {"id": machine_id, "endpoint": "e", "ideal_cycle_time_s": ideal, "nodes": nodes, **extra}


def make_plant(
    shifts: list[dict[str, Any]] | None = None,
    timezone: str = "UTC",
    machines: list[dict[str, Any]] | None = None,
    lines: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Plant:
    """A one-line plant (line L1, machine M1 with a meter, output M1) unless told otherwise."""
    if lines is None:
        lines = [{"id": "L1", "output_machine": "M1",
                  "machines": machines or [machine_config("M1", counter_bits=16)]}]
    data: dict[str, Any] = {
        "name": "test plant",
        "timezone": timezone,
        "endpoints": {"e": {"url": "opc.tcp://127.0.0.1:4840/"}},
        "lines": lines,
        "shifts": shifts if shifts is not None else DEFAULT_SHIFTS,
        "reasons": DEFAULT_REASONS,
        "tariff": {"currency": "EUR", "default_price_per_kwh": 0.2, "periods": []},
        "co2_kg_per_kwh": 0.5,
        "micro_stop_threshold_s": 120,
        "gap_timeout_s": 30,
        **extra,
    }
    return Plant.model_validate(data)


def ev(signal: Signal | str, value: object, ts: float, machine: str = "M1", status: str = "Good",
       line: str = "L1") -> Event:
    return Event(line=line, machine=machine, signal=Signal(signal), value=value, status=status, ts=ts)  # type: ignore[arg-type]


def local(tz: str, text: str) -> float:
    """Epoch seconds of a local ISO time in ``tz`` ("2024-03-31T01:30")."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def assert_totals_close(actual: Totals, expected: Totals, tol: float = 1e-6) -> None:
    """Field by field, dict fields key by key (missing keys count as 0)."""
    a: dict[str, Any] = actual.to_dict()
    e: dict[str, Any] = expected.to_dict()
    for name in a:
        if isinstance(a[name], dict):
            av_map: dict[Any, float] = a[name]
            xv_map: dict[Any, float] = e[name]
            for k in set(av_map) | set(xv_map):
                av, xv = av_map.get(k, 0.0), xv_map.get(k, 0.0)
                assert math.isclose(av, xv, rel_tol=1e-9, abs_tol=tol), f"{name}[{k}]: {av} != {xv}"
        else:
            assert math.isclose(a[name], e[name], rel_tol=1e-9, abs_tol=tol), f"{name}: {a[name]} != {e[name]}"


def heartbeats(start: float, end: float, every: float = 10.0, machine: str = "M1") -> Iterable[Event]:
    t = start
    while t < end:
        yield ev(Signal.HEARTBEAT, None, t, machine)
        t += every
