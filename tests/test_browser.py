"""What users see, in headless Chromium: the wall screen, the overview, a line page and a
machine page at 1920x1080 and 1024x768; the numbers and figures shown equal the HTTP API's
(``/api`` on the same server, both over one PlantReader on a real Redis seeded through the
stream contract and the rollup worker); no errors in the browser console; a bad range says
what the API says; any query string leaves a page standing.

This module also holds what the other browser modules share: the server fixture
(``dashboard``: the app on uvicorn, its clock pinned to the end of the seeded data), the
seeding, and the page helpers. The same pages as a slow tablet sees them are in
``test_browser_throttled.py`` and ``test_browser_engineer.py``, outages in
``test_browser_outages.py``: separate modules, so pytest-xdist runs them side by side.
The seeded history ends at 02:00 plant time, so "yesterday", "last shift", "this shift"
and a custom range across midnight all hold data.

Screenshots land in $SCREENSHOT_DIR (default ./screenshots); the run's summary names
the folder. Skipped only where /usr/bin/chromium is missing (CI installs it).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.context import config_of
from components import data, theme, wall
from config.loader import DEMO_PLANT
from config.settings import Settings
from tests.browser_support import CHROMEDRIVER, CHROMIUM, check_fits, screenshot_dir  # noqa: F401 - imported from here by other tests
from tests.support import AppServer
from tests.test_components import PLANT

ROOT = Path(__file__).resolve().parent.parent
SIZES = [(1920, 1080), (1024, 768)]
ALL_SIZES = [(1920, 1080), (1024, 768), (768, 1024)]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium (CI installs it)"),
]


# --- the server ------------------------------------------------------------------------

class SwitchableReader:
    """The reader, with a switch that makes every call fail like a Redis outage."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                import redis

                raise redis.ConnectionError("Redis is down (test)")
            return target(*args, **kwargs)

        return call


Server = AppServer  # the Dash app under uvicorn in a thread; stopped and started again on the same port


@pytest.fixture(scope="module")
def dashboard(redis_url: str) -> Iterator[dict[str, Any]]:
    """The app as ``app.py`` builds it (dashboard + /api on one server), clock pinned to
    the end of the seeded data."""
    from api import create_api_router
    from components.app_factory import create_app

    inner, now = seed_plant(redis_url, PLANT, end=history_end(PLANT.timezone))
    reader = SwitchableReader(inner)
    settings = Settings(plant_path=DEMO_PLANT, plant=PLANT, redis_url=redis_url)
    app = create_app(settings, lambda: reader, clock=lambda: now)
    app.server.include_router(create_api_router(config_of(app.server)[data.READER_KEY], clock=lambda: now))
    server = Server(app)
    server.start()
    yield {"server": server, "reader": reader, "now": now, "app": app}
    server.stop()


@pytest.fixture(scope="module")
def shots() -> Path:
    """The screenshots' folder (the run's summary counts them: tests/conftest.py)."""
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(driver: Any, url: str, size: tuple[int, int]) -> None:
    width, height = size
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    driver.get_log("browser")  # start from a clean console
    driver.get(url)


def wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the element may not be there yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def text_of(driver: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, selector).text).strip()


def line_box(kind: str, line: str) -> str:
    """CSS selector of a line's tile or card (``{"type": kind, "line": id}``, as Dash writes it)."""
    import json

    ident = json.dumps({"line": line, "type": kind}, separators=(",", ":"), sort_keys=True)
    return f'[id="{ident.replace(chr(34), chr(92) + chr(34))}"]'


def field(kind: str, line: str, name: str) -> str:
    """CSS selector of a pattern-matching id (Dash serialises dict ids as sorted JSON)."""
    import json

    ident = json.dumps({"field": name, "line": line, "type": kind}, separators=(",", ":"), sort_keys=True)
    return f'[id="{ident.replace(chr(34), chr(92) + chr(34))}"]'


def console_errors(driver: Any, allow: tuple[str, ...] = ()) -> list[str]:
    entries = driver.get_log("browser")
    return [e["message"] for e in entries if e["level"] == "SEVERE" and not any(a in e["message"] for a in allow)]


def screenshot(driver: Any, folder: Path, name: str, full_page: bool = False) -> Path:
    path = folder / f"{name}.png"
    if full_page:
        width = driver.execute_script("return window.innerWidth")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": min(int(height), 6000), "deviceScaleFactor": 1,
                                "mobile": False})
        time.sleep(0.8)
    assert driver.save_screenshot(str(path)), path
    return path


def pace_text(pace: int | None) -> str:
    """The screens' words for /api/lines' ``pace`` (English)."""
    if pace is None:
        return theme.DASH
    return "on target" if pace == 0 else f"{theme.signed_count(pace)} {'ahead' if pace > 0 else 'behind'}"


