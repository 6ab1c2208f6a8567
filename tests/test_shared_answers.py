"""Screens asking the same live answer at the same moment share one computation
(``components.shared``): the single flight itself, what makes two requests the same, and
ten walls' pushed refreshes through the app's real ``/_dash-update-component``."""

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
from store.live_feed import FEED_KEY, LiveFeed
from store.memo import SingleFlight
from store.users import Users
from tests.callback_support import call
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
    with context.serving(app.server, "/_dash-update-component", headers=headers):
        return shared.answer_key(wall.refresh, frozenset({wall.TICK}), inputs, states, [], triggered)


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
    feed.mark("BW1", "test")  # a change: later requests never join an earlier computation
    until(lambda: key_of(app) != first, "BW1's next version")


def test_nothing_is_shared_without_a_live_feed() -> None:
    app = make_app()
    assert key_of(app) is None


# --- ten walls pushed at once ---------------------------------------------------------

def test_walls_asking_at_once_share_one_answer(feed: LiveFeed, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three walls' refreshes of one push (each its own tick count) compute the lines'
    views once; a wall that asks afterwards computes again (nothing is kept), and gets the
    same figures."""
    app = make_app()
    config_of(app.server)[FEED_KEY] = feed
    field_ids = [wall.field_id(line, f) for line in LINES for f in wall.FIELDS]
    tile_ids = [{"type": wall.TILE, "line": line} for line in LINES]
    computed = []
    line_views = data.line_views

    def counted(*args: Any, **kwargs: Any) -> Any:
        computed.append(args)
        if len(computed) == 1:  # the first request's computation runs until the others wait for it
            until(lambda: data.flights().waiting == 2, "the other walls to wait")
        return line_views(*args, **kwargs)

    monkeypatch.setattr(data, "line_views", counted)

    def wall_answer(tick: int) -> Any:
        return call(app, wall.refresh, tick, {"lines": LINES}, None, triggered=wall.TICK,
                    matching={wall.FIELD: field_ids, wall.TILE: tile_ids})

    answers: list[Any] = [None] * 3
    threads = [threading.Thread(target=lambda i=i: answers.__setitem__(i, wall_answer(40 + i))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    assert len(computed) == 1
    assert answers[0] == answers[1] == answers[2]
    fields = dict(zip([(o["line"], o["field"]) for o in field_ids], answers[0][0], strict=True))
    assert fields[("BW1", "status")] == "Down" and fields[("BR1", "reason")] == "BR-RM: Roll change"
    flights = config_of(app.server)[data.FLIGHTS_KEY]
    assert (flights.led, flights.joined) == (1, 2)
    assert wall_answer(50) == answers[0]  # no line moved meanwhile: the same answer, computed again
    assert len(computed) == 2
