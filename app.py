"""Smart-factory operations dashboard: entry point.

    python app.py                 run everything: embedded Redis (unless REDIS_URL),
                                  demo plant simulator, collector, rollup worker, dashboard;
                                  into empty streams it first writes the last 24 h of the
                                  simulated plant, so shifts and days have data at once
                                  (python app.py run --history-hours N: N h; 0: none)
    python app.py check           validate a plant file and exit
    python app.py simulate        only the OPC UA plant simulator
    python app.py replay FILE     replay a scenario file through the simulator's nodes
    python app.py collect         only the OPC UA -> Redis collector
    python app.py worker          only the rollup worker (per-minute/hour KPIs)
    python app.py dashboard       only the dashboard and HTTP API
    python app.py alerts          only the alert evaluator and webhook sender
                                  (python app.py alerts test CHANNEL: a test message)
    python app.py users|tokens|audit ...   users, API tokens, the audit trail (README "Users, roles ...")
    python app.py trust list|accept THUMBPRINT   OPC UA server certificates (README "OPC UA security")

Every part takes --plant FILE (default: $PLANT_FILE, else the demo plant) and reads
REDIS_URL. For production under uvicorn:
``uvicorn --factory app:create_server --workers 4 --host 0.0.0.0 --port 8050``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("app")

DEMO_HISTORY_HOURS = 24.0  # today, the last shift and most of yesterday
COMMANDS = ("run", "dashboard", "check", "simulate", "replay", "collect", "worker", "users", "tokens", "audit",
            "alerts", "trust")


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # asyncua logs every address-space detail at INFO; the product's own lines are what matter.
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def _settings(args: argparse.Namespace) -> Any:
    from config.settings import Settings

    return Settings.from_env(
        plant_path=args.plant,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
    )


def check_at_start(redis_url: str | None, part: str) -> None:
    """Warn once in the log when the Redis this part is given could lose data (store.durability)."""
    from store.durability import check_at_start as check

    if redis_url:
        check(redis_url, part)


def create_dash(settings: Any) -> Any:
    """The Dash app with the HTTP API on its FastAPI server (``components.app_factory``)."""
    from components.app_factory import create_dashboard

    return create_dashboard(settings)


def create_server() -> Any:
    """The ASGI app for uvicorn: ``uvicorn --factory app:create_server --workers 4 --host
    0.0.0.0 --port 8050``."""
    from components.app_factory import tune_runtime
    from config.settings import Settings

    _configure_logging("INFO")
    settings = Settings.from_env()
    check_at_start(settings.redis_url, "dashboard")
    server = create_dash(settings).server
    tune_runtime()
    return server


def _run_async_in_thread(
    name: str, factory: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
) -> Callable[[], None]:
    """Run ``factory(stop)`` in its own event loop thread; returns a function that stops it."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        holder["loop"] = asyncio.get_running_loop()
        holder["stop"] = asyncio.Event()
        ready.set()
        await factory(holder["stop"])

    def target() -> None:
        try:
            asyncio.run(main())
        except Exception:
            log.exception("%s stopped with an error", name)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        loop = holder.get("loop")
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)

    return stop


async def _wait_for_endpoints(plant: Any, timeout_s: float) -> None:
    """Until every endpoint's TCP port accepts (the simulator's servers take a few seconds)."""
    from urllib.parse import urlsplit

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    for endpoint in plant.endpoints.values():
        parts = urlsplit(endpoint.url)
        while loop.time() < deadline:
            try:
                _, writer = await asyncio.open_connection(parts.hostname, parts.port or 4840)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                await asyncio.sleep(0.2)


class _Signals:
    """SIGTERM/SIGINT raise KeyboardInterrupt, except while a child process is being
    started and registered (``deferred``): then the stop waits until it is registered, so
    no child (the worker, the alert loop) is left behind by a stop during start-up."""

    deferred = False
    pending = False


def _interrupt(*_: object) -> None:
    if _Signals.deferred:
        _Signals.pending = True
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def _no_stop_while_starting() -> Iterator[None]:
    _Signals.deferred = True
    try:
        yield
    finally:
        _Signals.deferred = False
        if _Signals.pending:
            _Signals.pending = False
            raise KeyboardInterrupt


def _start_child(args: list[str], env: dict[str, str], stoppers: list[Callable[[], None]]) -> None:
    """A part of the demo in its own process, stopped (and waited for) with the rest."""
    with _no_stop_while_starting():
        child = subprocess.Popen(args, env=env)

        def stop() -> None:
            child.terminate()
            child.wait(15)

        stoppers.append(stop)


def _run_quietly(coro: Coroutine[Any, Any, Any]) -> int:
    """asyncio.run that ends on Ctrl-C without a traceback (cancellation shuts the parts down)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coro)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    plant = settings.plant
    machines = sum(len(line.machines) for line in plant.lines)
    print(f"{settings.plant_path}: OK - {plant.name}: {len(plant.lines)} lines, {machines} machines, "
          f"{len(plant.endpoints)} endpoints, {len(plant.shifts)} shifts, time zone {plant.timezone}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from collectors.sim.simulator import run_simulator

    settings = _settings(args)
    return _run_quietly(run_simulator(settings, seed=args.seed, speed=args.speed))


def cmd_replay(args: argparse.Namespace) -> int:
    from collectors.sim.scenario import Shift, replay_scenario

    settings = _settings(args)
    shift: Shift = "none" if args.keep_times else args.shift
    return _run_quietly(replay_scenario(settings, Path(args.scenario), speed=args.speed, shift=shift))


def cmd_collect(args: argparse.Namespace) -> int:
    from collectors.collector import quiet_asyncua_logging, run_collector

    settings = _settings(args)
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is not set: the collector needs a Redis to write to")
    check_at_start(settings.redis_url, "collector")
    quiet_asyncua_logging()
    return _run_quietly(run_collector(settings, handle_signals=True))


def cmd_worker(args: argparse.Namespace) -> int:
    from store.clients import client_for
    from store.rollup import lower_priority, run_worker

    settings = _settings(args)
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is not set: the rollup worker needs the Redis the collectors write to")
    check_at_start(settings.redis_url, "rollup worker")
    lower_priority(settings.worker_nice)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_worker(client_for(settings, "worker"), settings.plant, stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from store.alert_loop import main as alerts_main

    return alerts_main(_settings(args), args.action, args.channel)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from components.app_factory import serve

    settings = _settings(args)
    app = create_dash(settings)
    check_at_start(settings.redis_url, "dashboard")
    print(f"Dashboard: http://{settings.host}:{settings.port}/", flush=True)
    serve(app, settings.host, settings.port)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Everything in one process: the demo on a machine with only Python."""
    from dataclasses import replace

    from collectors.collector import quiet_asyncua_logging, run_collector
    from collectors.sim.simulator import run_simulator
    from components.app_factory import serve
    from store.embedded import EmbeddedRedis

    settings = _settings(args)
    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        settings = replace(settings, redis_url=embedded.start())
    check_at_start(settings.redis_url, "collector, rollup worker and dashboard")
    signal.signal(signal.SIGTERM, _interrupt)  # stop as on Ctrl-C: the worker's process too
    signal.signal(signal.SIGINT, _interrupt)
    stoppers: list[Callable[[], None]] = []
    try:
        history = None if args.no_simulator else _demo_history(settings, args.history_hours, args.seed)
        models = history.models if history is not None else None

        async def plant_side(stop: asyncio.Event) -> None:
            async with asyncio.TaskGroup() as tg:
                if not args.no_simulator:
                    tg.create_task(run_simulator(settings, seed=args.seed, speed=1.0, stop=stop, models=models))
                    await _wait_for_endpoints(settings.plant, timeout_s=20.0)
                quiet_asyncua_logging()
                tg.create_task(run_collector(settings, stop=stop))

        stoppers.append(_run_async_in_thread("plant", plant_side))
        # its own process: catching up the history must not starve the screens of the GIL
        env = {**os.environ, "REDIS_URL": settings.redis_url}
        for part in ("worker", "alerts"):
            _start_child([sys.executable, __file__, part, "--plant", str(settings.plant_path),
                          "--log-level", args.log_level], env, stoppers)
        app = create_dash(settings)
        print(f"\n  Dashboard:  http://{settings.host}:{settings.port}/\n"
              f"  Wall:       http://{settings.host}:{settings.port}/wall?rotate=15\n"
              f"  HTTP API:   http://{settings.host}:{settings.port}/api/lines\n"
              f"  Redis:      {settings.redis_url.split('@')[-1]}\n", flush=True)  # never the password
        serve(app, settings.host, settings.port)
    except KeyboardInterrupt:
        pass
    finally:
        for stop in reversed(stoppers):
            stop()
        if embedded is not None:
            embedded.stop()
    return 0


