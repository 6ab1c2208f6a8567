"""The operator loop end to end against a real Redis and the real rollup worker: a person's
classification re-files a past stop in every figure (Pareto, loss categories, shift
table, API, CSV), a split divides a stop between two reasons, untagged coverage, the
stops list with stable ids, handovers. Hand-computed numbers: tests/operator_support.py."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from api.context import serving
from components import oee_panel, stops_list
from domain import calendar
from domain.accounting import Stop
from domain.classification import (
    Classification,
    ClassifiedStop,
    apply,
    check_comment,
    coverage,
    parse_stop_id,
    stop_id,
)
from domain.model import State
from domain.plant import Plant
from domain.stop_report import downtime_report
from store.live_feed import QUIET_S
from store.reader import PlantReader
from tests.core_support import T0, make_plant
from tests.operator_support import (
    FAULT_ID,
    IDLE,
    IDLE_ID,
    NOW,
    PAST,
    T,
    add_users,
    login,
    make_app,
    operator_plant,
    seed,
)
from tests.support import Client


@pytest.fixture
def plant() -> Plant:
    return operator_plant()


@pytest.fixture
def env(redis_client: redis.Redis, plant: Plant, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    reader = seed(redis_client, plant)
    app = make_app(reader, plant, tmp_path, redis_url)
    tokens = add_users(redis_client, plant)
    yield {"reader": reader, "client": Client(app.server), "tokens": tokens}


def _pareto(reader: PlantReader) -> dict[str, float]:
    report = reader.downtime("L1", *PAST, NOW)
    return {row["group"]: row["duration_s"] for row in report["pareto"]["by_duration"]}


def _shift_rows(reader: PlantReader, plant: Plant) -> list[dict[str, Any]]:
    from zoneinfo import ZoneInfo

    shifts = calendar.shifts_overlapping(plant.shifts, ZoneInfo(plant.timezone), *PAST)
    return oee_panel.shift_rows([(s, reader.line_kpis("L1", max(s.start, PAST[0]), min(s.end, PAST[1]), NOW))
                                 for s in shifts])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_before_any_classification_the_plc_reasons_count(env: dict[str, Any]) -> None:
    reader = env["reader"]
    assert _pareto(reader) == {"no_reason": 600.0, "1": 300.0}
    kpis = reader.line_kpis("L1", *PAST, NOW)
    assert kpis["losses"]["unexplained"] == 600.0 and kpis["losses"]["equipment_failure"] == 300.0
    assert kpis["untagged_coverage"] == pytest.approx(300 / 900)
    assert kpis["untagged_stops"] == 1


def test_a_classification_refiles_a_past_stop_everywhere(env: dict[str, Any], plant: Plant) -> None:
    reader, client = env["reader"], env["client"]
    rows_before = _shift_rows(reader, plant)
    operator = _bearer(env["tokens"]["operator", "L1"])
    answer = client.put(f"/api/lines/L1/stops/{IDLE_ID}/classification", headers=operator,
                        json={"reason": 3, "comment": "no blanks from the press"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["plc_reason"] == 0 and answer.get_json()["reason"] == 3
    # the reader's figures, a past window
    assert _pareto(reader) == {"3": 600.0, "1": 300.0}
    kpis = reader.line_kpis("L1", *PAST, NOW)
    assert kpis["losses"]["starved_blocked"] == 600.0 and kpis["losses"]["unexplained"] == 0.0
    assert kpis["down_s"] == 900.0  # re-filed, not added
    assert kpis["untagged_coverage"] == 1.0 and kpis["untagged_stops"] == 0
    # the shift table: same down time, same availability (starved is still an availability loss)
    rows_after = _shift_rows(reader, plant)
    assert [r["down_s"] for r in rows_after] == [r["down_s"] for r in rows_before]
    # the API
    api = client.get("/api/lines/L1/downtime", query_string=_iso_window())
    body = api.get_json()
    assert {r["group"]: r["duration_s"] for r in body["pareto"]["by_duration"]} == {"3": 600.0, "1": 300.0}
    event = next(e for e in body["events"] if e["id"] == IDLE_ID)
    assert (event["reason"], event["plc_reason"], event["category"]) == (3, 0, "starved_blocked")
    assert event["classified_by"] == "operator-L1" and event["comment"] == "no blanks from the press"
    api_kpis = client.get("/api/lines/L1/kpis", query_string=_iso_window()).get_json()
    assert api_kpis["losses"]["starved_blocked"] == 600.0 and api_kpis["untagged_coverage"] == 1.0
    # the CSVs (stops and shifts) say the same
    stops = pd.read_csv(io.StringIO(stops_list.stops_csv(body["events"], "UTC")))
    assert stops.loc[stops["start_utc_epoch_s"] == IDLE[0], "category"].tolist() == ["starved_blocked"]
    shifts = pd.read_csv(io.StringIO(oee_panel.shifts_csv(rows_after)))
    assert shifts["down_s"].tolist() == [r["down_s"] for r in rows_after]


def test_a_planned_reason_moves_the_stop_out_of_availability(env: dict[str, Any], plant: Plant) -> None:
    """Reason 1 -> a planned reason is not in L1's list; on L2 (plant-wide list) it is."""
    reader, client, tokens = env["reader"], env["client"], env["tokens"]
    refused = client.put(f"/api/lines/L1/stops/{IDLE_ID}/classification", headers=_bearer(tokens["operator", "L1"]),
                         json={"reason": 4})
    assert refused.status_code == 400 and "not in line L1's reason list" in refused.get_json()["error"]
    before = reader.line_kpis("L2", *PAST, NOW)
    sid = f"L2~M9~{round(IDLE[0] * 1000)}"
    assert client.put(f"/api/lines/L2/stops/{sid}/classification", headers=_bearer(tokens["operator", "L2"]),
                      json={"reason": 4}).status_code == 200
    after = reader.line_kpis("L2", *PAST, NOW)
    assert before["down_s"] == 600.0 and after["down_s"] == 0.0
    assert after["planned_down_s"] == 600.0
    assert after["planned_busy_s"] == before["planned_busy_s"] - 600.0
    assert after["availability"] == 1.0 > before["availability"]


