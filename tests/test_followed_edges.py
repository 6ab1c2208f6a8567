"""The open edge a long-lived reader follows across reads and worker commits
(``store.open_edges.OpenEdges._followed``) gives, at every moment, the figures of the open edge restored
from the worker's carry for that read (``OpenEdges._restored``): with late, delayed and
bursty arrivals, rewinds, reads before and after each worker pass, and reads at an
earlier ``now`` than the last."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.contract import events_key, rollup_state_key
from domain.model import Event, Signal, State
from store.reader import PlantReader
from store.rollup import RollupWorker
from store.windows import Window, bucket_bounds
from tests.history import line_history, write_events
from tests.store_support import assert_close, two_machine_plant
from tests.test_event_time import END, OPTIONS, START, delayed, on_time, outage_window

MACHINES = ["M1", "M2"]


@pytest.fixture(scope="module")
def plant() -> Any:
    return two_machine_plant()


@pytest.fixture(scope="module")
def events(plant: Any) -> list[Event]:
    return line_history(plant, "L1", START, END, seed=5, power_every_s=5.0, mean_run_s=300.0)


def stop_rows(stops: list[Any]) -> list[list[Any]]:
    return [list(row) for row in sorted((s.machine, s.start, s.end or 0.0, str(s.state), s.reason) for s in stops)]


def restoring(client: redis.Redis, plant: Any, **options: Any) -> PlantReader:
    """A reader whose open edge is always restored from the carries, and whose stops of the
    day still filling are read whole at every commit and filtered at every read (the reference)."""
    reader = PlantReader(client, plant, **options)
    reader.window_reads.edges._followed = lambda *args, **kwargs: None  # type: ignore[method-assign]
    reader.stop_reads._final.get = lambda key: None  # type: ignore[method-assign]
    reader.stop_reads._filtered.get = lambda key: None  # type: ignore[method-assign]  # filtered at every read
    return reader


def figures(reader: PlantReader, plant: Any, at: float) -> dict[str, Any]:
    """The shift-so-far totals and stops of both machines, and quarter-hour buckets."""
    line = plant.line("L1")
    reads = reader.window_reads
    window, totals, stops = reads.totals(line, MACHINES, START, at, at, stops_of=MACHINES)
    bounds = bucket_bounds(Window(window.start, window.end, ""), 900, reader.tz)
    sums, bucket_stops, _ = reads.buckets(line, MACHINES, bounds, at, MACHINES, classify=False)
    return {
        "end": window.end,
        "totals": {m: t.to_dict() for m, t in totals.items()},
        "stops": stop_rows(stops),
        "buckets": {m: [part.to_totals().to_dict() for part in parts] for m, parts in sums.items()},
        "bucket_stops": stop_rows(bucket_stops),
    }


def followers_of(reader: PlantReader) -> int:
    follow = reader.window_reads.edges._follows.get("L1")
    return 0 if follow is None else len(follow.machines)


def prepared(reader: PlantReader, plant: Any, at: float) -> None:
    """The line prepared as a reader pool child does between rounds (``WindowReads.prepare``):
    its followers then hold every entry of the stream, fed up to ``at``."""
    reader.window_reads.prepare(plant.line("L1"), MACHINES, START, at)
    follow = reader.window_reads.edges._follows.get("L1")
    if follow is not None and follow.machines:
        newest = reader.redis.xrevrange(events_key("L1"), count=1)
        assert follow.pos == newest[0][0].decode() and follow.now >= at


def replay(client: redis.Redis, plant: Any, arrivals: list[tuple[float, Event]], passes: int,
           back_s: float, prepare_lag_s: float | None = None) -> tuple[int, int]:
    """Delivers ``arrivals`` in ``passes`` chunks with the worker passing after each; before
    and after each pass (and ``back_s`` earlier), the followed figures equal the restored
    ones. ``prepare_lag_s``: the followed reader is prepared that long before each read's
    now first (a read ``back_s`` earlier may then come before it). Returns how many reads
    compared, and how many passes without a rewind."""
    arrivals = sorted(arrivals, key=lambda a: a[0])
    clock = [START]
    worker = RollupWorker(client, plant, options=OPTIONS, clock=lambda: clock[0])
    followed, reference = PlantReader(client, plant), restoring(client, plant)
    size = max(1, math.ceil(len(arrivals) / passes))
    compared = plain = 0
    for i in range(0, len(arrivals), size):
        chunk = arrivals[i:i + size]
        write_events(client, [e for _, e in chunk])
        clock[0] = max(clock[0], chunk[-1][0])
        before: dict[str, Any] = {}
        if prepare_lag_s is not None and clock[0] - prepare_lag_s > START + 60:
            prepared(followed, plant, clock[0] - prepare_lag_s)
        for at in (clock[0], clock[0] - back_s):
            if at > START + 60:
                before = before or figures(followed, plant, at)
                assert_close(figures(followed, plant, at), figures(reference, plant, at), f"before pass {i} at {at}",
                             tol=1e-9)
                compared += 1
        amend = client.hget(rollup_state_key("L1"), "amend")
        worker.drain()
        if prepare_lag_s is not None and clock[0] - prepare_lag_s > START + 60:
            prepared(followed, plant, clock[0] - prepare_lag_s)  # a new commit: forgotten, stops kept
        if clock[0] > START + 60:
            after = figures(followed, plant, clock[0])
            assert_close(after, figures(reference, plant, clock[0]), f"after pass {i}", tol=1e-9)
            compared += 1
            if client.hget(rollup_state_key("L1"), "amend") == amend:
                # a pass that did not rewind changes no figure: what the worker stored counts as the open
                # edge did, but for the stored rollups' 7 significant digits per minute (``format_number``)
                assert_close(after, before, f"pass {i} without a rewind", tol=1e-6)
                plain += 1
    worker.close()
    assert followers_of(followed) == 2  # the followed reader did follow (not only fall back)
    return compared, plain


@pytest.mark.timeout(600)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), max_delay_s=st.sampled_from([0.5, 12.0, 400.0]), passes=st.integers(5, 25),
       back_s=st.sampled_from([0.0, 3.0]),
       outage=st.one_of(st.none(), st.tuples(st.floats(0, 0.6), st.floats(0.05, 0.3))))
def test_the_followed_edge_equals_the_edge_restored_for_each_read(redis_client: redis.Redis, plant: Any,
                                                                  events: list[Event], seed: int,
                                                                  max_delay_s: float, passes: int, back_s: float,
                                                                  outage: tuple[float, float] | None) -> None:
    redis_client.flushdb()
    arrivals = delayed(events, seed, max_delay_s, outage_window(outage))
    # (late data may rewind at every pass: those without one are compared by the on-time test)
    assert replay(redis_client, plant, arrivals, passes, back_s)[0] >= passes


@pytest.mark.timeout(600)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), max_delay_s=st.sampled_from([0.5, 12.0, 400.0]), passes=st.integers(5, 25),
       back_s=st.sampled_from([0.0, 3.0]), lag_s=st.sampled_from([0.0, 0.1, 2.0]))
def test_a_line_prepared_between_reads_gives_the_edge_restored_for_each_read(
        redis_client: redis.Redis, plant: Any, events: list[Event], seed: int, max_delay_s: float, passes: int,
        back_s: float, lag_s: float) -> None:
    """Its followers fed ahead of the reads (``WindowReads.prepare``, a reader pool child between
    rounds): the same figures, also for a read at an earlier now than the preparation's."""
    redis_client.flushdb()
    assert replay(redis_client, plant, delayed(events, seed, max_delay_s, None), passes, back_s, lag_s)[0] >= passes


