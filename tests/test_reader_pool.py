"""The reader pool (``store.reader_pool``): lines' live views read in child processes, against
a real Redis and real spawned processes:

* a child answers ``line_now`` exactly as the server's own reader does, errors included;
* a child killed, or one that stops answering (SIGSTOP), never leaves a screen without its
  view: the read is done in the server's process, and the child is started again;
* the dashboard of a big plant (``VIEW_PROCESSES``) computes its pushed line views there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from config.settings import Settings, _view_processes
from store.reader import PlantReader, UnknownLine
from store.reader_pool import PoolUnavailable, ReaderPool, idle_collection, processes_for
from tests.history import line_history
from tests.store_support import HOUR, RECENT, Snapshot, rolled_up_snapshot, two_machine_plant
from tests.test_shared_answers import until

START = RECENT + 1.5 * HOUR + 7.25
END = RECENT + 5.25 * HOUR
NOW = END + 30


@pytest.fixture(scope="module")
def plant() -> Any:
    return two_machine_plant()


@pytest.fixture(scope="module")
def rolled_up(redis_url: str, plant: Any) -> Snapshot:
    events = line_history(plant, "L1", START, END, seed=7, power_every_s=5.0, mean_run_s=300.0)
    return rolled_up_snapshot(redis_url, plant, events, NOW)


@pytest.fixture
def reader(redis_client: redis.Redis, plant: Any, rolled_up: Snapshot) -> PlantReader:
    rolled_up.restore(redis_client)
    return PlantReader(redis_client, plant)


@pytest.fixture
def pool(redis_url: str, plant: Any) -> Iterator[ReaderPool]:
    settings = Settings(plant_path=Path("plant.yaml"), plant=plant, redis_url=redis_url)
    made = ReaderPool(settings, ["L1", "NOPE"], 1, restart_s=0.0)
    yield made
    made.close()


def started(pool: ReaderPool) -> ReaderPool:
    assert pool.wait_ready(60), "the child did not start within 60 s"
    return pool


def child_pid(pool: ReaderPool) -> int:
    run = pool._children[0].run
    assert run is not None
    return int(run.process.pid)


WINDOWS = [  # (start, end, now): the shift so far, a past window, a window ending inside the open minute
    (RECENT + 2 * HOUR, NOW, NOW),
    (RECENT + 2 * HOUR, RECENT + 4 * HOUR, NOW),
    (START, END + 10, END + 10),
]


def test_a_child_answers_as_the_servers_reader(reader: PlantReader, pool: ReaderPool) -> None:
    with pytest.raises(PoolUnavailable):  # starting: the caller reads for itself meanwhile
        pool.line_now("L1", *WINDOWS[0])
    started(pool)
    for start, end, now in WINDOWS:
        for with_live in (True, False):
            got = pool.line_now("L1", start, end, now, with_live=with_live)
            assert got == reader.line_now("L1", start, end, now, with_live=with_live), (start, end, now)
    assert pool.calls == 2 * len(WINDOWS)
    assert 0 < pool.cpu_s < 10 * len(WINDOWS)  # the children's CPU for them, as they measured it
    assert got[0]["pareto"]["by_count"] and got[1]["good_count"] > 0  # a window with stops and parts
    with pytest.raises(UnknownLine, match="NOPE"):  # the reader's own error, raised here
        pool.line_now("NOPE", *WINDOWS[0])
    with pytest.raises(PoolUnavailable, match="no child"):
        pool.line_now("L2", *WINDOWS[0])
    deadline = time.monotonic() + 60  # between requests the child prepares its line's next view (store.preparation)
    while pool.prepared_cpu_s == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.prepared_cpu_s > 0 and pool.early == 0
    assert pool.line_now("L1", *WINDOWS[0]) == reader.line_now("L1", *WINDOWS[0])


def test_a_child_told_of_a_commit_prepares_at_once_and_still_answers(reader: PlantReader, pool: ReaderPool) -> None:
    """``prepare_now`` (the live feed saw the worker commit) tells each child of the lines
    once; the child prepares its lines then, and says so; views asked around the hints, one
    queued right behind a hint and another, are answered as before."""
    started(pool)
    expected = reader.line_now("L1", *WINDOWS[0])
    assert pool.line_now("L1", *WINDOWS[0]) == expected  # the child's line now: it prepares it
    pool.prepare_now(["L1", "NOPE", "L2"])  # L1 and NOPE: the one child; L2: no line of the pool
    assert pool.prepare_hints == 1
    until(lambda: pool.told_preparations == 1, "the child's preparation on being told", 60.0)
    for told in range(2, 4):
        pool.prepare_now(["L1"])
        assert pool.line_now("L1", *WINDOWS[0]) == expected
        until(lambda told=told: pool.told_preparations == told, "the child's preparation on being told", 60.0)
    run = pool._children[0].run
    assert run is not None
    first = run.send(("L1", *WINDOWS[0], True))
    pool.prepare_now(["L1"])  # in the pipe between two requests (read with the round, or on its own)
    second = run.send(("L1", *WINDOWS[0], True))
    for future in (first, second):
        assert future.result(60) == (True, expected, future.result()[2])
    assert pool.prepare_hints == 4


def test_a_killed_child_is_read_around_and_started_again(reader: PlantReader, pool: ReaderPool) -> None:
    started(pool)
    expected = reader.line_now("L1", *WINDOWS[0])
    first = child_pid(pool)
    os.kill(first, signal.SIGKILL)
    calls = pool.calls
    deadline = time.monotonic() + 30
    while pool.line_now_or(reader, "L1", *WINDOWS[0]) == expected and pool.calls == calls:
        assert time.monotonic() < deadline, "the pool never answered again"
        time.sleep(0.05)
    assert pool.calls == calls + 1 and child_pid(pool) != first
    assert pool.line_now("L1", *WINDOWS[0]) == expected


def test_a_child_that_stops_answering_is_stopped_and_read_around(reader: PlantReader, pool: ReaderPool) -> None:
    started(pool)
    pool.timeout_s = 1.0
    expected = reader.line_now("L1", *WINDOWS[1])
    stuck = child_pid(pool)
    os.kill(stuck, signal.SIGSTOP)
    try:
        began = time.monotonic()
        assert pool.line_now_or(reader, "L1", *WINDOWS[1]) == expected  # read here after the timeout
        assert time.monotonic() - began >= 1.0
        run = pool._children[0].run
        assert run is not None and run.dead
        deadline = time.monotonic() + 5
        while run.process.is_alive():  # killed, not left stopped
            assert time.monotonic() < deadline, "the stuck child was not killed"
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed already
            os.kill(stuck, signal.SIGCONT)
    assert started(pool).line_now("L1", *WINDOWS[1]) == expected
    assert child_pid(pool) != stuck


def test_closed_pool_reads_nothing(reader: PlantReader, pool: ReaderPool) -> None:
    started(pool)
    pid = child_pid(pool)
    pool.close()
    with pytest.raises(PoolUnavailable, match="closed"):
        pool.line_now("L1", *WINDOWS[0])
    assert pool.line_now_or(reader, "L1", *WINDOWS[0]) == reader.line_now("L1", *WINDOWS[0])
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and "Z" not in _state(pid):
        assert time.monotonic() < deadline, "the child outlived its pool"
        time.sleep(0.02)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.parametrize(("setting", "lines", "cpus", "expected"), [
    (None, 50, 2, 2),  # auto: a big plant, one child per CPU
    (None, 50, 16, 4),  # at most 4
    (None, 15, 8, 0),  # a small plant computes alone
    (None, 50, 1, 0),  # one CPU: children would only take turns with the server
    (3, 2, 1, 3),  # set: as set
    (0, 50, 8, 0),  # 0: no pool
])
def test_how_many_children(setting: int | None, lines: int, cpus: int, expected: int) -> None:
    assert processes_for(setting, lines, cpus) == expected


@pytest.mark.parametrize(("counts", "expected"), [
    ((4_999, 0, 0), None),  # too few young objects to be worth a collection yet
    ((5_000, 0, 0), 0),  # enough: the young generation
    ((49_000, 20, 0), 0),  # the middle one only once the young ones were collected more than 20 times
    ((5_000, 21, 0), 1),
    ((5_000, 21, 100), 1),  # the old one likewise after more than 100 of the middle one
    ((5_000, 21, 101), 2),
    ((0, 21, 101), None),  # nothing young: nothing (the collector does not start either)
])
def test_an_idle_child_collects_the_generation_the_collector_would(counts: tuple[int, int, int],
                                                                    expected: int | None) -> None:
    assert idle_collection(counts, (50_000, 20, 100)) == expected


@pytest.mark.parametrize(("raw", "expected"), [("", None), ("auto", None), (" 2 ", 2), ("0", 0)])
def test_view_processes_setting(raw: str, expected: int | None) -> None:
    assert _view_processes(raw) == expected


@pytest.mark.parametrize("raw", ["two", "-1", "1.5", "65"])
def test_a_wrong_view_processes_setting_says_what_is_wrong(raw: str) -> None:
    with pytest.raises(SystemExit, match=f"VIEW_PROCESSES: '{raw}' is not 'auto' or a whole number from 0 to 64"):
        _view_processes(raw)


def test_a_big_plants_dashboard_has_a_pool_its_lifespan_closes(redis_url: str, plant: Any) -> None:
    from fastapi.testclient import TestClient

    from api.context import config_of
    from components import data
    from components.app_factory import create_dashboard

    def pool_of(**overrides: Any) -> Any:
        settings = Settings(plant_path=Path("plant.yaml"), plant=plant, redis_url=redis_url, **overrides)
        app = create_dashboard(settings)
        return app, config_of(app.server).get(data.POOL_KEY)

    alone, none = pool_of()
    assert none is None  # auto: two lines compute alone
    assert pool_of(view_processes=0)[1] is None
    app, _ = pool_of(view_processes=2)
    made = config_of(app.server)[data.POOL_KEY]
    assert len(made) == 2
    # the live feed warms 4 lines at once alone, 16 per child with a pool (a round queued: read ahead)
    from store.live_feed import feed_of

    for dash, threads in ((alone, 4), (app, 32)):
        config = config_of(dash.server)
        assert config[data.WARM_KEY].threads == threads
        feed = feed_of(config, lambda: redis.Redis.from_url(redis_url), [line.id for line in plant.lines])
        try:
            assert feed._warm_ups.threads == threads
        finally:
            feed.stop()
    with TestClient(app.server):
        made.start()
    with pytest.raises(PoolUnavailable, match="closed"):
        made.line_now("L1", *WINDOWS[0])


def test_pushed_line_views_are_read_by_the_pool_and_equal_the_servers_own(redis_url: str) -> None:
    """A dashboard with a pool: the line view the live feed's version asks for is computed
    from the child's answer, and equals the view read in the server's process."""
    from api.context import config_of, serving
    from components import data
    from components.app_factory import create_app
    from config.loader import DEMO_PLANT
    from tests.test_browser import Server, history_end, seed_plant
    from tests.test_components import PLANT
    from tests.test_live_feed import CountingReader, Subscriber, following, wait_for

    inner, now = seed_plant(redis_url, PLANT, hours=1.0, end=history_end(PLANT.timezone))
    reader = CountingReader(inner)
    settings = Settings(plant_path=DEMO_PLANT, plant=PLANT, redis_url=redis_url, view_processes=1)
    app = create_app(settings, lambda: reader, clock=lambda: now)
    made = ReaderPool(settings, [line.id for line in PLANT.lines], 1)
    config_of(app.server)[data.POOL_KEY] = made
    server = Server(app)
    server.start()
    sub = Subscriber(server.port, "line=BW1")  # starts the feed
    try:
        wait_for(lambda: sub.events, what="hello")
        feed = following({"app": app})
        assert started(made)
        for _ in range(20):  # at one version of the line (the clock moves versions every few seconds)
            version = feed.version("BW1")
            reader.clear()
            with serving(app.server, "/"):
                views, _ = data.line_views(["BW1"])
            if feed.version("BW1") == version:
                break
        assert reader.methods.get(("line_now", "BW1"), 0) == 0, reader.methods  # not read here
        assert made.calls >= 1
        del config_of(app.server)[data.POOL_KEY]
        with serving(app.server, "/"):
            cfg = data.plant().line("BW1")
            assert cfg is not None
            own = data._line_view(cfg, None, data.shift_context(data.plant(), now), now)
        assert reader.methods.get(("line_now", "BW1"), 0) == 1
        assert {k: v for k, v in views[0].items() if k != "version"} == own
        assert views[0]["status"] and views[0]["output"]  # a view with figures, not an empty one
    finally:
        sub.close()
        made.close()
        from api import live

        live.shutdown(config_of(app.server))
        server.stop()


def test_a_round_read_ahead_is_taken_by_each_view_and_changes_no_answer(redis_client: redis.Redis, plant: Any,
                                                                         rolled_up: Snapshot) -> None:
    """A child with a round of views queued reads their first round trips in one
    (``reader_pool._read_ahead``): each view finds its replies (the plan is what ``line_now``
    sends) and answers as a reader that read for itself; a view planned for another state
    reads for itself."""
    from store.reader_pool import _read_ahead

    rolled_up.restore(redis_client)
    plain, ahead = PlantReader(redis_client, plant), PlantReader(redis_client, plant)
    rounds = [[(0, "L1", *window, live) for window in WINDOWS[:1] for live in (True,)],  # a line's first view
              [(0, "L1", *WINDOWS[0], True), (1, "NOPE", *WINDOWS[0], True)],  # an unknown line is left to its view
              [(0, "L1", *WINDOWS[2], False)]]
    for batch in rounds * 2:  # the views of a line after its first: its followers' position, its stamp kept
        before = ahead.window_reads.ahead.taken
        _read_ahead(ahead, batch)
        for _rid, line, start, end, now, with_live in batch:
            if line == "NOPE":
                with pytest.raises(UnknownLine):
                    ahead.line_now(line, start, end, now, with_live=with_live)
                continue
            assert ahead.line_now(line, start, end, now, with_live=with_live) == plain.line_now(
                line, start, end, now, with_live=with_live)
        assert ahead.window_reads.ahead.taken == before + 1, batch  # L1's view took its replies
    # planned, then another view of the line came first (other commands: no live state): it reads for
    # itself and the plan is dropped; the planned view, after it, reads for itself too
    taken = ahead.window_reads.ahead.taken
    _read_ahead(ahead, [(0, "L1", *WINDOWS[0], True)])
    assert ahead.line_now("L1", *WINDOWS[2], with_live=False) == plain.line_now("L1", *WINDOWS[2], with_live=False)
    assert ahead.line_now("L1", *WINDOWS[0]) == plain.line_now("L1", *WINDOWS[0])
    assert ahead.window_reads.ahead.taken == taken


def test_read_ahead_replies_are_taken_once_and_only_for_the_same_commands(redis_client: redis.Redis) -> None:
    from store.read_ahead import ReadAhead

    redis_client.set("ra:a", "1")
    redis_client.set("ra:b", "2")
    ahead = ReadAhead()
    plan_a = [("get", ("ra:a",), ()), ("get", ("ra:b",), ())]
    plan_b = [("get", ("ra:b",), ())]
    ahead.prefetch(redis_client, [("A", plan_a), ("B", plan_b), ("A", plan_b)])  # a line's first plan counts
    redis_client.set("ra:a", "10")
    redis_client.set("ra:b", "20")
    assert ahead.run(redis_client, "B", [("get", ("ra:a",), ())]) == [b"10"]  # other commands: read now
    assert ahead.run(redis_client, "A", plan_a) == [b"1", b"2"]  # as of the prefetch
    assert ahead.run(redis_client, "A", plan_a) == [b"10", b"20"]  # taken once
    assert ahead.taken == 1


class Pipe:
    """A child's pipe as ``Preparation.run`` sees it: whether a request is waiting."""

    def __init__(self, waiting: bool = False) -> None:
        self.waiting = waiting

    def poll(self, timeout: float = 0.0) -> bool:
        return self.waiting


