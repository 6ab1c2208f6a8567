"""The wall, the overview and a machine page as a slow tablet sees them
(``tests/throttled_support.py``): each loaded three times, once at each of 1920x1080,
1024x768 and 768x1024, each drawing every panel with the HTTP API's numbers, the wall's
small print readable from 5 m, the overview without scrolling on a tablet, no touch target
under 44 px, no console error.

The server and its seeded data are ``tests/test_browser.py``'s (each module its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components import theme
from tests.test_browser import (  # noqa: F401 - dashboard and shots: the fixtures, shared
    api,
    dashboard,
    field,
    figure,
    no_console_errors,
    open_page,
    screenshot,
    shots,
    small_touch_targets,
    text_of,
    texts,
    wait_for,
)
from tests.test_components import PLANT
from tests.throttled_support import LOADS, MARKS, SLOW, slow  # noqa: F401 - slow: the fixture

pytestmark = MARKS


@pytest.mark.parametrize(("size", "load"), LOADS, ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else None)
def test_throttled_wall(dashboard: dict[str, Any], slow: Any, shots: Path, size: tuple[int, int], load: int) -> None:
    server = dashboard["server"]
    open_page(slow, server.url + "/wall", size)
    for line in PLANT.lines:
        kpis = api(server, f"/api/lines/{line.id}/kpis?start=shift")
        want = (theme.pct_number(kpis["oee"]), theme.count(kpis["good_count"]))
        wait_for(lambda lid=line.id, w=want: (text_of(slow, field("wall-field", lid, "oee")),
                                              text_of(slow, field("wall-field", lid, "output"))) == w,
                 SLOW, what=f"{line.id} on the wall")
        assert text_of(slow, field("wall-field", line.id, "a")) == \
            f"{theme.pct_number(kpis['availability'])}{theme.THIN_SPACE}%"
    screenshot(slow, shots, f"slow_wall_{size[0]}x{size[1]}")
    if size == (1920, 1080):  # the small print, read from 5 m
        sizes = slow.execute_script(
            "return Array.from(document.querySelectorAll('.wall-label, .wall-sub, .wall-line-name, .wall-for,"
            " .wall-reason, .wall-apq-key')).filter(e => e.offsetParent && e.textContent.trim())"
            ".map(e => parseFloat(getComputedStyle(e).fontSize))")
        assert sizes and min(sizes) >= 28, sizes
    no_console_errors(slow)


@pytest.mark.parametrize(("size", "load"), LOADS, ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else None)
def test_throttled_overview_fits_the_screen(dashboard: dict[str, Any], slow: Any, shots: Path,
                                            size: tuple[int, int], load: int) -> None:
    server = dashboard["server"]
    open_page(slow, server.url + "/", size)
    for line in PLANT.lines:
        want = theme.pct(api(server, f"/api/lines/{line.id}/kpis?start=shift")["oee"])
        wait_for(lambda lid=line.id, w=want: text_of(slow, field("ov-field", lid, "oee")) == w, SLOW,
                 what=f"{line.id} card OEE {want}")
    screenshot(slow, shots, f"slow_overview_{size[0]}x{size[1]}")
    assert small_touch_targets(slow) == []
    if size[0] < 1920:  # a tablet: every line at a glance, no scrolling
        bottoms = slow.execute_script(
            "return Array.from(document.querySelectorAll('.ov-card')).map(c => c.getBoundingClientRect().bottom)")
        assert len(bottoms) == len(PLANT.lines)
        assert max(bottoms) <= slow.execute_script("return window.innerHeight"), bottoms
    no_console_errors(slow)


@pytest.mark.parametrize(("size", "load"), LOADS, ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else None)
def test_throttled_machine_page(dashboard: dict[str, Any], slow: Any, shots: Path, size: tuple[int, int],
                                load: int) -> None:
    from selenium.webdriver.common.by import By

    server = dashboard["server"]
    line = PLANT.lines[load % len(PLANT.lines)]
    machine = line.machines[load].id
    query = ["start=shift", "start=yesterday", "start=today"][load]
    open_page(slow, f"{server.url}/line/{line.id}/machine/{machine}?{query}", size)
    kpis = api(server, f"/api/lines/{line.id}/machines/{machine}/kpis?{query}")
    want = [theme.pct(kpis[k]) for k in ("oee", "availability", "performance", "quality")]
    wait_for(lambda: texts(slow, "#mc-tiles .kpi-value")[:4] == want, SLOW, what=f"machine tiles {want}")
    for graph in ("mc-timeline", "mc-power", "mc-parts"):
        wait_for(lambda g=graph: figure(slow, g), SLOW, what=graph)
    assert [t["name"] for t in figure(slow, "mc-power")] == [machine]  # type: ignore[union-attr]
    wait_for(lambda: text_of(slow, "#mc-live"), SLOW, what="live card")
    crumbs = slow.find_element(By.CSS_SELECTOR, f".crumbs a[href^='/line/{line.id}?']").get_attribute("href")
    assert query in crumbs
    screenshot(slow, shots, f"slow_machine_{line.id}_{machine}_{size[0]}x{size[1]}")
    no_console_errors(slow)

