"""Screens asking the same live answer share one computation per line version
(``components.shared``): the single flight itself, what makes two requests the same, and
walls' pushed refreshes through the app's real ``/_dash-update-component``: asking at once,
asking later, after a change, after a failure, and the kept answers' bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from api import auth as api_auth
from api import context
from api.context import config_of
from components import data, shared, wall
from store.live_feed import ALERTS, FEED_KEY, LiveFeed
from store.memo import SingleFlight
from store.users import Users
from tests.callback_support import call
from tests.support import http_client, in_request
from tests.test_components import PLANT, make_app

LINES = [ln.id for ln in PLANT.lines]


def until(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# --- the single flight ---------------------------------------------------------------

def run_together(flights: SingleFlight, keys: list[str], compute: Callable[[str], Any]) -> list[Any]:
    """``flights.run`` of each key in a thread of its own, all started at once."""
    out: list[Any] = [None] * len(keys)

    def one(i: int) -> None:
        try:
            out[i] = flights.run(keys[i], lambda: compute(keys[i]))
        except Exception as exc:  # noqa: BLE001  (the test looks at what each call got)
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(keys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    return out


def test_calls_with_one_key_at_the_same_time_compute_once() -> None:
    flights = SingleFlight()
    computed: list[str] = []

    def compute(key: str) -> object:
        computed.append(key)
        until(lambda: flights.waiting == 2, "the two others to wait")  # they join while it runs
        return object()

    got = run_together(flights, ["a", "a", "a"], compute)
    assert computed == ["a"]
    assert got[0] is got[1] is got[2]
    assert (flights.led, flights.joined, flights.waiting) == (1, 2, 0)
    # nothing is kept: the next call computes again
    assert flights.run("a", lambda: "again") == "again"
    assert flights.led == 2


def test_other_keys_compute_for_themselves() -> None:
    flights = SingleFlight()
    started = threading.Barrier(2, timeout=30)

    def compute(key: str) -> str:
        started.wait()  # both run at once: neither waits for the other
        return key.upper()

    assert run_together(flights, ["a", "b"], compute) == ["A", "B"]
    assert (flights.led, flights.joined) == (2, 0)


def test_a_failed_computation_is_not_shared() -> None:
    flights = SingleFlight()
    calls: list[str] = []

    def compute(key: str) -> str:
        calls.append(key)
        if len(calls) == 1:
            until(lambda: flights.waiting == 1, "the other to wait")
            raise RuntimeError("Redis went away")
        return "computed again"

    got = run_together(flights, ["a", "a"], compute)
    assert sorted(map(repr, got)) == sorted([repr(RuntimeError("Redis went away")), repr("computed again")])
    assert len(calls) == 2 and flights.joined == 0


# --- what makes two requests the same -----------------------------------------------

@pytest.fixture
def feed(redis_client: redis.Redis) -> Iterator[LiveFeed]:
    # no versions from the clock alone (at least one every 3 s by default): only the test's
    # own marks move a line, so requests of one moment always have one key
    live = LiveFeed(redis_client, LINES, quiet_s=3600.0).start()
    # following, and past its first versions (every line gets one when the feed starts)
    until(lambda: all((live.versions() or {"-": 0}).values()), "the live feed's first versions")
    yield live
    live.stop()


def key_of(app: Any, *, tick: int = 1, lines: list[str] | None = None, headers: dict[str, str] | None = None,
           triggered: tuple[str, ...] = ("wall-tick.n_intervals",)) -> Any:
    inputs = [{"id": wall.TICK, "property": "n_intervals", "value": tick}]
    states = [{"id": wall.VIEW, "property": "data", "value": {"lines": lines or LINES}},
              {"id": wall.SHOWN, "property": "data", "value": None}]
    body = {"output": "wall", "inputs": inputs, "state": states, "outputs": [], "changedPropIds": list(triggered)}
    with context.serving(app.server, "/_dash-update-component", headers=headers):
        return shared.request_key(frozenset({wall.TICK}), body)


def test_the_key_leaves_out_only_the_tick_count(feed: LiveFeed, redis_client: redis.Redis) -> None:
    app = make_app()
    config_of(app.server)[FEED_KEY] = feed
    api_auth.install(app.server, api_auth.Auth(redis_client, PLANT, clock=time.time))
    users = Users(redis_client, LINES)
    operator, _ = users.create_token("mes", "operator", "BW1", time.time())
    engineer, _ = users.create_token("scada", "engineer", "BW1", time.time())
    first = key_of(app)
    assert first is not None
    assert key_of(app, tick=917) == first  # another screen's count of ticks
    assert key_of(app, lines=["BW1"]) != first  # another view
    assert key_of(app, triggered=()) != first  # a first draw, not a tick
    assert key_of(app, headers={"Accept-Language": "zh-CN"}) != first
    as_operator = key_of(app, headers={"Authorization": f"Bearer {operator}"})
    assert as_operator not in (first, key_of(app, headers={"Authorization": f"Bearer {engineer}"}))
    assert key_of(app, headers={"Authorization": f"Bearer {operator}"}) == as_operator  # the same caller again
    assert key_of(app, headers={"Authorization": "Bearer not-a-token"}) == first  # refused: anonymous
    before = feed.versions()
    feed.mark("BW1", "test")  # the versions are not in the key: an answer keeps those it was read at
    until(lambda: feed.versions() != before, "BW1's next version")
    assert key_of(app) == first


@pytest.mark.parametrize(("consulted", "versions", "expected"), [
    ({}, {"BW1": 3, "CM1": 5}, (("BW1", 3), ("CM1", 5))),  # read no line: every line's
    ({"BW1": 3}, {"BW1": 4, "CM1": 5}, (("BW1", 3),)),  # the version it read, not the one asked at
    ({"BW1": 3, "CM1": None}, {"BW1": 3, "CM1": 5}, None),  # CM1 read at two versions: never reused
    ({"CM1": 5}, {"BW1": 3, "CM1": 5, ALERTS: 2}, (("CM1", 5), (ALERTS, 2))),  # and the alerts' channel
    ({}, {"BW1": 3, ALERTS: 2}, (("BW1", 3), (ALERTS, 2))),
])
def test_an_answer_holds_for_the_versions_it_read(consulted: dict[str, int | None], versions: dict[str, int],
                                                   expected: Any) -> None:
    assert shared.depends_on(consulted, versions) == expected


def test_nothing_is_shared_without_a_live_feed(counted: list[Any]) -> None:
    """Without a live feed (no versions to keep an answer for) every request goes to Dash."""
    app = make_app()
    first = wall_answer(app, 1)
    assert wall_answer(app, 2) == first
    assert len(counted) == 2
    layer = app.shared_answers
    assert (layer.led, layer.joined, layer.reused) == (0, 0, 0)


# --- walls pushed at once, and later ----------------------------------------------------

FIELD_IDS = [wall.field_id(line, f) for line in LINES for f in wall.FIELDS]
TILE_IDS = [{"type": wall.TILE, "line": line} for line in LINES]


def wall_answer(app: Any, tick: int, lines: list[str] | None = None) -> Any:
    shown = lines or LINES
    return call(app, wall.refresh, tick, {"lines": shown}, None, triggered=wall.TICK,
                matching={wall.FIELD: [f for f in FIELD_IDS if f["line"] in shown],
                          wall.TILE: [t for t in TILE_IDS if t["line"] in shown]})


def together(app: Any, count: int, ask: Callable[[int], Any]) -> list[Any]:
    """``ask(i)`` for each ``i`` in a thread of its own (each request on its own event loop,
    as the test client runs them), all started at once; what each got (or raised)."""
    http_client(app).get("/_dash-dependencies")  # the app's layers built once, before the threads race to
    answers: list[Any] = [None] * count

    def one(i: int) -> None:
        try:
            answers[i] = ask(i)
        except Exception as exc:  # noqa: BLE001  (the test looks at what each got)
            answers[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    return answers


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The wall's reads of the lines' views, counted (one per computed answer)."""
    computed: list[Any] = []
    line_views = data.line_views

    def counting(*args: Any, **kwargs: Any) -> Any:
        computed.append(args)
        return line_views(*args, **kwargs)

    monkeypatch.setattr(data, "line_views", counting)
    return computed


