"""KPI query speed from rollups vs from raw events, and rollup memory per machine-day.

    python bench/bench_kpis.py [--days 30] [--repeat 20]

A line of 8 machines with 1-second data (power every second, a part counter every
cycle, state changes and reasons) is simulated for one day and run through the rollup
worker's own code (``LineWorker.receive``/``close`` + ``write_batch``) into Redis; that day's
rollups, stops and state changes are then copied to the days before it, so a month of
history exists. ``line_kpis`` is timed over 1 h, 12 h, 7 d and 30 d windows ending now
(median of N calls, warm cache, and the first call of a fresh reader), beside the same
12 h computed from the raw events through ``MachineAccumulator``.

Uses REDIS_URL if set (its current database is flushed!), else a private redis-server.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from config.loader import DEMO_PLANT, load_plant  # noqa: E402
from domain import contract, kpi  # noqa: E402
from domain.engine import totals_from_events  # noqa: E402
from domain.model import Event  # noqa: E402
from domain.plant import Plant  # noqa: E402
from store.clients import node  # noqa: E402
from store.line_worker import LineWorker, WorkerOptions  # noqa: E402
from store.line_writes import read_stored, write_batch  # noqa: E402
from store.reader import PlantReader  # noqa: E402
from tests.history import line_history  # noqa: E402
from tests.support import RedisServer, external_redis_url  # noqa: E402

LINE = "B8"
WARMUP_S = 3600.0
DAY = 86400.0
HOUR = 3600.0


def bench_plant() -> Plant:
    """The demo plant's calendar, reasons and tariff with one line of 8 machines whose
    energy comes from 1-second power readings."""
    demo = load_plant(DEMO_PLANT)
    machines = []
    for i in range(8):
        machines.append({
            "id": f"M{i + 1}", "endpoint": "demo", "ideal_cycle_time_s": 40 + 3 * i,
            "power_running_kw": 20 + 5 * i, "power_idle_kw": 4 + i, "reject_rate": 0.004,
            "counter_bits": 32,
            "nodes": {s: f"ns=2;s={LINE}.M{i + 1}.{s}" for s in ("state", "good", "reject", "power_kw", "reason")},
        })
    data = demo.model_dump(mode="json")
    data["lines"] = [{"id": LINE, "output_machine": "M8", "machines": machines}]
    return Plant.model_validate(data)


def roll_up_day(client: redis.Redis, plant: Plant, events: list[Event], now: float) -> float:
    """Runs the worker's pure pass and its writes over the events; returns seconds taken."""
    line = plant.line(LINE)
    assert line is not None
    worker = LineWorker(plant, line, WorkerOptions())
    started = time.perf_counter()
    chunk = 20_000
    for i in range(0, len(events) + 1, chunk):
        part = events[i:i + chunk]
        entries = [(f"{round(e.ts * 1000)}-{n}", contract.encode_event(e)) for n, e in enumerate(part, i)]
        last = part[-1].ts if part else now
        at = min(last, now) if part else now
        batch, late = worker.receive(entries, at)
        assert not late, "the simulated day is in time order"
        if not part:  # the end of the day's data: let silence close every machine up to now
            for progress in worker.machines.values():
                progress.seen = -math.inf
        worker.close(at, bool(part), batch)
        batch.ack_ids.clear()  # no consumer group here
        stored = read_stored(client, worker, batch)
        with client.pipeline(transaction=True) as pipe:
            write_batch(pipe, worker, batch, now, worker.options, stored)
            pipe.execute()
    return time.perf_counter() - started


