"""What the screens say when the server or Redis goes away, in headless Chromium: the wall
says "no data since" while the server is gone or Redis is down and recovers by itself; the
worker's data-loss record shows on the wall and the line page until it is cleared.

The server and its seeded data are ``tests/test_browser.py``'s (a module of their own, so
pytest-xdist runs these waits beside the other browser modules).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from components import theme
from tests.test_browser import (  # noqa: F401 - fixtures shared with the other browser tests
    CHROMIUM,
    dashboard,
    field,
    open_page,
    screenshot,
    shots,
    text_of,
    wait_for,
)
from tests.test_components import PLANT

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium (CI installs it)"),
]


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


def test_screens_say_when_redis_lost_data(dashboard: dict[str, Any], browser: Any, shots: Path,
                                          redis_url: str) -> None:
    """The worker's data-loss record (``contract.data_loss_key``) is on the wall and the
    line page until it is cleared: short figures must not pass for whole ones."""
    import redis as redis_lib

    from domain import contract

    client = redis_lib.Redis.from_url(redis_url)
    now = dashboard["now"]
    key = contract.data_loss_key("BW1")
    client.hset(key, mapping={"from": repr(now - 7200), "to": repr(now - 600), "detected": repr(now - 590)})
    try:
        server = dashboard["server"]
        for path, banner in (("/wall", "#wall-banner"), ("/line/BW1?start=shift", "#range-status")):
            open_page(browser, server.url + path, (1920, 1080))
            text = wait_for(lambda banner=banner: text_of(browser, banner), timeout=30, what=f"{path} banner")
            assert text.startswith("Redis lost data: figures from "), text
            assert "are incomplete" in text
        screenshot(browser, shots, "line_page_data_lost_1920x1080")
        client.delete(key)
        wait_for(lambda: text_of(browser, "#range-status") == "", timeout=30, what="banner cleared")
    finally:
        client.delete(key)
        client.close()
