"""Redis clients for the live data path.

``settings.redis_url`` is any URL redis-py understands (``redis://``, ``rediss://`` with
TLS, ``unix://``, with user, password and database number), or a Redis Cluster
(``redis+cluster://`` or a node that says it is one: ``store.clients``). When it is None
the entry point starts an embedded redis-server first (``store.embedded``) and passes its
URL on.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from store.clients import connect_async

CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 10.0


def sync_redis(url: str | None) -> redis.Redis:
    """A synchronous client (dashboard, rollup worker, tests)."""
    return redis.Redis.from_url(require_redis_url(url), socket_connect_timeout=CONNECT_TIMEOUT_S,
                                socket_timeout=SOCKET_TIMEOUT_S, health_check_interval=30)


def async_redis(url: str | None) -> Any:
    """An asyncio client (collector): ``redis.asyncio.Redis``, or ``RedisCluster`` for a
    cluster. Timeouts keep an unreachable Redis from hanging a write."""
    return connect_async(require_redis_url(url), "collector", socket_connect_timeout=CONNECT_TIMEOUT_S,
                         socket_timeout=SOCKET_TIMEOUT_S, health_check_interval=30)


def require_redis_url(url: str | None) -> str:
    if not url:
        raise ValueError(
            "no Redis URL: set REDIS_URL, or start an embedded redis-server at the entry point "
            "and pass its url in the settings"
        )
    return url