def api(server: Server, path: str) -> dict[str, Any]:
    """GET an /api path of the running server (what a third party would see)."""
    import json
    import urllib.request

    with urllib.request.urlopen(server.url + path, timeout=10) as resp:  # noqa: S310 - loopback only
        assert resp.status == 200
        return json.loads(resp.read())  # type: ignore[no-any-return]


# --- the pages -------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_wall_shows_the_readers_numbers(dashboard: dict[str, Any], browser: Any, shots: Path,
                                        size: tuple[int, int]) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, dashboard["server"].url + "/wall", size)
    served = {line["id"]: line for line in api(dashboard["server"], "/api/lines")["lines"]}
    for line in PLANT.lines:
        kpis = api(dashboard["server"], f"/api/lines/{line.id}/kpis?start=shift")
        want = theme.pct_number(kpis["oee"])
        selector = field("wall-field", line.id, "oee")
        wait_for(lambda sel=selector, w=want: text_of(browser, sel) == w, what=f"{line.id} OEE {want}")
        availability = f"{theme.pct_number(kpis['availability'])}{theme.THIN_SPACE}%"
        assert text_of(browser, field("wall-field", line.id, "a")) == availability
        assert text_of(browser, field("wall-field", line.id, "output")) == theme.count(kpis["good_count"])
        assert text_of(browser, field("wall-field", line.id, "status")) not in ("", "\u2026")
        # status and pace: exactly what /api/lines serves (domain.andon)
        andon = served[line.id]
        tile = browser.find_element(By.CSS_SELECTOR, line_box("wall-tile", line.id))
        assert f"andon-{andon['status']}" in str(tile.get_attribute("class")).split()
        assert text_of(browser, field("wall-field", line.id, "output")) == theme.count(andon["output"])
        assert text_of(browser, field("wall-field", line.id, "target")) == theme.count(andon["target_so_far"])
        assert text_of(browser, field("wall-field", line.id, "pace")) == pace_text(andon["pace"])
        untagged = api(dashboard["server"], f"/api/lines/{line.id}/downtime?start=shift")["summary"]["untagged_stops"]
        selector = field("wall-field", line.id, "untagged")  # the queue's count, readable across the hall
        pill = wall.untagged_text(untagged)
        wait_for(lambda sel=selector, w=pill: text_of(browser, sel) == w,
                 what=f"{line.id} untagged {untagged}")
    check_fits(browser, size, ".wall-tile", full_screen=True)  # nothing cut off, 1024x768 too
    path = screenshot(browser, shots, f"wall_{size[0]}x{size[1]}")
    assert path.stat().st_size > 10_000
    assert console_errors(browser) == []


def test_wall_single_line_and_rotation(dashboard: dict[str, Any], browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, dashboard["server"].url + "/wall/BW1", (1920, 1080))
    wait_for(lambda: text_of(browser, field("wall-field", "BW1", "oee")) != theme.DASH, what="BW1 filled")
    screenshot(browser, shots, "wall_BW1_1920x1080")

    open_page(browser, dashboard["server"].url + "/wall?rotate=2", (1920, 1080))

    def visible() -> list[str]:
        tiles = browser.find_elements(By.CSS_SELECTOR, ".wall-tile")
        return [t.get_attribute("id") for t in tiles if t.is_displayed()]

    first = wait_for(lambda: visible() if len(visible()) == 1 else None, what="one tile shown")
    wait_for(lambda: visible() != first and len(visible()) == 1, timeout=8, what="rotation to the next line")
    screenshot(browser, shots, "wall_rotate_1920x1080")
    assert console_errors(browser) == []