def test_on_time_data_read_every_few_seconds_is_followed(redis_client: redis.Redis, plant: Any,
                                                         events: list[Event]) -> None:
    """The common case, many small passes: the followers restore each machine once."""
    redis_client.flushdb()
    first = [(ts, e) for ts, e in on_time(events) if ts < START + 15 * 60]
    assert replay(redis_client, plant, first, passes=150, back_s=0.0)[1] > 100, "passes without a rewind compared"


def test_a_stop_ending_at_the_watermark_and_a_late_entry_restore_the_machine(redis_client: redis.Redis,
                                                                             plant: Any) -> None:
    """The two cases a follower cannot tell from its own state: both restored, both equal."""
    redis_client.flushdb()
    t0 = START
    clock = [t0]
    worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    followed, reference = PlantReader(redis_client, plant), restoring(redis_client, plant)

    def step(arriving: list[Event], at: float) -> None:
        write_events(redis_client, arriving)
        clock[0] = at
        assert_close(figures(followed, plant, at), figures(reference, plant, at), f"at {at - t0}", tol=1e-9)
        worker.drain()
        assert_close(figures(followed, plant, at), figures(reference, plant, at), f"after {at - t0}", tol=1e-9)

    step([Event("L1", "M1", Signal.STATE, State.RUNNING.value, "Good", t0),
          Event("L1", "M1", Signal.GOOD, 0, "Good", t0)], t0 + 70)
    step([Event("L1", "M1", Signal.STATE, State.FAULT.value, "Good", t0 + 80)], t0 + 85)
    # the worker processes up to the stop's end (newest 100 - lateness 10 = 90)
    step([Event("L1", "M1", Signal.STATE, State.RUNNING.value, "Good", t0 + 90),
          Event("L1", "M1", Signal.GOOD, 3, "Good", t0 + 100)], t0 + 100)
    # an entry older than what the follower fed (within the worker's lateness)
    step([Event("L1", "M1", Signal.GOOD, 2, "Good", t0 + 95)], t0 + 101)
    # late for the worker too: it rewinds
    step([Event("L1", "M1", Signal.REASON, 7, "Good", t0 + 81)], t0 + 130)
    worker.close()
    assert followers_of(followed) == 1