def test_a_split_divides_a_stop_between_two_reasons(env: dict[str, Any]) -> None:
    reader, client = env["reader"], env["client"]
    at = IDLE[0] + 240
    answer = client.post(f"/api/lines/L1/stops/{IDLE_ID}/split", headers=_bearer(env["tokens"]["supervisor", "L1"]),
                         json={"at": at, "before": 1, "after": 2, "comment": "jam, then a changeover"})
    assert answer.status_code == 200, answer.get_json()
    assert _pareto(reader) == {"1": 300.0 + 240.0, "2": 360.0}
    kpis = reader.line_kpis("L1", *PAST, NOW)
    assert kpis["losses"]["equipment_failure"] == 540.0 and kpis["losses"]["setup_adjustment"] == 360.0
    pieces = [e for e in reader.downtime("L1", *PAST, NOW)["events"] if e.get("id") == IDLE_ID]
    assert [(e["start"], e["end"], e["reason"], e["piece"], e["plc_reason"]) for e in pieces] == [
        (IDLE[0], at, 1, 1, 0), (at, IDLE[1], 2, 2, 0)]
    for bad in (IDLE[0], IDLE[1], IDLE[1] + 60):
        supervisor = _bearer(env["tokens"]["supervisor", "L1"])
        refused = client.post(f"/api/lines/L1/stops/{IDLE_ID}/split", headers=supervisor,
                              json={"at": bad, "before": 1, "after": 2})
        assert refused.status_code == 400 and "inside the stop" in refused.get_json()["error"]


