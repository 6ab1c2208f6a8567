"""30 screens on one dashboard server, pushed (server-sent events) against the old 2 s
polling, in one run: server CPU and time per update.

    python bench/bench_clients.py [--clients 30] [--mix wall=10,overview=5,line=15] [--load-seconds 60]
                                  [--ranges shift,today] [--server-cmd "CMD ... {port} ..."] [--browsers 6]

Everything runs for real, each part its own process (``dashboard_rig``): redis-server, the
demo plant (BW1 with 8 machines) with ``--hours`` of history and its live OPC UA
simulator, the collector, the rollup worker and the dashboard server
(``dashboard_rig.server_command``: uvicorn workers, as in production; ``--server-cmd``
replaces it, ``{port}`` filled in).

0. Capture: each page (the wall, the overview, and a line page per line of the plant and
   per ``--ranges`` range, all reaching now) is opened in headless Chromium with its
   ``EventSource`` taken away, so ``push.js`` falls back to the page's 2 s Interval, and
   the ``_dash-update-component`` POSTs of one Interval tick are captured
   (``dash_traffic.capture``; the line page's range label left out: a tick asks for it
   only once a minute), with the lines the page's push hook follows. A pushed
   change advances that same Interval, so these are the POSTs of an update either way.
1. Polling, the old way: the server restarted with ``LIVE_PUSH=0`` (no live feed, so no
   per-version memo), ``--clients`` replayed screens (``dash_traffic.Page``: ``n_intervals``
   counted up, outputs fed back as dash-renderer does) each refreshing every 2 s from a
   random phase, open loop as a browser's timer. Per update: the tick to the last answer.
2. Pushed: the server restarted with push on; the same clients each open
   ``GET /api/live/events`` for their page's lines and, as ``push.js`` does, replay the
   page's refresh on every ``change`` event: at most one refresh in flight per client, at
   most one every 50 ms (``client_streams.MIN_GAP_S``), changes meanwhile folded into
   the next one. Per update: the first ``change`` event not yet shown to the last answer
   of the refresh that shows it
   (and the refresh alone: its POSTs sent to the last answer).
3. With ``--browsers N``: N real headless Chromiums on push (wall, overview and line
   pages in turn), beside the replayed clients' figures: change event to the last answer
   as the page's own ``fetch`` saw it, updates per page.

Both phases measure ``--load-seconds`` after ``--warmup-seconds``: per update p50/p95, the
updates per client, the CPU of the dashboard server's processes (% of one core), of Redis
and the others, and the load average. Figures are printed, not asserted. Target (issue
10): p95 <= 100 ms per update and <= 50 % of one core for the dashboard.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import random
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_dashboard import TICKS, parse_mix, pct, say, scaled_mix, short  # noqa: E402
from client_streams import Clients, Update, browsers_on_push  # noqa: E402
from dash_traffic import Page, Pool, callback_name, capture  # noqa: E402
from dashboard_rig import (  # noqa: E402
    SERVER,
    Rig,
    chromium,
    cpu_seconds,
    machine_info,
    server_command,
    system_busy_seconds,
)

NO_PUSH = "window.EventSource = undefined;"  # push.js then polls with the page's 2 s Interval
# the line page's range label: a tick asks for it once a minute (its own quiet period), so an
# update is the panels' POSTs without it
OCCASIONAL = frozenset({"range-label.children"})
TARGET_P95_S = 0.100
TARGET_CPU = 0.50  # of one core, the dashboard server
OTHERS = "not this benchmark"  # the machine's other work over the window (it decides what the server gets)


@dataclass
class Screen:
    """A page to replay: its kind, its URL, the lines its push hook follows, its refresh."""

    kind: str
    url: str
    lines: list[str]
    bodies: list[dict[str, Any]]


def screens_of(rig: Rig, ranges: list[str], driver: Any) -> dict[str, list[Screen]]:
    """Every page captured once: the wall, the overview, each line page on each range."""
    assert rig.plant is not None
    urls = {"wall": [f"{rig.url}/wall"], "overview": [f"{rig.url}/"],
            "line": [f"{rig.url}/line/{line.id}?start={r}" for r in ranges for line in rig.plant.lines]}
    out: dict[str, list[Screen]] = defaultdict(list)
    for kind, pages in urls.items():
        for url in pages:
            got = capture(driver, url, TICKS[kind], timeout_s=90, occasional=OCCASIONAL)
            lines = driver.execute_script(  # the hook of the page's own tick (the alerts have theirs)
                "var el = document.querySelector('.live-push[data-tick=\"' + arguments[0] + '\"]');"
                " return el ? el.dataset.lines : null;", TICKS[kind])
            if not lines:
                raise RuntimeError(f"{url}: no push hook on the page")
            out[kind].append(Screen(kind, url.removeprefix(rig.url), lines.split(","),
                                    [r.json_body() for r in got.tick]))
            names = ", ".join(sorted(short(callback_name(r.json_body())) for r in got.tick))
            gap = "" if got.complete else " (INCOMPLETE: a panel did not draw in 90 s)"
            say(f"  {url.removeprefix(rig.url):26s} push for {lines:12s} {len(got.tick)} POSTs per update: "
                f"{names}{gap}")
    return out


def clients_of(screens: dict[str, list[Screen]], mix: dict[str, int]) -> list[Screen]:
    """``mix`` screens per kind, taking the captured pages of a kind in turn (the line pages
    spread over the lines and ranges)."""
    return [screens[kind][i % len(screens[kind])] for kind, n in mix.items() for i in range(n)]


# --- one phase ---------------------------------------------------------------------------------

@dataclass
class Phase:
    name: str
    seconds: float
    updates: list[Update] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per part over the window
    clients: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""
    events: int = 0  # change events the clients received (push)
    down: int = 0  # status "down" events (push)

    def of(self, kind: str | None = None) -> list[Update]:
        return [u for u in self.updates if kind is None or u.kind == kind]

    def share(self, part: str) -> float:
        return self.cpu.get(part, 0.0) / self.seconds


def run_phase(rig: Rig, name: str, screens: list[Screen], push: bool, args: argparse.Namespace) -> Phase:
    url = rig.restart_server({} if push else {"LIVE_PUSH": "0"})
    pages = [Page(s.kind, TICKS[s.kind], copy.deepcopy(s.bodies), Pool(url)) for s in screens]
    clients = Clients(url, pages, [s.lines for s in screens], push=push, refresh_s=2.0)
    phase = Phase(name, args.load_seconds)
    for s in screens:
        phase.clients[s.kind] = phase.clients.get(s.kind, 0) + 1
    pids = rig.pids()
    marks: dict[str, Any] = {}

    def window_opens() -> None:
        marks["cpu"] = {part: cpu_seconds(p) for part, p in pids.items()}
        marks["me"] = time.process_time()
        marks["busy"] = system_busy_seconds()
        phase.load_before = Path("/proc/loadavg").read_text().split()[0]

    def window_closes() -> None:
        cpu = {part: cpu_seconds(p) - marks["cpu"][part] for part, p in pids.items()}
        cpu["load generator"] = time.process_time() - marks["me"]
        cpu[OTHERS] = max(0.0, system_busy_seconds() - marks["busy"] - sum(cpu.values()))
        phase.cpu = cpu
        phase.load_after = Path("/proc/loadavg").read_text().split()[0]

    result = asyncio.run(clients.run(args.warmup_seconds, args.load_seconds, window_opens, window_closes))
    phase.updates, phase.errors, phase.events, phase.down = result.updates, result.errors, result.events, result.down
    return phase


# --- report ------------------------------------------------------------------------------------

def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.0f}"


def report_phase(phase: Phase, push: bool) -> None:
    say(f"  {'page':9s}{'clients':>8s}{'updates':>8s}{'/client/min':>12s}{'p50 ms':>8s}{'p95 ms':>8s}{'max ms':>8s}"
        + (f"{'refresh p50':>12s}{'p95':>6s}" if push else ""))
    for kind in [*phase.clients, None]:
        ups = phase.of(kind)
        n = phase.clients[kind] if kind else sum(phase.clients.values())
        lat = [u.latency for u in ups]
        rate = len(ups) / n / phase.seconds * 60 if n else 0.0
        row = (f"  {kind or 'all':9s}{n:8d}{len(ups):8d}{rate:12.1f}{ms(pct(lat, 50))}{ms(pct(lat, 95))}"
               f"{ms(max(lat, default=float('nan')))}")
        if push:
            served = [u.served for u in ups]
            row += f"{ms(pct(served, 50)):>12s}{pct(served, 95) * 1000:6.0f}"
        say(row)
    per = [len([u for u in phase.updates if u.client == c]) for c in range(sum(phase.clients.values()))]
    say(f"  updates per client over {phase.seconds:g} s: min {min(per, default=0)}, max {max(per, default=0)}"
        + (f"; {phase.events} change events received, {phase.down} 'feed down' statuses" if push else ""))
    if phase.errors:
        say(f"  errors: {len(phase.errors)} (first: {phase.errors[0]})")
    say("  CPU over the window, % of one core: " + ", ".join(
        f"{part} {phase.share(part) * 100:.0f}" for part in phase.cpu)
        + f"; load average {phase.load_before} -> {phase.load_after}")


def ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b else "  n/a"


def report_summary(poll: Phase, push: Phase) -> None:
    say("\nsummary: polling every 2 s (old) against pushed, same clients, same run")
    p_lat, q_lat = [u.latency for u in poll.updates], [u.latency for u in push.updates]
    rows = [
        ("update p50 (ms)", pct(p_lat, 50) * 1000, pct(q_lat, 50) * 1000),
        ("update p95 (ms)", pct(p_lat, 95) * 1000, pct(q_lat, 95) * 1000),
        ("dashboard CPU (% of one core)", poll.share(SERVER) * 100, push.share(SERVER) * 100),
        ("Redis CPU (% of one core)", poll.share("redis") * 100, push.share("redis") * 100),
        ("other work on the machine (% of one core)", poll.share(OTHERS) * 100, push.share(OTHERS) * 100),
        ("updates per client per minute", len(poll.updates) / max(1, sum(poll.clients.values())) / poll.seconds * 60,
         len(push.updates) / max(1, sum(push.clients.values())) / push.seconds * 60),
    ]
    cpu_per = [poll.cpu.get(SERVER, 0) / max(1, len(poll.updates)) * 1000,
               push.cpu.get(SERVER, 0) / max(1, len(push.updates)) * 1000]
    rows.append(("dashboard CPU per update (ms)", cpu_per[0], cpu_per[1]))
    say(f"  {'':42s}{'polling':>10s}{'pushed':>10s}{'polling/pushed':>16s}")
    for what, a, b in rows:
        say(f"  {what:42s}{a:10.1f}{b:10.1f}{ratio(a, b):>16s}")
    p95 = pct(q_lat, 95)
    met = "met" if p95 <= TARGET_P95_S else "NOT met"
    say(f"  target, pushed: p95 <= {TARGET_P95_S * 1000:.0f} ms per update: {met} ({p95 * 1000:.0f} ms); "
        f"dashboard <= {TARGET_CPU * 100:.0f} % of one core: "
        f"{'met' if push.share(SERVER) <= TARGET_CPU else 'NOT met'} ({push.share(SERVER) * 100:.0f} %)")


# --- main --------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> None:
    say(f"machine: {machine_info()}")
    command = shlex.split(args.server_cmd) if args.server_cmd else server_command(args.workers, args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-clients-") as tmp, \
            Rig(Path(tmp), hours=args.hours, seed=args.seed, server_cmd=command, log=say) as rig:
        say("\n0. the POSTs of one update per page, captured in Chromium (push taken away: the 2 s Interval)")
        driver = chromium(performance_log=True)
        try:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": NO_PUSH})
            screens = screens_of(rig, [r for r in args.ranges.split(",") if r], driver)
        finally:
            driver.quit()
        mix = scaled_mix(parse_mix(args.mix), args.clients)
        chosen = clients_of(screens, mix)
        random.seed(args.seed)
        what = (f"{args.clients} clients ({', '.join(f'{n} {k}' for k, n in mix.items())}), "
                f"{args.warmup_seconds:g} s warm-up, {args.load_seconds:g} s measured, server {rig.server_text()}")
        say(f"\n1. polling every 2 s, the old way (LIVE_PUSH=0): {what}; per update: tick -> last answer")
        poll = run_phase(rig, "polling", chosen, False, args)
        report_phase(poll, push=False)
        say(f"\n2. pushed (server-sent events, as push.js): {what}; per update: first change event not yet shown "
            "-> last answer (refresh: its POSTs sent -> last answer)")
        push = run_phase(rig, "pushed", chosen, True, args)
        report_phase(push, push=True)
        report_summary(poll, push)
        if args.browsers:
            say(f"\n3. cross-check: {args.browsers} headless Chromiums on push for {args.load_seconds:g} s "
                "(change event -> last answer as the page's fetch saw it)")
            pages = [s.url for kind in ("wall", "overview", "line") for s in screens[kind][:1]]
            pages += [s.url for s in screens["line"][1:]]
            chosen_urls = [rig.url + pages[i % len(pages)] for i in range(args.browsers)]
            pids = rig.pids()[SERVER]
            cpu0, t0 = cpu_seconds(pids), time.monotonic()
            seen = browsers_on_push(chromium, chosen_urls, args.load_seconds, args.warmup_seconds)
            share = (cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)
            for url, lat in seen:
                say(f"  {url.removeprefix(rig.url):28s} updates {len(lat):4d} ({len(lat) / args.load_seconds * 60:5.1f}"
                    f"/min), p50 {pct(lat, 50) * 1000:6.0f} ms, p95 {pct(lat, 95) * 1000:6.0f} ms")
            every = [x for _, lat in seen for x in lat]
            say(f"  all {len(every)} updates: p50 {pct(every, 50) * 1000:.0f} ms, p95 {pct(every, 95) * 1000:.0f} ms; "
                f"dashboard CPU {share * 100:.0f} % of one core (Chromiums loading included)")
    say(f"\nmachine after the run: {machine_info()}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=3.0, help="history written before the run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default server command)")
    parser.add_argument("--threads", type=int, default=32,
                        help="not used under uvicorn (an open screen holds a connection, not a thread)")
    parser.add_argument("--server-cmd", default=os.environ.get("BENCH_SERVER_CMD", ""),
                        help="the dashboard server's command instead ({port} filled in; a bare program name is "
                             "looked up beside this Python first), e.g. "
                             "\"uvicorn --factory app:create_server --workers 4 --port {port}\"")
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--mix", default="wall=10,overview=5,line=15", help="relative shares of the pages")
    parser.add_argument("--ranges", default="shift,today", help="the line pages' live ranges (?start=)")
    parser.add_argument("--warmup-seconds", type=float, default=10.0)
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--browsers", type=int, default=0, help="real Chromiums on push afterwards (e.g. 6)")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
