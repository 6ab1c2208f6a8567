"""What users see, in headless Chromium: the wall screen, the overview, a line page and a
machine page at 1920x1080 and 1024x768; the numbers shown equal the HTTP API's (``/api``
on the same server, both over one PlantReader on a real Redis seeded through the
stream contract and the rollup worker); no errors in the browser console; the wall
says "no data since" while the server is gone and recovers by itself.

Screenshots land in $SCREENSHOT_DIR (default ./screenshots); the run's summary names
the folder. Skipped only where /usr/bin/chromium is missing (CI installs it).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import data, theme
from config.loader import DEMO_PLANT
from config.settings import Settings
from tests.test_components import PLANT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parent.parent
SIZES = [(1920, 1080), (1024, 768)]

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


class Server:
    """The Dash app on a werkzeug server in a thread; can be stopped and started again
    on the same port (a server restart as a wall screen sees it)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = 0
        self.httpd: Any = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        from werkzeug.serving import make_server

        self.httpd = make_server("127.0.0.1", self.port, self.app.server, threaded=True)
        self.port = self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        if self.thread is not None:
            self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def dashboard(redis_url: str) -> Iterator[dict[str, Any]]:
    """The app as ``app.py`` builds it (dashboard + /api on one server), clock pinned to
    the end of the seeded data."""
    from api import create_api_blueprint
    from components.app_factory import create_app

    inner, now = seed_plant(redis_url, PLANT)
    reader = SwitchableReader(inner)
    settings = Settings(plant_path=DEMO_PLANT, plant=PLANT, redis_url=redis_url)
    app = create_app(settings, lambda: reader, clock=lambda: now)
    app.server.register_blueprint(create_api_blueprint(app.server.config[data.READER_KEY], clock=lambda: now))
    server = Server(app)
    server.start()
    yield {"server": server, "reader": reader, "now": now, "app": app}
    server.stop()


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "screenshots").resolve()
    folder.mkdir(parents=True, exist_ok=True)

    class Report:
        @staticmethod
        def pytest_terminal_summary(terminalreporter: Any) -> None:
            files = sorted(folder.glob("*.png"))
            terminalreporter.write_sep("-", "dashboard screenshots")
            terminalreporter.write_line(f"{len(files)} screenshots in {folder}")

    if not request.config.pluginmanager.has_plugin("dashboard-screenshots"):
        request.config.pluginmanager.register(Report(), "dashboard-screenshots")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


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
    open_page(browser, dashboard["server"].url + "/wall", size)
    for line in PLANT.lines:
        kpis = api(dashboard["server"], f"/api/lines/{line.id}/kpis?start=shift")
        want = theme.pct_number(kpis["oee"])
        selector = field("wall-field", line.id, "oee")
        wait_for(lambda sel=selector, w=want: text_of(browser, sel) == w, what=f"{line.id} OEE {want}")
        availability = f"{theme.pct_number(kpis['availability'])}{theme.THIN_SPACE}%"
        assert text_of(browser, field("wall-field", line.id, "a")) == availability
        assert text_of(browser, field("wall-field", line.id, "output")) == theme.count(kpis["good_count"])
        assert text_of(browser, field("wall-field", line.id, "status")) not in ("", "\u2026")
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


def test_wall_says_no_data_while_the_server_is_gone_and_recovers(dashboard: dict[str, Any], browser: Any,
                                                                  shots: Path) -> None:
    server, reader = dashboard["server"], dashboard["reader"]
    open_page(browser, server.url + "/wall", (1920, 1080))
    oee = field("wall-field", "BW1", "oee")
    wait_for(lambda: text_of(browser, oee) != theme.DASH, what="numbers")
    expected_time = theme.clock(dashboard["now"], PLANT.timezone)

    server.stop()  # a restart or a network drop
    banner = wait_for(lambda: text_of(browser, "#wall-banner"), timeout=20, what="the offline banner")
    assert banner.startswith(f"no data since {expected_time}")
    assert "offline" in browser.find_element("id", "wall-root").get_attribute("class")
    screenshot(browser, shots, "wall_offline_1920x1080")
    server.start()  # same port: the page polls on and recovers without a reload
    wait_for(lambda: text_of(browser, "#wall-banner") == "", timeout=20, what="recovery")
    assert "offline" not in browser.find_element("id", "wall-root").get_attribute("class")

    reader.down = True  # Redis down behind a live server: same banner, same recovery
    try:
        wait_for(lambda: text_of(browser, "#wall-banner").startswith("no data since"), timeout=20,
                 what="banner on a Redis outage")
    finally:
        reader.down = False
    wait_for(lambda: text_of(browser, "#wall-banner") == "", timeout=20, what="recovery after Redis")
    browser.get_log("browser")  # failed requests during the outage are expected there


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview_cards_and_tap_opens_the_line(dashboard: dict[str, Any], browser: Any, shots: Path,
                                               size: tuple[int, int]) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, dashboard["server"].url + "/", size)
    for line in PLANT.lines:
        want = theme.pct(api(dashboard["server"], f"/api/lines/{line.id}/kpis?start=shift")["oee"])
        selector = field("ov-field", line.id, "oee")
        wait_for(lambda sel=selector, w=want: text_of(browser, sel) == w, what=f"{line.id} card OEE {want}")
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
        return [e.text.strip() for e in browser.find_elements(By.CSS_SELECTOR, "#oee-tiles .kpi-value")]

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
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#mc-tiles .kpi-value")[0].text.strip() == want,
             what=f"machine OEE {want}")
    active = browser.find_element(By.CSS_SELECTOR, "#range-choice label.active").text
    assert active == "Today"
    wait_for(lambda: text_of(browser, "#mc-live"), what="live card")
    screenshot(browser, shots, "machine_BW1_ST30_1024x768", full_page=True)
    assert console_errors(browser) == []
    crumbs = browser.find_element(By.CSS_SELECTOR, ".crumbs a[href^='/line/BW1?']").get_attribute("href")
    assert re.search(r"start=today", crumbs)


# --- seeding a real Redis through the stream contract and the rollup worker --------------

def seed_plant(redis_url: str, plant: Any, hours: float = 4.0) -> tuple[Any, float]:
    """Events for the last ``hours`` written the way collectors write them (stream and
    live hash, ``domain.contract``), rolled up by the real worker; returns a real
    PlantReader and the time the data ends. Every machine reports every 10 s (a
    heartbeat), stops now and then with a reason, and one machine per line is down
    at the end."""
    import random

    import redis as redis_lib

    from domain import contract
    from domain.model import Event, Signal
    from store.reader import PlantReader
    from store.rollup import RollupWorker

    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    now = float(int(time.time()))
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
