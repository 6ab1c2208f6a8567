"""The collector as a process (``python app.py collect``) during a Redis outage: killed
with SIGKILL it loses at most about a second of events; stopped with SIGTERM or SIGINT it
exits by itself, with what Redis did not take on disk, and the next start delivers it.

Real services: a redis-server subprocess that is stopped for the outage (it saves on
SIGTERM and loads again on start), the plant simulator's asyncua server in this process,
and the collector in its own process, as in production.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import yaml

from collectors.buffer import StoreAndForwardBuffer, decode_line
from collectors.sim.simulator import PlantSimulator
from collectors.sink import RedisSink
from config.loader import DEMO_PLANT, load_plant
from domain.contract import decode_event, events_key
from domain.model import Event, Signal
from domain.plant import Plant
from store.clients import connect_async
from tests.support import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
LINE, MACHINE = "BW1", "ST10"
WRITE_EVERY_S = 0.02  # the PLC's counter changes this often during the outage
HANG_S = 60.0  # only turns a hang into a failure


def plant_file(tmp_path: Path) -> Path:
    """The demo plant's first line on a free port, publishing every 50 ms."""
    data = yaml.safe_load(Path(DEMO_PLANT).read_text(encoding="utf-8"))
    data["endpoints"]["demo"].update(url=f"opc.tcp://127.0.0.1:{free_port()}/durability/", publishing_interval_ms=50)
    data["heartbeat_s"] = 0.5
    data["lines"] = [line for line in data["lines"] if line["id"] == LINE]
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class CollectorProcess:
    """``python app.py collect`` with its log in a file."""

    def __init__(self, plant_path: Path, redis_url: str, data_dir: Path, log: Path) -> None:
        self.args = [sys.executable, str(ROOT / "app.py"), "--plant", str(plant_path), "collect"]
        self.env = {**os.environ, "REDIS_URL": redis_url, "DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(*self.args, stdout=out, stderr=out, env=self.env,
                                                             cwd=ROOT)

    def send(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait(self) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), HANG_S)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def stream(client: redis.Redis) -> list[Event]:
    return [decode_event(LINE, fields) for _, fields in client.xrange(events_key(LINE))]


def goods(events: list[Event]) -> list[int]:
    return [int(e.value) for e in events  # type: ignore[arg-type]
            if e.machine == MACHINE and e.signal == Signal.GOOD and e.is_good]


def links(events: list[Event]) -> list[object]:
    return [e.value for e in events if e.machine == MACHINE and e.signal == Signal.LINK]


def on_disk(buffer_dir: Path) -> list[Event]:
    """The store-and-forward files' events (complete records only: the writer may be busy)."""
    events = []
    for segment in sorted(buffer_dir.glob("seg-*.jsonl")):
        for raw in segment.read_bytes().splitlines(keepends=True):
            if raw.endswith(b"\n"):
                events.append(decode_line(raw))
    return events


async def until(predicate: Callable[[], bool], what: str, seen: Callable[[], object] | None = None) -> None:
    """Waits for ``predicate``, asked in a thread: reading the whole stream or the buffer's
    files blocks, and this event loop also runs the OPC UA server, whose session a starved
    loop lets time out (the link then goes down and up again). ``seen``: what the failure
    message shows."""
    deadline = time.monotonic() + HANG_S
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, f"timed out waiting for {what}" + (f"; seen: {seen()}" if seen else "")
        await asyncio.sleep(0.02)


def safe(check: Callable[[], bool]) -> Callable[[], bool]:
    """``check``, False while Redis does not answer (it is being restarted)."""
    def run() -> bool:
        try:
            return check()
        except redis.ConnectionError:
            return False
    return run


class Counter:
    """Writes the machine's good counter 1, 2, 3, ... every ``WRITE_EVERY_S``, each with its
    write time as SourceTimestamp, and remembers when each value was written."""

    def __init__(self, sim: PlantSimulator) -> None:
        self.sim = sim
        self.written: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def last(self) -> int:
        return len(self.written)

    async def write(self, count: int) -> None:
        for _ in range(count):
            value, now = self.last + 1, time.time()
            await self.sim.write(LINE, MACHINE, Signal.GOOD, value, source_ts=now)
            self.written[value] = now
            await asyncio.sleep(WRITE_EVERY_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self.write(10**9))

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
def outage_redis(restartable_redis: RedisServer) -> RedisServer:
    """A Redis that keeps its data over a stop and start (it saves on SIGTERM)."""
    client = redis.Redis.from_url(restartable_redis.url)
    client.config_set("save", "3600 1")
    client.close()
    return restartable_redis


async def connected(client: redis.Redis) -> None:
    await until(safe(lambda: any(e.signal == Signal.LINK and e.value == "up" for e in stream(client))),
                "the collector's link up")