def copy_to_previous_days(client: redis.Redis, plant: Plant, day_start: float, days: int) -> None:
    """Repeats the simulated day's rollups, stops and state changes on earlier days."""
    line = plant.line(LINE)
    assert line is not None
    first_hour = math.floor(day_start / HOUR) * HOUR
    for machine in line.machines:
        minutes = {h: client.get(contract.closed_minutes_key(LINE, machine.id, h))
                   for h in _hours(first_hour, first_hour + DAY)}
        hours = _hour_rollups(client, machine.id, first_hour)
        pipe = client.pipeline(transaction=False)
        for k in range(1, days + 1):
            shift = k * DAY
            for hour, text in minutes.items():
                if text:
                    key = contract.closed_minutes_key(LINE, machine.id, hour - shift)
                    pipe.set(key, _merge_minutes(client, key, text) if hour == first_hour else text)
                    pipe.expireat(key, int(hour - shift + HOUR + plant.retention.minute_rollup_days * DAY))
            for hour, text in hours.items():
                day = math.floor((hour - shift) / DAY) * DAY
                key = contract.hour_rollup_key(LINE, machine.id, day)
                pipe.hset(key, str(int((hour - shift - day) // HOUR)), text)
        pipe.execute()
    for key, decode, encode in ((contract.stops_key(LINE), contract.decode_stop_member, _shift_stop),
                                (contract.states_key(LINE), contract.decode_state_member, _shift_state)):
        members: Any = client.zrangebyscore(key, day_start, "+inf")
        pipe = client.pipeline(transaction=False)
        for k in range(1, days + 1):
            shifted = {}
            for raw in members:
                moved = encode(decode(raw), k * DAY)
                if moved is not None:
                    shifted[moved[0]] = moved[1]
            if shifted:
                pipe.zadd(key, shifted)
        pipe.execute()


def _merge_minutes(client: redis.Redis, key: str, text: Any) -> bytes:
    """The simulated day's first (partial) hour, merged with the last hour copied before it."""
    merged = contract.split_minutes(client.get(key))
    merged.update(contract.split_minutes(text))
    return contract.join_minutes(merged)


def _shift_stop(parts: Any, shift: float) -> tuple[str, float] | None:
    machine, start, end, state, reason = parts
    if end is None:
        return None  # the ongoing stop is today's only
    return contract.encode_stop_member(machine, start - shift, end - shift, state, reason), start - shift


def _shift_state(parts: Any, shift: float) -> tuple[str, float]:
    machine, t, state = parts
    return contract.encode_state_member(machine, t - shift, state), t - shift


def _hours(start: float, end: float) -> list[float]:
    return [start + i * HOUR for i in range(int((end - start) // HOUR) + 1)]


def _hour_rollups(client: redis.Redis, machine: str, first_hour: float) -> dict[float, Any]:
    out: dict[float, Any] = {}
    for day in {math.floor(h / DAY) * DAY for h in _hours(first_hour, first_hour + DAY)}:
        for field, text in client.hgetall(contract.hour_rollup_key(LINE, machine, day)).items():
            hour = day + int(field) * HOUR
            if first_hour <= hour < first_hour + DAY:
                out[hour] = text
    return out


def timed(fn: Any, repeat: int) -> tuple[float, float]:
    """(median ms, first call ms)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times), times[0]


def raw_line_kpis(plant: Plant, events: list[Event], start: float, now: float) -> Any:
    """The same KPIs straight from raw events: every event of the window (and of the
    hour before it, for the state and counter baselines) through the engine."""
    line = plant.line(LINE)
    assert line is not None
    origin = start - WARMUP_S
    totals, stops = {}, []
    for machine in line.machines:
        own = [e for e in events if e.machine == machine.id and e.ts >= origin]
        totals[machine.id], machine_stops = totals_from_events(own, plant, line, machine, start, now, now,
                                                               origin=origin)
        stops.extend(machine_stops)
    return kpi.line_kpis(totals, stops, plant, line, start, now, now)


def memory_per_machine_day(client: redis.Redis, plant: Plant, day: float) -> dict[str, float]:
    """Bytes (MEMORY USAGE) of one machine's rollups for one whole UTC day, and the line's
    stops and state changes of that day divided by its machines."""
    line = plant.line(LINE)
    assert line is not None
    out = {"minutes": 0.0, "hours": 0.0, "stops": 0.0, "states": 0.0}
    encodings: dict[str, int] = {}
    for machine in line.machines:
        for hour in _hours(day, day + DAY - HOUR):
            key = contract.closed_minutes_key(LINE, machine.id, hour)
            out["minutes"] += client.memory_usage(key, samples=0) or 0
            encoding = client.object("encoding", key).decode()
            encodings[encoding] = encodings.get(encoding, 0) + 1
        out["hours"] += client.memory_usage(contract.hour_rollup_key(LINE, machine.id, day), samples=0) or 0
    for name, key in (("stops", contract.stops_key(LINE)), ("states", contract.states_key(LINE))):
        share = client.zcount(key, day, day + DAY) / max(client.zcard(key), 1)
        out[name] += share * (client.memory_usage(key, samples=0) or 0)
    n = len(line.machines)
    result = {k: v / n for k, v in out.items()}
    result["total"] = sum(result.values())
    print(f"  closed-hour minute strings by encoding: {encodings}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    url = external_redis_url()
    server = None
    if url is None:
        server = RedisServer()
        server.start()
        url = server.url
    client = node(url)
    try:
        client.flushdb()
        run(client, args.days, args.repeat)
    finally:
        client.close()
        if server is not None:
            server.cleanup()


def run(client: redis.Redis, days: int, repeat: int) -> None:
    plant = bench_plant()
    now = math.floor(time.time() / 60) * 60 + 30.0
    day_start = now - DAY
    print(f"Redis {client.info('server')['redis_version']}; line {LINE}: 8 machines, 1-second power data")
    started = time.perf_counter()
    events = line_history(plant, LINE, day_start, now - 1, seed=1, power_every_s=1.0, mean_run_s=900.0)
    print(f"simulated one day: {len(events):,} events in {time.perf_counter() - started:.1f} s")
    took = roll_up_day(client, plant, events, now)
    print(f"rolled up by the worker's code: {took:.1f} s ({len(events) / took:,.0f} events/s)")
    copy_to_previous_days(client, plant, day_start, days)
    print(f"copied to the {days} days before\n")

    windows = [("1 h", HOUR), ("12 h", 12 * HOUR), ("7 d", 7 * DAY), (f"{days} d", days * DAY)]
    print(f"line_kpis (8 machines), ms per call: median of {repeat} warm calls; first call of a fresh reader; "
          "warm with each machine's KPIs too (machines=True):")
    results = {}
    for label, span in windows:
        fresh = PlantReader(client, plant)
        cold = timed(lambda span=span, r=fresh: r.line_kpis(LINE, now - span, now, now), 1)[0]
        warm, _ = timed(lambda span=span, r=fresh: r.line_kpis(LINE, now - span, now, now), repeat)
        full, _ = timed(lambda span=span, r=fresh: r.line_kpis(LINE, now - span, now, now, machines=True),
                        max(3, repeat // 4))
        results[label] = warm
        print(f"  {label:>5}: {warm:8.2f} ms   (first call {cold:8.2f} ms; with machines {full:8.2f} ms)")

    raw_events = [e for e in events if e.ts >= now - 12 * HOUR - WARMUP_S]
    raw_ms, _ = timed(lambda: raw_line_kpis(plant, raw_events, now - 12 * HOUR, now), 3)
    print(f"\n12 h from raw events ({len(raw_events):,} events through MachineAccumulator): {raw_ms:,.0f} ms "
          f"-> rollups are {raw_ms / results['12 h']:,.0f}x faster")
    check = PlantReader(client, plant).line_kpis(LINE, now - 12 * HOUR, now, now)
    raw = raw_line_kpis(plant, raw_events, check["window"]["start"], now)  # rollup windows start on a minute
    print(f"same answer: OEE {check['oee']:.6f} (rollups) vs {raw.oee:.6f} (raw), "
          f"good {check['good_count']} vs {raw.totals.good_count}, kWh {check['energy']['kwh']:.3f} vs "
          f"{raw.totals.energy_kwh:.3f}")

    day = math.floor((now - DAY) / DAY) * DAY - DAY  # a whole UTC day inside the copied history
    memory = memory_per_machine_day(client, plant, day)
    print("\nRedis bytes per machine-day (MEMORY USAGE):")
    for name, value in memory.items():
        print(f"  {name:>13}: {value:10,.0f}")
    retention = plant.retention
    per_machine = ((memory["minutes"] + memory["states"]) * retention.minute_rollup_days
                   + memory["hours"] * retention.hour_rollup_days + memory["stops"] * retention.downtime_days)
    print(f"  kept for their retention ({retention.minute_rollup_days:g} d minutes and state changes, "
          f"{retention.hour_rollup_days:g} d hours, {retention.downtime_days:g} d stops): "
          f"{per_machine / 1e6:,.1f} MB per machine")

    targets = [("12 h <= 20 ms", results["12 h"] <= 20),
               ("12 h >= 10x faster than raw", raw_ms >= 10 * results["12 h"]),
               (f"{days} d <= 250 ms", results[f"{days} d"] <= 250)]
    print("\n" + "; ".join(f"{name}: {'OK' if ok else 'MISSED'}" for name, ok in targets))


if __name__ == "__main__":
    main()