@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview_cards_and_tap_opens_the_line(dashboard: dict[str, Any], browser: Any, shots: Path,
                                               size: tuple[int, int]) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, dashboard["server"].url + "/", size)
    served = {line["id"]: line for line in api(dashboard["server"], "/api/lines")["lines"]}
    for line in PLANT.lines:
        want = theme.pct(api(dashboard["server"], f"/api/lines/{line.id}/kpis?start=shift")["oee"])
        selector = field("ov-field", line.id, "oee")
        wait_for(lambda sel=selector, w=want: text_of(browser, sel) == w, what=f"{line.id} card OEE {want}")
        andon = served[line.id]  # status and pace: exactly what /api/lines serves
        card = browser.find_element(By.CSS_SELECTOR, line_box("ov-card", line.id))
        assert f"andon-{andon['status']}" in str(card.get_attribute("class")).split()
        assert text_of(browser, field("ov-field", line.id, "target")) == theme.count(andon["target_so_far"])
        assert text_of(browser, field("ov-field", line.id, "pace")) == f"({pace_text(andon['pace'])})"
    screenshot(browser, shots, f"overview_{size[0]}x{size[1]}")
    assert console_errors(browser) == []
    browser.find_element(By.CSS_SELECTOR, "a.ov-link[href='/line/CM1']").click()
    wait_for(lambda: browser.current_url.endswith("/line/CM1"), what="the line page")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#oee-tiles .kpi-value"), what="line page tiles")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_line_page_numbers_range_in_url(dashboard: dict[str, Any], browser: Any, shots: Path,
                                        size: tuple[int, int]) -> None:
    from selenium.webdriver.common.by import By

    server = dashboard["server"]
    open_page(browser, server.url + "/line/BW1", size)
    kpis = api(server, "/api/lines/BW1/kpis")  # default: this shift

    def tile_values() -> list[str]:
        return texts(browser, "#oee-tiles .kpi-value")

    wait_for(lambda: tile_values()[:4] == [theme.pct(kpis[k]) for k in ("oee", "availability", "performance",
                                                                        "quality")],
             what="OEE tiles equal to the reader's")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#dt-timeline .main-svg"), what="timeline drawn")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#en-power .scatterlayer .trace"), what="power drawn")
    assert "Micro-stop threshold 2 min" in text_of(browser, "#oee-threshold")
    screenshot(browser, shots, f"line_BW1_{size[0]}x{size[1]}", full_page=True)
    assert console_errors(browser) == []

    open_page(browser, server.url + "/line/BW1", size)
    wait_for(lambda: tile_values(), what="tiles")
    label = next(e for e in browser.find_elements(By.CSS_SELECTOR, "#range-choice label") if e.text == "7 days")
    label.click()
    wait_for(lambda: "start=7d" in browser.current_url, what="range in the URL")
    want = theme.pct(api(server, "/api/lines/BW1/kpis?start=7d")["oee"])
    wait_for(lambda: tile_values()[0] == want, what=f"7-day OEE {want}")
    assert console_errors(browser) == []


def test_bookmarked_view_and_machine_page(dashboard: dict[str, Any], browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    server = dashboard["server"]
    open_page(browser, server.url + "/line/BW1/machine/ST30?start=today", (1024, 768))
    want = theme.pct(api(server, "/api/lines/BW1/machines/ST30/kpis?start=today")["oee"])
    wait_for(lambda: texts(browser, "#mc-tiles .kpi-value")[:1] == [want],
             what=f"machine OEE {want}")
    active = browser.find_element(By.CSS_SELECTOR, "#range-choice label.active").text
    assert active == "Today"
    wait_for(lambda: text_of(browser, "#mc-live"), what="live card")
    screenshot(browser, shots, "machine_BW1_ST30_1024x768", full_page=True)
    assert console_errors(browser) == []
    crumbs = browser.find_element(By.CSS_SELECTOR, ".crumbs a[href^='/line/BW1?']").get_attribute("href")
    assert re.search(r"start=today", crumbs)




def figure(driver: Any, graph_id: str) -> list[dict[str, Any]] | None:
    """The traces Plotly drew in a ``dcc.Graph`` (None until it has drawn)."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "var g = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');"
        "if (!g || !g.data) { return null; }"
        "return g.data.map(function (t) { return {type: t.type, name: t.name || null,"
        " x: Array.from(t.x || []), y: Array.from(t.y || [])}; });", graph_id)


def texts(driver: Any, selector: str) -> list[str]:
    """Read in one script: live updates replace elements between two WebDriver calls."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText.trim())", selector)


def no_console_errors(driver: Any) -> None:
    errors = console_errors(driver)
    assert not [e for e in errors if "Cannot patch" in e], errors
    assert errors == []


TOUCH = (".app-nav a, .range-bar label.btn, .range-bar .btn, .machine-chips a, .panel .btn, .stops-table a, "
         ".crumbs a, a.ov-link")