def test_kill_9_during_a_redis_outage_loses_at_most_about_a_second(outage_redis: RedisServer,
                                                                    tmp_path: Path) -> None:
    plant_path = plant_file(tmp_path)
    plant: Plant = load_plant(plant_path)
    client = redis.Redis.from_url(outage_redis.url)
    buffer_dir = tmp_path / "var" / "buffer"

    async def scenario() -> tuple[Counter, int, int, int]:
        collector = CollectorProcess(plant_path, outage_redis.url, tmp_path / "var", tmp_path / "collector.log")
        async with PlantSimulator(plant, autorun=False) as sim:
            counter = Counter(sim)
            try:
                await collector.start()
                await connected(client)
                counter.start()
                await until(lambda: len(goods(stream(client))) >= 10, "values through Redis")
                before_outage = counter.last  # the newest value a write could have carried to Redis
                outage_redis.stop()
                mark = counter.last + 25  # written half a second into the outage
                await until(lambda: mark in goods(on_disk(buffer_dir)), "the collector writing ahead to disk")
                # No await between reading the files and the kill: the files hold exactly this.
                newest_on_disk = max(goods(on_disk(buffer_dir)))
                collector.send(signal.SIGKILL)
                written_before_kill = counter.last
                assert await collector.wait() == -signal.SIGKILL
                await counter.stop()
                outage_redis.start()
                await collector.start()  # the next start sends what is on disk, then goes on
                final = counter.last
                await until(safe(lambda: goods(stream(client))[-1:] == [final]), "the backlog and the latest value")
                collector.send(signal.SIGTERM)
                assert await collector.wait() == 0
            finally:
                await collector.ensure_stopped()
        return counter, newest_on_disk, written_before_kill, before_outage

    counter, newest_on_disk, written_before_kill, before_outage = asyncio.run(scenario())
    seen = goods(stream(client))
    client.close()
    # In order, and nothing twice (what was forwarded is not sent again) but the batch Redis
    # executed as it went down, whose answer never came (at least once, as collectors.sink
    # says): sent again from the buffer, right behind itself. Every value up to the newest
    # one on disk at the kill is there.
    once = [v for i, v in enumerate(seen) if i == 0 or v != seen[i - 1]]
    assert once == sorted(set(seen)), seen
    twice = {v for i, v in enumerate(seen) if i > 0 and v == seen[i - 1]}
    assert all(v <= before_outage for v in twice), (twice, before_outage)
    assert set(range(1, newest_on_disk + 1)) <= set(seen)
    # What was lost is the tail the server and the collector still held at the kill:
    # about a second at most (the OPC UA publishing interval and the write-ahead delay).
    lost = sorted(set(range(1, written_before_kill + 1)) - set(seen))
    assert all(v > newest_on_disk for v in lost)
    if lost:
        assert counter.written[written_before_kill] - counter.written[lost[0]] <= 1.0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_during_a_redis_outage_exits_and_the_next_start_delivers(
        outage_redis: RedisServer, tmp_path: Path, signum: signal.Signals) -> None:
    plant_path = plant_file(tmp_path)
    plant = load_plant(plant_path)
    client = redis.Redis.from_url(outage_redis.url)
    buffer_dir = tmp_path / "var" / "buffer"

    async def scenario() -> tuple[str, list[Event]]:
        collector = CollectorProcess(plant_path, outage_redis.url, tmp_path / "var", tmp_path / "collector.log")
        async with PlantSimulator(plant, autorun=False) as sim:
            counter = Counter(sim)
            try:
                await collector.start()
                await connected(client)
                outage_redis.stop()
                await counter.write(30)
                await until(lambda: 30 in goods(on_disk(buffer_dir)), "the last value on disk")
                collector.send(signum)
                assert await collector.wait() == 0  # stopped by itself, in order
                first_run = collector.text()
                kept = on_disk(buffer_dir)
                outage_redis.start()
                await collector.start()
                await until(safe(lambda: links(stream(client)) == ["up", "down", "up"]),
                            "the buffered values, then the new session", seen=lambda: links(stream(client)))
                collector.send(signal.SIGTERM)
                assert await collector.wait() == 0
            finally:
                await collector.ensure_stopped()
        return first_run, kept

    first_run, kept = asyncio.run(scenario())
    assert f"{signum.name} received" in first_run and "for the next start" in first_run
    # The files hold the outage's values and the "link down" written on the way out.
    assert goods(kept)[-1] == 30
    assert links(kept) == ["down"]
    events = stream(client)
    client.close()
    # The initial value, each change once, in order; the next start re-reads the last one.
    assert goods(events)[:31] == list(range(31)) and set(goods(events)[31:]) <= {30}
    assert links(events) == ["up", "down", "up", "down"]


def test_a_redis_that_hangs_gets_the_events_written_ahead(tmp_path: Path) -> None:
    """A Redis that accepts the connection and never answers (a network cut, a frozen
    host) holds a write for the client's socket timeout: meanwhile the batch and what
    arrives behind it go to the files after ``journal_after_s``, not only when it fails."""
    events = [Event(LINE, MACHINE, Signal.GOOD, i, "Good", 1_796_000_000 + i) for i in range(40)]

    async def scenario() -> tuple[int, int]:
        silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        buffer = StoreAndForwardBuffer(tmp_path / "buffer")
        sink = RedisSink(connect_async(f"redis://127.0.0.1:{port}/0"), buffer, retention_s=86400,
                         journal_after_s=0.2)
        running = asyncio.create_task(sink.run())
        try:
            sink.put_all(events[:25])
            await until(lambda: buffer.disk_count == 25, "the unanswered batch on disk")
            sink.put_all(events[25:])
            await until(lambda: buffer.disk_count == 40, "what came behind it on disk")
            on_disk_while_hanging = buffer.disk_count
            unanswered = sink.stats.written
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await sink.close(timeout_s=0.5)
            await sink.client.aclose()
            silent.close()
        return on_disk_while_hanging, unanswered

    on_disk, written = asyncio.run(scenario())
    assert (on_disk, written) == (40, 0)
    again = StoreAndForwardBuffer(tmp_path / "buffer")
    assert again.peek(100) == events  # each once, in order
