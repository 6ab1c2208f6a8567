"""Rollup worker throughput: events per second for in-order data and for a late flush,
beside the raw XRANGE rate of the same entries measured in the same run.

    python bench/bench_worker.py [--machines 100] [--minutes 60]

A plant of ``machines`` machines (lines of 20) gets ``minutes`` of simulated data
(state changes, a part counter every cycle, power every 5 s, the meter every 10 s,
reasons, heartbeats every 5 s). Three runs, each on a fresh database:

* **raw read**: XRANGE of every entry of every line in pages of 2,000 (the floor: the
  worker cannot be faster than reading its input);
* **in order**: the entries written in event order, then one worker drains them;
* **late flush**: the hour before the flushed period arrived in time (stream ids at
  event time) and was processed; then nothing arrives (an outage) and the worker closes
  the silent machines on its clock; then the whole period of every machine arrives at
  once (a store-and-forward flush) and is drained: every machine is rewound to its
  checkpoint, its events since are read back and its minutes are written again.

Uses REDIS_URL if set (its current database is flushed!), else a private redis-server.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from domain import contract  # noqa: E402
from domain.model import Event  # noqa: E402
from domain.plant import Plant  # noqa: E402
from store.rollup import RollupWorker, WorkerOptions  # noqa: E402
from tests.core_support import machine_config, make_plant  # noqa: E402
from tests.history import line_history, write_events  # noqa: E402
from tests.support import bench_redis  # noqa: E402

HOUR = 3600.0


def bench_plant(machines: int) -> Plant:
    lines = []
    for n in range(0, machines, 20):
        ids = [f"M{i}" for i in range(n, min(machines, n + 20))]
        lines.append({"id": f"L{n // 20}", "output_machine": ids[-1],
                      "machines": [machine_config(m, ideal=4.0, counter_bits=32) for m in ids]})
    shifts = [{"name": "day", "start": "00:00", "end": "00:00"}]
    return make_plant(shifts=shifts, lines=lines, timezone="Asia/Shanghai")


def history(plant: Plant, start: float, end: float) -> list[Event]:
    events: list[Event] = []
    for line in plant.lines:
        events.extend(line_history(plant, line.id, start, end, seed=3, power_every_s=5.0, mean_run_s=600.0))
    events.sort(key=lambda e: e.ts)
    return events


def write_on_time(client: redis.Redis, events: list[Event]) -> None:
    """Writes events as if they had arrived when they happened (stream id = event time)."""
    last: dict[str, tuple[int, int]] = {}
    with client.pipeline(transaction=False) as pipe:
        for n, event in enumerate(events, 1):
            stream = contract.events_key(event.line)
            ms = round(event.ts * 1000)
            prev_ms, prev_seq = last.get(stream, (-1, 0))
            seq = prev_seq + 1 if ms <= prev_ms else 0
            ms = max(ms, prev_ms)
            last[stream] = (ms, seq)
            pipe.xadd(stream, contract.encode_event(event), id=f"{ms}-{seq}")  # type: ignore[arg-type]
            if n % 5000 == 0:
                pipe.execute()
        pipe.execute()


def raw_read(client: redis.Redis, plant: Plant) -> tuple[int, float]:
    started = time.perf_counter()
    total = 0
    for line in plant.lines:
        low = "-"
        while True:
            entries: Any = client.xrange(contract.events_key(line.id), min=low, count=2000)
            total += len(entries)
            if len(entries) < 2000:
                break
            low = f"({entries[-1][0].decode()}"
    return total, time.perf_counter() - started


def drain(client: redis.Redis, plant: Plant, now: float) -> tuple[int, float]:
    worker = RollupWorker(client, plant, options=WorkerOptions(), clock=lambda: now)
    started = time.perf_counter()
    count = worker.drain()
    elapsed = time.perf_counter() - started
    worker.close()
    return count, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    with bench_redis() as client:
        plant = bench_plant(args.machines)
        end = float(int(time.time() - 86400) // HOUR * HOUR)
        start = end - args.minutes * 60
        events = history(plant, start - HOUR, end)  # an hour before: the flush's history
        flush = [e for e in events if e.ts >= start]
        print(f"{args.machines} machines, {args.minutes:.0f} min: {len(flush):,} events "
              f"({len(flush) / (args.machines * args.minutes * 60):.2f} per machine-second)")

        client.flushdb()
        write_events(client, flush)
        count, seconds = raw_read(client, plant)
        raw_rate = count / seconds
        print(f"raw XRANGE:  {raw_rate:>10,.0f} entries/s  ({count:,} in {seconds:.2f} s)")

        client.flushdb()
        write_events(client, flush)
        count, seconds = drain(client, plant, end + 60)
        in_order = count / seconds
        print(f"in order:    {in_order:>10,.0f} events/s   ({count:,} in {seconds:.2f} s)  "
              f"{in_order / raw_rate:.2f}x the raw read")

        client.flushdb()
        write_on_time(client, [e for e in events if e.ts < start])  # arrived in time, before the outage
        drain(client, plant, start)
        worker = RollupWorker(client, plant, options=WorkerOptions(), clock=lambda: end + 60)
        worker.drain()  # silent through the outage: closed on the clock as unknown
        worker.close()
        write_events(client, flush)
        count, seconds = drain(client, plant, end + 120)
        late = count / seconds
        print(f"late flush:  {late:>10,.0f} events/s   ({count:,} in {seconds:.2f} s)  "
              f"{late / raw_rate:.2f}x the raw read")


if __name__ == "__main__":
    main()