def test_stops_list_has_stable_ids_and_an_untagged_filter(env: dict[str, Any]) -> None:
    client = env["client"]
    every = client.get("/api/lines/L1/stops", query_string=_iso_window()).get_json()
    assert [e["id"] for e in every["stops"]] == [IDLE_ID, FAULT_ID]
    untagged = client.get("/api/lines/L1/stops", query_string={**_iso_window(), "untagged": "1"}).get_json()
    assert [e["id"] for e in untagged["stops"]] == [IDLE_ID]
    assert untagged["untagged_coverage"] == pytest.approx(1 / 3)
    reasons = client.get("/api/lines/L1/reasons").get_json()["by_category"]
    assert reasons == {"equipment_failure": [[1, "Jam"]], "setup_adjustment": [[2, "Changeover"]],
                       "starved_blocked": [[3, "No material"]], "small_stop": [[5, "Slow feeder"]]}


def test_an_operator_may_not_overwrite_someone_elses_classification(env: dict[str, Any]) -> None:
    client, tokens = env["client"], env["tokens"]
    url = f"/api/lines/L1/stops/{IDLE_ID}/classification"
    assert client.put(url, headers=_bearer(tokens["supervisor", "L1"]), json={"reason": 3}).status_code == 200
    refused = client.put(url, headers=_bearer(tokens["operator", "L1"]), json={"reason": 1})
    assert refused.status_code == 403 and "someone else made" in refused.get_json()["error"]
    assert env["reader"].classifications.get("L1", IDLE_ID).reason == 3


def test_unknown_stops_are_404(env: dict[str, Any]) -> None:
    client, token = env["client"], env["tokens"]["operator", "L1"]
    for sid in ("nonsense", f"L1~M1~{round(T * 1000) + 5}", f"L1~NOPE~{round(T * 1000)}", f"L2~M9~{round(T * 1000)}"):
        answer = client.put(f"/api/lines/L1/stops/{sid}/classification", headers=_bearer(token), json={"reason": 1})
        assert answer.status_code == 404, sid


def test_handover_note_sign_and_acknowledge(env: dict[str, Any]) -> None:
    client = env["client"]
    shift_a = str(round(T - 2 * 3600))  # shift A starts at 00:00 UTC
    csrf = login(client, "supervisor1")
    note = client.put(f"/api/lines/L1/handovers/{shift_a}", headers={"X-CSRF-Token": csrf},
                      json={"note": "Press fed late in the 03:00 hour", "open_issues": "check feeder"})
    assert note.status_code == 200, note.get_json()
    signed = client.post(f"/api/lines/L1/handovers/{shift_a}/sign", headers={"X-CSRF-Token": csrf})
    assert signed.status_code == 200
    frozen = signed.get_json()["figures"]
    assert frozen["down_s"] == 900.0 and frozen["untagged_coverage"] == pytest.approx(1 / 3)
    assert client.post(f"/api/lines/L1/handovers/{shift_a}/acknowledge", headers={"X-CSRF-Token": csrf}
                       ).status_code == 409  # not by the one who signed
    assert client.put(f"/api/lines/L1/handovers/{shift_a}", headers={"X-CSRF-Token": csrf},
                      json={"note": "changed"}).status_code == 409  # signed: frozen
    client.post("/api/logout")
    csrf = login(client, "supervisor1b")
    acked = client.post(f"/api/lines/L1/handovers/{shift_a}/acknowledge", headers={"X-CSRF-Token": csrf})
    assert acked.status_code == 200 and acked.get_json()["acknowledged_by"] == "supervisor1b"
    history = client.get("/api/lines/L1/handovers", query_string={"start": "2000-01-01T00:00:00Z"}).get_json()
    assert [(h["signed_by"], h["acknowledged_by"], h["figures"]["down_s"]) for h in history["handovers"]] == [
        ("supervisor1", "supervisor1b", 900.0)]
    # a classification after sign-off changes the live figures, not the signed ones
    client.put(f"/api/lines/L1/stops/{IDLE_ID}/classification", headers={"X-CSRF-Token": csrf}, json={"reason": 3})
    again = client.get("/api/lines/L1/handovers", query_string={"start": "2000-01-01T00:00:00Z"}).get_json()
    assert again["handovers"][0]["figures"]["untagged_coverage"] == pytest.approx(1 / 3)


