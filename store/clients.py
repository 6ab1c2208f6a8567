"""The one place Redis clients are made: a plain server or a Redis Cluster, with timeouts
per role.

``REDIS_URL`` may point at a single server (``redis://``, ``rediss://``) or at any node of
a Redis Cluster: ``redis+cluster://host:port/`` (``rediss+cluster://`` with TLS) says so
explicitly; a plain URL whose server answers ``cluster_enabled:1`` is taken as a cluster
node too. Every key of a line carries the line as a hash tag (``plant:{<line>}:...``), so a
line lives in one hash slot: the collector's scripts and pipelines, the worker's
transactions and the readers' pipelines never span slots within a line.

Roles: ``screen`` (the dashboard and API: short timeouts, one quick retry, so an outage
shows as "no data" at once), ``worker`` and ``collector`` (longer timeouts: a slow reply is
better than a retried write), ``tool`` (command-line tools, start-up checks). The parts get
their clients from the settings (``client_for``, ``async_client_for``: the URL and the
socket timeout of their role, ``Settings.redis_timeout_*_s``); nothing outside ``store/``
(and the tests) makes a Redis client.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)

Role = Literal["screen", "worker", "collector", "tool"]
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

_TIMEOUTS: dict[str, dict[str, Any]] = {
    "screen": {"socket_timeout": 2.0, "socket_connect_timeout": 2.0},
    "worker": {"socket_timeout": 30.0, "socket_connect_timeout": 5.0},
    "collector": {"socket_timeout": 10.0, "socket_connect_timeout": 2.0},
    "tool": {"socket_timeout": 10.0, "socket_connect_timeout": 5.0},
}
HEALTH_CHECK_INTERVAL_S = 30  # a pooled connection idle this long is pinged before use (single server)


def require_url(url: str | None) -> str:
    if not url:
        raise ValueError("no Redis URL: set REDIS_URL, or start an embedded redis-server at the entry point "
                         "and pass its url in the settings")
    return url


def _role_options(settings: Settings, role: Role) -> dict[str, Any]:
    timeout = {"screen": settings.redis_timeout_screen_s, "collector": settings.redis_timeout_collector_s,
               "worker": settings.redis_timeout_worker_s}.get(role)
    options: dict[str, Any] = {"health_check_interval": HEALTH_CHECK_INTERVAL_S}
    if timeout is not None:
        options["socket_timeout"] = timeout
    return options


def client_for(settings: Settings, role: Role, **extra: Any) -> Any:
    """The sync client of a part (``connect``) for ``settings.redis_url``, with its role's
    socket timeout from the settings. Raises ValueError without a URL."""
    return connect(require_url(settings.redis_url), role, **{**_role_options(settings, role), **extra})


def async_client_for(settings: Settings, role: Role = "collector", **extra: Any) -> Any:
    """The asyncio client of a part (``connect_async``), as ``client_for``."""
    return connect_async(require_url(settings.redis_url), role, **{**_role_options(settings, role), **extra})


def node(url: str, role: Role = "tool", **extra: Any) -> redis.Redis:
    """A plain client of the one server at ``url`` (a ``+cluster`` scheme is read as the
    node itself): start-up checks, the embedded server, command-line tools."""
    return connect(plain_url(url), role, detect=False, **extra)  # type: ignore[no-any-return]


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def plain_url(url: str) -> str:
    """The URL with a ``+cluster`` scheme turned into the ordinary one."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, *parts[1:]))


def _cluster_enabled(url: str, options: dict[str, Any]) -> bool:
    probe = redis.Redis.from_url(url, **options)
    try:
        return bool(probe.info("cluster").get("cluster_enabled"))
    except redis.ResponseError:  # INFO refused (ACL): assume a single server
        return False
    finally:
        probe.close()


def _resolve(url: str, role: Role, extra: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """(plain URL, client options, is a cluster) for ``connect`` and ``connect_async``."""
    detect = extra.pop("detect", True)
    options: dict[str, Any] = {**_TIMEOUTS[role], **extra}
    plain = plain_url(url)
    cluster = is_cluster_url(url)
    if not cluster and detect:
        try:
            cluster = _cluster_enabled(plain, options)
        except redis.RedisError:
            cluster = False
    if cluster:
        options.pop("health_check_interval", None)
        log.info("Redis Cluster at %s", urlsplit(plain).hostname)
    return plain, options, cluster


def connect(url: str, role: Role = "tool", **extra: Any) -> Any:
    """A client for ``url``: ``redis.Redis`` or ``redis.cluster.RedisCluster``.

    The cluster is detected from the scheme, or from the server when ``detect`` is true
    (the default; it needs the server up: a part that starts before Redis passes
    ``detect=False`` and uses the scheme alone)."""
    if role == "screen":
        extra.setdefault("retry", Retry(ExponentialBackoff(cap=0.2, base=0.05), 1))
    plain, options, cluster = _resolve(url, role, extra)
    if cluster:
        return RedisCluster.from_url(plain, **options)
    return redis.Redis.from_url(plain, **options)


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def node_client(client: Any, key: str) -> Any:
    """The client to pipeline scripts on for ``key``'s hash slot: for a cluster, the plain
    client of the master holding the slot (redis-py's cluster pipeline refuses EVALSHA;
    every key of a line shares one slot, so a line's script batch runs on one node); for a
    single server, the client itself."""
    if not is_cluster(client):
        return client
    return client.get_redis_connection(client.get_node_from_key(key))


def connect_async(url: str, role: Role = "collector", **extra: Any) -> Any:
    """The asyncio flavour of ``connect``: ``redis.asyncio.Redis`` or
    ``redis.asyncio.cluster.RedisCluster`` (the collector). Detection probes the server
    synchronously, once, at start; a collector that starts before Redis detects nothing,
    so on a cluster it should be given the ``redis+cluster://`` scheme."""
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    plain, options, cluster = _resolve(url, role, extra)
    if cluster:
        return AsyncRedisCluster.from_url(plain, **options)
    return redis.asyncio.Redis.from_url(plain, **options)


def is_async_cluster(client: Any) -> bool:
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    return isinstance(client, AsyncRedisCluster)
