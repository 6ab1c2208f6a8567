"""A change at a machine to the pixel: pushed (server-sent events, ``assets/push.js``)
against the old 2 s polling, in one run.

    python bench/bench_push.py [--reps 20] [--bump 50] [--hours 2]

Everything runs for real, each part its own process (``dashboard_rig``): redis-server,
the demo plant (BW1 with 8 machines) with ``--hours`` of history and its live OPC UA
simulator, the collector, the rollup worker and the dashboard under gunicorn (gthread).
Four headless Chromiums: the wall (``/wall``) and the line page (``/line/BW1``, this
shift) pushed, and the same two pages polling as before push: their ``EventSource`` is
taken away before the page loads, so ``push.js`` falls back to the 2 s ``dcc.Interval``
(the page says "live updates paused"), exactly the old refresh.

Each repetition waits 0-2 s at random, then raises the output machine's good counter by
``--bump`` parts at the OPC UA server; a MutationObserver in each page notes when the new
count is in the DOM (the wall's "Output" of BW1, the line page's "N good" in the Quality
tile). Latency = that moment - the moment the simulator took the value (one clock, one
machine). All four pages see the same changes under the same load. Figures are printed,
not asserted; the target (issue 10): p95 <= 1 s on the wall and on the line page.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_dashboard import pct, read_value, say, seen_at, stored_at, watch_for  # noqa: E402
from dashboard_rig import LONG_LINE, SERVER, Rig, chromium, cpu_seconds, machine_info  # noqa: E402

REFRESH_S = 2.0
TARGET_P95_S = 1.0
NO_PUSH = "window.EventSource = undefined;"  # push.js then polls with the page's 2 s Interval
PAGES = ("wall", "line")
MODES = ("pushed", "polling")


def page_urls(rig: Rig) -> dict[str, str]:
    return {"wall": f"{rig.url}/wall", "line": f"{rig.url}/line/{LONG_LINE}?start=shift"}


def open_pages(urls: dict[str, str]) -> dict[tuple[str, str], Any]:
    drivers: dict[tuple[str, str], Any] = {}
    for mode in MODES:
        for page in PAGES:
            driver = chromium()
            if mode == "polling":
                driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": NO_PUSH})
            driver.get(urls[page])
            drivers[(mode, page)] = driver
    return drivers


def push_state(driver: Any) -> str | None:
    return driver.execute_script(  # type: ignore[no-any-return]
        "var el = document.querySelector('.live-push'); return el ? el.dataset.state : null;")


def wait_ready(drivers: dict[tuple[str, str], Any], element: str) -> None:
    deadline = time.monotonic() + 60
    for (mode, page), driver in drivers.items():
        want = "up" if mode == "pushed" else "down"
        while read_value(driver, page, element) is None or push_state(driver) != want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode} {page}: no count shown or push state not {want!r} "
                                   f"(state {push_state(driver)!r})")
            time.sleep(0.2)


def measure(rig: Rig, reps: int, bump: int) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], int],
                                                     list[float], float]:
    from store.clients import node

    assert rig.plant is not None
    machine = rig.plant.line(LONG_LINE).output_machine  # type: ignore[union-attr]
    element = json.dumps({"field": "output", "line": LONG_LINE, "type": "wall-field"}, separators=(",", ":"),
                         sort_keys=True)
    client = node(rig.redis_url)
    drivers = open_pages(page_urls(rig))
    latency: dict[tuple[str, str], list[float]] = {key: [] for key in drivers}
    missed = dict.fromkeys(drivers, 0)
    stored: list[float] = []
    try:
        wait_ready(drivers, element)
        time.sleep(REFRESH_S * 2)  # the polling pages settle into their rhythm
        pids = rig.pids()[SERVER]
        cpu_before, started = cpu_seconds(pids), time.monotonic()
        for _ in range(reps):
            for (_mode, page), driver in drivers.items():
                watch_for(driver, page, element, (read_value(driver, page, element) or 0) + bump)
            time.sleep(random.uniform(0, REFRESH_S))
            changed = rig.bump(LONG_LINE, machine, bump)
            deadline = time.monotonic() + 10
            seen: dict[tuple[str, str], float | None] = dict.fromkeys(drivers)
            while time.monotonic() < deadline and any(v is None for v in seen.values()):
                time.sleep(0.05)
                seen = {key: seen[key] or seen_at(driver) for key, driver in drivers.items()}
            for key, t in seen.items():
                if t is None:
                    missed[key] += 1
                else:
                    latency[key].append(t - changed["t"])
            at = stored_at(client, machine, int(changed["value"]))
            if at is not None:
                stored.append(at - changed["t"])
            time.sleep(0.3)
        cpu_share = (cpu_seconds(pids) - cpu_before) / (time.monotonic() - started)
    finally:
        for driver in drivers.values():
            driver.quit()
        client.close()
    return latency, missed, stored, cpu_share


def report(latency: dict[tuple[str, str], list[float]], missed: dict[tuple[str, str], int], stored: list[float],
           reps: int) -> None:
    say(f"  {'':34s}{'p50 ms':>9s}{'p95 ms':>9s}{'max ms':>9s}{'n':>5s}")
    say(f"  {'OPC UA server -> Redis':34s}{pct(stored, 50) * 1000:9.0f}{pct(stored, 95) * 1000:9.0f}"
        f"{max(stored, default=float('nan')) * 1000:9.0f}{len(stored):5d}")
    for page in PAGES:
        for mode in MODES:
            lat = latency[(mode, page)]
            gone = f"   ({missed[(mode, page)]} of {reps} not seen in 10 s)" if missed[(mode, page)] else ""
            say(f"  {f'OPC UA -> {page} DOM, {mode}':34s}{pct(lat, 50) * 1000:9.0f}{pct(lat, 95) * 1000:9.0f}"
                f"{max(lat, default=float('nan')) * 1000:9.0f}{len(lat):5d}{gone}")
    say("\n  pushed against polling (polling / pushed: how many times faster the push is)")
    for page in PAGES:
        pushed, polled = latency[("pushed", page)], latency[("polling", page)]
        for q in (50, 95):
            p, o = pct(pushed, q), pct(polled, q)
            verdict = f"  target p95 <= {TARGET_P95_S * 1000:.0f} ms: {'met' if p <= TARGET_P95_S else 'NOT met'}" \
                if q == 95 else ""
            say(f"  {page:5s} p{q}: pushed {p * 1000:6.0f} ms, polling {o * 1000:6.0f} ms, ratio {o / p:5.2f}x"
                f"{verdict}")


def run(args: argparse.Namespace) -> None:
    say(f"machine: {machine_info()}")
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp, \
            Rig(Path(tmp), hours=args.hours, seed=args.seed, workers=args.workers, threads=args.threads,
                log=say) as rig:
        say(f"\n{args.reps} jumps of {LONG_LINE}'s output machine's good counter (+{args.bump}) at the OPC UA "
            f"server, seen by the wall and the line page, pushed and polling every {REFRESH_S:g} s (4 Chromiums)")
        latency, missed, stored, cpu_share = measure(rig, args.reps, args.bump)
        report(latency, missed, stored, args.reps)
        say(f"\n  dashboard (gunicorn) CPU meanwhile: {cpu_share * 100:.0f} % of one core "
            "(2 pushed and 2 polling pages)")
    say(f"\nmachine after the run: {machine_info()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=2.0, help="history written before the run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker (gthread)")
    parser.add_argument("--reps", type=int, default=20, help="changes")
    parser.add_argument("--bump", type=int, default=8,
                        help="parts per change (at most the plausibility slack, 10: a bigger jump is not counted)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