def _iso_window() -> dict[str, str]:
    from datetime import UTC, datetime

    return {"start": datetime.fromtimestamp(PAST[0], UTC).isoformat(),
            "end": datetime.fromtimestamp(PAST[1], UTC).isoformat()}


# --- pure: stop ids, applying classifications, coverage ---------------------------------------------

@pytest.mark.parametrize(("line", "machine", "start", "text"), [
    ("BW1", "ST30", 1795590000.0, "BW1~ST30~1795590000000"),
    ("L-1", "M.2_a", 1795590000.1234, "L-1~M.2_a~1795590000123"),
    ("L1", "M1", 0.0, "L1~M1~0"),
])
def test_stop_ids_round_trip(line: str, machine: str, start: float, text: str) -> None:
    assert stop_id(line, machine, start) == text
    assert parse_stop_id(text) == (line, machine, round(start * 1000) / 1000)


@pytest.mark.parametrize("text", ["", "L1~M1", "L1~M1~x", "L1~M1~-5", "~M1~5", "L1~~5", "L1~M1~5~6",
                                  "L1~M1~" + "9" * 17])
def test_bad_stop_ids(text: str) -> None:
    assert parse_stop_id(text) is None


@pytest.mark.parametrize(("comment", "ok"), [(None, True), ("", True), ("jam\nagain\t!", True), ("x" * 500, True),
                                             ("x" * 501, False), ("bell\x07", False), (5, False)])
def test_comments(comment: object, ok: bool) -> None:
    assert (check_comment(comment) is None) is ok


def _stop(start: float, end: float | None, reason: int = 0, state: State = State.IDLE) -> Stop:
    return Stop("L1", "M1", start, end, state, reason)


@pytest.mark.parametrize(("stop", "cls", "pieces"), [
    # no classification: unchanged, with its id and PLC code
    (_stop(100, 200, 7), None, [(100, 200, 7, 0)]),
    # a reason replaces the PLC's
    (_stop(100, 200, 7), Classification(3), [(100, 200, 3, 0)]),
    # a split at 130: two pieces
    (_stop(100, 200), Classification(1, splits=((130.0, 2),)), [(100, 130, 1, 1), (130, 200, 2, 2)]),
    # an ongoing stop split: the last piece stays ongoing
    (_stop(100, None), Classification(1, splits=((130.0, 2),)), [(100, 130, 1, 1), (130, None, 2, 2)]),
    # a split time outside the stop (the stop was rewritten) is ignored
    (_stop(100, 200), Classification(1, splits=((250.0, 2),)), [(100, 200, 1, 0)]),
])
def test_apply(stop: Stop, cls: Classification | None, pieces: list[tuple[Any, ...]]) -> None:
    sid = stop_id("L1", "M1", stop.start)
    got = apply([stop], {sid: cls} if cls else {})
    assert [(s.start, s.end, s.reason, s.piece) for s in got] == pieces  # type: ignore[attr-defined]
    assert all(isinstance(s, ClassifiedStop) and s.plc_reason == stop.reason and s.stop_id == sid for s in got)


def test_apply_with_the_unclassified_stops_kept_gives_the_same_stops() -> None:
    """A reader keeps each stop's unclassified ``ClassifiedStop`` (``kept``, by stop object)
    and a classified one's pieces (``pieces``, by stop object and classification): the same
    answers, and the same objects the next time; another classification, other pieces."""
    stops = [_stop(100, 200, 7), _stop(300, 400), _stop(500, None, 2, State.FAULT)]
    classified = {stop_id("L1", "M1", 300): Classification(3, splits=((350.0, 2),))}
    kept: dict[int, Any] = {}
    pieces: dict[Any, Any] = {}
    for cls in ({}, classified, {}):
        first, again = apply(stops, cls, kept, pieces=pieces), apply(iter(stops), cls, kept, pieces=pieces)
        assert first == again == apply(stops, cls)
        assert all(a is b for a, b in zip(first, again, strict=True) if a.end is not None)
    assert len(kept) == 2 and len(pieces) == 1, "an ongoing stop is not kept: it is another object at every read"
    said_again = {stop_id("L1", "M1", 300): Classification(3, splits=((360.0, 2),))}  # a person moved the split
    moved = apply(stops, said_again, kept, pieces=pieces)
    assert moved == apply(stops, said_again) != apply(stops, classified)
    assert moved[1] is not apply(stops, classified, kept, pieces=pieces)[1]
    assert [s.reason for s in apply(stops, classified, kept)] == [7, 3, 2, 2]
    assert apply(stops, {}, kept)[0] is apply([stops[0]], {}, kept)[0]
    assert apply([_stop(100, 200, 7)], {}, kept)[0] is not apply(stops, {}, kept)[0], "by object, not by value"


