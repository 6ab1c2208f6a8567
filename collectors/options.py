"""The collector's tunables (``CollectorOptions``) and each endpoint's counters."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CollectorOptions:
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 15.0
    request_timeout_s: float = 4.0  # per OPC UA request
    health_check_s: float = 1.0  # asyncua's probe of the server state
    keepalive_s: float | None = None  # default: min(plant.heartbeat_s, 10)
    watchdog_factor: float = 3.0  # silent for this many keep-alive intervals: rebuild
    items_per_call: int = 1000  # monitored items per CreateMonitoredItems request
    session_timeout_ms: int = 60_000
    redis_retry_initial_s: float = 0.25  # while Redis is unreachable: first retry after this
    redis_retry_max_s: float = 10.0  # ... doubling up to this
    max_future_s: float = 300.0  # values stamped further ahead of the collector's clock: BadTimestampFuture
    shutdown_s: float = 4.0  # on stop: close the sessions and write the last batch within about this


@dataclass
class EndpointStats:
    connects: int = 0
    notifications: int = 0
    outages: int = 0
    rebuilds: int = 0  # silent subscriptions rebuilt by the watchdog
