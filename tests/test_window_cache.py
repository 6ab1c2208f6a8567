"""Past ranges computed once and shared: the closed whole hours of a window, summed once per
line, machine, span and rewind count, in Redis for every reader process
(``store.window_cache``); late data that rewrites stored rollups invalidates them."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from domain import contract
from domain.model import Event, Signal
from store.reader import PlantReader
from store.rollup import RollupWorker, WorkerOptions
from tests.history import line_history, write_events
from tests.store_support import HOUR, RECENT, two_machine_plant

START = RECENT + 1.5 * HOUR + 7.25
END = START + 4 * HOUR
NOW = END + 600
OPTIONS = WorkerOptions(lateness_s=10, silence_s=15, grace_s=5)
WINDOW = (START + 10 * 60, END - 25 * 60)  # two and more closed whole hours, minutes on both sides


@pytest.fixture
def plant() -> Any:
    return two_machine_plant()


def roll_up(client: redis.Redis, plant: Any, events: list[Event]) -> None:
    clock = [NOW]
    worker = RollupWorker(client, plant, options=OPTIONS, clock=lambda: clock[0])
    write_events(client, events)
    worker.drain()
    worker.close()


def answers(reader: PlantReader) -> list[Any]:
    return [reader.line_kpis("L1", *WINDOW, NOW), reader.downtime("L1", *WINDOW, NOW),
            reader.energy("L1", *WINDOW, NOW), reader.machine_kpis("L1", "M1", *WINDOW, NOW)]


def test_two_reader_processes_share_a_past_window_and_late_data_invalidates_it(redis_client: redis.Redis,
                                                                               plant: Any) -> None:
    redis_client.flushdb()
    roll_up(redis_client, plant, line_history(plant, "L1", START, END, seed=3, power_every_s=5.0, mean_run_s=400.0))
    first, second = PlantReader(redis_client, plant), PlantReader(redis_client, plant)  # two server processes
    uncached = PlantReader(redis_client, plant, window_cache_ttl_s=0)

    got = answers(first)
    assert first.window_reads.window_sums.computed == 2, "each machine's closed hours summed once"
    assert first.window_reads.window_sums.shared_hits == 0
    assert redis_client.keys(b"*wsums*"), "kept in Redis"
    assert answers(second) == got == answers(uncached)
    assert second.window_reads.window_sums.computed == 0, "the other process read it from Redis"
    assert second.window_reads.window_sums.shared_hits == 2

    # a link outage that arrives late, inside the window's closed hours (a signal the machine had
    # not sent: not a re-read): the worker rewinds and rewrites the stored rollups
    late_at = START + 2 * HOUR + 30
    write_events(redis_client, [Event("L1", "M2", Signal.LINK, "down", "Good", late_at),
                                Event("L1", "M2", Signal.LINK, "up", "Good", late_at + 300)])
    roll_up(redis_client, plant, [])
    assert int(redis_client.hget(contract.rollup_state_key("L1"), "amend") or 0) >= 1, "the worker rewound"

    after = answers(second)
    assert second.window_reads.window_sums.computed == 2, "the old sums are not used"
    assert after != got
    assert after == answers(PlantReader(redis_client, plant)) == answers(PlantReader(redis_client, plant,
                                                                                     window_cache_ttl_s=0))


def test_a_rolling_window_reuses_its_closed_hours_and_equals_an_uncached_read(redis_client: redis.Redis,
                                                                              plant: Any) -> None:
    redis_client.flushdb()
    roll_up(redis_client, plant, line_history(plant, "L1", START, END, seed=4, power_every_s=5.0, mean_run_s=400.0))
    reader = PlantReader(redis_client, plant)
    uncached = PlantReader(redis_client, plant, window_cache_ttl_s=0)
    for minutes in (0, 1, 7):  # "the last 3 hours" as the clock moves on within an hour
        now = END - 20 * 60 + minutes * 60
        assert reader.line_kpis("L1", now - 3 * HOUR, now, now) == uncached.line_kpis("L1", now - 3 * HOUR, now, now)
    assert reader.window_reads.window_sums.computed == 2, "the same closed hours: summed once"


def test_a_redis_that_lost_its_data_is_not_answered_from_what_was_read_before(redis_client: redis.Redis,
                                                                              plant: Any) -> None:
    """Redis restarted empty and the worker rolled up what came since (its commit counter
    began again): the reader's caches of what was final before are dropped."""
    redis_client.flushdb()
    events = line_history(plant, "L1", START, END, seed=3, power_every_s=5.0, mean_run_s=400.0)
    for chunk in range(4):  # several commits: the counter the reader sees is past 1
        roll_up(redis_client, plant, [e for e in events if START + chunk * HOUR <= e.ts < START + (chunk + 1) * HOUR])
    reader = PlantReader(redis_client, plant)
    before = answers(reader)
    redis_client.flushdb()
    roll_up(redis_client, plant, line_history(plant, "L1", START, END, seed=4, power_every_s=5.0, mean_run_s=400.0))
    after = answers(reader)
    assert after != before
    assert after == answers(PlantReader(redis_client, plant, window_cache_ttl_s=0))


