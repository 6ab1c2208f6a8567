"""Synthetic event histories of machines, for the store tests and the KPI benchmark.

A machine runs for a while (a part counter every cycle, some rejects), then stops:
mostly small stops without a reason, sometimes a fault or a changeover with a reason
code; power is reported every ``power_every_s`` seconds, the energy meter every 10 s.
Optionally silences longer than the gap timeout (unknown time), a link drop and a
counter reset, the cases the KPIs must survive.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

import redis

from domain import contract
from domain.model import Event, Signal, State
from domain.plant import Line, Machine, Plant


def machine_history(line: Line, machine: Machine, start: float, end: float, seed: int, *,
                    power_every_s: float = 1.0, mean_run_s: float = 600.0, oddities: bool = True) -> list[Event]:
    """Events of one machine in [start, end), in time order, timestamps in whole ms."""
    rng = random.Random(f"{seed}-{line.id}-{machine.id}")
    out: list[Event] = []

    def emit(signal: Signal, value: object, ts: float, status: str = "Good") -> None:
        if start <= ts < end:
            out.append(Event(line.id, machine.id, signal, value, status, round(ts, 3)))  # type: ignore[arg-type]

    t = start
    good = reject = 0
    kwh = rng.uniform(0, 1000)
    emit(Signal.STATE, State.RUNNING.value, t)
    emit(Signal.GOOD, good, t)
    emit(Signal.REJECT, reject, t)
    while t < end:
        run_until = t + rng.expovariate(1.0 / mean_run_s)
        t, good, reject, kwh = _run(emit, machine, t, min(run_until, end), good, reject, kwh, rng, power_every_s)
        if t >= end:
            break
        t, kwh = _stop(emit, machine, t, end, kwh, rng, power_every_s, oddities)
        if oddities and rng.random() < 0.02:
            good = 0  # PLC restart: counter reset
            emit(Signal.GOOD, good, t)
        emit(Signal.STATE, State.RUNNING.value, t)
        emit(Signal.REASON, 0, t + 0.2)
    out.sort(key=lambda e: e.ts)
    return out


def _run(emit, machine: Machine, t: float, until: float, good: int, reject: int, kwh: float,  # type: ignore[no-untyped-def]
         rng: random.Random, power_every_s: float) -> tuple[float, int, int, float]:
    next_power = t
    next_meter = t
    next_cycle = t + machine.ideal_cycle_time_s * rng.uniform(1.0, 1.25)
    while t < until:
        t = min(next_power, next_meter, next_cycle, until)
        if t == next_cycle:
            if rng.random() < machine.reject_rate * 5:
                reject += 1
                emit(Signal.REJECT, reject, t)
            else:
                good += 1
                emit(Signal.GOOD, good, t)
            next_cycle = t + machine.ideal_cycle_time_s * rng.uniform(1.0, 1.25)
        if t == next_power:
            emit(Signal.POWER, round(machine.power_running_kw * rng.uniform(0.9, 1.1), 2), t)
            next_power = t + power_every_s
        if t == next_meter:
            kwh += machine.power_running_kw * 10 / 3600
            emit(Signal.ENERGY, round(kwh, 4), t)
            next_meter = t + 10
        if t == until:
            break
    return t, good, reject, kwh


def _stop(emit, machine: Machine, t: float, end: float, kwh: float, rng: random.Random,  # type: ignore[no-untyped-def]
          power_every_s: float, oddities: bool) -> tuple[float, float]:
    kind = rng.random()
    if kind < 0.6:
        state, reason, length = State.IDLE, 0, rng.uniform(5, 110)
    elif kind < 0.85:
        state, reason, length = State.FAULT, rng.choice([2, 3, 4, 5]), rng.uniform(60, 1200)
    elif kind < 0.95:
        state, reason, length = State.CHANGEOVER, 20, rng.uniform(300, 1800)
    else:
        state, reason, length = State.STARVED, 30, rng.uniform(30, 600)
    emit(Signal.STATE, state.value, t)
    if reason:
        emit(Signal.REASON, reason, t + 0.5)
    until = min(t + length, end)
    silent = None
    if oddities and rng.random() < 0.05:
        silent = (t + length * 0.3, t + length * 0.3 + rng.uniform(40, 300))  # no data at all
        until = max(until, min(silent[1] + 1, end))
    if oddities and rng.random() < 0.03:
        emit(Signal.LINK, "down", t + 1)
        emit(Signal.LINK, "up", t + 20)
    next_power = t
    while next_power < until:
        if silent is None or not (silent[0] <= next_power < silent[1]):
            emit(Signal.POWER, round(machine.power_idle_kw * rng.uniform(0.9, 1.1), 2), next_power)
            if int(next_power) % 10 == 0:
                kwh += machine.power_idle_kw * 10 / 3600
                emit(Signal.ENERGY, round(kwh, 4), next_power)
        next_power += power_every_s
    return until, kwh


def line_history(plant: Plant, line_id: str, start: float, end: float, seed: int = 1, **kwargs: object) -> list[Event]:
    """All machines of a line, merged in time order (the order a collector would write)."""
    line = plant.line(line_id)
    assert line is not None
    events: list[Event] = []
    for machine in line.machines:
        events.extend(machine_history(line, machine, start, end, seed, **kwargs))  # type: ignore[arg-type]
    events.sort(key=lambda e: (e.ts, e.machine))
    return events


def write_events(client: redis.Redis, events: Iterable[Event], chunk: int = 5000) -> int:
    """XADDs events to their line streams (and the live hash) like a collector."""
    n = 0
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(contract.events_key(event.line), contract.encode_event(event))  # type: ignore[arg-type]
        field, value = contract.encode_live(event)
        pipe.hset(contract.live_key(event.line), field, value)
        n += 1
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()
    return n


def by_machine(events: Iterable[Event]) -> Iterator[tuple[str, list[Event]]]:
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.machine, []).append(event)
    yield from grouped.items()
