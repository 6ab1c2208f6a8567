"""The screens in Simplified Chinese, in headless Chromium with Debian's fonts-noto-cjk:
the wall (``?lang=zh-CN`` in its kiosk URL), the overview and a line page at 1920x1080 and
1024x768 show no untranslated label (line and machine ids and units aside), nothing spills
out of the screen or out of its tile, Chinese glyphs come from a CJK font while the big
digits keep Inter, and the language switch in the navigation bar goes both ways.

Screenshots (``*_zh-CN_*.png``) land beside test_browser's, for the README.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import theme
from tests.browser_support import check_fits
from tests.test_browser import (  # noqa: F401 - fixtures shared with the English browser tests
    CHROMIUM,
    SIZES,
    console_errors,
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
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (CI installs it)"),
]

IDS = {ln.id for ln in PLANT.lines} | {m.id for ln in PLANT.lines for m in ln.machines}
UNITS_AND_ABBREVIATIONS = {"OEE", "TEEP", "MTBF", "MTTR", "kWh", "kW", "MW", "CSV", "CNY", "kg", "mm",
                           "CO", "English"}
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z-]+")

def untranslated(texts: list[dict[str, Any]]) -> list[str]:
    words = []
    for t in texts:
        for word in LATIN_WORD.findall(t["text"]):
            if word in UNITS_AND_ABBREVIATIONS or word in IDS or any(word in i for i in IDS):
                continue
            if re.fullmatch(r"[A-C]", word):  # shift names
                continue
            words.append(f"{word!r} in {t['text'][:80]!r}")
    return words


def check_page(driver: Any, size: tuple[int, int], boxes: str, full_screen: bool, cells: str = ".wall-cell"
               ) -> dict[str, Any]:
    seen = check_fits(driver, size, boxes, full_screen, cells)
    missing = untranslated(seen["texts"])
    assert missing == [], f"untranslated labels: {missing}"
    chinese = [t for t in seen["texts"] if re.search(r"[\u4e00-\u9fff]", t["text"])]
    assert chinese, "no Chinese on the page"
    assert [t["text"] for t in chinese if "Noto Sans CJK SC" not in t["font"]] == [], "Chinese outside the CJK stack"
    return seen  # type: ignore[no-any-return]


def fonts_drawn(driver: Any, selector: str) -> list[str]:
    """The fonts Chromium really drew an element's glyphs with (DevTools' CSS domain):
    a CJK font for Chinese (not empty boxes), Inter for the digits."""
    driver.execute_cdp_cmd("DOM.enable", {})
    driver.execute_cdp_cmd("CSS.enable", {})
    root = driver.execute_cdp_cmd("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    node = driver.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = driver.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    return [f["familyName"] for f in fonts if f.get("glyphCount")]


@pytest.fixture
def zh(browser: Any) -> Iterator[Any]:  # noqa: F811 - the shared fixture
    yield browser
    browser.delete_all_cookies()  # the English browser tests after these start in English


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_wall_in_chinese_by_its_kiosk_url(dashboard: dict[str, Any], zh: Any, shots: Path,
                                          size: tuple[int, int]) -> None:
    open_page(zh, dashboard["server"].url + "/wall?lang=zh-CN", size)
    for line in PLANT.lines:
        wait_for(lambda lid=line.id: text_of(zh, field("wall-field", lid, "oee")) not in ("", theme.DASH),
                 what=f"{line.id} OEE")
        wait_for(lambda lid=line.id: text_of(zh, field("wall-field", lid, "status")) not in ("", "\u2026"),
                 what=f"{line.id} state")
    assert zh.find_element("css selector", "html").get_attribute("lang") == "zh-CN"
    assert "设备综合效率" in text_of(zh, ".wall-oee .wall-label")
    assert text_of(zh, ".wall-plant") == "柳州演示工厂"
    assert text_of(zh, ".wall-line-name") == "车身焊装线 1（白车身）"
    digits = zh.execute_script("return getComputedStyle(document.querySelector('.wall-num-xl')).fontFamily")
    assert digits.startswith('"Inter Variable"'), digits
    assert any("CJK" in name for name in fonts_drawn(zh, ".wall-line-name")), fonts_drawn(zh, ".wall-line-name")
    assert all("Inter" in name for name in fonts_drawn(zh, ".wall-num-xl")), fonts_drawn(zh, ".wall-num-xl")
    check_page(zh, size, ".wall-tile", full_screen=True)
    screenshot(zh, shots, f"wall_zh-CN_{size[0]}x{size[1]}")
    assert console_errors(zh) == []


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview_in_chinese(dashboard: dict[str, Any], zh: Any, shots: Path,
                             size: tuple[int, int]) -> None:
    open_page(zh, dashboard["server"].url + "/?lang=zh-CN", size)
    for line in PLANT.lines:
        wait_for(lambda lid=line.id: text_of(zh, field("ov-field", lid, "oee")) not in ("", theme.DASH),
                 what=f"{line.id} card")
    wait_for(lambda: text_of(zh, "#ov-shift").startswith("班次"), what="the shift in Chinese")
    check_page(zh, size, ".ov-card", full_screen=False, cells=".ov-card .card-body, .ov-head")
    screenshot(zh, shots, f"overview_zh-CN_{size[0]}x{size[1]}")
    assert console_errors(zh) == []


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_line_page_in_chinese(dashboard: dict[str, Any], zh: Any, shots: Path,
                              size: tuple[int, int]) -> None:
    from selenium.webdriver.common.by import By

    open_page(zh, dashboard["server"].url + "/line/BW1?lang=zh-CN", size)
    wait_for(lambda: len(zh.find_elements(By.CSS_SELECTOR, "#oee-tiles .kpi-value")) >= 4, what="OEE tiles")
    wait_for(lambda: zh.find_elements(By.CSS_SELECTOR, "#dt-timeline .main-svg .bars"), what="timeline drawn")
    wait_for(lambda: zh.find_elements(By.CSS_SELECTOR, "#en-power .scatterlayer .trace"), what="power drawn")
    wait_for(lambda: zh.find_elements(By.CSS_SELECTOR, "#dt-stops tbody tr"), what="stops listed")
    wait_for(lambda: "短暂停机阈值 2分钟" in text_of(zh, "#oee-threshold"), what="the threshold note")
    tiles = zh.execute_script("return Array.from(document.querySelectorAll('#oee-tiles .kpi-name'))"
                              ".map(e => e.innerText.trim())")
    assert tiles == ["设备综合效率", "时间开动率", "性能开动率", "合格品率", "完全有效生产率"]
    check_page(zh, size, ".kpi-tile, .range-bar", full_screen=False, cells=".kpi-tile, .panel")
    screenshot(zh, shots, f"line_BW1_zh-CN_{size[0]}x{size[1]}", full_page=True)
    assert console_errors(zh) == []


def test_machine_page_in_chinese(dashboard: dict[str, Any], zh: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    open_page(zh, dashboard["server"].url + "/line/BW1/machine/ST30?lang=zh-CN", (1024, 768))
    wait_for(lambda: len(zh.find_elements(By.CSS_SELECTOR, "#mc-tiles .kpi-value")) >= 4, what="KPI tiles")
    wait_for(lambda: zh.find_elements(By.CSS_SELECTOR, "#mc-timeline .main-svg .bars"), what="timeline drawn")
    wait_for(lambda: text_of(zh, "#mc-live"), what="the live card")
    assert text_of(zh, "h1") == "ST30 \u00b7 点焊工位 30（4 台机器人）"
    check_page(zh, (1024, 768), ".kpi-tile, .live-card", full_screen=False, cells=".kpi-tile, .panel")
    screenshot(zh, shots, "machine_BW1_ST30_zh-CN_1024x768", full_page=True)
    assert console_errors(zh) == []


def test_wall_says_no_data_in_chinese_and_recovers(dashboard: dict[str, Any], zh: Any) -> None:
    """The browser writes this banner itself (assets/dashboard.js), with the page's texts."""
    reader = dashboard["reader"]
    open_page(zh, dashboard["server"].url + "/wall?lang=zh-CN", (1920, 1080))
    wait_for(lambda: text_of(zh, field("wall-field", "BW1", "oee")) not in ("", theme.DASH), what="numbers")
    since = theme.clock(dashboard["now"], PLANT.timezone)
    reader.down = True  # Redis down behind a live server
    try:
        banner = wait_for(lambda: text_of(zh, "#wall-banner"), timeout=20, what="the banner")
        assert banner.startswith(f"自 {since} 起无数据 \u2014 "), banner
        assert untranslated([{"text": banner}]) == []
    finally:
        reader.down = False
    wait_for(lambda: text_of(zh, "#wall-banner") == "", timeout=20, what="recovery")
    zh.get_log("browser")  # failed requests during the outage are expected there


def test_language_switch_goes_both_ways_and_keeps_the_view(dashboard: dict[str, Any], zh: Any) -> None:
    from selenium.webdriver.common.by import By

    server = dashboard["server"]
    open_page(zh, server.url + "/line/CM1?start=7d", (1920, 1080))
    switch = wait_for(lambda: zh.find_element(By.CSS_SELECTOR, "a.lang-switch"), what="the switch")
    assert switch.text == "中文"
    switch.click()
    wait_for(lambda: "lang=zh-CN" in zh.current_url and "start=7d" in zh.current_url, what="the Chinese URL")
    wait_for(lambda: text_of(zh, "a.lang-switch") == "English", what="the page in Chinese")
    assert "机加工线 1" in text_of(zh, "h1")
    zh.find_element(By.CSS_SELECTOR, "a.nav-link[href='/']").click()  # the cookie: the next page too
    wait_for(lambda: text_of(zh, "h1") == "产线", what="the overview in Chinese")
    zh.find_element(By.CSS_SELECTOR, "a.lang-switch").click()
    wait_for(lambda: text_of(zh, "h1") == "Lines", what="back in English")
