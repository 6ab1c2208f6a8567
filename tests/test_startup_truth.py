"""A screen never says the server is down when it answers: while the rollup worker works
through a backlog (as after ``python app.py`` writes the demo history), the wall keeps its
figures and says "catching up history (n %)", from the worker's lag in ``/api/health``.

The backlog: the seeded data was rolled up to its end by the real worker; the server's
clock is then moved 3 h on, so the real ``/api/health`` (real Redis, the worker's real
bookkeeping) reports closed minutes 3 h behind now, as for a worker still catching up.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests.test_pages_weight import CHROMIUM, CLOCK_SHIFT_S, chromium, server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]

BANNER_JS = "const b = document.getElementById('wall-banner'); return b ? [b.className, b.textContent] : null;"
NUMBERS_JS = "return [...document.querySelectorAll('.wall-num-xl')].some(e => /\\d/.test(e.textContent));"


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"no {what} in {timeout:g} s"
        time.sleep(0.25)


def test_wall_says_catching_up_and_keeps_its_figures(server: str, chromium: Any) -> None:  # noqa: F811
    chromium.get(server + "/wall")
    wait_for(lambda: chromium.execute_script(NUMBERS_JS), 60, "numbers on the wall")
    banners: list[str] = []

    def banner() -> list[str]:
        value = chromium.execute_script(BANNER_JS) or ["", ""]
        banners.append(value[1])
        return value  # type: ignore[no-any-return]

    try:
        CLOCK_SHIFT_S["s"] = 3 * 3600.0
        cls, text = wait_for(lambda: (b := banner())[1].startswith("catching up history (") and b, 60,
                             "'catching up history' banner")
        assert "d-none" not in cls and text.split("(")[1].split(" ")[0].isdigit(), text
        root = chromium.find_element("id", "wall-root").get_attribute("class")
        assert "catching-up" in root and "offline" not in root, root
        assert chromium.execute_script(NUMBERS_JS), "the figures it had are gone"
    finally:
        CLOCK_SHIFT_S["s"] = 0.0
    wait_for(lambda: "d-none" in banner()[0], 60, "banner gone once caught up")
    assert not [b for b in banners if "not answering" in b], banners