def test_a_child_prepares_its_lines_a_little_before_their_next_round() -> None:
    """Rounds every half second: the preparation is due ``PREPARE_AHEAD_S`` before the next
    one, then once a period while none comes; never while a round's requests still come in;
    a line not asked for ``PREPARE_RECENT_S`` is no longer prepared."""
    from store import preparation as prep

    clock = [100.0]
    made = prep.Preparation(None, clock=lambda: clock[0])
    assert made.wait_s() is None  # nothing asked: nothing to prepare
    for at in (100.0, 100.01, 100.5, 101.0, 101.02):  # three rounds (two requests within one)
        clock[0] = at
        made.asked("L1", 0.0)
    assert list(made.rounds) == [100.0, 100.5, 101.0]
    assert made.period() == pytest.approx(0.5)
    clock[0] = 101.1
    assert made.wait_s() == pytest.approx(101.5 - prep.PREPARE_AHEAD_S - 101.1)
    for k in range(1, 13):  # a long round: its requests still come in when the next is due
        clock[0] = 101.02 + k * prep.ROUND_GAP_S * 0.8
        made.asked("L1", 0.0)
    assert clock[0] > 101.5 - prep.PREPARE_AHEAD_S and len(made.rounds) == 3
    clock[0] += prep.ROUND_GAP_S / 2
    assert made.wait_s() == pytest.approx(prep.ROUND_GAP_S / 2)
    made.prepared = clock[0] = 102.0  # prepared; no round came: again a period later
    assert made.wait_s() == pytest.approx(made.period())
    made.paused_until = 110.0  # a failed preparation pauses them
    assert made.wait_s() == pytest.approx(110.0 - 102.0)
    clock[0] = 101.46 + prep.PREPARE_RECENT_S + 1
    made.paused_until = -1e18
    made.reader = object()  # (not read: no line left)
    made.run(Pipe())
    assert made.lines == {} and made.wait_s() is None