def test_a_worker_far_behind_is_not_followed_until_it_commits(redis_client: redis.Redis, plant: Any,
                                                              events: list[Event]) -> None:
    """More entries not stored by the worker than ``max_edge_events``: the edges are restored
    per read (nothing kept growing meanwhile), and followed again once the worker caught up."""
    redis_client.flushdb()
    clock = [START]
    worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    first = [e for e in events if e.ts < START + 120]
    write_events(redis_client, first)
    clock[0] = START + 120
    worker.drain()
    followed = PlantReader(redis_client, plant, max_edge_events=50)
    reference = restoring(redis_client, plant, max_edge_events=50)  # the edge from the first 50 entries
    at = START + 120
    assert_close(figures(followed, plant, at), figures(reference, plant, at), "caught up", tol=1e-9)
    assert followers_of(followed) == 2
    backlog = [e for e in events if START + 120 <= e.ts < START + 600]  # the worker stopped meanwhile
    assert len(backlog) > 50
    write_events(redis_client, backlog)
    at = START + 600
    assert_close(figures(followed, plant, at), figures(reference, plant, at), "behind", tol=1e-9)
    assert followers_of(followed) == 0
    clock[0] = at
    worker.drain()
    worker.close()
    assert_close(figures(followed, plant, at), figures(reference, plant, at), "caught up again", tol=1e-9)
    assert followers_of(followed) == 2


def test_a_line_with_a_managed_reason_list_is_followed_across_its_refreshes(redis_client: redis.Redis,
                                                                            plant: Any, events: list[Event]) -> None:
    """Managed reason lists copy the line's config when they change (``store.reasons``): an
    equal config keeps the line's followers (restored once, not at every change)."""
    redis_client.flushdb()
    clock = [START]
    worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    write_events(redis_client, [e for e in events if e.ts < START + 300])
    clock[0] = START + 300
    worker.drain()
    worker.close()
    followed = PlantReader(redis_client, plant)
    followed.reason_lists.put_line("L1", sorted(plant.reasons)[:2])
    first = followed.line_kpis("L1", START, START + 300, START + 300)
    kept = followed.window_reads.edges._follows["L1"]
    followed.reason_lists._cached = None  # the next refresh: the same lists give the same plant,
    assert followed.plant.line("L1") is kept.line
    followed.reason_lists._cached = followed.reason_lists._last = None  # a change elsewhere: the line's copied again
    assert followed.plant.line("L1") is not kept.line and followed.plant.line("L1") == kept.line
    again = followed.line_kpis("L1", START, START + 300, START + 300.5)
    assert followed.window_reads.edges._follows["L1"] is kept and followers_of(followed) == 2
    assert again["good_count"] == first["good_count"]


def test_the_day_still_filling_is_read_from_where_its_stops_stopped_changing(redis_client: redis.Redis, plant: Any,
                                                                             events: list[Event]) -> None:
    """After a worker commit a long-lived reader reads the stops set's day still filling
    only from where it read what does not change any more (before every machine's
    watermark and ongoing stop), and has the stops a reference reads whole."""
    redis_client.flushdb()
    clock = [START]
    worker = RollupWorker(redis_client, plant, options=OPTIONS, clock=lambda: clock[0])
    reader, reference = PlantReader(redis_client, plant), restoring(redis_client, plant)
    froms: list[float] = []  # where each read of the stops set with scores began
    apart: list[float] = []  # those in a round trip of their own (not with the bookkeeping)
    real = redis_client.pipeline

    class Spying:  # a client of the reader's: its reads of the stops set with scores
        def __init__(self, reads: list[list[float]]) -> None:
            self.reads = reads

        def pipeline(self, *args: Any, **kwargs: Any) -> Any:
            pipe = real(*args, **kwargs)
            zrange, command = pipe.zrangebyscore, pipe.execute_command

            def spied_zrange(key: str, lo: Any, hi: Any, **options: Any) -> Any:
                if options.get("withscores"):
                    for reads in self.reads:
                        reads.append(float(lo))
                return zrange(key, lo, hi, **options)

            def spied_command(*args: Any, **options: Any) -> Any:
                if args[:1] == ("EVAL",) and args[2:4] == (2, rollup_state_key("L1")):  # the stamp; stops from ARGV[4]
                    for reads in self.reads:
                        reads.append(float(args[-1]))
                return command(*args, **options)

            pipe.zrangebyscore, pipe.execute_command = spied_zrange, spied_command
            return pipe

    reader.stop_reads.redis = Spying([froms, apart])  # type: ignore[assignment]
    reader.window_reads.redis = Spying([froms])  # type: ignore[assignment]
    arrivals = on_time(events)
    for i in range(0, len(arrivals), len(arrivals) // 30):
        chunk = arrivals[i:i + len(arrivals) // 30]
        write_events(redis_client, [e for _, e in chunk])
        clock[0] = chunk[-1][0]
        worker.drain()
        got = figures(reader, plant, clock[0])
        assert got["stops"] == figures(reference, plant, clock[0])["stops"], i
    worker.close()
    # a read from further back: the window's lookback moved (a long stop), another part read whole once
    later = [b for a, b in itertools.pairwise(froms) if b >= a]
    assert len(froms) > 20 and len(later) >= 2 * len(froms) // 3, froms
    assert froms[-1] > froms[0] + 20 * 60, froms
    # and after the first, read in the bookkeeping's round trip (``StopReads.ahead``), not in one of their own
    assert len(apart) <= len(froms) // 4, (apart, froms)