def test_walls_asking_at_once_share_one_answer(feed: LiveFeed, counted: list[Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Three walls' refreshes of one push (each its own tick count) are computed once; a
    wall that asks afterwards, with no line moved, gets the kept answer; after a change
    the answer is computed again."""
    app = make_app()
    config_of(app.server)[FEED_KEY] = feed
    line_views = data.line_views

    def first_waits(*args: Any, **kwargs: Any) -> Any:
        if not counted:  # the first request's computation runs until the others wait for it
            until(lambda: app.shared_answers.waiting == 2, "the other walls to wait")
        return line_views(*args, **kwargs)

    monkeypatch.setattr(data, "line_views", first_waits)
    answers = together(app, 3, lambda i: wall_answer(app, 40 + i))
    assert len(counted) == 1
    assert answers[0] == answers[1] == answers[2]
    fields = dict(zip([(o["line"], o["field"]) for o in FIELD_IDS], answers[0][0], strict=True))
    assert fields[("BW1", "status")] == "Down" and fields[("BR1", "reason")] == "BR-RM: Roll change"
    layer = app.shared_answers
    assert (layer.led, layer.joined, layer.reused) == (1, 2, 0)
    assert wall_answer(app, 50) == answers[0]  # no line moved meanwhile: the kept answer
    assert len(counted) == 1 and layer.reused == 1
    before = feed.versions()
    feed.mark("BW1", "test")
    until(lambda: feed.versions() != before, "BW1's next version")
    after = wall_answer(app, 51)  # computed again: the same figures (nothing was written), BW1's new version
    assert after[0] == answers[0][0] and after[-1]["lines"]["BW1"] == answers[0][-1]["lines"]["BW1"] + 1
    assert len(counted) == 2 and layer.led == 2


def test_a_failed_answer_is_neither_shared_nor_kept(feed: LiveFeed, counted: list[Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The first wall's computation fails (Dash answers 500) while a second waits for it:
    the second asks Dash itself and gets the figures; nothing failed is kept."""
    app = make_app()
    config_of(app.server)[FEED_KEY] = feed
    line_views = data.line_views

    def first_fails(*args: Any, **kwargs: Any) -> Any:
        if not counted:
            until(lambda: app.shared_answers.waiting == 1, "the other wall to wait")
            counted.append(args)
            raise RuntimeError("the reader broke")
        return line_views(*args, **kwargs)

    monkeypatch.setattr(data, "line_views", first_fails)
    answers = together(app, 2, lambda i: wall_answer(app, 60 + i))
    failed = [a for a in answers if isinstance(a, AssertionError)]
    good = [a for a in answers if not isinstance(a, Exception)]
    assert len(failed) == 1 and str(failed[0]).startswith("500") and len(good) == 1
    assert len(counted) == 2
    layer = app.shared_answers
    assert (layer.led, layer.joined, layer.reused) == (1, 0, 0)
    assert wall_answer(app, 70) == good[0]  # the waiter's own answer, computed by Dash, is not shared either
    assert len(counted) == 3


def test_kept_answers_are_bounded(feed: LiveFeed, counted: list[Any]) -> None:
    app = make_app()
    config_of(app.server)[FEED_KEY] = feed
    bw1 = wall_answer(app, 1, ["BW1"])
    app.shared_answers.max_kept = 1
    wall_answer(app, 2, ["CM1"])  # the BW1 wall's answer makes room for it
    assert len(counted) == 2
    assert wall_answer(app, 3, ["CM1"]) is not None and len(counted) == 2  # kept
    assert wall_answer(app, 4, ["BW1"]) == bw1 and len(counted) == 3  # computed again
    app.shared_answers.max_kept_bytes = 10
    wall_answer(app, 5, ["CM1"])  # too big to keep
    wall_answer(app, 6, ["CM1"])
    assert len(counted) == 5


def test_an_answer_outlives_other_lines_changes(feed: LiveFeed, counted: list[Any]) -> None:
    """A wall of BW1 alone keeps its answer while CM1 changes, and not once BW1 does."""
    app = make_app()
    config_of(app.server)[FEED_KEY] = feed
    first = wall_answer(app, 1, ["BW1"])
    before = feed.versions()
    feed.mark("CM1", "test")
    until(lambda: feed.versions() != before, "CM1's next version")
    assert wall_answer(app, 2, ["BW1"]) == first and len(counted) == 1  # kept
    before = feed.versions()
    feed.mark("BW1", "test")
    until(lambda: feed.versions() != before, "BW1's next version")
    after = wall_answer(app, 3, ["BW1"])
    assert len(counted) == 2 and after[-1]["lines"]["BW1"] == first[-1]["lines"]["BW1"] + 1
    assert app.shared_answers.reused == 1


def test_a_warm_up_reads_for_no_answer(feed: LiveFeed) -> None:
    """The Warmer makes a screen's reads again in a copy of that request's context: what
    it reads is not added to the versions of the answer that request was computing."""
    app = make_app()
    config_of(app.server)[FEED_KEY] = feed
    warmer = config_of(app.server)[data.WARM_KEY]
    with in_request(app), data.versions_consulted() as seen:
        data.line_views(["BW1"])  # the Warmer is told of the read, with this context
        assert set(seen) == {"BW1"}
        seen.clear()
    warmer.warm("BW1")
    assert warmer.warmed == 1 and seen == {}
