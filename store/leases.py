"""The rollup workers' line leases and the registry of running workers.

Several workers share a plant's lines: each line is leased to one worker at a time
(``contract.rollup_lease_key``, renewed every pass), and the running workers, registered
in ``contract.rollup_workers_key`` when they renew, take an equal share each; a worker
above its share (another one started) gives lines back. A commit checks the lease again
under its WATCH (``store.line_commit``).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from domain import contract
from store.clients import is_cluster

log = logging.getLogger(__name__)

# Renews the lease if we hold it (1), takes it if free and ARGV[3] is not '0' (2), else 0.
_LEASE_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder and ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LineLeases:
    """One worker's leases on a plant's lines (``held``) and its entry in the registry."""

    def __init__(self, redis_client: redis.Redis, line_ids: list[str], lease_ms: int) -> None:
        self.redis = redis_client
        self.line_ids = list(line_ids)
        self.lease_ms = lease_ms
        self.token = uuid.uuid4().hex
        self._lease = self.redis.register_script(_LEASE_SCRIPT)
        self._release = self.redis.register_script(_RELEASE_SCRIPT)
        self.held: set[str] = set()

    def share(self) -> int:
        """How many lines this worker may hold: an equal share among the running workers
        (each registers when it renews its leases; one not heard of for a lease is gone)."""
        key = contract.rollup_workers_key()
        wall_ms = int(time.time() * 1000)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, self.token, wall_ms)
            pipe.pexpire(key, 10 * self.lease_ms)
            pipe.hgetall(key)
            seen = pipe.execute()[2]
        gone = [token for token, at in seen.items() if int(at) < wall_ms - self.lease_ms]
        if gone:
            self.redis.hdel(key, *gone)
        return math.ceil(len(self.line_ids) / max(len(seen) - len(gone), 1))

    def renew(self, took_over: Callable[[str], None]) -> list[str]:
        """The lines this worker may process now (a line has one worker at a time, a
        worker its share of the lines): all leases in one round trip on one server (one
        per line on a cluster). A worker above its share (another one started) gives
        lines back. ``took_over`` is called with each line taken (to load its state)."""
        share = self.share()
        take = "1" if len(self.held) < share else "0"
        keys = [contract.rollup_lease_key(line_id) for line_id in self.line_ids]
        args: list[str | int] = [self.token, self.lease_ms, take]
        replies: list[Any]
        if is_cluster(self.redis):  # redis-py runs no script in a cluster pipeline: one call per line
            replies = [self._lease(keys=[key], args=args) for key in keys]
        else:
            with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.evalsha(self._lease.sha, 1, key, *args)
                replies = pipe.execute(raise_on_error=False)
        kept, taken = [], []
        for line_id, key, reply in zip(self.line_ids, keys, replies, strict=True):
            if isinstance(reply, redis.exceptions.NoScriptError):  # a restarted Redis, a node not asked before
                reply = self._lease(keys=[key], args=args)
            elif isinstance(reply, Exception):
                raise reply
            got = int(reply)
            if got == 1 and line_id in self.held:
                kept.append(line_id)
            elif got:
                taken.append(line_id)
            elif line_id in self.held:
                log.warning("line %s: lease lost to another rollup worker", line_id)
        room = max(0, share - len(kept))
        surplus = kept[share:] + taken[room:]
        for line_id in surplus:  # committed at the end of the last pass: nothing in flight
            self._release(keys=[contract.rollup_lease_key(line_id)], args=[self.token])
        if surplus:
            log.info("rollup worker %s: gave back lines %s (its share is %d)", self.token[:8], surplus, share)
        held = kept[:share] + taken[:room]
        for line_id in taken[:room]:
            log.info("line %s: this worker (%s) took over", line_id, self.token[:8])
            took_over(line_id)
        self.held = set(held)
        return [line_id for line_id in self.line_ids if line_id in self.held]

    def release_all(self) -> None:
        """Gives the lines back at once and leaves the registry."""
        for line_id in sorted(self.held):
            self._release(keys=[contract.rollup_lease_key(line_id)], args=[self.token])
        self.held = set()
        self.redis.hdel(contract.rollup_workers_key(), self.token)
