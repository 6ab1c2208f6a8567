"""Retention of what the rollup worker writes without an expiry: stops, state changes and
flags (sorted sets scored by time), machines' hourly checkpoints, and the people's
classifications of stops (kept as long as the stops: ``downtime_days``). Rollup keys carry
their own expiry (``store.line_writes``); the worker runs this once per
``retention_every_s``.
"""

from __future__ import annotations

import logging

import redis

from domain import contract
from domain.plant import Plant
from store.classifications import Classifications

log = logging.getLogger(__name__)

DAY_S = 86400


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def apply_retention(redis_client: redis.Redis, plant: Plant, now: float) -> None:
    """Drops stops, state changes, flags, checkpoints and classifications past their
    retention; rollup keys expire by themselves."""
    keep = plant.retention
    classifications = Classifications(redis_client)
    for line in plant.lines:
        stops = redis_client.zremrangebyscore(contract.stops_key(line.id), "-inf",
                                              f"({now - keep.downtime_days * DAY_S}")
        states = redis_client.zremrangebyscore(contract.states_key(line.id), "-inf",
                                               f"({now - keep.minute_rollup_days * DAY_S}")
        flags = redis_client.zremrangebyscore(contract.flags_key(line.id), "-inf",
                                              f"({now - keep.downtime_days * DAY_S}")
        classified = classifications.trim(line.id, now - keep.downtime_days * DAY_S)
        if stops or states or flags or classified:
            log.info("line %s: retention removed %d stops, %d state changes, %d flags and %d classifications",
                     line.id, stops, states, flags, classified)
        oldest_checkpoint = now - keep.stream_days * DAY_S
        for machine in line.machines:
            key = contract.checkpoints_key(line.id, machine.id)
            old = [f for f in redis_client.hkeys(key) if float(_text(f)) < oldest_checkpoint]
            if old:
                redis_client.hdel(key, *old)