@pytest.mark.parametrize(("stops", "expected"), [
    ([], (0.0, 0.0, None, 0)),
    # 600 s idle without a reason (unexplained down time), 300 s with a failure reason
    ([_stop(T0, T0 + 600), _stop(T0 + 1000, T0 + 1300, 1, State.FAULT)], (900.0, 300.0, 300 / 900, 1)),
    # a short stop without a reason is a small stop (performance), not down time
    ([_stop(T0, T0 + 60), _stop(T0 + 1000, T0 + 1300, 1, State.FAULT)], (300.0, 300.0, 1.0, 0)),
    # planned stops are not unplanned down time
    ([_stop(T0, T0 + 600, 4), _stop(T0 + 1000, T0 + 1300, 0, State.FAULT)], (300.0, 0.0, 0.0, 1)),
    # only the part inside the window counts
    ([_stop(T0 - 300, T0 + 300)], (300.0, 0.0, 0.0, 1)),
    # overlapping stops of a machine: the later one claims only what the earlier left
    ([_stop(T0, T0 + 600), _stop(T0 + 300, T0 + 900, 1, State.FAULT)], (900.0, 300.0, 300 / 900, 1)),
    # an ongoing stop counts up to the window's end
    ([_stop(T0 + 3000, None, 0, State.FAULT)], (600.0, 0.0, 0.0, 1)),
])
def test_coverage(stops: list[Stop], expected: tuple[float, float, float | None, int]) -> None:
    got = coverage(stops, make_plant(), T0, T0 + 3600, T0 + 7200)
    assert (got.down_s, got.tagged_s, got.share, got.untagged_stops) == expected
    # the downtime report of the same stops gives them from its own pass (what the reader's answers show)
    summary = downtime_report(stops, make_plant(), T0, T0 + 3600, T0 + 7200)["summary"]
    assert {k: summary[k] for k in got.to_dict()} == got.to_dict()  # type: ignore[literal-required]


