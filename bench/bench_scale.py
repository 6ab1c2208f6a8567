"""A 50 lines x 20 machines plant at 1 Hz on one box: CPU of the writer, the rollup worker,
the dashboard and Redis, the worker's lag, /api/lines latency and the overview's data path,
beside a small plant measured in the same run.

    python bench/bench_scale.py [--lines 50 --machines 20 --seconds 60] [--cluster] [--workers 2]

Each scenario starts its own Redis (``--cluster``: a 3-master Redis Cluster on loopback,
``tests/cluster_support.py``) and, each a real process:

* **writer** (this file, ``--role writer``): every machine sends its events in the
  documented stream format (README "The stream format", ``domain.contract``), as a
  collector would, with the wall clock as event time: the good counter every second while
  running (ideal cycle 1 s), power every 5 s, the meter every 10 s, now and then a stop
  with a reason; the machines are spread over the second (ticks of 0.1 s). About 1.3
  events per machine-second, the entries and the live hash in one pipeline per tick.
* **worker**: ``python app.py worker`` (``--workers N``: N of them, sharing the lines by
  lease).
* **dashboard** (``--role dashboard``): the app of ``app.create_dash`` served by uvicorn in
  a thread; every ``--overview-every`` seconds it computes the overview's data
  (``components.data.line_views`` of all lines, as the overview's callback does) without
  the live feed's memo and reports the time it took (0: never). With ``--push`` it also
  follows its live feed as a pushed overview does: on every change told (after the feed's
  warm-up, ``components.warm.Warmer``) it reads every line's view and reports the time
  from the moment the first changed version was handed out to the views in hand.

Measured after ``--warmup`` seconds, over ``--seconds``: CPU seconds per process (from
/proc), Redis's own (redis-server processes), events written, the worker's lag (each
second, per line, the age of the oldest entry the worker has not committed: undelivered
or delivered and not acknowledged, by Redis's clock; the maximum over lines), and the
latency of ``GET /api/lines`` (every 2 s) and ``GET /api/lines?line=X`` (every 0.5 s, X
cycling through the lines) as a client on this host sees it.

With ``--push``, the changes of 90 % of the lines or more are reported apart too (at 1 Hz
every worker commit changes every line: "a live view of all 50 lines updated"), split into
those with a worker commit (of half their lines or more) and those of new events only; the
dashboard's CPU includes its reader pool's processes (``store.reader_pool``, ``VIEW_PROCESSES``:
its environment's, auto by default). It also samples every process's CPU every 20 ms
(``CpuTrace``) and prints each one's share of a core while those changes' 50 views were
computed and between them, and the view processes' CPU per change: the part of a change's
time the other processes' work on the same cores adds. ``--pool-baseline``: the big plant
is run first without the pool (``VIEW_PROCESSES=0``), and the ratio printed.

``--history-stops N``: the run is put 6 hours into a shift (the plant's shifts start then),
and N ended stops per machine are written into the stops sets over those hours before the
processes start (``write_history_stops``): a live view's cost late in a shift, when every
line has over a thousand stops to classify (their minutes are not written: only the cost
means something, not the figures).

``--profile FILE``: the (first) worker runs under cProfile and writes FILE.

``--worker-cost``: instead, the rollup worker's CPU per event independent of the host's
load: in this process, ``--seconds`` of the same 1 Hz events (event time advancing 0.1 s
per tick, the worker's clock with it) are written, and after every ``--pass-s`` of them
one ``process_once`` runs; only those calls are timed (``time.process_time``: this
process's CPU, the Redis client's work included, Redis's own not). Passes of 1 s are what
``run_worker`` does at 1 Hz (``pass_every_s``); 0.1 s what a worker without pacing did
when it kept up.

Nothing is asserted; the machine is shared (its load average is printed).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from dashboard_rig import PYTHON, Proc, cpu_seconds, get_json, machine_info, wait_until, with_children  # noqa: E402

from domain import contract  # noqa: E402
from domain.calendar import merge  # noqa: E402
from domain.model import Event, Signal, State  # noqa: E402
from tests.core_support import DEFAULT_REASONS, machine_config  # noqa: E402
from tests.support import RedisServer, free_port  # noqa: E402

TICKS_PER_S = 10


# --- the plant -----------------------------------------------------------------------------

def plant_data(lines: int, per_line: int, shift_start: str = "06:00") -> dict[str, Any]:
    """``lines`` lines L0.. of ``per_line`` machines (L0M0..), the last one the output; two
    12-hour shifts, the first from ``shift_start`` (UTC)."""
    out = []
    for n in range(lines):
        ids = [f"L{n}M{i}" for i in range(per_line)]
        machines = [machine_config(m, ideal=1.0, counter_bits=32) for m in ids]
        for machine in machines:  # node ids as a plant file spells them (nothing reads them here)
            machine["nodes"] = {k: f"ns=2;s={v}" for k, v in machine["nodes"].items()}
        out.append({"id": f"L{n}", "output_machine": ids[-1], "machines": machines})
    return {
        "name": f"scale bench {lines}x{per_line}",
        "timezone": "UTC",
        "endpoints": {"e": {"url": "opc.tcp://127.0.0.1:4840/"}},
        "lines": out,
        "shifts": [{"name": "day", "start": shift_start, "end": _hhmm(shift_start, 12)},
                   {"name": "night", "start": _hhmm(shift_start, 12), "end": shift_start}],
        "reasons": DEFAULT_REASONS,
        "tariff": {"currency": "EUR", "default_price_per_kwh": 0.2, "periods": []},
        "co2_kg_per_kwh": 0.5,
        "micro_stop_threshold_s": 120,
        "gap_timeout_s": 30,
    }


def _hhmm(text: str, hours: int) -> str:
    h, m = (int(x) for x in text.split(":"))
    return f"{(h + hours) % 24:02d}:{m:02d}"


HISTORY_H = 6.0  # with --history-stops: the shift began this long before the run


def history_shift_start(now: float) -> str:
    """The shift start (UTC "HH:MM") that puts ``now`` ``HISTORY_H`` hours into a shift."""
    return time.strftime("%H:%M", time.gmtime(now - HISTORY_H * 3600 + 60))


def write_history_stops(client: Any, plant: Any, per_machine: int, now: float, seed: int = 3) -> int:
    """``per_machine`` ended stops per machine in the stops sets (as the worker writes them),
    spread over the shift's first ``HISTORY_H`` hours up to 10 minutes before ``now``: what a
    line has late in a shift (the writer's machines stop about every 5 min, 70 times in 6 h).
    Their minutes are not written: the figures are not meaningful, only the cost of reading
    and classifying the stops is."""
    from domain.accounting import Stop
    from store.line_worker import stop_member

    rng = random.Random(seed)
    since, until = now - HISTORY_H * 3600, now - 600
    step = (until - since) / max(per_machine, 1)
    written = 0
    for line in plant.lines:
        members: dict[str, float] = {}
        for machine in line.machines:
            for k in range(per_machine):
                start = round(since + (k + rng.random() * 0.5) * step, 3)
                state = rng.choice([State.FAULT, State.IDLE])
                stop = Stop(line.id, machine.id, start, round(start + rng.uniform(20, min(120, step / 2)), 3), state,
                            rng.choice([0, 1, 3, 5]))
                members[stop_member(stop)] = start
        client.zadd(contract.stops_key(line.id), members)
        written += len(members)
    return written


# --- the writer ----------------------------------------------------------------------------

class SimMachine:
    """One machine at 1 Hz: running (a part a second) or stopped for a while, with a reason."""

    def __init__(self, line: str, machine: str, slot: int, rng: random.Random) -> None:
        self.line, self.machine, self.slot, self.rng = line, machine, slot, rng
        self.good = rng.randrange(1000)
        self.kwh = rng.uniform(0, 1000)
        self.state = State.RUNNING
        self.until = 0.0
        self.phase = rng.randrange(10)
        self.started = False

    def events(self, now: float, second: int) -> list[Event]:
        def ev(signal: Signal, value: object) -> Event:
            return Event(self.line, self.machine, signal, value, "Good", round(now, 3))  # type: ignore[arg-type]

        out = []
        if not self.started:
            self.started = True
            out += [ev(Signal.STATE, State.RUNNING.value), ev(Signal.GOOD, self.good), ev(Signal.REJECT, 0)]
        if self.state is State.RUNNING and self.rng.random() < 1 / 300:
            self.state, self.until = State.FAULT, now + self.rng.uniform(10, 90)
            out += [ev(Signal.STATE, State.FAULT.value), ev(Signal.REASON, self.rng.choice([1, 3, 5]))]
        elif self.state is not State.RUNNING and now >= self.until:
            self.state = State.RUNNING
            out += [ev(Signal.STATE, State.RUNNING.value), ev(Signal.REASON, 0)]
        if self.state is State.RUNNING:
            self.good += 1
            out.append(ev(Signal.GOOD, self.good))
        running = self.state is State.RUNNING
        if (second + self.phase) % 5 == 0:
            out.append(ev(Signal.POWER, round((8.0 if running else 1.5) * self.rng.uniform(0.9, 1.1), 2)))
        if (second + self.phase) % 10 == 0:
            self.kwh += (8.0 if running else 1.5) * 10 / 3600
            out.append(ev(Signal.ENERGY, round(self.kwh, 4)))
        return out


def run_writer(url: str, plant_file: Path) -> int:
    from config.loader import load_plant
    from store.clients import connect

    plant = load_plant(plant_file)
    client = connect(url, "worker")
    rng = random.Random(7)
    machines = [SimMachine(line.id, m.id, n % TICKS_PER_S, rng)
                for line in plant.lines for n, m in enumerate(line.machines)]
    by_slot = [[m for m in machines if m.slot == s] for s in range(TICKS_PER_S)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    tick = 0
    next_at = time.time()
    written = 0
    while not stop.is_set():
        now = time.time()
        events = [e for m in by_slot[tick % TICKS_PER_S] for e in m.events(now, int(now))]
        with client.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(contract.events_key(event.line), contract.encode_event(event))
                field, value = contract.encode_live(event)
                pipe.hset(contract.live_key(event.line), field, value)
            pipe.execute()
        written += len(events)
        tick += 1
        next_at += 1.0 / TICKS_PER_S
        stop.wait(max(0.0, next_at - time.time()))
    print(json.dumps({"written": written}), flush=True)
    return 0


# --- the dashboard -------------------------------------------------------------------------

def run_dashboard(url: str, plant_file: Path, port: int, overview_every_s: float, push: bool) -> int:
    import uvicorn

    from api.context import serving
    from app import create_dash
    from components.app_factory import tune_runtime
    from components.data import line_views
    from config.settings import Settings

    env = {**os.environ, "REDIS_URL": url}
    settings = Settings.from_env(env=env, plant_path=plant_file, port=port, data_dir=plant_file.parent / "var")
    app = create_dash(settings)
    tune_runtime()  # as a dashboard process does (components.app_factory.serve)
    server = uvicorn.Server(uvicorn.Config(app.server, host="127.0.0.1", port=port, access_log=False,
                                           log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"ready": port}), flush=True)
    if push:
        threading.Thread(target=follow_pushed, args=(app, server, port, stop), daemon=True).start()
    while not stop.wait(overview_every_s if overview_every_s > 0 else 3600):
        started = time.perf_counter()
        with serving(app.server):
            views, _ = line_views()
        print(json.dumps({"overview_s": time.perf_counter() - started, "lines": len(views),
                          "at": time.time()}), flush=True)
    server.should_exit = True
    return 0


def follow_pushed(app: Any, server: Any, port: int, stop: threading.Event) -> None:
    """A pushed overview of every line, in the dashboard's process: on each change the live
    feed tells (after its warm-up), the overview's data (``line_views`` of all lines, as its
    callback reads them) is read; reported: from the moment the first changed version was
    handed out (``Change.at``) to that data in hand."""
    import http.client

    from api.context import config_of, serving
    from components.data import POOL_KEY, line_views
    from store.live_feed import FEED_KEY
    from store.live_readers import WHY_ROLLUP

    while not server.started and not stop.wait(0.05):
        pass
    subscriber = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # starts the process's feed
    subscriber.request("GET", "/api/live/events", headers={"Accept": "text/event-stream"})
    subscriber.getresponse()
    feed = config_of(app.server)[FEED_KEY]
    seq = feed.seq
    while not stop.is_set():
        seq, changes = feed.wait(seq, None, 1.0)
        if not changes:
            continue
        with serving(app.server):
            views, _ = line_views()
        done = time.time()
        pool = config_of(app.server).get(POOL_KEY)
        print(json.dumps({"pushed_s": done - min(c.at for c in changes), "changed": len({c.line for c in changes}),
                          "committed": len({c.line for c in changes if WHY_ROLLUP in c.why}),
                          "lines": len(views), "at": done, "pool": len(pool) if pool else 0,
                          "pool_calls": pool.calls if pool else 0, "pool_cpu_s": pool.cpu_s if pool else 0.0,
                          "pool_prepared_cpu_s": pool.prepared_cpu_s if pool else 0.0,
                          "pool_early": pool.early if pool else 0,
                          "pool_told": pool.told_preparations if pool else 0,
                          "read_around": dict(pool.around) if pool else {}}), flush=True)


# --- measuring -----------------------------------------------------------------------------

class Redises:
    """A private redis-server, or a 3-master cluster on loopback."""

    def __init__(self, cluster: bool) -> None:
        self.cluster = cluster
        self.single: RedisServer | None = None
        self.nodes: Any = None

    def __enter__(self) -> Redises:
        if self.cluster:
            from tests.cluster_support import RedisClusterServers

            self.nodes = RedisClusterServers()
            self.nodes.start()
        else:
            self.single = RedisServer()
            self.single.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.nodes is not None:
            self.nodes.stop()
        if self.single is not None:
            self.single.cleanup()

    @property
    def url(self) -> str:
        return self.nodes.url if self.cluster else self.single.url  # type: ignore[union-attr]

    def pids(self) -> list[int]:
        if self.cluster:
            return [p.pid for p in self.nodes.procs]
        return [self.single.proc.pid]  # type: ignore[union-attr]


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _ms(stream_id: Any) -> int:
    return int(_text(stream_id).partition("-")[0])


def worker_lag_s(client: Any, line_ids: list[str]) -> tuple[float, int]:
    """The age of the oldest entry the worker has not committed (max over lines), and the
    entries written so far (sum of stream lengths)."""
    from store.rollup import GROUP

    with client.pipeline(transaction=False) as pipe:
        for line in line_ids:
            stream = contract.events_key(line)
            pipe.xpending(stream, GROUP)
            pipe.execute_command("XINFO", "GROUPS", stream)
            pipe.xrevrange(stream, count=1)
            pipe.xlen(stream)
        replies = pipe.execute(raise_on_error=False)
    now_ms = time.time() * 1000.0  # the writer stamps ids on this host's clock (same Redis host)
    worst, total = 0.0, 0
    for n, line in enumerate(line_ids):
        pending, groups, newest, length = replies[4 * n: 4 * n + 4]
        total += length if isinstance(length, int) else 0
        oldest: int | None = None
        if isinstance(pending, dict) and pending.get("pending"):
            oldest = _ms(pending["min"])
        delivered = "0-0"
        for group in groups if isinstance(groups, list) else []:
            info = group if isinstance(group, dict) else dict(zip(group[::2], group[1::2], strict=False))
            info = {_text(k): v for k, v in info.items()}
            if _text(info.get("name")) == GROUP:
                delivered = _text(info.get("last-delivered-id"))
        if oldest is None and isinstance(newest, list) and newest and _ms(newest[0][0]) > _ms(delivered):
            first = client.xrange(contract.events_key(line), min=f"({delivered}", count=1)
            oldest = _ms(first[0][0]) if first else None
        if oldest is not None:
            worst = max(worst, (now_ms - oldest) / 1000.0)
    return worst, total


class CpuTrace:
    """Each group of processes' CPU seconds (from /proc), sampled every ``every_s`` by a
    thread: what each group used inside given intervals of wall-clock time and outside them
    (a sample's CPU belongs where the middle of its interval lies). With ``--push``: the CPU
    of each process while the 50 line views of a change are computed, against between them
    (the view processes' time per change is their CPU divided among them only when no
    other process wants a core)."""

    def __init__(self, groups: dict[str, list[int]], every_s: float = 0.02) -> None:
        self.groups = groups
        self.every_s = every_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-trace", daemon=True)

    def __enter__(self) -> CpuTrace:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append((time.time(), {name: cpu_seconds(pids) for name, pids in self.groups.items()}))
            if self._stop.wait(self.every_s):
                return

    def split(self, intervals: list[tuple[float, float]]) -> dict[str, Any]:
        """Seconds inside ``intervals`` (any order; they may overlap: a change's versions may be
        handed out while the last one's views are still computed) and outside, and each group's
        share of one core in each."""
        intervals = merge(intervals)
        inside = {name: 0.0 for name in self.groups}
        outside = dict(inside)
        time_in = time_out = 0.0
        starts = [a for a, _ in intervals]
        for (t0, c0), (t1, c1) in itertools.pairwise(self.samples):
            middle = (t0 + t1) / 2
            i = bisect.bisect_right(starts, middle) - 1
            into = i >= 0 and middle <= intervals[i][1]
            if into:
                time_in += t1 - t0
            else:
                time_out += t1 - t0
            for name in self.groups:
                (inside if into else outside)[name] += c1[name] - c0[name]
        return {"in_s": time_in, "out_s": time_out,
                "in": {k: v / time_in if time_in else float("nan") for k, v in inside.items()},
                "out": {k: v / time_out if time_out else float("nan") for k, v in outside.items()},
                "in_cpu_s": inside}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _latency(seconds: list[float]) -> dict[str, Any]:
    """p50 and p95 of ``seconds``, in milliseconds, and how many."""
    return {"p50": 1e3 * _pct(seconds, 0.5), "p95": 1e3 * _pct(seconds, 0.95), "n": len(seconds)}


def _timed_get(url: str) -> float:
    started = time.perf_counter()
    get_json(url)
    return time.perf_counter() - started


def scenario(name: str, lines: int, per_line: int, args: argparse.Namespace, folder: Path,
             view_processes: str | None = None) -> dict[str, Any]:
    from domain.plant import Plant
    from store.clients import connect

    folder.mkdir(parents=True, exist_ok=True)
    plant_file = folder / "plant.yaml"
    begun = time.time()
    raw_plant = plant_data(lines, per_line, history_shift_start(begun) if args.history_stops else "06:00")
    plant_file.write_text(yaml.safe_dump(raw_plant, sort_keys=False), encoding="utf-8")
    line_ids = [f"L{n}" for n in range(lines)]
    with Redises(args.cluster) as redises:
        env = {**os.environ, "REDIS_URL": redises.url, "PLANT_FILE": str(plant_file),
               "DATA_DIR": str(folder / "var"), "PYTHONUNBUFFERED": "1"}
        if view_processes is not None:
            env["VIEW_PROCESSES"] = view_processes
        client = connect(redises.url, "tool")
        if args.history_stops:
            written = write_history_stops(client, Plant.model_validate(raw_plant), args.history_stops, begun)
            print(f"{name}: {written:,} stops written for the shift's first {HISTORY_H:g} h", flush=True)
        procs: list[Proc] = []
        overview: list[tuple[float, float]] = []
        pushed: list[tuple[float, float, int, int]] = []  # (at, seconds, lines, lines the worker committed)
        pool_size = [0]  # the dashboard's reader pool (store.reader_pool): processes
        commits_told = [0]  # its children's preparations on being told of a worker commit (ReaderPool.prepare_now)
        pool_reads: list[Any] = []  # (at, views its children read, read around it by why, their CPU, preparing) so far
        try:
            port = free_port()
            dashboard = Proc("dashboard", [PYTHON, __file__, "--role", "dashboard", "--port", str(port),
                                           "--plant-file", str(plant_file), "--overview-every",
                                           str(args.overview_every), *(["--push"] if args.push else [])],
                             env, folder, stdout=subprocess.PIPE)
            procs.append(dashboard)
            workers = []
            for n in range(args.workers):
                argv = [PYTHON, "app.py", "--log-level", "WARNING", "worker"]
                if args.profile and n == 0:
                    argv = [PYTHON, "-m", "cProfile", "-o", str(Path(args.profile).resolve()), *argv[1:]]
                workers.append(Proc(f"worker{n}", argv, env, folder))
            procs += workers
            writer = Proc("writer", [PYTHON, __file__, "--role", "writer", "--plant-file", str(plant_file)], env,
                          folder)
            procs.append(writer)
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: get_json(base + "/api/lines"), 120, "the dashboard", dashboard)

            def read_overview() -> None:
                assert dashboard.popen.stdout is not None
                for raw in dashboard.popen.stdout:
                    with contextlib.suppress(ValueError):
                        got = json.loads(raw)
                        if "overview_s" in got:
                            overview.append((got["at"], got["overview_s"]))
                        if "pushed_s" in got:
                            pushed.append((got["at"], got["pushed_s"], got["changed"], got.get("committed", 0)))
                            pool_size[0] = got["pool"]
                            commits_told[0] = got.get("pool_told", 0)
                            pool_reads.append((got["at"], got["pool_calls"], got["read_around"], got["pool_cpu_s"],
                                               got.get("pool_prepared_cpu_s", 0.0), got.get("pool_early", 0)))

            threading.Thread(target=read_overview, daemon=True).start()
            wait_until(lambda: all(line["worker"]["beat"] for line in get_json(base + "/api/health")["lines"]),
                       120, "the worker(s) holding every line", workers[0])
            time.sleep(args.warmup)  # machines start, the worker's first passes, caches
            cpu0 = {p.name: cpu_seconds(with_children(p.pid)) for p in procs}
            redis0 = cpu_seconds(redises.pids())
            lag0, events0 = worker_lag_s(client, line_ids)
            dashboard_pids = with_children(dashboard.pid)
            trace = CpuTrace({"view processes": [p for p in dashboard_pids if p != dashboard.pid],
                              "dashboard": [dashboard.pid],
                              "worker": [p for w in workers for p in with_children(w.pid)],
                              "writer": with_children(writer.pid), "Redis": redises.pids()}) if args.push else None
            started = time.time()
            lags: list[float] = []
            all_lines: list[float] = []
            one_line: list[float] = []
            health: list[float] = []
            tick = 0
            with trace if trace is not None else contextlib.nullcontext():
                while time.time() - started < args.seconds:
                    tick_at = started + tick * 0.5
                    time.sleep(max(0.0, tick_at - time.time()))
                    one_line.append(_timed_get(f"{base}/api/lines?line={line_ids[tick % lines]}"))
                    if tick % 4 == 0:
                        all_lines.append(_timed_get(f"{base}/api/lines"))
                    if tick % 2 == 0:
                        lags.append(worker_lag_s(client, line_ids)[0])
                    if tick % 10 == 5:
                        health.append(_timed_get(f"{base}/api/health"))
                    tick += 1
            elapsed = time.time() - started
            cpu = {p.name: cpu_seconds(with_children(p.pid)) - cpu0[p.name] for p in procs}
            redis_cpu = cpu_seconds(redises.pids()) - redis0
            _, events1 = worker_lag_s(client, line_ids)
            for proc in procs:
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited during the run:\n{proc.log_tail()}")
        finally:
            for proc in reversed(procs):
                proc.stop(timeout_s=30)
            client.close()
            if args.push and not pushed and procs:
                print(f"no pushed overview was reported; the dashboard's log:\n{procs[0].log_tail()}", flush=True)
    events = events1 - events0
    worker_cpu = sum(v for k, v in cpu.items() if k.startswith("worker"))
    views = [s for at, s in overview if started <= at <= started + elapsed]
    told = [(s, n, c) for at, s, n, c in pushed if started <= at <= started + elapsed]
    everyone = [s for s, n, _ in told if n >= 0.9 * lines]
    # of those, the ones where the worker committed (most) of their lines, and the ones of new events only
    committed = [s for s, n, c in told if n >= 0.9 * lines and c >= n / 2]
    events_only = [s for s, n, c in told if n >= 0.9 * lines and c == 0]
    # the CPU while a change of (nearly) every line was computed (its 50 views), and between them
    rounds = [(at - s, at) for at, s, n, _ in pushed if started <= at <= started + elapsed and n >= 0.9 * lines]
    during = trace.split(rounds) if trace is not None and rounds else None
    return {
        "name": name, "machines": lines * per_line, "lines": lines, "seconds": elapsed,
        "events_per_s": events / elapsed,
        "cpu": {"writer": cpu["writer"] / elapsed, "worker": worker_cpu / elapsed,
                "dashboard": cpu["dashboard"] / elapsed, "redis": redis_cpu / elapsed},
        "worker_ms_per_1k_events": 1e6 * worker_cpu / max(events, 1),
        "lag_s": {"p50": _pct(lags, 0.5), "p95": _pct(lags, 0.95), "max": max(lags, default=float("nan"))},
        "api_lines_ms": {"p50": 1e3 * _pct(all_lines, 0.5), "p95": 1e3 * _pct(all_lines, 0.95)},
        "api_line_ms": {"p50": 1e3 * _pct(one_line, 0.5), "p95": 1e3 * _pct(one_line, 0.95)},
        "api_health_ms": {"p50": 1e3 * _pct(health, 0.5), "p95": 1e3 * _pct(health, 0.95)},
        "overview_ms": _latency(views),
        "pushed_ms": {**_latency([s for s, *_ in told]),
                      "lines_per_change": sum(n for _, n, _ in told) / max(len(told), 1)},
        # the changes of (nearly) every line at once: what "all 50 lines updated" means
        "pushed_all_ms": {**_latency(everyone), "committed": _latency(committed), "events_only": _latency(events_only)},
        "view_processes": pool_size[0],
        "pool_told": commits_told[0],
        # as of the measured window's end (the processes' stop reaches the children first)
        "pool_reads": next(([n, around, early] for at, n, around, _, _, early in reversed(pool_reads)
                            if at <= started + elapsed), [0, {}, 0]),
        # the children's CPU per line view they computed over the measured window
        "pool_cpu_ms_per_view": _per_view([(at, n, cpu) for at, n, _, cpu, *_ in pool_reads], started,
                                          started + elapsed),
        # and their CPU preparing the next views between rounds (``store.preparation``), per view
        "pool_prepared_ms_per_view": _per_view([(at, n, cpu) for at, n, _, _, cpu, _ in pool_reads], started,
                                               started + elapsed),
        # wall clock, seconds, lines, lines the worker committed
        "pushed": [[at, s, n, c] for at, s, n, c in pushed if started <= at <= started + elapsed],
        # each process's share of a core during the changes of 90 % of the lines or more, and between them
        "cpu_during_changes": during and {"seconds": during["in_s"], "between_seconds": during["out_s"],
                                          "during": during["in"], "between": during["out"],
                                          "view_processes_ms_per_change": 1e3 * during["in_cpu_s"]["view processes"]
                                          / len(rounds)},
    }


def _per_view(reads: list[tuple[float, int, float]], start: float, end: float) -> float:
    """Milliseconds of the pool children's CPU per view between the first report at or
    after ``start`` and the last at or before ``end`` (reports: wall clock, views, CPU seconds)."""
    inside = [r for r in reads if start <= r[0] <= end]
    if len(inside) < 2 or inside[-1][1] <= inside[0][1]:
        return float("nan")
    return 1e3 * (inside[-1][2] - inside[0][2]) / (inside[-1][1] - inside[0][1])


def worker_cost(lines: int, per_line: int, seconds: float, pass_s: float) -> dict[str, Any]:
    """CPU seconds of the worker's passes over ``seconds`` of 1 Hz events (module docstring)."""
    from domain.plant import Plant
    from store.clients import node
    from store.rollup import RollupWorker

    plant = Plant.model_validate(plant_data(lines, per_line))
    rng = random.Random(7)
    machines = [SimMachine(line.id, m.id, n % TICKS_PER_S, rng)
                for line in plant.lines for n, m in enumerate(line.machines)]
    by_slot = [[m for m in machines if m.slot == s] for s in range(TICKS_PER_S)]
    with Redises(cluster=False) as server:
        client = node(server.url)
        clock = [float(int(time.time() - seconds - 120) // 10 * 10)]
        worker = RollupWorker(client, plant, clock=lambda: clock[0])
        warmup_ticks = 10 * TICKS_PER_S
        ticks = warmup_ticks + int(seconds * TICKS_PER_S)
        every = max(1, round(pass_s * TICKS_PER_S))
        cpu = 0.0
        events = passes = 0
        for tick in range(ticks):
            clock[0] += 1.0 / TICKS_PER_S
            batch = [e for m in by_slot[tick % TICKS_PER_S] for e in m.events(clock[0], int(clock[0]))]
            with client.pipeline(transaction=False) as pipe:
                for event in batch:
                    pipe.xadd(contract.events_key(event.line), contract.encode_event(event))  # type: ignore[arg-type]
                pipe.execute()
            if tick >= warmup_ticks:
                events += len(batch)
            if (tick + 1) % every:
                continue
            started = time.process_time()
            worker.process_once()
            if tick >= warmup_ticks:
                cpu += time.process_time() - started
                passes += 1
        worker.close()
        client.close()
    return {"machines": lines * per_line, "pass_s": pass_s, "events": events, "passes": passes,
            "ms_per_1k_events": 1e6 * cpu / max(events, 1), "core_share": cpu / seconds}


def print_table(results: list[dict[str, Any]]) -> None:
    head = (f"{'scenario':<22}{'events/s':>9}{'writer':>8}{'worker':>8}{'dash':>7}{'redis':>7}"
            f"{'wkr ms/1k ev':>13}{'lag p50/p95/max s':>20}{'/api/lines ms':>15}{'?line= ms':>12}"
            f"{'health ms':>12}{'overview ms':>14}")
    print(head)
    print("-" * len(head))
    for r in results:
        cpu = r["cpu"]
        lag = r["lag_s"]
        print(f"{r['name']:<22}{r['events_per_s']:>9,.0f}{cpu['writer']:>8.0%}{cpu['worker']:>8.0%}"
              f"{cpu['dashboard']:>7.0%}{cpu['redis']:>7.0%}{r['worker_ms_per_1k_events']:>13.1f}"
              f"{lag['p50']:>8.2f}/{lag['p95']:.2f}/{lag['max']:.2f}"
              f"{r['api_lines_ms']['p50']:>8.0f}/{r['api_lines_ms']['p95']:.0f}"
              f"{r['api_line_ms']['p50']:>7.1f}/{r['api_line_ms']['p95']:.1f}"
              f"{r['api_health_ms']['p50']:>7.0f}/{r['api_health_ms']['p95']:.0f}"
              f"{r['overview_ms']['p50']:>8.0f}/{r['overview_ms']['p95']:.0f}")
    print("(CPU: share of one core over the measured window; lag: age of the oldest entry the worker has not "
          "committed, max over lines; latencies p50/p95)")
    for r in results:
        p = r["pushed_ms"]
        if p["n"]:
            print(f"{r['name']}: pushed overview, a version handed out -> every line's view in hand: "
                  f"p50 {p['p50']:.0f} ms, p95 {p['p95']:.0f} ms over {p['n']} changes "
                  f"({p['lines_per_change']:.1f} lines each); the {r['pushed_all_ms']['n']} changes of 90 % of the "
                  f"lines or more: p50 {r['pushed_all_ms']['p50']:.0f} ms, p95 {r['pushed_all_ms']['p95']:.0f} ms "
                  + "(" + "; ".join(f"{k['n']} {what}: p50 {k['p50']:.0f} ms, p95 {k['p95']:.0f} ms"
                                    for what, k in (("with a worker commit", r["pushed_all_ms"]["committed"]),
                                                    ("of new events only", r["pushed_all_ms"]["events_only"]))
                                    if k["n"]) + "); "
                  + f"view processes: {r['view_processes'] or 'none (computed in the server process)'}"
                  + (f" (views read by them: {r['pool_reads'][0]}; read around them: {r['pool_reads'][1]}; "
                     f"their CPU per view: {r['pool_cpu_ms_per_view']:.2f} ms, and preparing between rounds "
                     f"{r['pool_prepared_ms_per_view']:.2f} ms; views asked before a preparation's now: "
                     f"{r['pool_reads'][2]}; preparations on being told of a commit: {r.get('pool_told', 0)})"
                     if r["view_processes"] else ""))
        d = r.get("cpu_during_changes")
        if d:
            names = list(d["during"])
            print(f"{r['name']}: CPU while the changes of 90 % of the lines or more were computed "
                  f"({d['seconds']:.1f} s of {d['seconds'] + d['between_seconds']:.1f}), share of one core: "
                  + ", ".join(f"{k} {100 * d['during'][k]:.0f} %" for k in names)
                  + "; between them: " + ", ".join(f"{k} {100 * d['between'][k]:.0f} %" for k in names)
                  + f"; the view processes' CPU per such change: {d['view_processes_ms_per_change']:.0f} ms"
                  + (f" ({d['view_processes_ms_per_change'] / r['view_processes']:.0f} ms each of "
                     f"{r['view_processes']}: a change's time with a core each to themselves)"
                     if r["view_processes"] else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--machines", type=int, default=20, help="machines per line")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured load per scenario")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--baseline", default="1x10", help="LINESxMACHINES of the small plant ('' for none)")
    parser.add_argument("--workers", type=int, default=1, help="rollup worker processes")
    parser.add_argument("--cluster", action="store_true", help="a 3-master Redis Cluster on loopback")
    parser.add_argument("--overview-every", type=float, default=5.0,
                        help="seconds between overview computations without the memo (0: none)")
    parser.add_argument("--push", action="store_true",
                        help="the dashboard also follows its live feed and reads the overview on each change")
    parser.add_argument("--pool-baseline", action="store_true", help="with --push: the big plant first without "
                        "the dashboard's reader pool (VIEW_PROCESSES=0), for the ratio")
    parser.add_argument("--keep", help="a folder to keep each scenario's plant file and processes' logs in")
    parser.add_argument("--history-stops", type=int, default=0, help="ended stops per machine written before the "
                        f"run, over the shift's first {HISTORY_H:g} h: late in a shift (see write_history_stops)")
    parser.add_argument("--profile", help="cProfile output file of the (first) worker of the big plant")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker-cost", action="store_true", help="the worker's CPU per event only (see above)")
    parser.add_argument("--pass-s", type=float, action="append", help="with --worker-cost: seconds of events per "
                        "pass (repeatable; default 1 and 0.1)")
    parser.add_argument("--role", choices=("writer", "dashboard"), help=argparse.SUPPRESS)
    parser.add_argument("--plant-file", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "writer":
        return run_writer(os.environ["REDIS_URL"], Path(args.plant_file))
    if args.role == "dashboard":
        return run_dashboard(os.environ["REDIS_URL"], Path(args.plant_file), args.port, args.overview_every,
                             args.push)
    if args.worker_cost:
        print(machine_info())
        print(f"{'machines':>9}{'pass s':>8}{'events':>9}{'passes':>8}{'worker ms/1k events':>21}"
              f"{'core share at 1 Hz':>20}")
        for pass_s in args.pass_s or [1.0, 0.1]:
            r = worker_cost(args.lines, args.machines, args.seconds, pass_s)
            print(f"{r['machines']:>9}{r['pass_s']:>8g}{r['events']:>9,}{r['passes']:>8}"
                  f"{r['ms_per_1k_events']:>21.1f}{r['core_share']:>20.0%}", flush=True)
        print(f"after: {machine_info()}")
        return 0
    print(f"{machine_info()}; {'3-master Redis Cluster' if args.cluster else 'one redis-server'} on loopback; "
          f"{args.workers} worker process(es)")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") if not args.keep else contextlib.nullcontext(
            args.keep) as tmp:
        if args.baseline:
            b_lines, b_per = (int(x) for x in args.baseline.split("x"))
            profile, args.profile = args.profile, None
            results.append(scenario(f"{b_lines} x {b_per} (baseline)", b_lines, b_per, args,
                                    Path(tmp) / "baseline"))
            args.profile = profile
            print_table(results)
        if args.pool_baseline:
            results.append(scenario(f"{args.lines} x {args.machines} no pool", args.lines, args.machines, args,
                                    Path(tmp) / "no-pool", view_processes="0"))
            print_table(results)
        results.append(scenario(f"{args.lines} x {args.machines}", args.lines, args.machines, args,
                                Path(tmp) / "plant"))
    print()
    print_table(results)
    if args.pool_baseline:
        alone, pooled = results[-2]["pushed_all_ms"], results[-1]["pushed_all_ms"]
        print(f"changes of 90 % of the lines or more, with the reader pool vs without: p50 "
              f"{pooled['p50'] / alone['p50']:.2f}x, p95 {pooled['p95'] / alone['p95']:.2f}x")
    if args.baseline:
        small, big = results[0], results[-1]
        print(f"worker CPU per event, {big['machines']} vs {small['machines']} machines: "
              f"{big['worker_ms_per_1k_events'] / small['worker_ms_per_1k_events']:.2f}x; "
              f"overview time: {big['overview_ms']['p50'] / small['overview_ms']['p50']:.1f}x")
    print(f"after: {machine_info()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
