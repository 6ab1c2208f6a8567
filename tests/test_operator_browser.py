"""An operator on a 1024x768 tablet, in headless Chromium against the real app on a real
Redis: opens the line's untagged-stops queue, logs in, taps the untagged stop, picks a
reason, and sees the Pareto and the coverage change; the API agrees. Waits on what the
page shows, never on fixed sleeps. Skipped only where /usr/bin/chromium is missing."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from components import theme
from tests.browser_support import CHROMIUM
from tests.operator_support import IDLE_ID, NOW, PASSWORD, PAST, add_users, make_app, operator_plant, seed
from tests.support import AppServer

TABLET = (1024, 768)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium (CI installs it)"),
]


@pytest.fixture
def server(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    plant = operator_plant()
    reader = seed(redis_client, plant)
    add_users(redis_client, plant)
    app = make_app(reader, plant, tmp_path, redis_url)
    served = AppServer(app)
    served.start()
    yield {"url": served.url, "reader": reader}
    served.stop()


@pytest.fixture
def browser(browser: Any) -> Iterator[Any]:
    """The module's Chromium (conftest's ``browser``) as a 1024x768 touch tablet, with no
    cookies or console log left from the test before (every test's server is on 127.0.0.1,
    and cookies ignore the port)."""
    width, height = TABLET
    browser.delete_all_cookies()
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    browser.get_log("browser")
    yield browser
    browser.get("about:blank")
    browser.delete_all_cookies()


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the element may not be there yet, or was just replaced
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def pareto(driver: Any) -> dict[str, str]:
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('.ut-pareto-row')).map("
        "r => [r.dataset.group, r.lastElementChild.textContent])")
    return {group: text for group, text in rows}


def test_an_operator_classifies_a_stop_on_a_tablet(server: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{server['url']}/line/L1/untagged")
    before = wait_for(lambda: pareto(browser), what="the Pareto")
    assert set(before) == {"no_reason", "1"}
    login = wait_for(lambda: browser.find_element(By.ID, "ut-login"), what="the login link")
    login.click()
    wait_for(lambda: browser.find_element(By.ID, "username"), what="the login page").send_keys("operator1")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait_for(lambda: browser.current_url.endswith("/line/L1/untagged"), what="back on the queue")
    stop = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, f'[data-stop="{IDLE_ID}"]'), what="the stop")
    assert stop.size["height"] >= 44  # a finger, not a mouse
    wait_for(lambda: "operator1" in browser.find_element(By.ID, "ut-who").text, what="who is logged in")
    stop.click()
    wait_for(lambda: browser.find_element(By.ID, "ut-selected-label").text.startswith("M1 at"), what="selection")
    browser.find_element(By.ID, "ut-comment").send_keys("no blanks")
    reason = browser.find_element(By.XPATH, "//button[contains(@class, 'ut-reason-btn') and text()='No material']")
    assert reason.size["height"] >= 44
    reason.click()
    wait_for(lambda: browser.find_element(By.ID, "ut-ok").text.startswith("Saved"), what="saved")
    after = wait_for(lambda: (p := pareto(browser)) and "no_reason" not in p and p, what="the Pareto to change")
    assert set(after) == {"3", "1"}
    full = theme.pct(1.0)
    wait_for(lambda: browser.find_element(By.ID, "ut-coverage-value").text == full, what="coverage 100 %")
    assert not browser.find_elements(By.CSS_SELECTOR, f'[data-stop="{IDLE_ID}"]')  # out of the queue
    browser.find_element(By.XPATH, "//label[text()='All stops']").click()  # a supervisor would re-classify here
    shown = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, f'[data-stop="{IDLE_ID}"]').text, what="all stops")
    assert "No material (operator1)" in shown and "PLC: no reason" in shown
    # split the same stop at 03:04 (4 min in): Jam, then Changeover
    from selenium.webdriver.support.ui import Select

    def tap(element: Any) -> None:  # below the fold of the emulated screen: scrolled to and clicked by script
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", element)

    tap(browser.find_element(By.CSS_SELECTOR, f'[data-stop="{IDLE_ID}"]'))
    tap(browser.find_element(By.CSS_SELECTOR, ".untagged-page details summary"))
    browser.find_element(By.ID, "ut-split-at").send_keys("03:04")
    Select(browser.find_element(By.ID, "ut-split-before")).select_by_value("1")
    Select(browser.find_element(By.ID, "ut-split-after")).select_by_value("2")
    tap(browser.find_element(By.ID, "ut-split"))
    wait_for(lambda: browser.find_element(By.ID, "ut-ok").text == "Split saved.", what="split saved")
    split = wait_for(lambda: (p := pareto(browser)) and "2" in p and p, what="the Pareto after the split")
    assert set(split) == {"1", "2"}
    api = server["reader"].downtime("L1", *PAST, NOW)  # what /api/lines/L1/downtime answers
    assert {r["group"]: r["duration_s"] for r in api["pareto"]["by_duration"]} == {"1": 300.0 + 240.0, "2": 360.0}
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe


def _login(driver: Any, url: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(url)
    wait_for(lambda: driver.find_element(By.ID, "username"), what="the login page").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()


def test_supervisors_hand_over_a_shift(server: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    def alert() -> str:
        return str(browser.find_element(By.CSS_SELECTOR, "#ho-message .alert").text)

    _login(browser, f"{server['url']}/login?next=/line/L1/handover", "supervisor1")
    note = wait_for(lambda: browser.find_element(By.ID, "ho-note"), what="the handover page")
    note.send_keys("Press fed late at 03:00")
    browser.find_element(By.ID, "ho-issues").send_keys("check the feeder")
    browser.find_element(By.ID, "ho-sign").click()
    wait_for(lambda: alert().startswith("Signed"), what="signed")
    row = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".handover-table tbody tr").text, what="history")
    assert "Press fed late at 03:00" in row and "supervisor1" in row
    browser.find_element(By.ID, "ho-ack").click()
    wait_for(lambda: "not the one who signed" in alert(), what="refused: the signer cannot acknowledge")
    _login(browser, f"{server['url']}/login?next=/line/L1/handover", "supervisor1b")
    wait_for(lambda: browser.find_element(By.ID, "ho-ack"), what="the handover page").click()
    wait_for(lambda: alert() == "Acknowledged.", what="acknowledged")
    row = wait_for(lambda: (t := browser.find_element(By.CSS_SELECTOR, ".handover-table tbody tr").text)
                   and "supervisor1b" in t and t, what="the acknowledgement in the history")
    assert "supervisor1 " in row
    _login(browser, f"{server['url']}/login?next=/line/L1/handover", "operator1")
    wait_for(lambda: browser.find_element(By.ID, "ho-save"), what="the handover page").click()
    wait_for(lambda: "the role operator may not write handover notes" in alert(), what="an operator refused")


def test_an_admin_adds_and_disables_a_user(server: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    def message() -> str:
        return str(browser.find_element(By.CSS_SELECTOR, "#au-message .alert").text)

    _login(browser, f"{server['url']}/login?next=/admin/users", "admin1")
    wait_for(lambda: "operator1" in browser.find_element(By.ID, "au-table").text, what="the users")
    browser.find_element(By.ID, "au-name").send_keys("newop")
    browser.find_element(By.ID, "au-lines").send_keys("L1")
    browser.find_element(By.ID, "au-password").send_keys("short")
    browser.find_element(By.ID, "au-add").click()
    wait_for(lambda: "10 to 1024 characters" in message(), what="a short password refused")
    browser.find_element(By.ID, "au-password").send_keys("a long enough password")
    browser.find_element(By.ID, "au-add").click()
    wait_for(lambda: message() == "User newop added.", what="added")
    newop = "//*[@id='au-table']//tr[contains(., 'newop')]//button"  # found again if the table re-renders
    wait_for(lambda: browser.find_element(By.XPATH, newop).click() is None, what="the new user's row")
    wait_for(lambda: message() == "User newop disabled.", what="disabled")
    from domain import contract

    assert server["reader"].redis.hget(contract.user_key("newop"), "disabled") == b"1"
    browser.get(f"{server['url']}/audit")
    wait_for(lambda: browser.find_element(By.ID, "audit-ok").text.startswith("Hash chain intact"), what="chain")
    trail = browser.find_element(By.ID, "audit-table").text
    assert "user_add" in trail and "user_change" in trail and "newop" in trail
    _login(browser, f"{server['url']}/login?next=/admin/users", "supervisor1")
    wait_for(lambda: "Forbidden: the role supervisor may not manage users and tokens" in
             browser.find_element(By.ID, "au-table").text, what="a supervisor refused")
    browser.get(f"{server['url']}/audit")  # a supervisor reads the trail of their lines, without the chain check
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".audit-table, #audit-table p"), what="the trail")
    assert not browser.find_elements(By.ID, "audit-ok") and "user_add" not in browser.find_element(
        By.ID, "audit-table").text


def pareto_groups(driver: Any) -> dict[str, float] | None:
    """The line page's Pareto by duration as drawn by Plotly: {group: minutes}."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "var g = document.querySelector('#dt-pareto-duration .js-plotly-plot');"
        "if (!g || !g.data || !g.data.length) { return null; }"
        "var out = {}; var t = g.data[0]; Array.from(t.customdata || []).forEach(function (c, i) {"
        " out[c] = t.y[i]; }); return out;")


