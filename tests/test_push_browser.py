"""Live push as screens see it, in headless Chromium (``assets/push.js``, ``api.live``):

* the wall, with its 2 s Interval made 10 minutes long so only a push can refresh it:
  a good-counter event written to the line's stream shows on the wall within seconds;
* the event stream turned off (``LIVE_PUSH``): the wall says it polls every 2 s, still
  updates, and goes back to push when the stream is on again;
* a line page on a CPU-throttled (4x) browser updates its Quality tile from a push;
* the range label's gate asks the server again only once its minute may have changed.

The server and the seeded data are those of ``tests/test_browser.py``; the browser is conftest's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from api.context import config_of
from components import ranges, wall
from config.loader import DEMO_PLANT
from config.settings import Settings
from domain import contract
from domain.model import Event, Signal
from tests.test_browser import (
    CHROMIUM,
    Server,
    console_errors,
    field,
    history_end,
    open_page,
    seed_plant,
    text_of,
    wait_for,
)
from tests.test_components import PLANT
from tests.throttled_support import SLOW, THROTTLED_TEST_TIMEOUT_S

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium (CI installs it)"),
]

LINE, OUTPUT = "BW1", "ST70"
LONG_MS = 600_000  # the fallback timer, made long: only a push refreshes within a test's time
NOTE = ".live-push-note"


@pytest.fixture(scope="module")
def pushed(redis_url: str) -> Iterator[dict[str, Any]]:
    from api import create_api_router
    from components.app_factory import create_app

    reader, now = seed_plant(redis_url, PLANT, hours=2.0, end=history_end(PLANT.timezone))
    settings = Settings(plant_path=DEMO_PLANT, plant=PLANT, redis_url=redis_url)
    # the app as app.py builds it: the pages ask /api/health (a 404 would be a console error)
    app = create_app(settings, lambda: reader, clock=lambda: now, api=lambda server, r: server.include_router(
        create_api_router(r, clock=lambda: now)))
    server = Server(app)
    server.start()
    client = redis.Redis.from_url(redis_url)
    yield {"server": server, "app": app, "reader": reader, "now": now, "redis": client, "good": [None]}
    from api import live

    live.shutdown(config_of(app.server))
    server.stop()


def add_good(pushed: dict[str, Any], parts: int) -> int:
    """The output machine's good counter up by ``parts``, written as a collector writes it
    (stream entry and live hash), just before the pinned now. Returns the new counter."""
    held = pushed["good"]
    if held[0] is None:
        machines = pushed["reader"].lines(pushed["now"], only=[LINE])["lines"][0]["machines"]
        held[0] = int(next(m["good"] for m in machines if m["id"] == OUTPUT) or 0)
    held[0] += parts
    event = Event(LINE, OUTPUT, Signal.GOOD, held[0], "Good", pushed["now"] - 0.5)
    pushed["redis"].xadd(contract.events_key(LINE), contract.encode_event(event))
    name, value = contract.encode_live(event)
    pushed["redis"].hset(contract.live_key(LINE), name, value)
    return int(held[0])


def digits(text: str) -> int | None:
    only = "".join(ch for ch in text if ch.isdigit())
    return int(only) if only else None


def wall_output(driver: Any) -> int | None:
    return digits(text_of(driver, field(wall.FIELD, LINE, "output")))


def push_state(driver: Any) -> str | None:
    return driver.execute_script(  # type: ignore[no-any-return]
        "var el = document.querySelector('.live-push'); return el ? el.dataset.state : null;")


def note_shown(driver: Any) -> bool:
    return bool(driver.execute_script(
        f"var el = document.querySelector('{NOTE}'); return el && el.offsetParent !== null;"))


def test_wall_updates_from_a_push_alone(pushed: dict[str, Any], browser: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wall, "REFRESH_MS", LONG_MS)
    open_page(browser, f"{pushed['server'].url}/wall/{LINE}", (1920, 1080))
    wait_for(lambda: wall_output(browser), 30, "the wall's first numbers")
    wait_for(lambda: push_state(browser) == "up", 15, "the event stream up")
    assert not note_shown(browser)
    ticks = browser.execute_script("return window.oeePush.ticks")
    for _ in range(2):  # each change is pushed, not only the first
        want = wall_output(browser) + 7  # type: ignore[operator]
        add_good(pushed, 7)
        wait_for(lambda w=want: wall_output(browser) == w, 10, f"the wall showing {want} parts")
    assert browser.execute_script("return window.oeePush.ticks") > ticks
    assert not note_shown(browser)
    assert console_errors(browser) == []


def test_wall_falls_back_to_polling_while_the_stream_is_off(pushed: dict[str, Any], browser: Any) -> None:
    app = pushed["app"]
    open_page(browser, f"{pushed['server'].url}/wall/{LINE}", (1920, 1080))
    wait_for(lambda: wall_output(browser), 30, "the wall's first numbers")
    wait_for(lambda: push_state(browser) == "up", 15, "the event stream up")
    config_of(app.server)["LIVE_PUSH"] = False
    try:
        wait_for(lambda: note_shown(browser), 15, "the fallback note")
        note = text_of(browser, NOTE)
        assert "refreshing every 2 s" in note, note
        want = wall_output(browser) + 5  # type: ignore[operator]
        add_good(pushed, 5)
        wait_for(lambda: wall_output(browser) == want, 15, "the wall updating by its 2 s timer")
        assert push_state(browser) == "down"
    finally:
        config_of(app.server)["LIVE_PUSH"] = True
    wait_for(lambda: push_state(browser) == "up", 20, "the event stream back")
    assert not note_shown(browser)
    want = wall_output(browser) + 4  # type: ignore[operator]
    add_good(pushed, 4)
    wait_for(lambda: wall_output(browser) == want, 10, "the wall updating by push again")


def quality_good(driver: Any) -> int | None:
    """The line page's Quality tile: "N good, M rejects"."""
    return driver.execute_script("""
        for (const tile of document.querySelectorAll('#oee-tiles .kpi-tile')) {
          if (tile.querySelector('.kpi-name')?.textContent !== 'Quality') continue;
          const d = (tile.querySelector('.kpi-sub')?.textContent || '').split(' good')[0].replace(/\\D/g, '');
          return d ? parseInt(d) : null;
        }
        return null;""")


