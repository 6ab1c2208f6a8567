"""The line page as a slow tablet sees it (``tests/throttled_support.py``): this shift,
yesterday and a custom range across midnight, at the three screen sizes, every panel drawn
with the HTTP API's numbers; the engineer's paths (this shift -> Yesterday -> a custom
range by buttons; a Pareto bar's filter in the URL and the stops list) drawn fully at each
step.

The server and its seeded data are ``tests/test_browser.py``'s (each module its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components import panel_data
from tests.test_browser import (  # noqa: F401 - dashboard and shots: the fixtures, shared
    dashboard,
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
from tests.throttled_support import (  # noqa: F401 - slow: the fixture
    LOADS,
    MARKS,
    RANGES,
    SLOW,
    check_line_page,
    local_iso,
    ranges_of,
    slow,
)

pytestmark = MARKS


@pytest.mark.parametrize(("view", "size", "load"), [(view, size, i) for (size, i), view in
                                                     zip(LOADS, ["shift", "yesterday", "custom"], strict=True)],
                         ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else None)
def test_throttled_line_page_draws_every_panel(dashboard: dict[str, Any], slow: Any, shots: Path, view: str,
                                               size: tuple[int, int], load: int) -> None:
    server, now = dashboard["server"], dashboard["now"]
    line = PLANT.lines[load % len(PLANT.lines)].id
    # custom: 22:00 to 01:00 plant time (across midnight and a shift change), no offset in the URL
    start, end = local_iso(now - 4 * 3600), local_iso(now - 3600)
    query = f"start={start}&end={end}" if view == "custom" else RANGES[view]
    open_page(slow, f"{server.url}/line/{line}?{query}", size)
    check_line_page(slow, server, line, f"start={start}%2B08:00&end={end}%2B08:00" if view == "custom" else query)
    if view != "shift":
        assert "(live)" not in text_of(slow, "#range-label")
    if view == "custom":  # read in plant local time, said once
        label = text_of(slow, "#range-label")
        assert label.count("\u2192") == 1 and local_iso(now - 4 * 3600).replace("T", " ") in label
        assert slow.find_element("css selector", "#range-custom-start").size["width"] >= 150
    screenshot(slow, shots, f"slow_line_{line}_{view}_{size[0]}x{size[1]}")
    assert small_touch_targets(slow) == []
    no_console_errors(slow)



def test_open_yesterdays_bad_shift_by_button_and_custom_range(dashboard: dict[str, Any], slow: Any,
                                                              shots: Path) -> None:
    """The engineer's path: this shift -> Yesterday -> a custom range; every step drawn
    fully, the URL saying what is shown."""
    from selenium.webdriver.common.by import By

    server, now = dashboard["server"], dashboard["now"]
    open_page(slow, f"{server.url}/line/BW1", (1024, 768))
    check_line_page(slow, server, "BW1", "start=shift")
    label = next(e for e in slow.find_elements(By.CSS_SELECTOR, "#range-choice label") if e.text == "Yesterday")
    label.click()
    wait_for(lambda: "start=yesterday" in slow.current_url, SLOW, what="yesterday in the URL")
    check_line_page(slow, server, "BW1", "start=yesterday")

    start, end = local_iso(now - 4 * 3600), local_iso(now - 3600)
    custom = next(e for e in slow.find_elements(By.CSS_SELECTOR, "#range-choice label") if e.text == "Custom")
    custom.click()
    wait_for(lambda: slow.find_element(By.ID, "range-custom-start").is_displayed(), SLOW, what="custom inputs")
    for ident, value in (("range-custom-start", start), ("range-custom-end", end)):
        slow.execute_script(  # what typing does: React sees an input event with the new value
            "var el = document.getElementById(arguments[0]);"
            "Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, arguments[1]);"
            "el.dispatchEvent(new Event('input', {bubbles: true}));", ident, value)
    slow.find_element(By.ID, "range-apply").click()
    wait_for(lambda: "end=" in slow.current_url, SLOW, what="custom range in the URL")
    query = slow.current_url.split("?", 1)[1]
    assert ranges_of(query) == {"start": f"{start}+08:00", "end": f"{end}+08:00"}
    check_line_page(slow, server, "BW1", query)
    screenshot(slow, shots, "slow_line_BW1_custom_1024x768")
    no_console_errors(slow)


def test_pareto_filter_is_in_the_url_and_the_stops_agree(dashboard: dict[str, Any], slow: Any, shots: Path) -> None:
    """Click the top stop reason of a custom range: the URL, the label and the stops list
    say the same; a machine link of the list keeps the range."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from components import downtime_panel, stops_list

    server, now = dashboard["server"], dashboard["now"]
    query = f"start={local_iso(now - 4 * 3600)}%2B08:00&end={local_iso(now - 3600)}%2B08:00"
    open_page(slow, f"{server.url}/line/BW1?{query}", (1024, 768))
    got = check_line_page(slow, server, "BW1", query)
    top = sorted(panel_data.pareto_rows(got["downtime"], "duration"), key=lambda r: r.get("duration_s") or 0,
                 reverse=True)[0]
    group = top.get("group") or str(top.get("reason") or "no_reason")
    bar = slow.find_elements(By.CSS_SELECTOR, "#dt-pareto-duration .bars .point path")[0]
    ActionChains(slow).move_to_element(bar).perform()  # Plotly clicks the point it hovers
    wait_for(lambda: slow.find_elements(By.CSS_SELECTOR, "#dt-pareto-duration .hoverlayer .hovertext"), SLOW,
             what="hover on the top bar")
    ActionChains(slow).click().perform()
    wait_for(lambda: f"reason={group}" in slow.current_url, SLOW, what=f"reason={group} in the URL")
    listed = [e for e in panel_data.downtime_events(got["downtime"]) if stops_list.event_group(e) == group]
    wait_for(lambda: len(slow.find_elements(By.CSS_SELECTOR, "#dt-stops tbody tr")) == len(listed), SLOW,
             what=f"{len(listed)} stops of reason {group}")
    assert text_of(slow, "#dt-filter-label") == downtime_panel.filter_label(group, listed)
    screenshot(slow, shots, "slow_line_BW1_custom_filtered_1024x768", full_page=True)
    links = [a.get_attribute("href") for a in slow.find_elements(By.CSS_SELECTOR, "#dt-stops tbody a")]
    assert links and all("start=" in h and "end=" in h and "reason" not in h for h in links)
    slow.find_elements(By.CSS_SELECTOR, "#dt-stops tbody a")[0].click()
    wait_for(lambda: "/machine/" in slow.current_url and "end=" in slow.current_url, SLOW, what="the machine page")
    wait_for(lambda: texts(slow, "#mc-tiles .kpi-value"), SLOW, what="machine tiles")
    no_console_errors(slow)
