"""Is the Redis we are given safe to keep a plant's history in?

Every figure the product shows is rebuilt from what Redis holds, so a Redis without
persistence loses all history when it restarts, and one whose eviction policy can drop
keys loses rollups or stream entries silently when it fills up. Neither shows as an
error anywhere else, so every part checks at start (``check_at_start``) and says so
loudly, and ``/api/health`` serves the same answer (``durability_of``).

Managed Redis services often refuse ``CONFIG``; then ``INFO`` still tells AOF and the
eviction policy (not the RDB snapshot rule), and what could not be read is said.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import redis

from domain import answers
from store.clients import node

log = logging.getLogger(__name__)

SAFE_EVICTION_POLICY = "noeviction"
CHECK_TIMEOUT_S = 2.0  # a check at start must not hold a part up when Redis is away


@dataclass(frozen=True, slots=True)
class Durability:
    """What the Redis server says about keeping our data; ``None`` where it could not be read.

    ``source`` is how it was read: ``config`` (CONFIG GET), ``info`` (INFO, when CONFIG is
    refused) or ``none`` (Redis unreachable or both refused)."""

    source: str
    aof: bool | None = None
    aof_fsync: str | None = None  # appendfsync: always, everysec, no
    rdb_save: str | None = None  # the save rule, "" when snapshots are off
    eviction_policy: str | None = None
    maxmemory_bytes: int | None = None
    error: str | None = None  # why something could not be read
    warnings: tuple[str, ...] = field(default=())

    @property
    def persistent(self) -> bool | None:
        """AOF or RDB snapshots on (None: not known)."""
        if self.aof or (self.rdb_save is not None and self.rdb_save.strip() != ""):
            return True
        if self.aof is False and self.rdb_save is not None:
            return False
        return None

    @property
    def checked(self) -> bool:
        """Both questions answered: persistence and the eviction policy."""
        return self.persistent is not None and self.eviction_policy is not None

    @property
    def ok(self) -> bool:
        return self.checked and not self.warnings

    def to_dict(self) -> answers.Durability:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "source": cast(Literal["config", "info", "none"], self.source),
            "persistent": self.persistent,
            "aof": self.aof,
            "aof_fsync": self.aof_fsync,
            "rdb_save": self.rdb_save,
            "eviction_policy": self.eviction_policy,
            "maxmemory_bytes": self.maxmemory_bytes,
            "error": self.error,
            "warnings": list(self.warnings),
        }


def assess(source: str, *, aof: bool | None, aof_fsync: str | None, rdb_save: str | None,
           eviction_policy: str | None, maxmemory_bytes: int | None, error: str | None = None) -> Durability:
    """The verdict on what was read (pure: the table-tested part)."""
    found = Durability(source, aof, aof_fsync, rdb_save, eviction_policy, maxmemory_bytes, error)
    warnings: list[str] = []
    if found.persistent is False:
        warnings.append("Redis persistence is off (appendonly no, save \"\"): a restart of Redis loses all history; "
                        "production needs appendonly yes with appendfsync everysec (or RDB snapshots)")
    elif found.persistent is None:
        warnings.append("could not check Redis persistence" + _because(error)
                        + ": make sure the server runs with appendonly yes (appendfsync everysec) or RDB snapshots")
    if eviction_policy is None:
        warnings.append("could not check the Redis eviction policy" + _because(error)
                        + f": make sure maxmemory-policy is {SAFE_EVICTION_POLICY}")
    elif eviction_policy != SAFE_EVICTION_POLICY:
        limit = "no maxmemory set yet" if not maxmemory_bytes else f"maxmemory {maxmemory_bytes} bytes"
        warnings.append(f"Redis maxmemory-policy is {eviction_policy} ({limit}): when Redis fills up it drops keys "
                        f"(stream entries, rollups, the worker's bookkeeping) without an error; production needs "
                        f"maxmemory-policy {SAFE_EVICTION_POLICY}, so a full Redis refuses writes and the collector "
                        f"buffers instead")
    return Durability(source, aof, aof_fsync, rdb_save, eviction_policy, maxmemory_bytes, error, tuple(warnings))


def _because(error: str | None) -> str:
    return f" ({error})" if error else ""


def durability_of(redis_client: redis.Redis) -> Durability:
    """Read persistence and eviction settings; never raises for Redis errors (they are the answer)."""
    try:
        return _from_config(redis_client)
    except redis.ConnectionError as exc:
        return assess("none", aof=None, aof_fsync=None, rdb_save=None, eviction_policy=None, maxmemory_bytes=None,
                      error=f"Redis unreachable: {exc}")
    except redis.RedisError as exc:  # CONFIG disabled or not permitted (managed Redis, ACLs)
        refused = f"CONFIG GET refused: {exc}"
    try:
        return _from_info(redis_client, refused)
    except redis.RedisError as exc:
        return assess("none", aof=None, aof_fsync=None, rdb_save=None, eviction_policy=None, maxmemory_bytes=None,
                      error=f"{refused}; INFO refused: {exc}")


def _from_config(redis_client: redis.Redis) -> Durability:
    with redis_client.pipeline(transaction=False) as pipe:
        for name in ("appendonly", "appendfsync", "save", "maxmemory-policy", "maxmemory"):
            pipe.config_get(name)
        replies = pipe.execute()
    config: dict[str, str] = {}
    for reply in replies:
        config.update({_text(k): _text(v) for k, v in dict(reply).items()})
    if "appendonly" not in config or "maxmemory-policy" not in config:
        raise redis.ResponseError("CONFIG GET answered without appendonly or maxmemory-policy")
    return assess("config", aof=config["appendonly"].lower() == "yes", aof_fsync=config.get("appendfsync"),
                  rdb_save=config.get("save"), eviction_policy=config["maxmemory-policy"],
                  maxmemory_bytes=_int(config.get("maxmemory")))


def _from_info(redis_client: redis.Redis, refused: str) -> Durability:
    """INFO persistence/memory: AOF on or off and the eviction policy; the snapshot rule is not in INFO."""
    persistence: Mapping[str, Any] = redis_client.info("persistence")
    memory: Mapping[str, Any] = redis_client.info("memory")
    aof = persistence.get("aof_enabled")
    policy = memory.get("maxmemory_policy")
    return assess("info", aof=None if aof is None else bool(int(aof)), aof_fsync=None, rdb_save=None,
                  eviction_policy=None if policy is None else str(policy),
                  maxmemory_bytes=_int(memory.get("maxmemory")), error=f"{refused}; the RDB snapshot rule is unknown")


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _int(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def check_at_start(redis_or_url: redis.Redis | str, part: str) -> Durability:
    """Check the Redis a part is given and log a WARNING per problem (once, at start).

    Takes a URL (a short-lived client with short timeouts is used, so a Redis that is
    down delays nothing: the collector must start and buffer then) or a client."""
    if isinstance(redis_or_url, str):
        client = node(redis_or_url, socket_timeout=CHECK_TIMEOUT_S,  # the node given
                                      socket_connect_timeout=CHECK_TIMEOUT_S)
        try:
            result = durability_of(client)
        finally:
            client.close()
    else:
        result = durability_of(redis_or_url)
    for warning in result.warnings:
        log.warning("%s: %s", part, warning)
    if result.ok:
        log.info("%s: Redis keeps its data (AOF %s, save %r, maxmemory-policy %s)", part,
                 "on, appendfsync " + str(result.aof_fsync) if result.aof else "off", result.rdb_save,
                 result.eviction_policy)
    return result