@pytest.mark.timeout(THROTTLED_TEST_TIMEOUT_S)
def test_throttled_line_page_updates_from_a_push(pushed: dict[str, Any], browser: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranges, "LIVE_REFRESH_MS", LONG_MS)
    browser.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": 4})
    try:
        open_page(browser, f"{pushed['server'].url}/line/{LINE}?start=shift", (1920, 1080))
        before = wait_for(lambda: quality_good(browser), SLOW, "the Quality tile")
        wait_for(lambda: push_state(browser) == "up", SLOW, "the event stream up")
        add_good(pushed, 9)
        wait_for(lambda: (quality_good(browser) or 0) >= before + 9, SLOW, "the Quality tile counting 9 more")
        assert not note_shown(browser)
    finally:
        browser.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": 1})


def test_the_range_labels_gate_waits_its_quiet_time(pushed: dict[str, Any], browser: Any) -> None:
    """``oee.panelTick`` (assets/screens.js) in the page's own browser: a live record with
    ``quiet_ms`` (the range label) is not asked again before that long after the gate
    first saw it; without it every tick asks; a past range never."""
    open_page(browser, f"{pushed['server'].url}/line/{LINE}?start=shift", (1920, 1080))
    wait_for(lambda: "(live)" in text_of(browser, "#range-label"), 30, "the range label")
    asked = browser.execute_script("""
        var oee = window.dash_clientside.oee, nu = window.dash_clientside.no_update;
        var params = {start: 'shift', end: null};
        var record = function (extra) { return Object.assign({params: params, filter: null, live: true}, extra); };
        var ask = function (n, drawn) { return oee.panelTick(n, drawn, params, null)[0] !== nu; };
        var minute = record({quiet_ms: 60000, at: 1}), short = record({quiet_ms: 20, at: 2});
        var out = [ask(1, minute), ask(2, minute), ask(3, short)];
        var until = Date.now() + 40;
        while (Date.now() < until) {}
        out.push(ask(4, short), ask(5, minute), ask(6, record({})), ask(7, record({live: false})));
        return out;""")
    assert asked == [False, False, False, True, False, True, False]
    # no script error; /api/health may answer 503 (worker_behind): the counts the other
    # tests wrote (add_good) wait for a rollup worker this module does not run, and on a
    # loaded machine this test comes more than WORKER_SILENT_S after them
    assert console_errors(browser, allow=("/api/health",)) == []
