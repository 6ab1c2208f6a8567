"""Headless Chromium for the browser tests (Debian's chromium and chromium-driver)."""

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