def test_the_overview_card_and_the_wall_count_what_the_queue_lists(env: dict[str, Any], plant: Plant, redis_url: str,
                                                                    tmp_path: Path) -> None:
    from components import data, overview, wall

    app = make_app(env["reader"], plant, tmp_path, redis_url)
    client = env["client"]

    def card_wall_and_queue() -> tuple[str, str, int]:
        with serving(app.server):
            views, _ = data.line_views(["L1"])
        queue = client.get("/api/lines/L1/stops", query_string={"start": "shift", "untagged": "1"}).get_json()
        return overview.card_texts(views[0])["untagged"], wall.tile_texts(views[0])["untagged"], len(queue["stops"])

    assert card_wall_and_queue() == ("1", "1 untagged", 1)
    client.put(f"/api/lines/L1/stops/{IDLE_ID}/classification", json={"reason": 3},
               headers=_bearer(env["tokens"]["operator", "L1"]))
    # the write went through another app (another server process): this one's live feed, started
    # by its first live read, keeps the line's view per version until the line's next version
    # (its readers see the classifications' counter within a second; the clock's within QUIET_S)
    deadline = time.monotonic() + 10 * QUIET_S
    while (got := card_wall_and_queue()) != ("0", "", 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert got == ("0", "", 0)  # the wall's pill is gone at 0 (CSS :empty)


# --- late data moved the stop: the classification follows by overlap ------------------------------

def _other_machine(start: float, end: float | None) -> Stop:
    return Stop("L1", "M2", start, end, State.IDLE, 0)


JAM = Classification(1, at=900.0, end=200.0)  # made for a stop [100, 200) of M1


@pytest.mark.parametrize(("stops", "carrier"), [
    # the same start: its own id
    ([_stop(100, 200)], 0),
    # the start moved 5 s later: the stop covering most of [100, 200) carries it
    ([_stop(105, 200)], 0),
    # moved earlier and longer
    ([_stop(90, 230)], 0),
    # moved and split in two by late data: the part covering most carries it, the other none
    ([_stop(102, 130), _stop(131, 200)], 1),
    # covering under half of the classified interval: not this stop's
    ([_stop(160, 400)], None),
    # another machine's stop never
    ([_other_machine(100, 200)], None),
    # an ongoing stop that began at the same time as the classified one
    ([_stop(102, None)], 0),
])
def test_a_classification_attaches_by_overlap(stops: list[Stop], carrier: int | None) -> None:
    got = apply(stops, {stop_id("L1", "M1", 100): JAM})
    reasons = [s.reason for s in got]
    assert reasons == [1 if i == carrier else 0 for i in range(len(stops))]
    assert [s.stop_id for s in got] == [stop_id(s.line, s.machine, s.start) for s in stops]  # type: ignore[attr-defined]


def test_a_stops_own_classification_wins_over_a_moved_one() -> None:
    own = Classification(2, at=950.0, end=200.0)
    got = apply([_stop(105, 200)], {stop_id("L1", "M1", 100): JAM, stop_id("L1", "M1", 105): own})
    assert [s.reason for s in got] == [2]


def _move_stop(client: redis.Redis, line: str, machine: str, start: float, by_s: float) -> str:
    """What the event-time worker does when late data changes a stop's start: the stop
    record is written again with the new start."""
    from domain import contract

    key = contract.stops_key(line)
    members: Any = client.zrangebyscore(key, start - 0.001, start + 0.001)
    for raw in members:
        m, s, e, state, reason = contract.decode_stop_member(raw)
        if m == machine:
            client.zrem(key, raw)
            client.zadd(key, {contract.encode_stop_member(m, s + by_s, e, state, reason): s + by_s})
    return stop_id(line, machine, start + by_s)


def test_a_rewritten_stop_keeps_its_classification(env: dict[str, Any], plant: Plant,
                                                   redis_client: redis.Redis) -> None:
    client = env["client"]
    done = client.put(f"/api/lines/L1/stops/{IDLE_ID}/classification", json={"reason": 3, "comment": "no blanks"},
                      headers=_bearer(env["tokens"]["supervisor", "L1"]))
    assert done.status_code == 200 and done.get_json()["end"] == IDLE[1]
    moved = _move_stop(redis_client, "L1", "M1", IDLE[0], 5)
    reader = PlantReader(redis_client, plant)  # a fresh reader: no stops cached from before
    assert _pareto(reader) == {"3": 595.0, "1": 300.0}  # the figures still file it under No material
    event = next(e for e in reader.downtime("L1", *PAST, NOW)["events"] if e["id"] == moved)
    assert (event["reason"], event["classified_by"], event["comment"]) == (3, "supervisor-L1", "no blanks")
    # the rules follow too: an operator may not change the supervisor's classification
    url = f"/api/lines/L1/stops/{moved}/classification"
    refused = client.put(url, json={"reason": 2}, headers=_bearer(env["tokens"]["operator", "L1"]))
    assert refused.status_code == 403
    # a new classification of the moved stop replaces the old one under the new id
    again = client.put(url, json={"reason": 2}, headers=_bearer(env["tokens"]["supervisor", "L1"]))
    assert again.status_code == 200
    from domain import contract

    ids: Any = redis_client.hkeys(contract.classifications_key("L1"))
    indexed: Any = redis_client.zrange(contract.classification_starts_key("L1"), 0, -1)
    assert {k.decode() for k in ids} == {k.decode() for k in indexed} == {moved}
    assert _pareto(PlantReader(redis_client, plant)) == {"2": 595.0, "1": 300.0}
