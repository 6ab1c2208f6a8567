"""Headless Chromium for the browser tests (Debian's chromium and chromium-driver), and the check
that a page fits its screen with nothing cut off (``check_fits``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")

ROOT = Path(__file__).resolve().parent.parent


def screenshot_dir() -> Path:
    """Where the browser tests leave their screenshots: $SCREENSHOT_DIR, else ./screenshots."""
    return Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "screenshots").resolve()


needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium (CI installs it)")


def new_chromium(*, logs: tuple[str, ...] = ("browser",), extra_flags: tuple[str, ...] = (),
                 page_load_timeout_s: float = 60.0) -> Any:
    """A headless Chromium; ``logs``: the log types it keeps for ``driver.get_log``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + extra_flags:
        options.add_argument(flag)
    if logs:
        options.set_capability("goog:loggingPrefs", dict.fromkeys(logs, "ALL"))
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(page_load_timeout_s)
    return driver


# Every visible text node (SVG text of the charts too) with its box, read in one script.
VISIBLE_TEXTS = """
const out = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const text = node.textContent.trim();
  const el = node.parentElement;
  if (!text || !el || el.closest('script, style, title, .d-none, [hidden]')) continue;
  const style = getComputedStyle(el);
  if (style.visibility === 'hidden' || style.display === 'none') continue;
  const range = document.createRange();
  range.selectNodeContents(node);
  const rects = Array.from(range.getClientRects()).filter(r => r.width > 0 && r.height > 0);
  if (!rects.length) continue;
  out.push({text: text, left: Math.min(...rects.map(r => r.left)), right: Math.max(...rects.map(r => r.right)),
            bottom: Math.max(...rects.map(r => r.bottom)), font: style.fontFamily,
            cls: (el.getAttribute('class') || '').toString()});
}
return {texts: out, width: window.innerWidth, height: window.innerHeight,
        scrollWidth: document.documentElement.scrollWidth, scrollHeight: document.documentElement.scrollHeight};
"""

# Content that does not fit the box that clips it (a wall tile, a card, a KPI tile): cut
# off, not shortened on purpose (an ellipsis or a line clamp shortens on purpose).
CLIPPED = """
const out = [];
for (const box of document.querySelectorAll(arguments[0])) {
  for (const el of [box, ...box.querySelectorAll('*')]) {
    if (el.closest('.d-none') || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.overflowX === 'visible' && style.overflowY === 'visible') continue;
    if (style.textOverflow === 'ellipsis' || style.webkitLineClamp !== 'none') continue;
    if (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1) {
      out.push(`${el.getAttribute('class') || el.tagName} (${el.scrollWidth}x${el.scrollHeight} in `
               + `${el.clientWidth}x${el.clientHeight}): ${el.innerText.trim().replace(/\\s+/g, ' ').slice(0, 80)}`);
    }
  }
}
return out;
"""


# Content wider than its cell (a wall tile's column): it would run over the next one.
SPILLED = """
return Array.from(document.querySelectorAll(arguments[0]))
  .filter(el => el.getClientRects().length && el.scrollWidth > el.clientWidth + 1)
  .map(el => (el.getAttribute('class') || el.tagName) + ': ' + el.innerText.trim().slice(0, 80));
"""


def check_fits(driver: Any, size: tuple[int, int], boxes: str, full_screen: bool, cells: str = ".wall-cell"
               ) -> dict[str, Any]:
    """Fails on a page wider than the screen, text outside it (below it too on a
    ``full_screen`` page such as the wall), text cut off in one of its ``boxes`` (a wall
    tile, a card) or running out of one of its ``cells``. Returns the visible texts."""
    seen: dict[str, Any] = driver.execute_script(VISIBLE_TEXTS)
    width, height = seen["width"], seen["height"]
    assert seen["scrollWidth"] <= width + 1, f"page wider than the screen: {seen['scrollWidth']} > {width}"
    outside = [t["text"][:40] for t in seen["texts"] if t["right"] > width + 1 or t["left"] < -1
               or (full_screen and t["bottom"] > height + 1)]
    assert outside == [], f"text outside the screen at {size}"
    assert driver.execute_script(CLIPPED, boxes) == [], f"text clipped in its box at {size}"
    assert driver.execute_script(SPILLED, cells) == [], f"text spilling out of its cell at {size}"
    return seen