def test_a_machine_whose_watermark_entered_a_new_minute_is_read_again_alone(redis_client: redis.Redis,
                                                                            plant: Any) -> None:
    """A live window's closed sums are kept per machine and its watermark's minute: the
    machines' watermarks enter a new minute at different commits, and each time only that
    machine's stored rollups are read and summed again. A machine's sum does not depend on
    which others are asked with it (each is composed at its own last closed hour)."""
    from dataclasses import replace

    redis_client.flushdb()
    events = line_history(plant, "L1", START, END, seed=6, power_every_s=5.0, mean_run_s=400.0)
    clock = [END - 30 * 60]
    worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    write_events(redis_client, [e for e in events if e.ts <= clock[0]])
    worker.drain()
    reader = PlantReader(redis_client, plant)
    early = reader.window_reads.snapshot("L1")
    write_events(redis_client, [e for e in events if e.ts > clock[0]])
    clock[0] = END
    worker.drain()
    worker.close()
    late = PlantReader(redis_client, plant).window_reads.snapshot("L1")
    assert all(late.watermark(m) >= early.watermark(m) + 25 * 60 for m in ("M1", "M2"))  # type: ignore[operator]
    mixed = replace(early, heads={**early.heads, "M1": late.heads["M1"]})  # M1's watermark moved on, M2's not

    keys: list[str] = []  # what the reader's closed rollups read
    rollups = reader.window_reads.rollups
    real = rollups.redis

    class Spying:
        def pipeline(self, *args: Any, **kwargs: Any) -> Any:
            pipe = real.pipeline(*args, **kwargs)
            hgetall, get = pipe.hgetall, pipe.get
            pipe.hgetall = lambda key: (keys.append(key), hgetall(key))[1]
            pipe.get = lambda key: (keys.append(key), get(key))[1]
            return pipe

    rollups.redis = Spying()
    reader.window_reads.window_sums.rollups = rollups
    bounds = [START, END]
    first = reader.window_reads._closed_sums("L1", early, ["M1", "M2"], bounds)
    assert any(":M1:" in k for k in keys) and any(":M2:" in k for k in keys), keys
    keys.clear()
    again = reader.window_reads._closed_sums("L1", early, ["M1", "M2"], [START, END + 5])  # the clock moved on
    assert keys == [] and again == first, "nothing read again within the watermarks' minutes"
    moved = reader.window_reads._closed_sums("L1", mixed, ["M1", "M2"], bounds)
    assert keys and all(":M1:" in k for k in keys), keys  # M1's rollups only
    assert moved["M2"] == first["M2"] and moved["M1"] != first["M1"]
    for snapshot, got in ((early, first), (mixed, moved)):  # as a fresh reader sums each machine, alone or not
        fresh = PlantReader(redis_client, plant, window_cache_ttl_s=0).window_reads
        assert got == fresh._closed_sums("L1", snapshot, ["M1", "M2"], bounds)
        assert got["M1"] == fresh._closed_sums("L1", snapshot, ["M1"], bounds)["M1"]
        assert got["M2"] == PlantReader(redis_client, plant).window_reads._closed_sums("L1", snapshot, ["M2"],
                                                                                       bounds)["M2"]
