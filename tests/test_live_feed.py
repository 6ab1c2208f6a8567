"""The live feed (``store.live_feed``), the event stream (``api.live``) and the per-process
memo of live views (``components.data``), against a real Redis and a real HTTP server:

* an entry written to a line's stream gives that line (only) a new version within a
  second, with ``why: events``; a commit of the rollup worker gives ``why: rollup``;
* the event stream sends ``hello``, then a ``change`` naming only the changed line, and
  resumes with ``Last-Event-ID`` without losing a change;
* N screens subscribed to one line cause one computation of its view per change;
* ``LIVE_PUSH`` off: 503, and open streams end.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from api.context import config_of, serving
from components import data
from config.loader import DEMO_PLANT
from config.settings import Settings
from domain import contract
from domain.model import Event, Signal
from store.live_feed import WHY_EVENTS, WHY_ROLLUP, LiveFeed
from tests.test_browser import Server, history_end, seed_plant
from tests.test_components import PLANT


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def write_event(client: redis.Redis, line: str, machine: str, signal: Signal, value: Any, ts: float) -> None:
    """As a collector writes it: the stream entry and the live hash."""
    event = Event(line, machine, signal, value, "Good", ts)
    client.xadd(contract.events_key(line), contract.encode_event(event))
    name, encoded = contract.encode_live(event)
    client.hset(contract.live_key(line), name, encoded)


@pytest.fixture
def feed(redis_client: redis.Redis) -> Iterator[LiveFeed]:
    the_feed = LiveFeed(redis_client, [line.id for line in PLANT.lines], block_ms=200, quiet_s=3600).start()
    wait_for(lambda: the_feed.up, what="the feed following the streams")
    yield the_feed
    the_feed.stop()


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_stream_entry_gives_its_line_a_new_version(redis_url: str, redis_client: redis.Redis,
                                                      protocol: int) -> None:
    """On either protocol (RESP2 or RESP3: the feed reads ``XREAD``'s reply as Redis sent it)."""
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    feed = LiveFeed(client, [line.id for line in PLANT.lines], block_ms=200, quiet_s=3600).start()
    try:
        _a_stream_entry_gives_its_line_a_new_version(feed, redis_client)
    finally:
        feed.stop()
        client.close()


def _a_stream_entry_gives_its_line_a_new_version(feed: LiveFeed, redis_client: redis.Redis) -> None:
    wait_for(lambda: feed.versions() == {"BW1": 1, "CM1": 1, "BR1": 1}, what="the start versions")
    before = feed.seq
    started = time.monotonic()
    write_event(redis_client, "CM1", "OP60", Signal.GOOD, 5, time.time())
    wait_for(lambda: feed.version("CM1") == 2, what="CM1's next version")
    assert time.monotonic() - started < 1.0
    assert feed.versions() == {"BW1": 1, "CM1": 2, "BR1": 1}
    changes = feed.changes_since(before)
    assert [(c.line, c.version, c.why) for c in changes or []] == [("CM1", 2, (WHY_EVENTS,))]


def test_changes_coalesce_and_worker_commits_count(feed: LiveFeed, redis_client: redis.Redis) -> None:
    wait_for(lambda: feed.version("BW1") == 1, what="the start version")
    for i in range(20):  # a burst: one or two versions, not twenty
        write_event(redis_client, "BW1", "ST70", Signal.GOOD, i, time.time())
    wait_for(lambda: feed.version("BW1") and feed.version("BW1") > 1, what="BW1's next version")
    time.sleep(feed.min_gap_s + 0.3)  # let a second version come if one is due
    assert 2 <= (feed.version("BW1") or 0) <= 3
    seq = feed.seq
    redis_client.hincrby(contract.rollup_state_key("BR1"), "ver", 1)  # what a worker commit does
    wait_for(lambda: feed.version("BR1") == 2, what="BR1's version after a commit")
    assert [(c.line, c.why) for c in feed.changes_since(seq) or []] == [("BR1", (WHY_ROLLUP,))]


def test_a_worker_commit_is_told_before_its_version(redis_client: redis.Redis) -> None:
    """The readers tell ``on_commit`` (a reader pool's ``prepare_now``) of the lines the
    worker committed as they see the commit, before the version it gives is handed out;
    stream entries alone are not a commit."""
    told: list[tuple[list[str], int | None]] = []
    the_feed = LiveFeed(redis_client, [line.id for line in PLANT.lines], block_ms=200, quiet_s=3600,
                        on_commit=lambda lines: told.append((lines, the_feed.version("CM1"))))
    the_feed.start()
    try:
        wait_for(lambda: the_feed.up and the_feed.version("CM1") == 1, what="the feed following the streams")
        write_event(redis_client, "CM1", "OP60", Signal.GOOD, 5, time.time())
        wait_for(lambda: the_feed.version("CM1") == 2, what="CM1's version after an event")
        redis_client.hincrby(contract.rollup_state_key("CM1"), "ver", 1)  # what a worker commit does
        wait_for(lambda: the_feed.version("CM1") == 3, what="CM1's version after a commit")
        assert told == [(["CM1"], 2)]
    finally:
        the_feed.stop()


def test_a_failing_commit_hook_stops_nothing(redis_client: redis.Redis) -> None:
    def broken(_lines: list[str]) -> None:
        raise RuntimeError("the pool broke")

    the_feed = LiveFeed(redis_client, [line.id for line in PLANT.lines], block_ms=200, quiet_s=3600,
                        on_commit=broken).start()
    try:
        wait_for(lambda: the_feed.up and the_feed.version("BR1") == 1, what="the feed following the streams")
        redis_client.hincrby(contract.rollup_state_key("BR1"), "ver", 1)
        wait_for(lambda: the_feed.version("BR1") == 2, what="BR1's version after a commit")
        write_event(redis_client, "BR1", "BR-RM", Signal.GOOD, 5, time.time())  # the reader still follows
        wait_for(lambda: the_feed.version("BR1") == 3, what="BR1's version after an event")
    finally:
        the_feed.stop()


def test_feed_withholds_versions_while_redis_is_down_and_recovers(restartable_redis: Any) -> None:
    client = redis.Redis.from_url(restartable_redis.url, socket_timeout=1, socket_connect_timeout=1)
    feed = LiveFeed(client, ["BW1"], block_ms=200, quiet_s=3600).start()
    try:
        wait_for(lambda: feed.version("BW1") == 1, what="the feed up, with its first version")
        seq = feed.seq
        waiter: list[float] = []
        thread = threading.Thread(target=lambda: (feed.wait(seq, ["BW1"], 30.0, was_up=True),
                                                  waiter.append(time.monotonic())))
        thread.start()
        restartable_redis.stop()
        wait_for(lambda: not feed.up, what="the feed down")
        thread.join(5)
        assert waiter, "a stream waiting while up was not woken when the feed went down"
        assert feed.versions() is None  # nothing may be memoised: a change would go unnoticed
        started = time.monotonic()
        assert feed.wait(seq, ["BW1"], 2.0, was_up=False)[1] == []  # down as known: no news, no busy loop
        assert time.monotonic() - started >= 1.9
        restartable_redis.start()
        wait_for(lambda: feed.up, 15, what="the feed back")
        got = wait_for(lambda: feed.changes_since(seq), what="a version after the outage")
        assert got[-1].line == "BW1" and "restart" in got[-1].why
    finally:
        feed.stop()
        client.close()


# --- the event stream over HTTP, and the memo -----------------------------------------------

class CountingReader:
    """The real reader, counting the live-view reads (``line_now``, ``line_kpis``) per line."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.methods: dict[tuple[str, str], int] = {}  # (method, line) -> calls
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _count(self, line: str, method: str) -> None:
        with self.lock:
            self.calls[line] = self.calls.get(line, 0) + 1
            self.methods[(method, line)] = self.methods.get((method, line), 0) + 1
        time.sleep(0.05)  # a slow computation: screens asking meanwhile must wait for it, not compute again

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()
            self.methods.clear()

    def line_kpis(self, line: str, *args: Any, **kwargs: Any) -> Any:
        self._count(line, "line_kpis")
        return self.inner.line_kpis(line, *args, **kwargs)

    def line_now(self, line: str, *args: Any, **kwargs: Any) -> Any:
        self._count(line, "line_now")
        return self.inner.line_now(line, *args, **kwargs)

    def lines(self, *args: Any, **kwargs: Any) -> Any:
        return type(self.inner).lines(self, *args, **kwargs)  # its line_kpis counted

    def andon_now(self, *args: Any, **kwargs: Any) -> Any:
        return type(self.inner).andon_now(self, *args, **kwargs)


@pytest.fixture(scope="module")
def served(redis_url: str) -> Iterator[dict[str, Any]]:
    from api import create_api_router
    from components import app_factory
    from components.app_factory import create_app

    inner, now = seed_plant(redis_url, PLANT, hours=1.0, end=history_end(PLANT.timezone))
    reader = CountingReader(inner)
    settings = Settings(plant_path=DEMO_PLANT, plant=PLANT, redis_url=redis_url)
    app = create_app(settings, lambda: reader, clock=lambda: now,
                     api=lambda server, r: server.include_router(  # as app_factory.create_dashboard
                         create_api_router(r, clock=lambda: now, shared_kpis=app_factory._shared_line_kpis)))
    server = Server(app)
    server.start()
    yield {"server": server, "app": app, "reader": reader, "now": now, "redis": redis.Redis.from_url(redis_url)}
    from api import live

    live.shutdown(config_of(app.server))
    server.stop()


def following(served: dict[str, Any]) -> LiveFeed:
    """The app's feed once it follows the streams: a subscriber's hello can come first (the
    feed starts on first use), and an entry written before its readers took their
    positions is a restart to them, not a change of events."""
    from store.live_feed import FEED_KEY

    feed: LiveFeed = config_of(served["app"].server)[FEED_KEY]
    wait_for(lambda: feed.up, what="the feed following the streams")
    return feed


class Subscriber:
    """One screen's event stream, read in a thread; ``events``: (kind, id, data) in order."""

    def __init__(self, port: int, query: str, last_id: str | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "gzip, br"} | \
            ({"Last-Event-ID": last_id} if last_id else {})
        self.conn.request("GET", f"/api/live/events?{query}", headers=headers)
        self.response = self.conn.getresponse()
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []
        self.ended = threading.Event()
        self.on_change: Any = None
        self.body = b""
        if self.response.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read()
            self.ended.set()

    def _read(self) -> None:
        kind, ident, payload = "message", None, ""
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line.startswith("data: "):
                    payload = line[6:]
                elif not line and payload:
                    self.events.append((kind, ident, json.loads(payload)))
                    if kind == "change" and self.on_change:
                        self.on_change(json.loads(payload))
                    kind, ident, payload = "message", None, ""
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # closed by the test (http.client's reader may be gone under us)
        finally:
            self.ended.set()

    def changes(self) -> list[dict[str, Any]]:
        return [d for kind, _, d in self.events if kind == "change"]

    def close(self) -> None:
        """Hangs up at once: the socket is shut down first (a plain close would wait for the
        reading thread's pending read, i.e. for the server's next event or heartbeat)."""
        with contextlib.suppress(OSError, AttributeError):
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def test_stream_says_hello_then_only_what_changed_and_resumes(served: dict[str, Any]) -> None:
    server, client, now = served["server"], served["redis"], served["now"]
    sub = Subscriber(server.port, "line=BW1&line=CM1")
    try:
        assert sub.response.status == 200
        assert sub.response.getheader("Content-Type", "").startswith("text/event-stream")
        assert sub.response.getheader("X-Accel-Buffering") == "no"
        assert sub.response.getheader("Content-Encoding") is None  # a compressor would hold events back
        hello = wait_for(lambda: next((e for e in sub.events if e[0] == "hello"), None), what="hello")
        assert [entry["line"] for entry in hello[2]["lines"]] == ["BW1", "CM1"]
        following(served)
        write_event(client, "BR1", "BR-CB", Signal.GOOD, 1, now - 1)  # not subscribed: not sent
        write_event(client, "CM1", "OP60", Signal.GOOD, 10_000, now - 1)
        got = wait_for(lambda: [c for c in sub.changes() if any(x["line"] == "CM1" and "events" in x["why"]
                                                                for x in c["lines"])], what="CM1's change")
        assert all(x["line"] in ("BW1", "CM1") for c in sub.changes() for x in c["lines"])
        last_id = next(ident for kind, ident, d in sub.events if kind == "change" and d == got[0])
    finally:
        sub.close()
    write_event(client, "CM1", "OP60", Signal.GOOD, 10_001, now - 1)  # while disconnected
    time.sleep(0.7)  # let the feed give it a version (the change happens while no one listens)
    again = Subscriber(server.port, "line=CM1", last_id=last_id)
    try:
        missed = wait_for(lambda: again.changes(), what="the missed change on resume")
        assert any(x["line"] == "CM1" and "events" in x["why"] for x in missed[0]["lines"])
    finally:
        again.close()


def test_n_screens_on_one_line_cost_one_computation_per_change(served: dict[str, Any]) -> None:
    server, app, reader, client, now = (served[k] for k in ("server", "app", "reader", "redis", "now"))
    screens = 6
    done: list[threading.Thread] = []
    views: list[dict[str, Any]] = []

    def refresh(change: dict[str, Any]) -> None:  # what each screen's refresh callback does on a push
        if not any("events" in x["why"] for x in change["lines"]):
            return  # a clock tick meanwhile: not the change under test

        def run() -> None:
            with serving(app.server, "/wall/BW1"):
                got, _ = data.line_views(["BW1"])
                views.append(got[0])
        thread = threading.Thread(target=run)
        done.append(thread)
        thread.start()

    subs = [Subscriber(server.port, "line=BW1") for _ in range(screens)]
    try:
        wait_for(lambda: all(any(e[0] == "hello" for e in s.events) for s in subs), what="every hello")
        time.sleep(0.6)  # a quiet start: no change in flight (min gap)
        for s in subs:
            s.on_change = refresh
        reader.clear()
        live = reader.inner.lines(now, only=["BW1"])["lines"][0]["machines"]
        good = next(m["good"] for m in live if m["id"] == "ST70") or 0
        write_event(client, "BW1", "ST70", Signal.GOOD, good + 3, now - 0.5)
        wait_for(lambda: len(views) >= screens, what="every screen's refresh")
        for thread in list(done):
            thread.join(10)
        assert reader.calls.get("BW1") == 1, reader.calls  # one computation for six screens
        assert len({json.dumps(v, sort_keys=True, default=str) for v in views}) == 1  # the same view
    finally:
        for s in subs:
            s.close()


def _api_line(port: int, line: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", f"/api/lines?line={line}")
        response = conn.getresponse()
        assert response.status == 200
        got: dict[str, Any] = json.loads(response.read())["lines"][0]
        return got
    finally:
        conn.close()


def test_api_lines_reads_each_lines_kpis_once_per_version_shared_with_the_screens(served: dict[str, Any]) -> None:
    """While the feed runs, /api/lines takes a line's KPIs from the overview's view of the
    same version (no computation of its own), and computes a line no screen shows once per
    version however often it is asked."""
    server, app, reader, now = (served[k] for k in ("server", "app", "reader", "now"))
    from store.live_feed import FEED_KEY

    sub = Subscriber(server.port, "line=BW1&line=CM1")  # starts the feed
    try:
        wait_for(lambda: sub.events, what="hello")
        feed: LiveFeed = following(served)

        def at_one_version(line: str, ask: Any) -> Any:
            """``ask()`` with the line's version the same before and after (the clock moves
            versions every few seconds: asked again then)."""
            for _ in range(20):
                version = feed.version(line)
                reader.clear()
                got = ask()
                if feed.version(line) == version:
                    return got
            raise AssertionError(f"{line}'s version kept moving")

        def view_then_api() -> tuple[dict[str, Any], dict[str, Any]]:
            with serving(app.server, "/"):
                views, _ = data.line_views(["BW1"])
            return views[0], _api_line(server.port, "BW1")

        view, api_line = at_one_version("BW1", view_then_api)
        assert reader.methods.get(("line_kpis", "BW1"), 0) == 0, reader.methods  # the view's KPIs, shared
        assert reader.methods.get(("line_now", "BW1"), 0) <= 1, reader.methods
        assert api_line["output"] == view["output"] and api_line["status"] == view["status"]

        def api_twice() -> tuple[dict[str, Any], dict[str, Any]]:
            return _api_line(server.port, "CM1"), _api_line(server.port, "CM1")

        first, second = at_one_version("CM1", api_twice)
        # at most once for both requests (a warm-up may have read it already): the line's live
        # view's read (line_now), which a screen then shares
        assert reader.methods.get(("line_now", "CM1"), 0) <= 1, reader.methods
        assert reader.methods.get(("line_kpis", "CM1"), 0) == 0, reader.methods
        assert first == second

        def both_languages() -> tuple[dict[str, Any], dict[str, Any]]:
            from components.i18n import use

            with serving(app.server, "/"), use("en"):
                english = data.line_views(["BR1"])[0][0]
            with serving(app.server, "/"), use("zh"):
                chinese = data.line_views(["BR1"])[0][0]
            return english, chinese

        english, chinese = at_one_version("BR1", both_languages)
        assert reader.methods.get(("line_now", "BR1"), 0) <= 1, reader.methods  # one read for both views
        assert english["oee"] == chinese["oee"] and english["output"] == chinese["output"]
        assert config_of(app.server)[FEED_KEY] is feed
    finally:
        sub.close()


def test_push_off_refuses_and_ends_streams(served: dict[str, Any]) -> None:
    server, app = served["server"], served["app"]
    sub = Subscriber(server.port, "line=BW1")
    try:
        wait_for(lambda: sub.events, what="hello")
        config_of(app.server)["LIVE_PUSH"] = False
        assert sub.ended.wait(5), "the open stream did not end"
        refused = Subscriber(server.port, "line=BW1")
        assert refused.response.status == 503
        assert "LIVE_PUSH" in json.loads(refused.body)["error"]
        unknown_line = Subscriber(server.port, "line=NOPE")
        assert unknown_line.response.status in (404, 503)
    finally:
        config_of(app.server)["LIVE_PUSH"] = True
        sub.close()
    bad = Subscriber(server.port, "line=NOPE")
    assert bad.response.status == 404


# --- health: all lines in one round trip ------------------------------------------------

class CountingClient:
    """A real client that counts the round trips a caller makes: pipelines and single commands."""

    def __init__(self, inner: redis.Redis) -> None:
        self.inner = inner
        self.trips: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.trips.append(name)
            return target(*args, **kwargs)
        return call


def test_health_reads_every_line_in_one_round_trip(served: dict[str, Any]) -> None:
    from store import live

    client = CountingClient(served["redis"])
    got = live.lines_health(client, PLANT, PLANT.lines, served["now"])  # type: ignore[arg-type]
    assert [line["id"] for line in got] == [line.id for line in PLANT.lines]
    # one pipeline for every line, one more for the lines whose worker has entries waiting (3 lines: was 3 to 6)
    assert client.trips in (["pipeline"], ["pipeline", "pipeline"]), client.trips
    whole = CountingClient(served["redis"])
    answer = live.health(whole, PLANT, served["now"])  # type: ignore[arg-type]
    assert [(line["id"], line["status"], line["stream_length"]) for line in answer["lines"]] == \
        [(line["id"], line["status"], line["stream_length"]) for line in got]


# --- a pushed answer carries only what changed ------------------------------------------------

NU = object()  # stands for dash.no_update in the table below


@pytest.mark.parametrize(("shown", "now", "want"), [
    (None, {"token": "a", "lines": {"L1": 2, "L2": 5}}, ["x1", "y1", "x2"]),  # first answer: everything
    ({"token": "a", "lines": {"L1": 2, "L2": 4}}, {"token": "a", "lines": {"L1": 2, "L2": 5}}, [NU, NU, "x2"]),
    ({"token": "a", "lines": {"L1": 1, "L2": 5}}, {"token": "a", "lines": {"L1": 2, "L2": 5}}, ["x1", "y1", NU]),
    ({"token": "b", "lines": {"L1": 2, "L2": 5}}, {"token": "a", "lines": {"L1": 2, "L2": 5}}, ["x1", "y1", "x2"]),
    ({"token": "a", "lines": {"L1": 2, "L2": 5}}, None, ["x1", "y1", "x2"]),  # no feed: everything
    ({"token": "a", "lines": {"L1": 2}}, {"token": "a", "lines": {"L1": 2, "L2": 5}}, [NU, NU, "x2"]),  # new line
])
def test_only_the_changed_lines_fields_are_sent(shown: Any, now: Any, want: list[Any]) -> None:
    from dash import no_update

    from components import push

    got = push.only_changed(["x1", "y1", "x2"], ["L1", "L1", "L2"], shown, now)
    assert [NU if value is no_update else value for value in got] == want


def test_shown_versions_need_every_view_versioned() -> None:
    from components import push

    assert push.shown_versions([{"line": "L1", "version": 3}], "tok") == {"token": "tok", "lines": {"L1": 3}}
    assert push.shown_versions([{"line": "L1", "version": 3}, {"line": "L2"}], "tok") is None
    assert push.shown_versions([{"line": "L1", "version": 3}], None) is None


# --- warm before telling: a change is computed before the screens are told of it ----------------

def test_a_change_is_told_once_the_warm_up_has_run(redis_client: redis.Redis) -> None:
    seen: list[tuple[str, int | None, list[Any]]] = []
    feed: LiveFeed
    seq = 0

    def warm(line: str) -> None:  # what components.data.Warmer does: read the new version, before it is told
        time.sleep(0.2)
        seen.append((line, feed.version(line), [c for c in feed.changes_since(seq) or [] if c.line == line]))

    feed = LiveFeed(redis_client, ["BW1", "CM1"], block_ms=200, quiet_s=3600, warm=warm, warm_max_s=30).start()
    try:
        wait_for(lambda: feed.versions() == {"BW1": 1, "CM1": 1}, what="the start versions")
        wait_for(lambda: len(seen) == 2 and feed.seq == 2, what="the start versions told")
        seq = feed.seq
        write_event(redis_client, "CM1", "OP60", Signal.GOOD, 5, time.time())
        told = wait_for(lambda: feed.changes_since(seq), what="CM1's change told")
        assert [(c.line, c.version, c.why) for c in told] == [("CM1", 2, (WHY_EVENTS,))]
        # the warm-up saw the new version handed out, and the change not yet told
        assert seen[-1] == ("CM1", 2, [])
    finally:
        feed.stop()


def test_a_stuck_or_failing_warm_up_does_not_hold_a_change_back(redis_client: redis.Redis,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    calls: list[str] = []

    def warm(line: str) -> None:
        calls.append(line)
        if line == "BW1":
            release.wait(30)  # stuck (a Redis read that hangs)
        else:
            raise RuntimeError("warm-up failed")

    feed = LiveFeed(redis_client, ["BW1", "CM1"], block_ms=200, quiet_s=3600, warm=warm, warm_max_s=0.3,
                    warm_stuck_s=1.0).start()
    try:
        wait_for(lambda: feed.seq == 2, what="the start versions told, warm or not")
        seq = feed.seq
        write_event(redis_client, "BW1", "ST70", Signal.GOOD, 1, time.time())
        write_event(redis_client, "CM1", "OP60", Signal.GOOD, 1, time.time())
        got = wait_for(lambda: {(c.line, c.version) for c in feed.changes_since(seq) or []} == {("BW1", 2), ("CM1", 2)}
                       and feed.changes_since(seq), what="both changes told")
        assert {c.line for c in got} == {"BW1", "CM1"}
        assert "warming CM1 failed" in caplog.text
        assert feed.up
        # BW1's next version waited for its warm-up (stuck: for warm_stuck_s), not for ever
        assert calls.count("BW1") == 2
    finally:
        release.set()
        feed.stop()


def test_live_reads_are_made_again_before_the_screens_are_told(served: dict[str, Any]) -> None:
    from store.live_feed import WARM_KEY

    server, app, client, now = served["server"], served["app"], served["redis"], served["now"]
    config = config_of(app.server)
    start = now - 1800
    sub = Subscriber(server.port, "line=BW1")
    try:
        wait_for(lambda: any(e[0] == "hello" for e in sub.events), what="hello")
        following(served)
        with serving(app.server, "/line/BW1"):  # a screen reads BW1's KPIs up to now
            data.line_kpis("BW1", start, now, now)
        warmed = config[WARM_KEY].warmed
        write_event(client, "BW1", "ST70", Signal.GOOD, 1, now - 0.5)
        change = wait_for(lambda: next((x for c in sub.changes() for x in c["lines"]
                                        if x["line"] == "BW1" and "events" in x["why"]), None), what="BW1's change")
        assert config[WARM_KEY].warmed > warmed
        # what the screen will ask for is already computed for the version it is told of
        assert ("line_kpis", "BW1", start, change["version"]) in config[data.MEMO_KEY]
    finally:
        sub.close()


# --- the alerts' channel ------------------------------------------------------------------------

def test_alerts_changes_are_a_channel_beside_the_lines(redis_client: redis.Redis) -> None:
    from store.live_feed import ALERTS, WHY_ALERTS

    feed = LiveFeed(redis_client, ["BW1"], block_ms=200, quiet_s=3600, follow_alerts=True).start()
    try:
        wait_for(lambda: feed.versions() == {"BW1": 1, ALERTS: 1}, what="the start versions")
        seq = feed.seq
        redis_client.incr(contract.alerts_key("ver"))  # what an evaluation that raised an alert does
        got = wait_for(lambda: feed.changes_since(seq), what="the alerts' change")
        assert [(c.line, c.version, c.why) for c in got] == [(ALERTS, 2, (WHY_ALERTS,))]
        assert feed.version("BW1") == 1
    finally:
        feed.stop()


def test_a_stream_follows_the_alerts_only_when_asked(served: dict[str, Any]) -> None:
    from store.live_feed import ALERTS, FEED_KEY

    server, client = served["server"], served["redis"]
    alerts_only = Subscriber(server.port, "alerts=1")
    line_only = Subscriber(server.port, "line=BW1")
    try:
        hello = wait_for(lambda: next((e for e in alerts_only.events if e[0] == "hello"), None), what="hello")
        assert [x["line"] for x in hello[2]["lines"]] == [ALERTS]
        wait_for(lambda: any(e[0] == "hello" for e in line_only.events), what="hello")
        feed = config_of(served["app"].server)[FEED_KEY]
        wait_for(lambda: (feed.version(ALERTS) or 0) >= 1, what="the feed's first read of the alerts")
        # what an evaluation that raised an alert does (by more than one: another test's counter
        # may have been flushed and counted up again to the value the feed last read)
        client.incrby(contract.alerts_key("ver"), 1000)
        told = wait_for(lambda: next((int(ident.rsplit("-", 1)[1]) for kind, ident, d in list(alerts_only.events)
                                      if kind == "change" and ident and "alerts" in d["lines"][0]["why"]), None),
                        what="the alerts' change")
        assert all(x["line"] == ALERTS for c in alerts_only.changes() for x in c["lines"])
        # the line's stream, past that change (BW1's clock version within 3 s), never named it
        wait_for(lambda: any(kind == "change" and ident and int(ident.rsplit("-", 1)[1]) > told
                             for kind, ident, _ in list(line_only.events)), what="BW1's stream past the change")
        assert not any(x["line"] == ALERTS for c in line_only.changes() for x in c["lines"])
    finally:
        alerts_only.close()
        line_only.close()


def test_a_line_gets_no_next_version_while_its_warm_up_runs(redis_client: redis.Redis) -> None:
    running: list[str] = []
    overlapped: list[str] = []
    calls: list[float] = []

    def warm(line: str) -> None:  # slower than the line changes (a big plant on a busy box)
        if line in running:
            overlapped.append(line)
        running.append(line)
        calls.append(time.monotonic())
        time.sleep(0.6)
        running.remove(line)

    feed = LiveFeed(redis_client, ["BW1"], block_ms=100, quiet_s=3600, min_gap_s=0.1, coalesce_s=0.02,
                    warm=warm, warm_max_s=0.2).start()
    try:
        wait_for(lambda: feed.version("BW1") == 1, what="the start version")
        started = time.monotonic()
        while time.monotonic() - started < 2.0:  # a change every 50 ms for 2 s
            write_event(redis_client, "BW1", "ST70", Signal.GOOD, 1, time.time())
            time.sleep(0.05)
        wait_for(lambda: not running, what="the last warm-up over")
        assert overlapped == []
        # at most one version per warm-up (0.6 s) instead of one per min gap (0.1 s): about 4, not 20
        assert (feed.version("BW1") or 0) <= 2 + (time.monotonic() - started) / 0.6
        assert all(b - a >= 0.55 for a, b in zip(calls, calls[1:], strict=False))
    finally:
        feed.stop()


def test_marks_wake_the_dispatcher_only_the_consumers_when_a_change_is_told(redis_client: redis.Redis) -> None:
    """At 1 Hz a big plant's streams mark lines hundreds of times a second: a screen's event
    stream (an event loop waiting in ``wait_async``) or a thread in ``wait`` is woken only when
    a change is told, not by every mark (each wake-up of a loop costs it a turn, per screen)."""
    import asyncio

    feed = LiveFeed(redis_client, ["BW1", "CM1"], block_ms=100, quiet_s=3600, coalesce_s=2.0).start()
    loop = asyncio.new_event_loop()
    wakes: list[float] = []
    try:
        wait_for(lambda: feed.versions() == {"BW1": 1, "CM1": 1}, what="the start versions")
        seq = feed.seq
        wrapped = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> Any:  # the feed's wake-up of the loop
            wakes.append(time.monotonic())
            return wrapped(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        got: list[Any] = []
        waiting = threading.Thread(target=lambda: got.append(loop.run_until_complete(
            feed.wait_async(seq, ["CM1"], 30.0))))
        waiting.start()
        wait_for(lambda: feed._async_waiters, what="the loop waiting")
        marked = time.monotonic()
        for _ in range(300):  # within the coalescing: no version yet
            feed.mark_all(["BW1", "CM1"], WHY_EVENTS)
            feed.mark("CM1", WHY_EVENTS)
        assert time.monotonic() - marked < feed.coalesce_s, "the marks took longer than the coalescing"
        assert wakes == [] and not got  # nothing was told yet: nobody woken
        waiting.join(10.0)
        assert got and [(c.line, c.version) for c in got[0][1]] == [("CM1", 2)]
        assert 1 <= len(wakes) <= 2  # the change told (BW1's, told with it, too)
        assert wakes[0] - marked >= feed.coalesce_s
    finally:
        feed.stop()
        loop.close()


def test_an_amended_line_gets_its_next_version_at_once(feed: LiveFeed) -> None:
    """A person's classification (a write outside the streams): the line's next version is
    handed out and told at once, so what is read after the write is not the memo's."""
    from store.live_feed import WHY_AMENDED

    wait_for(lambda: feed.version("CM1") == 1, what="the start version")
    before = feed.seq
    feed.amend("CM1")
    assert feed.version("CM1") == 2 and feed.versions() == {"BW1": 1, "CM1": 2, "BR1": 1}
    assert [(c.line, c.version, c.why) for c in feed.changes_since(before) or []] == [("CM1", 2, (WHY_AMENDED,))]
    feed.amend("nowhere")  # not a line of the plant: nothing
    assert feed.seq == before + 1


def test_a_classification_written_anywhere_gives_its_line_a_new_version(feed: LiveFeed,
                                                                       redis_client: redis.Redis) -> None:
    """Written through another server process (its ``Classifications.put``): every feed reads
    the line's classifications counter beside the worker's and gives the line a new version."""
    from domain.classification import Classification
    from store.classifications import Classifications
    from store.live_feed import WHY_AMENDED

    wait_for(lambda: feed.version("BR1") == 1, what="the start version")
    before = feed.seq
    Classifications(redis_client).put("BR1", "BR1~BR-RM~1700000000000", Classification(3, by="op"))
    wait_for(lambda: feed.version("BR1") == 2, what="BR1's version after a classification")
    assert [(c.line, c.why) for c in feed.changes_since(before) or []] == [("BR1", (WHY_AMENDED,))]


@pytest.mark.parametrize("push", [True, False])
def test_a_screens_live_read_starts_the_feed_without_an_event_stream(redis_url: str, push: bool) -> None:
    """With several server processes the one answering a screen's refresh may hold none of
    the event streams: once it runs, its first live read starts its feed, so its views are kept
    per version and warmed like the others' (with push off: no feed, as before)."""
    from api import live
    from components.app_factory import create_app
    from store.live_feed import FEED_KEY

    inner, now = seed_plant(redis_url, PLANT, hours=0.5, end=history_end(PLANT.timezone))
    app = create_app(Settings(plant_path=DEMO_PLANT, plant=PLANT, redis_url=redis_url), lambda: inner,
                     clock=lambda: now)
    config = config_of(app.server)
    config[live.ENABLED_KEY] = push
    try:
        with serving(app.server, "/"):  # not before the server runs (its lifespan stops the feed again)
            assert data.line_views(["BW1"])[0][0]["line"] == "BW1"
        assert FEED_KEY not in config
        live.serving(config)  # as the server's lifespan does at its start
        with serving(app.server, "/"):
            assert data.line_views(["BW1"])[0][0]["line"] == "BW1"
        if not push:
            assert FEED_KEY not in config
            return
        feed: LiveFeed = config[FEED_KEY]
        wait_for(lambda: feed.up, what="the feed started by the read following the streams")
        with serving(app.server, "/"):
            view = data.line_views(["BW1"])[0][0]
        assert view["version"] == feed.version("BW1") is not None  # kept per version
    finally:
        live.shutdown(config)
