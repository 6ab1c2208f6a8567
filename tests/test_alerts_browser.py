"""The issue's "done when" in a real browser: a stop crosses its rule's threshold, the
evaluator (``store.alert_loop.run_alerts``, as ``python app.py alerts`` runs it) raises it,
a webhook on loopback receives it and the wall flashes with the alert's text (at most 2
flashes per second); an acknowledgement stops the flashing."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from domain import contract
from domain.model import Event, Signal
from store.alerts import AlertStore
from tests.core_support import machine_config, make_plant
from tests.test_browser import CHROMEDRIVER, CHROMIUM, Server, wait_for
from tests.test_webhooks import Hook

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium (CI installs it)"),
]

RULES = [{"id": "long_stop", "kind": "stop", "minutes": 1, "severity": "urgent", "channels": ["chat"],
          "text": "Long stop"}]


def write(client: redis.Redis, *events: Event) -> None:
    for event in events:
        field, value = contract.encode_live(event)
        client.hset(contract.live_key("L1"), field, value)


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1920,1080"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_wall_flashes_for_an_unacknowledged_urgent_alert(redis_client: redis.Redis, redis_url: str,
                                                         browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from components.app_factory import create_app
    from config.settings import Settings
    from store.alert_loop import run_alerts
    from store.reader import PlantReader

    hook = Hook(answer={})
    plant = make_plant(machines=[machine_config("M1")],
                       alerts={"channels": {"chat": {"type": "json", "url_env": "CHAT_URL"}}, "rules": RULES})
    started = time.time()
    # the collector's view: M1 faulted 50 s ago (data time), heartbeats keep it fresh
    write(redis_client, Event("L1", "M1", Signal.STATE, "fault", "Good", started - 50))
    stop = threading.Event()

    def heartbeats() -> None:
        while not stop.is_set():
            write(redis_client, Event("L1", "M1", Signal.HEARTBEAT, None, "Good", time.time()))
            stop.wait(1.0)

    threads = [threading.Thread(target=heartbeats, daemon=True),
               threading.Thread(target=run_alerts, args=(redis.Redis.from_url(redis_url), plant, stop,
                                                         {"CHAT_URL": hook.url}), daemon=True)]
    settings = Settings(plant_path=Path("test.yaml"), plant=plant, redis_url=redis_url)
    app = create_app(settings, lambda: PlantReader(redis.Redis.from_url(redis_url), plant))
    from api.alerts import create_alerts_blueprint

    app.server.register_blueprint(create_alerts_blueprint(app.server.config["PLANT_READER"]))
    server = Server(app)
    server.start()
    try:
        for thread in threads:
            thread.start()
        browser.get(f"{server.url}/wall")
        flashing = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".wall-alerts-flashing .alert-flash"),
                            timeout=90, what="the wall flashing")
        assert "Long stop: L1 M1: stopped 1 min" in flashing[0].text
        duration = browser.execute_script("return getComputedStyle(arguments[0]).animationDuration", flashing[0])
        assert float(duration.rstrip("s")) >= 0.5  # at most 2 flashes per second
        assert hook.got.wait(30), "the webhook got nothing"
        sent = json.loads(hook.requests[0][2])
        assert (sent["event"], sent["severity"], sent["machine"]) == ("raised", "urgent", "M1")
        crossed = started - 50 + 60  # data time the stop crossed 1 min
        print(f"webhook received {time.time() - crossed:.1f} s after the threshold (upper bound)")

        store = AlertStore(redis_client)
        (alert,) = store.open_alerts().values()
        # the API answers the same
        listed = wait_for(lambda: [a for a in app.server.test_client().get("/api/alerts?state=open").get_json()[
            "alerts"] if a["id"] == alert.id], what="the alert in /api/alerts")
        assert listed[0]["flashing"] is True
        store.acknowledge(alert.id, "li.wei", "supervisor", "on it", time.time())
        wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, ".alert-flash"), timeout=60,
                 what="the flashing to stop")
        assert "L1 M1: stopped" in browser.find_element(By.ID, "alerts-wall").text  # still shown, steady
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        server.stop()
        hook.close()