def test_an_operator_classifies_from_the_line_page(server: dict[str, Any], browser: Any) -> None:
    import json
    import urllib.request
    from datetime import UTC, datetime

    from selenium.webdriver.common.by import By

    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M")

    query = f"start={iso(PAST[0])}&end={iso(PAST[1])}"
    page = f"/line/L1?{query}"
    browser.delete_all_cookies()
    browser.get(server["url"] + page)
    wait_for(lambda: pareto_groups(browser) == {"no_reason": 10.0, "1": 5.0}, what="the Pareto before")
    login = wait_for(lambda: browser.find_element(By.ID, "stop-login"), what="log in to classify")
    assert not browser.find_elements(By.CSS_SELECTOR, ".stop-classify")  # nothing to tap without a login
    assert login.size["height"] >= 44
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", login)
    wait_for(lambda: browser.find_element(By.ID, "username"), what="the login page").send_keys("operator1")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    stop = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, f'.stop-classify[data-stop="{IDLE_ID}"]'),
                    what="the stop as a button, back on the line page")
    assert "/line/L1?start=" in browser.current_url  # back where the link was
    assert stop.size["height"] >= 44 and stop.size["width"] >= 44  # a finger, not a mouse
    assert not browser.find_elements(By.ID, "stop-login")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", stop)
    wait_for(lambda: browser.find_element(By.ID, "ut-selected-label").text.startswith("M1 at"), what="the dialog")
    browser.find_element(By.ID, "ut-comment").send_keys("no blanks")
    reason = wait_for(lambda: browser.find_element(
        By.XPATH, "//button[contains(@class, 'ut-reason-btn') and text()='No material']"), what="the reasons")
    assert reason.size["height"] >= 44
    reason.click()
    after = wait_for(lambda: (p := pareto_groups(browser)) and "no_reason" not in p and p, what="the Pareto after")
    assert after == {"3": 10.0, "1": 5.0}
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, ".modal.show"), what="the dialog closed")
    row = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, f'.stop-classify[data-stop="{IDLE_ID}"]').text,
                   what="the row's new reason")
    assert "No material" in row
    api_query = f"start={iso(PAST[0])}%2B00:00&end={iso(PAST[1])}%2B00:00"  # the API wants the offset
    with urllib.request.urlopen(f"{server['url']}/api/lines/L1/downtime?{api_query}", timeout=10) as resp:  # noqa: S310
        answer = json.loads(resp.read())
    assert {r["group"]: r["duration_s"] / 60 for r in answer["pareto"]["by_duration"]} == after
    event = next(e for e in answer["events"] if e.get("id") == IDLE_ID)
    assert (event["reason"], event["classified_by"], event["comment"]) == (3, "operator1", "no blanks")

    browser.get(f"{server['url']}/line/L1/machine/M1?{query}")  # the machine page lists it the same way
    mine = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, f'.stop-classify[data-stop="{IDLE_ID}"]').text,
                    what="the machine page's stop button")
    assert "No material" in mine
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe

    _login(browser, f"{server['url']}/login?next=/line/L1%3F{query.replace('&', '%26')}", "engineer1")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#dt-stops tbody tr"), what="the stops for an engineer")
    assert not browser.find_elements(By.CSS_SELECTOR, ".stop-classify")  # may not classify: nothing to tap
    assert not browser.find_elements(By.ID, "stop-login")


