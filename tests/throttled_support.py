"""A slow tablet for the browser tests: Chromium's CPU throttled 4x (DevTools
``Emulation.setCPUThrottlingRate``) and 150 ms added to every request
(``Network.emulateNetworkConditions``), and the check that a line page drew every panel
with the HTTP API's numbers for the same range."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from components import panel_data, theme
from tests.browser_support import CHROMIUM
from tests.test_browser import ALL_SIZES, Server, api, figure, texts, wait_for
from tests.test_components import PLANT

CPU_SLOWDOWN = 4
LATENCY_MS = 150
SLOW = 90.0  # seconds a throttled page may take to show a figure (a loaded machine starves a throttled renderer)
# a test of throttled page draws may take this long: its pages one after the other, each up to SLOW
THROTTLED_TEST_TIMEOUT_S = 6 * SLOW
# a throttled test module's marks (its ``pytestmark``)
MARKS = [
    pytest.mark.browser,
    pytest.mark.timeout(THROTTLED_TEST_TIMEOUT_S),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium (CI installs it)"),
]


# --- a slow tablet: throttled CPU, network latency; every panel drawn on every load -----

@pytest.fixture
def slow(browser: Any) -> Iterator[Any]:
    """The browser as a slow tablet on a busy network, for one test."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": False, "latency": LATENCY_MS, "downloadThroughput": -1, "uploadThroughput": -1})
    browser.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    try:
        yield browser
    finally:
        browser.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": 1})
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def check_line_page(driver: Any, server: Server, line: str, query: str, timeout: float = SLOW) -> dict[str, Any]:
    """Every panel of the line page drawn, with the API's numbers for the same range."""
    from components import downtime_charts, energy_panel, oee_panel, stops_list

    kpis = api(server, f"/api/lines/{line}/kpis?{query}")
    stops = api(server, f"/api/lines/{line}/downtime?{query}")
    energy = api(server, f"/api/lines/{line}/energy?{query}")
    machines = [m.id for m in PLANT.line(line).machines]  # type: ignore[union-attr]
    want_tiles = [theme.pct(kpis[k]) for k in ("oee", "availability", "performance", "quality")]
    wait_for(lambda: texts(driver, "#oee-tiles .kpi-value")[:4] == want_tiles, timeout,
             what=f"OEE tiles {want_tiles} for {query}")
    want_steps = [round(s[1], 3) for s in oee_panel.waterfall_steps(kpis)]
    wait_for(lambda: (figure(driver, "oee-waterfall") or [{}])[0].get("y") == want_steps, timeout,
             what=f"waterfall {want_steps}")
    hourly = wait_for(lambda: figure(driver, "oee-hourly"), timeout, what="hourly chart")
    assert hourly[0]["type"] == "bar" and any(y is not None for y in hourly[0]["y"]), hourly
    summary = stops["summary"]
    wait_for(lambda: texts(driver, "#dt-summary .kpi-value")[:1] == [theme.count(summary["stops"])], timeout,
             what=f"{summary['stops']} unplanned stops")
    series = downtime_charts.pareto_series(panel_data.pareto_rows(stops, "duration"), "duration")
    wait_for(lambda: (figure(driver, "dt-pareto-duration") or [{}])[0].get("x") == series["labels"], timeout,
             what=f"Pareto bars {series['labels']}")
    assert figure(driver, "dt-pareto-duration")[0]["y"] == series["values"]  # type: ignore[index]
    timeline = wait_for(lambda: figure(driver, "dt-timeline"), timeout, what="timeline")
    assert {y for t in timeline for y in t["y"]} == set(machines)
    rows = min(len(panel_data.downtime_events(stops)), stops_list.MAX_ROWS)
    wait_for(lambda: len(driver.find_elements("css selector", "#dt-stops tbody tr")) == rows, timeout,
             what=f"{rows} stops listed")
    want_kwh = theme.number(energy["kwh"], 0, "kWh")
    wait_for(lambda: texts(driver, "#en-tiles .kpi-value")[:1] == [want_kwh], timeout, what=f"energy {want_kwh}")
    power = wait_for(lambda: figure(driver, "en-power"), timeout, what="kW chart")
    assert [t["name"] for t in power] == machines
    assert energy_panel.MAX_POINTS >= max(len(t["x"]) for t in power) > 0
    per_good = wait_for(lambda: figure(driver, "en-per-good"), timeout, what="kWh per part chart")
    assert per_good[0]["type"] == "bar"
    return {"kpis": kpis, "downtime": stops, "energy": energy}


def local_iso(ts: float) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ts, ZoneInfo(PLANT.timezone)).strftime("%Y-%m-%dT%H:%M")


LOADS = [(size, i) for i, size in enumerate(ALL_SIZES)]  # each page three times, once at each size


RANGES = {
    "shift": "start=shift",
    "yesterday": "start=yesterday",
    "last_shift": "start=last_shift",
}


def ranges_of(query: str) -> dict[str, str]:
    from urllib.parse import parse_qs

    return {k: v[-1] for k, v in parse_qs(query).items() if k in ("start", "end")}