def test_a_prepared_line_feeds_its_next_view_only_what_came_after(redis_client: redis.Redis, plant: Any,
                                                                   rolled_up: Snapshot) -> None:
    """A child between rounds (``store.preparation``): its line's followers take the stream's new
    entries, fed up to ``PREPARE_LAG_S`` before its clock; the next view equals a reader's
    that was not prepared; a request waiting stops a preparation before its first line; a
    preparation that fails pauses them."""
    from domain.contract import events_key
    from domain.model import Event, Signal
    from store.preparation import PREPARE_LAG_S, PREPARE_PAUSE_S, Preparation
    from store.reasons import REFRESH_S
    from tests.history import write_events

    rolled_up.restore(redis_client)
    start = RECENT + 2 * HOUR
    prepared, plain = PlantReader(redis_client, plant), PlantReader(redis_client, plant)
    assert prepared.line_now("L1", start, NOW, NOW) == plain.line_now("L1", start, NOW, NOW)
    edges = prepared.window_reads.edges
    follow = edges._follows["L1"]
    write_events(redis_client, [Event("L1", m, Signal.GOOD, 10_000 + i, "Good", NOW + i) for i in range(1, 6)
                                for m in ("M1", "M2")])
    newest = redis_client.xrevrange(events_key("L1"), count=1)[0][0].decode()
    wall = [NOW + 3.0 + PREPARE_LAG_S]
    made = Preparation(prepared, wall=lambda: wall[0])
    made.asked("L1", start)
    made.run(Pipe(waiting=True))
    assert follow.pos != newest  # a request waiting: its view first
    lists = prepared.reason_lists
    assert lists._cached is not None
    lists._cached = (time.monotonic() - 0.6 * REFRESH_S, lists._cached[1])  # read by a view a while ago
    assert made.run(Pipe()) > 0
    assert time.monotonic() - lists._cached[0] < 0.5 * REFRESH_S  # read again here: a view will not wait for it
    assert follow.pos == newest and follow.now == pytest.approx(NOW + 3.0)
    assert [e.ts for e in follow.machines["M1"].future] == [NOW + 4, NOW + 5]  # after its now: for the views
    fed: list[float] = []
    original = type(follow.machines["M1"].acc).feed
    at = NOW + 6
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(follow.machines["M1"].acc), "feed", lambda acc, e: (fed.append(e.ts), original(acc, e)))
        got = prepared.line_now("L1", start, at, at)
    assert got == plain.line_now("L1", start, at, at)
    assert sorted(fed) == [NOW + 4, NOW + 4, NOW + 5, NOW + 5]  # only what came after its preparation (M1, M2)
    assert edges.early == 0
    made.asked("NOPE", start)  # not a line of the plant: left out
    assert made.run(Pipe()) > 0 and "NOPE" not in made.lines
    made.reader = PlantReader(redis.Redis(host="127.0.0.1", port=1), plant)  # a Redis that is not there
    made.run(Pipe())
    assert PREPARE_PAUSE_S - 1 < made.wait_s() <= PREPARE_PAUSE_S  # type: ignore[operator]