def test_engineers_and_admins_manage_reason_lists(server: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    def alert() -> str:
        return str(browser.find_element(By.CSS_SELECTOR, "#ar-message .alert").text)

    def tap(element: Any) -> None:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", element)

    _login(browser, f"{server['url']}/login?next=/admin/reasons", "admin1")
    wait_for(lambda: "Jam" in browser.find_element(By.ID, "ar-catalogue").text, what="the plant-wide list")
    assert browser.find_element(By.LINK_TEXT, "Reason lists").get_attribute("href").endswith("/admin/reasons")
    browser.find_element(By.ID, "ar-code").send_keys("7")
    browser.find_element(By.ID, "ar-text").send_keys("Robot teach")
    browser.find_element(By.ID, "ar-text-zh").send_keys("机器人示教")
    tap(browser.find_element(By.ID, "ar-save"))
    wait_for(lambda: alert() == "Reason 7 saved.", what="saved")
    wait_for(lambda: "Robot teach" in browser.find_element(By.ID, "ar-catalogue").text, what="7 in the table")

    _login(browser, f"{server['url']}/login?next=/admin/reasons", "engineer1")  # an engineer of L1
    box = wait_for(lambda: browser.find_element(By.ID, "ar-line-L1"), what="L1's list")
    assert not browser.find_elements(By.ID, "ar-line-L2")  # not the engineer's line
    tap(box.find_element(By.XPATH, ".//label[contains(., '7 Robot teach')]"))
    tap(box.find_element(By.XPATH, ".//button[contains(., \"Save L1's list\")]"))
    wait_for(lambda: alert() == "Line L1 now uses its own list [1, 2, 3, 5, 7].", what="L1's list saved")
    # the saved list re-renders the table: find the row again if it was replaced while being read
    robot = "//*[@id='ar-catalogue']//tbody/tr[contains(., 'Robot teach')]//button"
    wait_for(lambda: tap(browser.find_element(By.XPATH, robot)) is None, what="the plant-wide row of reason 7")
    wait_for(lambda: "not assigned to all lines (*)" in alert(), what="refused")

    _login(browser, f"{server['url']}/login?next=/line/L1/untagged", "operator1")  # the picker offers it
    wait_for(lambda: browser.find_element(By.XPATH, "//button[contains(@class, 'ut-reason-btn') and "
                                                    "text()='Robot teach']"), what="the new reason offered")
    assert not browser.find_elements(By.LINK_TEXT, "Reason lists")  # operators do not manage reasons
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe
