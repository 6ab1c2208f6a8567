"""The benchmark's plant: history, then the live simulator, driven by hand.

    REDIS_URL=... python bench/live_plant.py --plant FILE [--hours 13] [--seed 7]

Writes the plant's last ``--hours`` into its empty streams (``collectors.sim.history``, as
``python app.py`` does), then serves the plant's OPC UA nodes going on from there: a
``PlantSimulator`` without autorun, ticked here to the wall clock every 0.1 s (speed 1).
Driving it by hand lets a command change a node between two ticks, never inside one:

stdout, one JSON line each:
    {"events": N, "url": ...}          once the history is written and the server is up
stdin, one command a line, answered with one JSON line:
    bump LINE MACHINE N                the machine's good counter + N, in its model and at
                                       its node: {"t": epoch s right after the server took
                                       the value, "value": the counter's new value}

Ends on SIGTERM or when stdin closes. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from collectors.sim.history import start_history  # noqa: E402
from collectors.sim.simulator import PlantSimulator  # noqa: E402
from config.settings import Settings  # noqa: E402
from domain.model import Signal  # noqa: E402
from store.clients import node  # noqa: E402

log = logging.getLogger("live_plant")

TICK_S = 0.1


def _answer(payload: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _read_commands(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.strip())
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def _bump(sim: PlantSimulator, line: str, machine: str, parts: int) -> dict[str, object]:
    model = sim.models[(line, machine)]
    model.good_total += parts  # the model goes on counting from the new value
    await sim.write(line, machine, Signal.GOOD, model.good, source_ts=time.time())
    return {"t": time.time(), "value": model.good}


async def run(settings: Settings, hours: float, seed: int) -> None:
    client = node(settings.redis_url or "")
    now = time.time()
    history = start_history(settings.plant, now, hours, seed)
    events = history.write_until(client, now)
    events += history.write_until(client, time.time())
    client.close()
    url = next(iter(settings.plant.endpoints.values())).url
    sim = PlantSimulator(settings.plant, url=url, models=history.models, autorun=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    commands: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_commands, args=(loop, commands), daemon=True).start()
    async with sim:
        _answer({"events": events, "url": url})
        while not stop.is_set():
            await asyncio.sleep(TICK_S)
            await sim.tick(time.time())
            while not commands.empty():
                command = commands.get_nowait()
                if command is None:
                    stop.set()
                    break
                verb, line, machine, parts = command.split()
                if verb != "bump":
                    raise SystemExit(f"unknown command {command!r}")
                _answer(await _bump(sim, line, machine, int(parts)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plant", required=True)
    parser.add_argument("--hours", type=float, default=13.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(run(Settings.from_env(plant_path=args.plant), args.hours, args.seed))


if __name__ == "__main__":
    main()