def small_touch_targets(driver: Any) -> list[str]:
    """Visible links and buttons a thumb would miss (under 44 x 44 px)."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "return Array.from(document.querySelectorAll(arguments[0])).filter(function (e) {"
        " var r = e.getBoundingClientRect(); return r.width > 0 && (r.height < 44 || r.width < 44); })"
        ".map(function (e) { var r = e.getBoundingClientRect();"
        " return e.textContent.trim().slice(0, 20) + ' ' + Math.round(r.width) + 'x' + Math.round(r.height); })",
        TOUCH)




@pytest.mark.parametrize(("url", "message"), [
    ("/line/BW1?start=garbage", "start: not an ISO 8601 time with offset: 'garbage'"),
    ("/line/BW1/machine/ST10?start=garbage", "start: not an ISO 8601 time with offset: 'garbage'"),
])
def test_a_bad_range_says_what_the_api_says(dashboard: dict[str, Any], browser: Any, url: str,
                                            message: str) -> None:
    import json
    import urllib.error
    import urllib.request

    server = dashboard["server"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.url + "/api/lines/BW1/kpis?start=garbage", timeout=10)  # noqa: S310
    assert json.loads(refused.value.read())["error"] == message
    open_page(browser, server.url + url, (1024, 768))
    wait_for(lambda: text_of(browser, "#range-label") == f"Bad range: {message}", what="the API's message")
    no_console_errors(browser)


@pytest.mark.parametrize("path", ["/wall/BW1?line=BW1", "/wall?plant=x", "/line/BW1?line=CM1&x=1", "/?start=7d"])
def test_the_router_survives_any_query_string(dashboard: dict[str, Any], browser: Any, path: str) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, dashboard["server"].url + path, (1024, 768))
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".wall-tile, .ov-card, #oee-tiles .kpi-value"),
             what=f"{path} shows its page")
    no_console_errors(browser)


# --- seeding a real Redis through the stream contract and the rollup worker --------------

def history_end(tz: str, hour: int = 2) -> float:
    """The last ``hour``:00 plant local time before now: a history ending then spans midnight."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo(tz))
    end = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    return (end - timedelta(days=1) if end > local else end).timestamp()


def seed_plant(redis_url: str, plant: Any, hours: float = 4.0, end: float | None = None) -> tuple[Any, float]:
    """Events for the ``hours`` before ``end`` (default now) written the way collectors
    write them (stream and live hash, ``domain.contract``), rolled up by the real worker;
    returns a real PlantReader and the time the data ends. Every machine reports every
    10 s (a heartbeat), stops now and then with a reason, and one machine per line is
    down at the end."""
    import random

    import redis as redis_lib

    from domain import contract
    from domain.model import Event, Signal
    from store.reader import PlantReader
    from store.rollup import RollupWorker

    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    now = float(int(time.time() if end is None else end))
    start = now - hours * 3600
    tick = 10.0
    rng = random.Random(7)
    stops = [("fault", 2), ("fault", 3), ("idle", 0), ("changeover", 20), ("idle", 30), ("fault", 11)]
    for line in plant.lines:
        events: list[Event] = []
        down_at_end = line.machines[len(line.machines) // 2].id
        for machine in line.machines:
            def emit(signal: Signal, value: Any, t: float, m: str = machine.id, out: list[Event] = events,
                     line_id: str = line.id) -> None:
                out.append(Event(line_id, m, signal, value, "Good", t))

            good = reject = 0
            kwh, progress, stop_until = 1000.0, 0.0, 0.0
            emit(Signal.STATE, "running", start)
            emit(Signal.REASON, 0, start)
            t = start
            while t < now:
                running = t >= stop_until
                if running and stop_until and t - tick < stop_until:
                    emit(Signal.STATE, "running", t)
                    emit(Signal.REASON, 0, t)
                if running and (rng.random() < 0.005 or (machine.id == down_at_end and now - 600 <= t < now - 590)):
                    state, reason = stops[rng.randrange(len(stops))] if machine.id != down_at_end or t < now - 600 \
                        else ("fault", 3)
                    stop_until = now + 1 if t >= now - 600 else t + rng.uniform(30, 900)
                    emit(Signal.STATE, state, t)
                    emit(Signal.REASON, reason, t)
                    running = False
                power = machine.power_running_kw * rng.uniform(0.85, 1.05) if running else machine.power_idle_kw
                kwh += power * tick / 3600
                if running:
                    progress += tick / (machine.ideal_cycle_time_s * rng.uniform(1.02, 1.25))
                    while progress >= 1:
                        progress -= 1
                        if rng.random() < machine.reject_rate * 3:
                            reject += 1
                            emit(Signal.REJECT, reject, t)
                        else:
                            good += 1
                            emit(Signal.GOOD, good, t)
                emit(Signal.HEARTBEAT, None, t)
                if int(t) % 30 == int(start) % 30:
                    emit(Signal.POWER, round(power, 2), t)
                    emit(Signal.ENERGY, round(kwh, 3), t)
                t += tick
        events.sort(key=lambda e: e.ts)
        pipe = client.pipeline(transaction=False)
        for i, event in enumerate(events):
            pipe.xadd(contract.events_key(line.id), contract.encode_event(event))
            field_name, value = contract.encode_live(event)
            pipe.hset(contract.live_key(line.id), field_name, value)
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
    RollupWorker(client, plant, clock=lambda: now).drain()
    return PlantReader(client, plant), now
