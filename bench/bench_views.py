"""The dashboard's live reads of a big plant, old code beside new on the same data.

    python bench/bench_views.py [--lines 50 --machines 20 --minutes 5 --steps 20]
                                [--baseline-code DIR] [--profile FILE] [--history-stops N]

One redis-server; a plant of ``--lines`` x ``--machines`` at 1 Hz (the events of
``bench/bench_scale.py``'s writer, with a seeded generator and a virtual clock, so every run
writes the same data), ``--minutes`` of it rolled up by an in-process ``RollupWorker``
passing once per second of events, the last 0.5 s left to the open edge as in a live plant.
Then ``--steps`` times: half a second of events with a worker pass ("commit": every
line's bookkeeping moved), then half a second of events only ("events": new stream entries
on every line, the bookkeeping as before); after each half, each measured
process (``--baseline-code DIR``: the same measurement with ``DIR`` first on ``sys.path``,
e.g. a ``git worktree`` of main; then this tree) times, one after the other on the same
data and the same ``now``:

* ``overview``: ``components.data.line_views()`` of all lines, without the live feed (so
  nothing is kept per version: every line's view is computed, as after a clock tick);
* ``line=X``: ``PlantReader.lines(now, only=[X], with_andon=True)``, what
  ``GET /api/lines?line=X`` serves, for 10 lines;
* ``health``: ``PlantReader.health(now)``.

Each measured process is a long-lived one (its caches warm, as a server's). Figures are
wall-clock milliseconds per call, p50/p95 over the steps (and the overview's CPU time in
the measuring process, which a loaded host changes less, and the time in its cyclic garbage
collector during the overview, p50 and max); the first two (cold caches)
are left out. ``--profile FILE``: this tree's process runs under cProfile (the overview
calls only) and writes FILE. ``--history-stops N``: the run 6 hours into the shift, with N
ended stops per machine written into the stops sets over those hours first
(``bench_scale.write_history_stops``: a line's view late in a shift). Nothing is asserted;
the load average is printed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHIFT_START_H = 6


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- the measured process --------------------------------------------------------------------

def measure(url: str, plant_file: Path, profile: str | None) -> int:
    """Reads a ``now`` per line of stdin, answers the figures as one JSON line."""
    from api.context import config_of, serving
    from app import create_dash
    from components.data import READER_KEY, line_views
    from config.settings import Settings

    env = {**os.environ, "REDIS_URL": url}
    settings = Settings.from_env(env=env, plant_path=plant_file, port=8050, data_dir=plant_file.parent / "var")
    app = create_dash(settings)
    reader = config_of(app.server)[READER_KEY]
    line_ids = [line.id for line in settings.plant.lines]
    profiler = cProfile.Profile() if profile else None
    in_gc = [0.0, 0.0]  # seconds in the cyclic garbage collector, when the current collection began

    def collecting(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            in_gc[1] = time.perf_counter()
        else:
            in_gc[0] += time.perf_counter() - in_gc[1]

    gc.callbacks.append(collecting)
    import components.app_factory as factory

    if hasattr(factory, "tune_runtime"):  # as the server process does (a baseline tree may not)
        factory.tune_runtime()
    print(json.dumps({"ready": True}), flush=True)
    for raw in sys.stdin:
        at = float(raw)
        with serving(app.server, "/"):
            started, cpu, gc_before = time.perf_counter(), time.process_time(), in_gc[0]
            if profiler is not None:
                profiler.enable()
            views, _ = line_views(at=at)
            if profiler is not None:
                profiler.disable()
            overview, overview_cpu = time.perf_counter() - started, time.process_time() - cpu
            overview_gc = in_gc[0] - gc_before
        one = []
        for line in line_ids[:10]:
            started = time.perf_counter()
            reader.lines(at, only=[line], with_andon=True)
            one.append(time.perf_counter() - started)
        started = time.perf_counter()
        reader.health(at)
        health = time.perf_counter() - started
        digest = json.dumps([{k: v for k, v in view.items() if k != "version"} for view in views], sort_keys=True,
                            default=str)
        print(json.dumps({"overview": overview, "overview_cpu": overview_cpu, "overview_gc": overview_gc,
                          "line": one, "health": health,
                          "views": len(views), "digest": hash(digest)}), flush=True)
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    return 0


class Measured:
    def __init__(self, name: str, code: Path, url: str, plant_file: Path, profile: str | None) -> None:
        self.name = name
        env = {**os.environ, "PYTHONPATH": str(code), "PYTHONHASHSEED": "0"}
        argv = [sys.executable, str(code / "bench" / "bench_views.py") if (code / "bench" / "bench_views.py").exists()
                else __file__, "--role", "measure", "--url", url, "--plant-file", str(plant_file)]
        if profile:
            argv += ["--profile", profile]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=code,
                                     env=env)
        self._read()
        self.runs: list[dict[str, Any]] = []

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                return dict(json.loads(raw))
            except ValueError:
                continue
        raise RuntimeError(f"{self.name} exited")

    def step(self, at: float, kind: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{at!r}\n")
        self.proc.stdin.flush()
        got = self._read()
        got["kind"] = kind
        self.runs.append(got)
        return got

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


# --- the data ---------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--machines", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes of data rolled up before measuring")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--baseline-code", help="a tree of the code to compare with (e.g. a worktree of main)")
    parser.add_argument("--profile", help="cProfile output of this tree's overview calls")
    parser.add_argument("--history-stops", type=int, default=0, help="the run 6 hours into the shift, with this "
                        "many ended stops per machine written over those hours first (late in a shift)")
    parser.add_argument("--role", choices=("measure",), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--plant-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "measure":  # the code of the tree it runs in (its working directory)
        sys.path.insert(0, os.getcwd())
        return measure(args.url, Path(args.plant_file), args.profile)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    import yaml
    from bench_scale import HISTORY_H, TICKS_PER_S, SimMachine, plant_data, write_history_stops
    from dashboard_rig import machine_info

    from domain import contract
    from domain.plant import Plant
    from store.clients import node
    from store.rollup import RollupWorker
    from tests.support import RedisServer

    print(machine_info(), flush=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-views-"))
    raw_plant = plant_data(args.lines, args.machines)
    plant_file = folder / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(raw_plant, sort_keys=False), encoding="utf-8")
    plant = Plant.model_validate(raw_plant)
    rng = random.Random(7)
    machines = [SimMachine(line.id, m.id, n % TICKS_PER_S, rng)
                for line in plant.lines for n, m in enumerate(line.machines)]
    by_slot = [[m for m in machines if m.slot == s] for s in range(TICKS_PER_S)]
    day = (int(time.time()) // 86400 - 1) * 86400  # yesterday, UTC: the day shift starts at 06:00
    clock = [float(day + SHIFT_START_H * 3600 + (HISTORY_H if args.history_stops else 2) * 3600)]
    server = RedisServer()
    server.start()
    procs: list[Measured] = []
    try:
        client = node(server.url)
        if args.history_stops:
            written = write_history_stops(client, plant, args.history_stops, clock[0])
            print(f"{written:,} stops written for the shift's first {HISTORY_H:g} h", flush=True)
        worker = RollupWorker(client, plant, clock=lambda: clock[0])
        tick = 0
        passes = [0]

        def advance(seconds: float) -> None:
            nonlocal tick
            for _ in range(int(seconds * TICKS_PER_S)):
                clock[0] += 1.0 / TICKS_PER_S
                batch = [e for m in by_slot[tick % TICKS_PER_S] for e in m.events(clock[0], int(clock[0]))]
                with client.pipeline(transaction=False) as pipe:
                    for event in batch:
                        pipe.xadd(contract.events_key(event.line), contract.encode_event(event))  # type: ignore[arg-type]
                        field, value = contract.encode_live(event)
                        pipe.hset(contract.live_key(event.line), field, value)
                    pipe.execute()
                tick += 1
                if tick % TICKS_PER_S == TICKS_PER_S // 2:  # the last half second stays in the open edge
                    worker.process_once()
                    passes[0] += 1

        started = time.time()
        advance(args.minutes * 60)
        print(f"{args.minutes:g} min of {args.lines}x{args.machines} written and rolled up in "
              f"{time.time() - started:.0f} s", flush=True)
        if args.baseline_code:
            procs.append(Measured("baseline", Path(args.baseline_code).resolve(), server.url, plant_file, None))
        procs.append(Measured("this tree", ROOT, server.url, plant_file, args.profile))
        for step in range(2 * args.steps):
            before = passes[0]
            advance(0.5)  # every other half second holds a worker pass
            for proc in (procs if step % 2 else procs[::-1]):
                proc.step(clock[0], "commit" if passes[0] > before else "events")
            if len(procs) == 2 and procs[0].runs[-1]["digest"] != procs[1].runs[-1]["digest"]:
                print(f"step {step}: the overview's views differ between the two trees", flush=True)
        for proc in procs:
            proc.close()
        worker.close()
        client.close()
    finally:
        for proc in procs:
            if proc.proc.poll() is None:
                proc.proc.kill()
        server.cleanup()
    print(machine_info())
    print(f"{'code':<12}{'after':<8}{'overview ms p50/p95':>22}{'(CPU ms p50)':>14}{'(GC ms p50/max)':>17}"
          f"{'?line=X ms p50/p95':>22}{'health ms p50/p95':>20}")
    for proc, kind in ((proc, kind) for proc in procs for kind in ("commit", "events")):
        runs = [r for r in proc.runs[2:] if r["kind"] == kind]
        ov = [1e3 * r["overview"] for r in runs]
        one = [1e3 * t for r in runs for t in r["line"]]
        health = [1e3 * r["health"] for r in runs]
        ov_cpu = [1e3 * r["overview_cpu"] for r in runs]
        ov_gc = [1e3 * r.get("overview_gc", math.nan) for r in runs]
        print(f"{proc.name:<12}{kind:<8}{_pct(ov, .5):>13.1f} /{_pct(ov, .95):>6.1f}{_pct(ov_cpu, .5):>14.1f}"
              f"{_pct(ov_gc, .5):>10.1f} /{max(ov_gc, default=math.nan):>5.0f}{_pct(one, .5):>14.1f} /"
              f"{_pct(one, .95):>6.1f}{_pct(health, .5):>12.1f} /{_pct(health, .95):>6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
