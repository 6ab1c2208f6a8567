"""The HTTP API on a FastAPI app with its router: status codes, JSON, odd inputs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any
from urllib.parse import quote

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from api import create_api_router
from api.document import openapi_spec
from domain import andon
from domain.model import Event
from store.reader import PlantReader
from tests.history import line_history
from tests.store_support import HOUR, RECENT, Snapshot, rolled_up_snapshot, two_machine_plant
from tests.support import Client, api_app

START = RECENT + 5 * HOUR  # 13:00 in Shanghai: during shift A (06:00-14:00)
END = RECENT + 7 * HOUR
NOW = END + 5
PLANT = two_machine_plant()


def iso(ts: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


def make_app(reader_or_factory: Any, now: float = NOW) -> Any:
    app = api_app(create_api_router(reader_or_factory, clock=lambda: now))
    return app


@pytest.fixture(scope="module")
def rolled_up(redis_url: str) -> Snapshot:
    """The history written and rolled up once for the module (the API only reads it)."""
    events: list[Event] = line_history(PLANT, "L1", START, END, seed=9, power_every_s=5.0)
    return rolled_up_snapshot(redis_url, PLANT, events, NOW)


@pytest.fixture
def client(redis_client: redis.Redis, rolled_up: Snapshot) -> Iterator[Client]:
    rolled_up.restore(redis_client)
    reader = PlantReader(redis_client, PLANT)
    yield Client(make_app(lambda: reader))


def test_lines(client: Client) -> None:
    response = client.get("/api/lines")
    assert response.status_code == 200 and response.is_json
    body = response.get_json()
    assert [m["id"] for m in body["lines"][0]["machines"]] == ["M1", "M2"]


def test_lines_filtered_by_line(client: Client, redis_client: redis.Redis) -> None:
    assert [line["id"] for line in client.get("/api/lines?line=L1").get_json()["lines"]] == ["L1"]
    missing = client.get("/api/lines?line=L1&line=NOPE")
    assert missing.status_code == 404 and "NOPE" in missing.get_json()["error"]
    from config.loader import DEMO_PLANT, load_plant

    demo = Client(make_app(PlantReader(redis_client, load_plant(DEMO_PLANT))))
    assert [line["id"] for line in demo.get("/api/lines").get_json()["lines"]] == ["BW1", "CM1", "BR1"]
    assert [line["id"] for line in demo.get("/api/lines?line=BR1,BW1").get_json()["lines"]] == ["BW1", "BR1"]
    assert [line["id"] for line in demo.get("/api/lines?line=CM1&line=BR1").get_json()["lines"]] == ["CM1", "BR1"]


def test_lines_serve_the_andon_status_and_pace(client: Client) -> None:
    """Per line, besides its live state: the andon status, the output against the target so
    far, pace, behind by and stale (``domain.andon``: what the wall and the overview show)."""
    body = client.get("/api/lines").get_json()
    # NOW is 15:00:05 in Shanghai: shift B (14:00-22:00, no break), 3 605 s of planned time elapsed
    assert body["shift"] == {"name": "B", "label": body["shift"]["label"], "start": RECENT + 6 * HOUR,
                             "end": RECENT + 14 * HOUR, "planned_s": 8 * HOUR, "planned_elapsed_s": 3605.0,
                             "planned_now": True}
    line = body["lines"][0]
    assert {"id", "name", "output_machine", "target_oee", "last_data", "machines"} <= set(line)  # as before
    kpis = client.get("/api/lines/L1/kpis?start=shift").get_json()
    # the output machine M2 (25 s ideal cycle), target OEE 0.85: 3 605 / 25 x 0.85 = 122.6; 28 800 s: 979.2
    assert (line["output"], line["target_so_far"], line["target_shift"]) == (kpis["good_count"], 122, 979)
    assert line["pace"] == kpis["good_count"] - 122
    assert line["behind_by"] == max(0, 122 - kpis["good_count"])
    assert line["status"] in andon.STATUSES and line["status"] != andon.NO_DATA
    assert (line["stale"], line["stale_machines"], line["planned_now"]) == (False, [], True)
    decider = next(m for m in line["machines"] if m["id"] == line["status_machine"])
    assert (line["status_state"], line["status_since"]) == (decider["state"], decider["since"])
    assert line["status_reason"] == (decider["reason"] if line["status"] != andon.RUNNING else None)


def test_lines_say_stale_when_the_collectors_are_silent(client: Client, redis_client: redis.Redis) -> None:
    """An hour after the last data (gap timeout 30 s): no machine is live, the line shows
    no data since its last data; its output so far still counts against the target."""
    silent = Client(make_app(PlantReader(redis_client, PLANT), now=NOW + HOUR))
    line = silent.get("/api/lines").get_json()["lines"][0]
    assert (line["status"], line["stale"], line["stale_machines"]) == (andon.NO_DATA, True, ["M1", "M2"])
    assert line["status_since"] == line["last_data"] == max(m["last_data"] for m in line["machines"])
    assert line["status_machine"] is None and line["status_reason"] is None
    assert line["target_so_far"] == 244  # 7 205 s / 25 s x 0.85 = 244.97


def test_lines_answer_is_described_by_the_openapi(client: Client) -> None:
    body = client.get("/api/lines").get_json()
    schema = openapi_spec()["components"]["schemas"]
    lines = schema["LinesWithAndon"]["properties"]
    assert lines["lines"]["items"] == {"$ref": "#/components/schemas/LineWithAndon"}
    assert set(body) == set(lines)
    assert set(body["lines"][0]) == set(schema["LineWithAndon"]["properties"])
    assert set(body["shift"]) == set(schema["ShiftContext"]["properties"])


def test_kpis_default_to_the_current_shift(client: Client) -> None:
    body = client.get("/api/lines/L1/kpis").get_json()
    assert body["window"]["label"].endswith(" B")  # 15:05 in Shanghai: shift B since 14:00
    assert body["window"]["start"] == RECENT + 6 * HOUR and body["window"]["end"] == NOW
    assert body["window"]["start_iso"].endswith("14:00:00+08:00")
    assert body["total_count"] > 0 and 0 < body["oee"] < 1
    assert [m["id"] for m in body["machines"]] == ["M1", "M2"]


def test_kpis_for_an_explicit_window(client: Client) -> None:
    start = quote(iso(START + HOUR))
    end = quote(iso(START + 1.5 * HOUR))
    response = client.get(f"/api/lines/L1/kpis?start={start}&end={end}")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["window"]["start"] == START + HOUR and body["window"]["end"] == START + 1.5 * HOUR
    assert body["calendar_s"] == pytest.approx(1800)


def test_machine_kpis_downtime_energy(client: Client) -> None:
    machine = client.get("/api/lines/L1/machines/M1/kpis?start=today")
    assert machine.status_code == 200 and machine.get_json()["machine"] == "M1"
    assert machine.get_json()["window"]["label"] == "today"
    down = client.get("/api/lines/L1/downtime?range=today").get_json()
    assert down["events"] and down["pareto"]["by_duration"] and "mtbf_s" in down
    energy = client.get("/api/lines/L1/energy").get_json()
    assert energy["kwh"] > 0 and energy["currency"] == "EUR" and len(energy["machines"]) == 2


def test_health(client: Client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200 and response.get_json()["ok"] is True


def test_health_is_503_when_not_ok(redis_client: redis.Redis) -> None:
    app = make_app(PlantReader(redis_client, PLANT))  # nothing collected yet
    response = Client(app).get("/api/health")
    assert response.status_code == 503 and response.get_json()["ok"] is False


def test_openapi(client: Client) -> None:
    body = client.get("/api/openapi.json").get_json()
    assert body["openapi"].startswith("3.1")
    assert set(body["paths"]) >= {"/api/lines", "/api/lines/{line}/kpis", "/api/lines/{line}/machines/{machine}/kpis",
                                  "/api/lines/{line}/downtime", "/api/lines/{line}/energy", "/api/health"}
    refs = _refs(body)
    assert refs and all(ref.removeprefix("#/components/schemas/") in body["components"]["schemas"] for ref in refs)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


BAD = [
    ("/api/lines/L1/kpis?start=x", 400, "start: not an ISO 8601 time with offset: 'x'"),
    ("/api/lines/L1/kpis?start=2026-01-01T07:00:00", 400, "has no UTC offset"),
    (f"/api/lines/L1/kpis?start={quote(iso(START))}&end={quote(iso(START - 60))}", 400, "end must be after start"),
    (f"/api/lines/L1/kpis?start={quote(iso(NOW - 500 * 86400))}", 400, "window longer than 400 days"),
    ("/api/lines/L1/kpis?end=2026-01-01T07:00:00Z", 400, "start: required when end is given"),
    ("/api/lines/L1/kpis?start=yesterday&end=2026-01-01T07:00:00Z", 400, "end: not allowed"),
    ("/api/lines/L9/kpis", 404, "unknown line 'L9'"),
    ("/api/lines/L9/downtime", 404, "unknown line 'L9'"),
    ("/api/lines/L9/energy", 404, "unknown line 'L9'"),
    ("/api/lines/L1/machines/M9/kpis", 404, "unknown machine 'M9' in line 'L1'"),
    ("/api/lines/L9/machines/M1/kpis", 404, "unknown line 'L9'"),
    ("/api/nothing/here", 404, "no such endpoint"),
    ("/api/lines/L1/kpis?start=%00", 400, "start:"),
]


@pytest.mark.parametrize(("url", "status", "message"), BAD)
def test_bad_requests_answer_json_errors(client: Client, url: str, status: int, message: str) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_wrong_method_is_a_json_error(client: Client) -> None:
    response = client.post("/api/lines")
    assert response.status_code in (404, 405) and "error" in response.get_json()


def test_errors_become_500_json_and_redis_outages_503() -> None:
    class Broken(PlantReader):
        def __init__(self) -> None:
            super().__init__(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                                         retry=Retry(NoBackoff(), 0)), PLANT)

        def lines(self, now: float, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise RuntimeError("boom")

    app = make_app(Broken())
    client = Client(app)
    response = client.get("/api/lines")
    assert response.status_code == 500 and response.get_json() == {"error": "internal error"}
    response = client.get("/api/lines/L1/kpis")
    assert response.status_code == 503 and response.get_json() == {"error": "data store unavailable"}
    assert client.get("/api/health").status_code == 503



def test_non_finite_figures_are_served_as_null_and_clean_answers_as_they_are(redis_client: redis.Redis) -> None:
    """A figure that is NaN or infinite (a ratio without a base) is JSON null; an answer
    without one is served as the reader gave it (encoded as it is, not walked first)."""
    from typing import NamedTuple

    class Pair(NamedTuple):  # (a type orjson does not take: encoded as ``json`` takes it)
        low: float
        high: float

    answers = [{"lines": [{"id": "L1", "oee": float("nan"), "rates": [1.5, float("inf"), -float("inf")],
                           "nested": {"x": (float("nan"), 2)}}], "shift": {"n": 3}},
               {"lines": [{"id": "L1", "oee": 0.5, "pair": (1, 2.5), "name": "线 1"}]},
               {"by_code": {7: 1.5}, "range": Pair(float("-inf"), 2.0)}]

    class Odd(PlantReader):
        def lines(self, now: float, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return answers.pop(0)

    client = Client(make_app(Odd(redis_client, PLANT)))
    first = client.get("/api/lines")
    assert first.status_code == 200
    assert first.get_json() == {"lines": [{"id": "L1", "oee": None, "rates": [1.5, None, None],
                                           "nested": {"x": [None, 2]}}], "shift": {"n": 3}}
    second = client.get("/api/lines")
    assert second.status_code == 200
    assert second.get_json() == {"lines": [{"id": "L1", "oee": 0.5, "pair": [1, 2.5], "name": "线 1"}]}
    third = client.get("/api/lines")
    assert third.status_code == 200 and third.get_json() == {"by_code": {"7": 1.5}, "range": [None, 2.0]}

odd_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.one_of(st.just("L1"), odd_text),
       start=st.one_of(st.none(), odd_text, st.sampled_from(
           ["shift", "7d", "2026-01-01T00:00:00+08:00", "1e309", "-1", "2026-W01", "NaN"])),
       end=st.one_of(st.none(), odd_text),
       path=st.sampled_from(["kpis", "downtime", "energy", "machines/M1/kpis", "machines/%2e%2e/kpis"]))
def test_nothing_a_client_sends_breaks_the_server(client: Client, line: str, start: str | None,
                                                  end: str | None, path: str) -> None:
    params = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    response = client.get(f"/api/lines/{quote(line, safe='')}/{path}", query_string=params)
    assert response.status_code in (200, 400, 404), response.get_data()
    assert response.is_json
    body = response.get_json()
    assert ("error" in body) == (response.status_code != 200)


def test_the_spec_is_json_serialisable() -> None:
    import json

    assert json.loads(json.dumps(openapi_spec()))["info"]["title"]