def _demo_history(settings: Any, hours: float, seed: int) -> Any:
    """The simulated plant's last ``hours`` written into empty streams (None if they hold data)."""
    from collectors.sim.history import demo_history
    from store.clients import client_for

    client = client_for(settings, "worker")
    try:
        return demo_history(client, settings.plant, hours, seed)
    except ValueError as exc:
        raise SystemExit(f"--history-hours: {exc}") from None
    finally:
        client.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plant", help="plant file (default: $PLANT_FILE or config/demo_plant.yaml)")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--plant", default=argparse.SUPPRESS, help="plant file")
        p.add_argument("--log-level", default=argparse.SUPPRESS)
        p.set_defaults(func=func)
        return p

    run = add("run", cmd_run, "everything (the default)")
    for p in (run, add("dashboard", cmd_dashboard, "dashboard and HTTP API only")):
        p.add_argument("--host")
        p.add_argument("--port", type=int)
    run.add_argument("--data-dir", help="embedded Redis and buffer files (default: ./var)")
    run.add_argument("--seed", type=int, default=7)
    run.add_argument("--no-simulator", action="store_true", help="collect from real PLCs instead of the demo")
    run.add_argument("--history-hours", type=float, default=DEMO_HISTORY_HOURS, metavar="N",
                     help="when the plant's streams are empty, first write the simulated plant's last N hours "
                          f"(default {DEMO_HISTORY_HOURS:g}; 0: none; not with --no-simulator)")
    add("check", cmd_check, "validate a plant file")
    sim = add("simulate", cmd_simulate, "OPC UA plant simulator only")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    rep = add("replay", cmd_replay, "replay a scenario file through the simulator")
    rep.add_argument("scenario")
    rep.add_argument("--speed", type=float, default=60.0, help="scenario seconds per real second (default 60)")
    when = rep.add_mutually_exclusive_group()
    when.add_argument("--shift", choices=("exact", "days"), default="exact",
                      help="move the scenario in time so that no row is played before its time: 'exact' "
                           "(default): it ends when the replay ends (at --speed 1 it plays live); 'days': by "
                           "whole days of the plant's calendar, to the last day on which it ends by then "
                           "(its local clock times, shifts and breaks stay as they are)")
    when.add_argument("--keep-times", action="store_true", help="play the rows with the file's own times")
    add("collect", cmd_collect, "OPC UA -> Redis collector only")
    add("worker", cmd_worker, "rollup worker only")
    alerts = add("alerts", cmd_alerts, "alert evaluator and webhook sender only; 'alerts test CHANNEL': a test message")
    alerts.add_argument("action", nargs="?", choices=("run", "test"), default="run")
    alerts.add_argument("channel", nargs="?", help="with 'test': the channel (a key of alerts.channels)")
    from store.admin import add_parsers  # users, tokens, audit (issue 11)

    add_parsers(add)
    from collectors.trust import add_parsers as add_trust_parsers  # OPC UA server certificates (issue 14)

    add_trust_parsers(add)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """No subcommand: run everything, and ``run``'s flags work alone (``python app.py --port 8051``)."""
    if not set(argv) & {*COMMANDS, "-h", "--help"}:
        argv = ["run", *argv]
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from config.loader import PlantConfigError

    args = parse_args(sys.argv[1:] if argv is None else argv)
    _configure_logging(args.log_level)
    try:
        return int(args.func(args))
    except PlantConfigError as exc:
        print(f"plant file error:\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
