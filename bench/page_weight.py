"""Bytes a real browser moves for a dashboard page: the first load with an empty cache, and
each live update afterwards, as Chromium counts them (``Network.loadingFinished``
``encodedDataLength``: the response as received, headers included).

    python bench/page_weight.py --url http://127.0.0.1:8050     # against a running dashboard

``bench_dashboard.py`` calls ``measure_pages`` on its own rig. The baseline of the same run
is the same page loaded with ``Accept-Encoding: identity`` (what the server sent before it
compressed): the ratio is what compression saves on the wire.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "bench")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from dashboard_rig import chromium, machine_info  # noqa: E402

UPDATE_PATH = "/_dash-update-component"
ROUND_GAP_S = 0.8  # POSTs further apart than this belong to different live updates (the timer is 2 s)
READY_JS = {  # the page shows what it is for
    "wall": "return [...document.querySelectorAll('.wall-num-xl')].some(e => /\\d/.test(e.textContent));",
    "overview": "return [...document.querySelectorAll('.ov-card')].some(e => /\\d/.test(e.textContent));",
    "line": "return [...document.querySelectorAll('.js-plotly-plot')].filter(g => (g.data || []).length).length >= 3;",
    "machine": "return [...document.querySelectorAll('.js-plotly-plot')].some(g => (g.data || []).length);",
}


def page_urls(base: str, tz: str, line: str, machine: str) -> dict[str, str]:
    """The wall, the overview, the line page over the last 12 h (live) and a machine page."""
    start = (datetime.now(ZoneInfo(tz)) - timedelta(hours=12)).isoformat(timespec="minutes")
    return {"wall": f"{base}/wall", "overview": f"{base}/", "line": f"{base}/line/{line}?start={quote(start)}",
            "machine": f"{base}/line/{line}/machine/{machine}"}


@dataclass
class Load:
    total: int = 0
    requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass
class PageWeight:
    compressed: Load
    identity: Load
    live: list[int] = field(default_factory=list)  # bytes received per live update


def _events(driver: Any) -> list[dict[str, Any]]:
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            out.append(message)
    return out


def _requests(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per finished request: url, method, kind, started (s), bytes."""
    started: dict[str, dict[str, Any]] = {}
    done = []
    for event in events:
        params = event["params"]
        rid = params.get("requestId")
        if event["method"] == "Network.requestWillBeSent":
            started[rid] = {"url": params["request"]["url"], "method": params["request"]["method"],
                            "kind": params.get("type", "Other"), "started": params["timestamp"]}
        elif event["method"] == "Network.loadingFinished" and rid in started:
            done.append({**started[rid], "bytes": int(params["encodedDataLength"])})
    return done


def _kind(request: dict[str, Any]) -> str:
    path = urlsplit(request["url"]).path
    if "plotly" in path:
        return "plotly.js"
    if path == UPDATE_PATH:
        return "callbacks"
    return {"Script": "other JS", "Stylesheet": "CSS", "Font": "fonts", "Document": "HTML"}.get(request["kind"],
                                                                                             "other")


def wait_ready(driver: Any, ready_js: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not driver.execute_script(ready_js):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{driver.current_url}: not drawn in {timeout_s:g} s")
        time.sleep(0.2)


def first_load(driver: Any, url: str, ready_js: str, identity: bool = False, timeout_s: float = 90.0) -> Load:
    """Empty cache, load until drawn; ``identity``: ask the server not to compress."""
    headers = {"Accept-Encoding": "identity"} if identity else {}
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get("about:blank")
    driver.get_log("performance")
    driver.get(url)
    wait_ready(driver, ready_js, timeout_s)
    time.sleep(0.5)  # the responses being read when it drew
    load = Load()
    for request in _requests(_events(driver)):
        load.total += request["bytes"]
        load.requests += 1
        load.by_kind[_kind(request)] = load.by_kind.get(_kind(request), 0) + request["bytes"]
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    return load


def live_updates(driver: Any, seconds: float) -> list[int]:
    """Bytes received per live update of the open page over ``seconds`` (POSTs to
    ``_dash-update-component`` grouped by time: one tick's requests go out together)."""
    driver.get_log("performance")
    time.sleep(seconds)
    posts = sorted((r for r in _requests(_events(driver)) if urlsplit(r["url"]).path == UPDATE_PATH),
                   key=lambda r: r["started"])
    rounds: list[int] = []
    last = None
    for post in posts:
        if last is None or post["started"] - last > ROUND_GAP_S:
            rounds.append(0)
        rounds[-1] += post["bytes"]
        last = post["started"]
    return rounds[1:-1] if len(rounds) > 2 else rounds  # the edges may be cut


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))])


def measure_pages(urls: dict[str, str], live_seconds: float = 60.0, live_pages: tuple[str, ...] = ("line",)
                  ) -> dict[str, PageWeight]:
    driver = chromium(performance_log=True)
    try:
        out = {}
        for kind, url in urls.items():
            identity = first_load(driver, url, READY_JS[kind], identity=True)
            compressed = first_load(driver, url, READY_JS[kind])
            weight = PageWeight(compressed, identity)
            if kind in live_pages:
                weight.live = live_updates(driver, live_seconds)
            out[kind] = weight
        return out
    finally:
        driver.quit()


def report(weights: dict[str, PageWeight], say: Any = print) -> None:
    targets = {"wall": 600_000, "line": 1_500_000}
    say(f"  {'page':9s}{'first load':>12s}{'requests':>9s}{'uncompressed':>14s}{'ratio':>7s}   by kind (KB)")
    for kind, w in weights.items():
        kinds = sorted(w.compressed.by_kind.items(), key=lambda kv: -kv[1])
        parts = ", ".join(f"{k} {v / 1000:,.0f}" for k, v in kinds)
        target = f"   (target <= {targets[kind] / 1e6:g} MB)" if kind in targets else ""
        say(f"  {kind:9s}{w.compressed.total / 1e6:9.2f} MB{w.compressed.requests:9d}{w.identity.total / 1e6:11.2f} MB"
            f"{w.compressed.total / max(1, w.identity.total):7.2f}   {parts}{target}")
    for kind, w in weights.items():
        if w.live:
            say(f"  live updates of the {kind} page as Chromium received them: {len(w.live)} updates, "
                f"p50 {pct(w.live, 50) / 1000:.1f} KB, p95 {pct(w.live, 95) / 1000:.1f} KB, "
                f"max {max(w.live) / 1000:.1f} KB (target p95 <= 20 KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8050", help="a running dashboard")
    parser.add_argument("--line", default="BW1")
    parser.add_argument("--machine", default="ST30")
    parser.add_argument("--tz", default="Asia/Shanghai", help="the plant's time zone (the line page's range)")
    parser.add_argument("--live-seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(f"machine: {machine_info()}", flush=True)
    report(measure_pages(page_urls(args.url.rstrip("/"), args.tz, args.line, args.machine), args.live_seconds))
    print(f"machine after the run: {machine_info()}", flush=True)


if __name__ == "__main__":
    main()
