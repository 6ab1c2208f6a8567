"""PlantReader against a real Redis filled by the rollup worker: every answer equals the
computation from the raw events; windows; live state; health."""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from config.loader import DEMO_PLANT, load_plant
from domain import contract, kpi, stop_report
from domain.model import Event, Signal
from domain.totals import Totals
from store import window_reads
from store.reader import PlantReader, UnknownLine, UnknownMachine, WindowError, resolve_window
from tests.history import line_history, write_events
from tests.store_support import (
    HOUR,
    RECENT,
    Snapshot,
    assert_close,
    reference,
    rolled_up_snapshot,
    run_worker_until_drained,
    two_machine_plant,
)

START = RECENT + 1.5 * HOUR + 7.25
END = RECENT + 7.25 * HOUR
NOW = END + 30
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def plant() -> Any:
    return two_machine_plant()


@pytest.fixture(scope="module")
def events(plant: Any) -> list[Event]:
    return line_history(plant, "L1", START, END, seed=5, power_every_s=2.0, mean_run_s=400.0)


@pytest.fixture(scope="module")
def rolled_up(redis_url: str, plant: Any, events: list[Event]) -> Snapshot:
    """The history written and rolled up once for the module (the tests only read it)."""
    return rolled_up_snapshot(redis_url, plant, events, NOW)


@pytest.fixture
def reader(redis_client: redis.Redis, plant: Any, rolled_up: Snapshot) -> PlantReader:
    rolled_up.restore(redis_client)
    return PlantReader(redis_client, plant)


def reference_all(plant: Any, events: list[Event], start: float, end: float, now: float = NOW
                  ) -> tuple[dict[str, Totals], list[Any]]:
    totals, stops = {}, []
    for machine in ("M1", "M2"):
        totals[machine], machine_stops = reference(plant, events, machine, start, end, now, origin=START)
        stops.extend(machine_stops)
    return totals, stops


# --- windows ----------------------------------------------------------------------------

def shanghai(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


DEMO = load_plant(DEMO_PLANT)
AT = shanghai("2026-03-10T02:30:00")  # during shift C (23:00-07:00), which started yesterday

WINDOW_CASES = [
    (None, None, shanghai("2026-03-09T23:00:00"), AT, "2026-03-09 C"),
    ("shift", None, shanghai("2026-03-09T23:00:00"), AT, "2026-03-09 C"),
    ("last_shift", None, shanghai("2026-03-09T15:00:00"), shanghai("2026-03-09T23:00:00"), "2026-03-09 B"),
    ("today", None, shanghai("2026-03-10T00:00:00"), AT, "today"),
    ("yesterday", None, shanghai("2026-03-09T00:00:00"), shanghai("2026-03-10T00:00:00"), "yesterday"),
    ("7d", None, AT - 7 * 86400, AT, "7d"),
    ("30d", None, AT - 30 * 86400, AT, "30d"),
    ("2026-03-09T07:00:00+08:00", "2026-03-09T15:00:00+08:00", shanghai("2026-03-09T07:00:00"),
     shanghai("2026-03-09T15:00:00"), ""),
    ("2026-03-09T07:00:00Z", None, shanghai("2026-03-09T15:00:00"), AT, ""),
    ("2026-03-09T07:00:00 08:00", None, shanghai("2026-03-09T07:00:00"), AT, ""),  # '+' not URL-encoded
    ("2026-03-09T07:00:00+08:00", "2027-01-01T00:00:00+08:00", shanghai("2026-03-09T07:00:00"), AT, ""),
]


@pytest.mark.parametrize(("start", "end", "want_start", "want_end", "label"), WINDOW_CASES)
def test_windows(start: str | None, end: str | None, want_start: float, want_end: float, label: str) -> None:
    window = resolve_window(DEMO, start, end, AT)
    assert (window.start, window.end, window.label) == (want_start, want_end, label)


BAD_WINDOWS = [
    ("x", None, "start: not an ISO 8601 time with offset: 'x'"),
    ("2026-03-09T07:00:00", None, "start: '2026-03-09T07:00:00' has no UTC offset"),
    ("2026-03-09", None, "has no UTC offset"),
    ("2026-03-09T07:00:00+08:00", "later", "end: not an ISO 8601 time with offset: 'later'"),
    ("2026-03-09T07:00:00+08:00", "2026-03-09T06:00:00+08:00", "end must be after start"),
    ("2026-03-09T07:00:00+08:00", "2026-03-09T07:00:00+08:00", "end must be after start"),
    ("2024-01-01T00:00:00+08:00", None, "window longer than 400 days"),
    ("2027-01-01T00:00:00+08:00", None, "start is in the future"),
    (None, "2026-03-09T07:00:00+08:00", "start: required when end is given"),
    ("today", "2026-03-09T07:00:00+08:00", "end: not allowed with the named range 'today'"),
    ("9999-12-31T23:59:59-23:59", None, "start is in the future"),
    ("0001-01-01T00:00:00+14:00", None, "window longer than 400 days"),
    ("2026-03-09T07:00:00+08:00" * 10, None, "start: not an ISO 8601 time with offset"),
]


@pytest.mark.parametrize(("start", "end", "message"), BAD_WINDOWS)
def test_bad_windows_say_what_is_wrong(start: str | None, end: str | None, message: str) -> None:
    with pytest.raises(WindowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_window(DEMO, start, end, AT)


# --- KPIs, downtime, energy ---------------------------------------------------------------

def test_line_kpis_equal_the_raw_computation(reader: PlantReader, plant: Any, events: list[Event]) -> None:
    start, end = RECENT + 2 * HOUR + 600, NOW
    got = reader.line_kpis("L1", start, end, NOW, machines=True)
    totals, stops = reference_all(plant, events, start, end)
    expected = kpi.line_kpis(totals, stops, plant, plant.lines[0], start, end, NOW).to_dict()
    expected.pop("window")
    assert_close(got, expected)
    assert got["output_machine"] == "M2"
    assert got["window"]["start"] == start and got["window"]["end"] == NOW and got["window"]["live"]
    for machine in got["machines"]:
        own = [s for s in stops if s.machine == machine["id"]]
        expected_machine = kpi.kpis(totals[machine["id"]], own, plant, start, end, NOW).to_dict()
        expected_machine.pop("window")
        assert_close(machine, expected_machine, machine["id"])


def test_a_live_windows_stops_are_those_of_the_raw_computation_wherever_it_starts(
        reader: PlantReader, plant: Any, events: list[Event]) -> None:
    """Windows up to now starting every 7 minutes (through stops, between them): the stored stops
    a live window keeps per commit (``StopReads._passing``) are those that overlap it, and a
    second read at another now, which takes them kept, gives the same."""
    from store.stop_reads import overlaps

    line = plant.lines[0]

    def rows(stops: list[Any]) -> list[tuple[Any, ...]]:
        return sorted((s.machine, s.start, s.end) for s in stops)

    checked = 0
    for start in [RECENT + 1.5 * HOUR + k * 420.0 for k in range(45)]:
        window, _, stops = reader.window_reads.totals(line, ["M1", "M2"], start, NOW, NOW, stops_of=["M1", "M2"])
        _, computed = reference_all(plant, events, window.start, NOW)
        expected = [s for s in computed if overlaps(s, window.start, NOW, NOW)]
        assert rows(stops) == rows(expected), start
        again = reader.window_reads.totals(line, ["M1", "M2"], start, NOW + 1, NOW + 1, stops_of=["M1", "M2"])[2]
        assert rows(again) == rows(stops)
        checked += bool(stops) and any(s.start < window.start for s in stops)
    assert checked > 5 and reader.stop_reads._filtered.hits >= 45


def test_a_live_windows_stops_come_grouped_by_machine(reader: PlantReader, plant: Any) -> None:
    """A live window's stops (the stored ones kept per commit, people's reasons over them, one
    stop split) come with their groups by machine
    (``domain.stop_groups.GroupedStops``): the list's own, also at the next read; and the
    downtime report and the line's KPIs from them equal those from the plain list."""
    from domain.classification import Classification, stop_id
    from domain.stop_groups import GroupedStops, stops_by_machine

    line, ids, start = plant.lines[0], ["M1", "M2"], RECENT + 2 * HOUR
    stored = reader.window_reads.totals(line, ids, start, NOW, NOW, stops_of=ids)[2]
    for machine, split in (("M1", False), ("M2", True)):
        stop = [s for s in stored if s.machine == machine and s.end is not None][1]
        splits = ((stop.start + 1.0, 5),) if split else ()
        reader.classifications.put("L1", stop_id("L1", machine, stop.start), Classification(3, by="op", splits=splits))
    for now in (NOW, NOW + 1):
        window, totals, stops = reader.window_reads.totals(line, ids, start, now, now, stops_of=ids)
        assert isinstance(stops, GroupedStops)
        groups = stops_by_machine(list(stops))
        assert list(stops.groups) == list(groups)
        assert all([id(s) for s in stops.groups[k]] == [id(s) for s in v] for k, v in groups.items())
        assert stops.low == min(s.start for s in stops)  # (a split's pieces start after its start)
        assert sum(s.reason == 3 for s in stops) >= 2 and any(s.piece == 2 for s in stops)  # type: ignore[attr-defined]
        args = (plant, window.start, window.end, now)
        assert stop_report.downtime_report(stops, *args, kept=reader.stop_reads.report) == \
            stop_report.downtime_report(list(stops), *args)
        assert reader._line_kpis(line, window, totals, stops, now, machines=False) == \
            reader._line_kpis(line, window, totals, list(stops), now, machines=False)
    assert reader.stop_reads._filtered.hits >= 1


def test_a_windows_stored_stops_are_read_once(reader: PlantReader, plant: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """One pass over the stops set per window: a live one (kept per commit), a window that
    ended, the timeline (no generation, no open edge), also with an ongoing stop stored (here
    one added to what is read: the fixture's machines run at its end)."""
    from domain.accounting import Stop
    from domain.model import State
    from store.stop_reads import _StopsByMachine

    stop_reads = reader.stop_reads
    calls: list[float] = []
    original = stop_reads._stored_days
    ongoing = _StopsByMachine("L1", [], lambda line, raw: None)
    ongoing._stops["M1"] = [Stop("L1", "M1", RECENT + 3 * HOUR, None, State.FAULT, 0)]
    monkeypatch.setattr(stop_reads, "_stored_days", lambda line_id, lo, hi, *a, **k: (
        calls.append(hi), [*original(line_id, lo, hi, *a, **k), ongoing])[1])
    line, ids = plant.lines[0], ["M1", "M2"]
    for start, end in ((RECENT + 2 * HOUR, NOW), (RECENT + 2 * HOUR, RECENT + 4 * HOUR)):
        stop_reads.forget()
        reader.window_reads.reads.clear()
        calls.clear()
        assert reader.window_reads.totals(line, ids, start, end, NOW, stops_of=ids)[2]
        assert len(calls) == 1, (start, end)
    calls.clear()
    assert reader.timeline("L1", RECENT + 2 * HOUR, RECENT + 4 * HOUR, NOW)["machines"]
    assert len(calls) == 1


def test_downtime_equals_the_raw_computation(reader: PlantReader, plant: Any, events: list[Event]) -> None:
    start, end = RECENT + 2 * HOUR, RECENT + 6.5 * HOUR
    got = reader.downtime("L1", start, end, NOW)
    totals, stops = reference_all(plant, events, start, end)
    run_s = sum(t.run_s for t in totals.values())
    expected = stop_report.downtime_report(stops, plant, start, end, NOW, run_s=run_s)
    expected.pop("window")
    assert len(expected["events"]) > 10
    assert_close(got, expected)


def test_a_line_now_is_its_downtime_and_its_kpis_from_one_read(reader: PlantReader) -> None:
    """What a live line view asks (``line_now``) equals the two answers asked apart, with
    people's reasons on stops of both machines (classified once, for all machines)."""
    from domain.classification import Classification, stop_id

    start, end = RECENT + 2 * HOUR, RECENT + 6.5 * HOUR
    stops = reader.downtime("L1", start, end, NOW)["events"]
    for machine in ("M1", "M2"):
        first = next(s for s in stops if s["machine"] == machine)
        reader.classifications.put("L1", stop_id("L1", machine, first["start"]), Classification(3, by="op"))
    full = reader.downtime("L1", start, end, NOW)
    apart = ({**full, "events": []},  # a live view needs no list of stops (it grows with the shift)
             reader.line_kpis("L1", start, end, NOW),
             reader.lines(NOW, only=["L1"])["lines"][0])  # its live state too, read in the same round trip
    assert reader.line_now("L1", start, end, NOW) == apart
    assert any(s.get("reason") == 3 for s in full["events"] if s["machine"] == "M2")
    assert [m["id"] for m in apart[2]["machines"]] == ["M1", "M2"] and apart[2]["last_data"] is not None
    assert PlantReader(reader.redis, reader.plant).line_now("L1", start, end, NOW) == apart
    assert reader.line_now("L1", start, end, NOW, with_live=False) == (*apart[:2], None)


def test_energy_adds_machines_and_matches_raw(reader: PlantReader, plant: Any, events: list[Event]) -> None:
    start, end = RECENT + 2 * HOUR, RECENT + 6.5 * HOUR
    got = reader.energy("L1", start, end, NOW)
    totals, _ = reference_all(plant, events, start, end)
    assert got["kwh"] == pytest.approx(sum(t.energy_kwh for t in totals.values()), rel=1e-6)
    assert [m["kwh"] for m in got["machines"]] == pytest.approx([totals["M1"].energy_kwh, totals["M2"].energy_kwh],
                                                                rel=1e-6)
    assert got["peak_kw"] == pytest.approx(max(kw for _, kw in got["quarters"]))
    assert got["kwh_per_good_unit"] == pytest.approx(got["kwh"] / totals["M2"].good_count)


def test_a_window_ending_in_closed_minutes_is_floored_to_the_minute(reader: PlantReader, plant: Any,
                                                                    events: list[Event]) -> None:
    got = reader.machine_kpis("L1", "M1", RECENT + 2 * HOUR + 10.5, RECENT + 3 * HOUR + 59.9, NOW)
    assert (got["window"]["start"], got["window"]["end"]) == (RECENT + 2 * HOUR, RECENT + 3 * HOUR)
    assert got["calendar_s"] == pytest.approx(3600)


def test_kpi_series_buckets_add_up_to_the_window(reader: PlantReader) -> None:
    start, end = RECENT + 1.75 * HOUR, RECENT + 6.6 * HOUR
    series = reader.kpi_series("L1", start, end, 3600, NOW)
    whole = reader.line_kpis("L1", start, end, NOW)
    buckets = series["buckets"]
    assert [b["start"] for b in buckets] == [start] + [RECENT + h * HOUR for h in range(2, 7)], "on the clock"
    assert buckets[-1]["end"] == end
    for name in ("good_count", "total_count", "run_s", "planned_operation_s", "calendar_s"):
        assert sum(b[name] for b in buckets) == pytest.approx(whole[name], abs=1e-3), name
    third = reader.line_kpis("L1", buckets[2]["start"], buckets[2]["end"], NOW)
    assert buckets[2]["oee"] == pytest.approx(third["oee"])
    machine = reader.kpi_series("L1", start, end, 1800, NOW, machine="M1")
    assert len(machine["buckets"]) == 11  # 01:45-02:00, 9 half hours, 06:30-06:36
    m1 = reader.machine_kpis("L1", "M1", start, end, NOW)
    assert sum(b["good_count"] for b in machine["buckets"]) == m1["good_count"]


def test_power_series_is_the_energy_per_bucket(reader: PlantReader) -> None:
    start, end = RECENT + 2 * HOUR, RECENT + 5 * HOUR
    series = reader.power_series("L1", start, end, 900, NOW)
    energy = reader.energy("L1", start, end, NOW)
    assert len(series["starts"]) == 12
    days = reader.power_series("L1", RECENT - 86400, NOW, 86400, NOW)
    local_midnight = RECENT - 8 * HOUR  # Asia/Shanghai
    assert days["starts"] == [RECENT - 86400, local_midnight]
    for m in energy["machines"]:
        kwh = sum(kw * 900 / 3600 for kw in series["machines"][m["id"]])
        assert kwh == pytest.approx(m["kwh"], rel=1e-6)
        assert all(kw > 0 for kw in series["machines"][m["id"]])


def test_timeline_segments_match_the_state_seconds(reader: PlantReader, plant: Any, events: list[Event]) -> None:
    start, end = RECENT + 2 * HOUR + 300, RECENT + 6 * HOUR + 900
    got = reader.timeline("L1", start, end, NOW)
    totals, stops = reference_all(plant, events, start, end)
    for machine in got["machines"]:
        segments = machine["segments"]
        assert segments[0][0] == start and segments[-1][1] == end
        assert all(a[1] == b[0] for a, b in itertools.pairwise(segments)), "contiguous"
        seconds: dict[str, float] = {}
        for a, b, state, _ in segments:
            seconds[state] = seconds.get(state, 0.0) + b - a
        expected = {k: v for k, v in totals[machine["id"]].state_s.items() if v}
        assert seconds == pytest.approx(expected, abs=1e-3), machine["id"]
        reasons = {seg[3] for seg in segments if seg[2] == "fault"}
        assert reasons and reasons <= {s.reason for s in stops}


def test_cached_answers_equal_fresh_ones(reader: PlantReader, redis_client: redis.Redis, plant: Any) -> None:
    start = RECENT + 1.6 * HOUR
    first = reader.line_kpis("L1", start, NOW, NOW)
    again = reader.line_kpis("L1", start, NOW, NOW)
    assert reader.window_reads.reads.hits > 0, "the same window at the same now is read once"
    reader.window_reads.reads.clear()
    second = reader.line_kpis("L1", start, NOW, NOW + 1)  # another now, the same bookkeeping
    assert reader.window_reads._closed.hits > 0, "the stored rollups' sums are read once per worker commit"
    # and so are the stored stops of the days still filling, and those a live window keeps of them
    assert reader.stop_reads._filtered.hits > 0 and reader.stop_reads._live.misses == 1
    reader.window_reads.reads.clear()
    reader.window_reads._closed.clear()
    third = reader.line_kpis("L1", start, NOW, NOW)
    fresh = PlantReader(redis_client, plant).line_kpis("L1", start, NOW, NOW)
    assert first == again == third == fresh
    assert second["good_count"] == first["good_count"]
    assert reader.rollups.hours.hits > 0, "finished hours are parsed once"


def test_unknown_line_and_machine(reader: PlantReader) -> None:
    with pytest.raises(UnknownLine):
        reader.line_kpis("L9", START, NOW, NOW)
    with pytest.raises(UnknownMachine):
        reader.machine_kpis("L1", "M9", START, NOW, NOW)
    with pytest.raises(WindowError):
        reader.line_kpis("L1", NOW, START, NOW)


def test_a_machine_that_never_sent_data(redis_client: redis.Redis, events: list[Event]) -> None:
    from tests.core_support import machine_config, make_plant

    plant = make_plant(lines=[{"id": "L1", "output_machine": "M3", "machines": [
        machine_config("M1", ideal=20.0), machine_config("M2", ideal=25.0), machine_config("M3")]}])
    write_events(redis_client, [e for e in events if e.ts < START + HOUR])  # an hour shows it
    run_worker_until_drained(redis_client, plant, NOW)
    got = PlantReader(redis_client, plant).line_kpis("L1", START, NOW, NOW, machines=True)
    assert got["oee"] is None and got["good_count"] == 0
    assert [m["id"] for m in got["machines"]] == ["M1", "M2", "M3"]
    assert got["machines"][0]["good_count"] > 0


# --- live state and health -------------------------------------------------------------------

def test_lines_show_live_state(reader: PlantReader, redis_client: redis.Redis, events: list[Event]) -> None:
    at = max(e.ts for e in events) + 1
    got = reader.lines(at)
    line = got["lines"][0]
    assert line["id"] == "L1" and [m["id"] for m in line["machines"]] == ["M1", "M2"]
    last_state = {e.machine: e for e in events if e.signal == Signal.STATE}
    for machine in line["machines"]:
        assert machine["state"] == last_state[machine["id"]].value
        assert machine["stale"] is False
        assert machine["since"] is not None and machine["since"] <= at
        assert machine["last_data"] == max(e.ts for e in events if e.machine == machine["id"])
    stale = reader.lines(NOW + 3600)["lines"][0]["machines"][0]
    assert stale["stale"] is True and stale["state"] == "unknown"
    fault = Event("L1", "M1", Signal.STATE, "fault", "Good", NOW)
    reason = Event("L1", "M1", Signal.REASON, 3, "Good", NOW + 1)
    for event in (fault, reason):
        redis_client.hset(contract.live_key("L1"), *contract.encode_live(event))
    m1 = reader.lines(NOW + 2)["lines"][0]["machines"][0]
    assert m1["state"] == "fault" and m1["since"] == NOW
    assert m1["reason"] == {"code": 3, "text": "No material", "category": "starved_blocked", "planned": False}


def test_health(reader: PlantReader) -> None:
    at = END + 5
    got = reader.health(at)
    assert got["redis"]["ok"] is True
    line = got["lines"][0]
    assert line["last_data_age_s"] == pytest.approx(5, abs=3)
    assert line["worker"]["pending"] == 0 and line["worker"]["undelivered_s"] == 0
    assert line["worker"]["closed_lag_s"] < 120
    assert got["ok"] is True
    assert reader.health(NOW + 3600)["ok"] is False, "no data for an hour"


def test_health_when_redis_is_down(restartable_redis: Any, plant: Any) -> None:
    client = redis.Redis.from_url(restartable_redis.url, socket_timeout=1, socket_connect_timeout=1)
    reader = PlantReader(client, plant)
    assert reader.health(NOW)["redis"]["ok"] is True
    restartable_redis.stop()
    got = reader.health(NOW)
    assert got["ok"] is False and got["redis"]["ok"] is False and got["redis"]["error"]
    with pytest.raises(redis.ConnectionError):
        reader.line_kpis("L1", START, NOW, NOW)
    client.close()


def test_no_module_level_state() -> None:
    import store.answer_parts
    import store.bookkeeping
    import store.closed_rollups
    import store.live
    import store.reader
    import store.stop_reads
    import store.window_reads

    for module in (store.reader, store.window_reads, store.stop_reads, store.answer_parts, store.closed_rollups,
                   store.live, store.bookkeeping):
        for name, value in vars(module).items():
            assert not isinstance(value, dict | list | set) or name.isupper() or name.startswith("__") \
                or isinstance(value, frozenset), f"{module.__name__}.{name}"


def test_floors_never_round_a_window_to_nothing(reader: PlantReader) -> None:
    with pytest.raises(WindowError):
        reader.machine_kpis("L1", "M1", RECENT + 2 * HOUR + 10, RECENT + 2 * HOUR + 50, NOW)
    assert math.isfinite(reader.machine_kpis("L1", "M1", NOW - 10, NOW, NOW)["calendar_s"])


# --- windows that begin before a machine's first data ------------------------------------
# The worker starts a machine's rollups at the minute of its first event; the time of a
# window before that has no rollups at all. It is calendar time, and its planned part is
# planned busy time nobody knows anything about: unknown (README "Definitions").

def test_windows_before_the_first_event_equal_the_raw_computation(reader: PlantReader, plant: Any,
                                                                   events: list[Event]) -> None:
    """From 4 h before the history starts (random histories: stops, silences, link drops in
    the middle) to now; the reference's timeline starts at the window (unknown until the
    first event)."""
    start = RECENT - 2.5 * HOUR  # local 05:30, shift A (06:00-14:00) starts inside the gap
    got = reader.line_kpis("L1", start, NOW, NOW, machines=True)
    totals, stops = reference_all_from(plant, events, start, NOW, origin=start)
    expected = kpi.line_kpis(totals, stops, plant, plant.lines[0], start, NOW, NOW).to_dict()
    expected.pop("window")
    assert_close(got, expected)
    assert got["calendar_s"] == pytest.approx(NOW - start)
    gap_planned = 3600 * 3.5 + 7.25  # 06:00 local (= RECENT - 2 h) to the first event, no break in it
    assert got["unknown_s"] >= gap_planned
    for machine in got["machines"]:
        assert machine["unknown_s"] >= gap_planned
    assert got["teep"] == pytest.approx(got["oee"] * got["known_planned_busy_s"] / got["calendar_s"])
    series = reader.kpi_series("L1", start, NOW, 3600, NOW)
    for name in ("calendar_s", "planned_operation_s", "planned_busy_s", "unknown_s", "run_s", "good_count"):
        assert sum(b[name] for b in series["buckets"]) == pytest.approx(got[name], abs=1e-3), name
    first = series["buckets"][0]  # 05:30-06:00 local: no data, nothing planned
    assert (first["calendar_s"], first["planned_busy_s"], first["unknown_s"]) == (1800, 0, 0)
    assert all(b["calendar_s"] == pytest.approx(b["end"] - b["start"]) for b in series["buckets"])
    energy = reader.energy("L1", start, NOW, NOW)
    assert energy["kwh"] == pytest.approx(sum(t.energy_kwh for t in totals.values()), rel=1e-6)
    assert energy["avg_kw"] == pytest.approx(energy["kwh"] / ((NOW - start) / 3600))


def reference_all_from(plant: Any, events: list[Event], start: float, end: float, origin: float
                       ) -> tuple[dict[str, Totals], list[Any]]:
    totals, stops = {}, []
    for machine in ("M1", "M2"):
        totals[machine], machine_stops = reference(plant, events, machine, start, end, NOW, origin=origin)
        stops.extend(machine_stops)
    return totals, stops


def test_a_window_entirely_before_the_first_event(reader: PlantReader) -> None:
    start, end = RECENT - 3 * HOUR, RECENT  # local 05:00-08:00: shift A from 06:00
    got = reader.machine_kpis("L1", "M2", start, end, NOW)
    assert (got["calendar_s"], got["planned_operation_s"], got["planned_busy_s"]) == (3 * 3600, 7200, 7200)
    assert (got["unknown_s"], got["known_planned_busy_s"], got["good_count"]) == (7200, 0, 0)
    assert got["oee"] is None and got["teep"] == 0
    assert got["energy"]["kwh"] == 0
    timeline = reader.timeline("L1", start, end, NOW)
    assert [m["segments"] for m in timeline["machines"]] == [[[start, end, "unknown", 0]]] * 2


# Hand-computed: the demo plant's shift A only, 07:00-15:00 local with breaks 09:30-09:45,
# 11:30-12:00 and 13:30-13:45. M2 (output, ideal cycle 45 s) is first heard at 10:00:00
# local and runs; it is silent from 10:19:50 (last heartbeat) to 10:40:00, so unknown from
# 10:20:20 (gap timeout 30 s). A part and a meter reading (+0.1 kWh) every minute at :30.
# M1 has no data until 12:10, and the worker has not applied its events yet (open edge only).

def _hand_plant() -> Any:
    from tests.core_support import machine_config, make_plant

    shifts = [{"name": "A", "start": "07:00", "end": "15:00", "breaks": [
        {"start": "09:30", "end": "09:45"}, {"start": "11:30", "end": "12:00"}, {"start": "13:30", "end": "13:45"}]}]
    machines = [machine_config("M1", ideal=30.0), machine_config("M2", ideal=45.0)]
    return make_plant(shifts=shifts, timezone="Asia/Shanghai",
                      lines=[{"id": "L1", "output_machine": "M2", "machines": machines}])


def _local(hh: int, mm: int = 0, ss: float = 0.0) -> float:
    """Local time (Asia/Shanghai) on the local day of RECENT (a UTC midnight = 08:00 local)."""
    return RECENT + (hh - 8) * HOUR + mm * 60 + ss


HAND_NOW = _local(12, 30)


def _hand_events(machine: str, first: float, silent: tuple[float, float] | None = None) -> list[Event]:
    def event(signal: Signal, value: object, ts: float) -> Event:
        return Event("L1", machine, signal, value, "Good", ts)  # type: ignore[arg-type]

    out = [event(Signal.STATE, "running", first), event(Signal.GOOD, 0, first), event(Signal.ENERGY, 100.0, first)]
    t, n = first + 10, 0
    while t < HAND_NOW:
        if silent is None or not silent[0] <= t < silent[1]:
            out.append(event(Signal.HEARTBEAT, None, t))
            if (t - first) % 60 == 30:
                n += 1
                out.append(event(Signal.GOOD, n, t))
                out.append(event(Signal.ENERGY, round(100.0 + 0.1 * n, 4), t))
        t += 10
    return out


@pytest.fixture(scope="module")
def hand_rolled_up(redis_url: str) -> Snapshot:
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
        write_events(client, _hand_events("M2", _local(10), silent=(_local(10, 20), _local(10, 40))))
        run_worker_until_drained(client, _hand_plant(), HAND_NOW)
        write_events(client, _hand_events("M1", _local(12, 10)))  # not rolled up yet
        return Snapshot.take(client)
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def hand_reader(redis_client: redis.Redis, hand_rolled_up: Snapshot) -> PlantReader:
    hand_rolled_up.restore(redis_client)
    reader = PlantReader(redis_client, _hand_plant())
    snapshot = reader.window_reads.snapshot("L1")
    assert snapshot.watermark("M1") is None and snapshot.watermark("M2") == _local(12, 29)
    return reader


def test_hand_computed_window_before_the_first_event(hand_reader: PlantReader) -> None:
    start, end = _local(7), _local(11)
    got = hand_reader.machine_kpis("L1", "M2", start, end, HAND_NOW)
    assert got["calendar_s"] == 240 * 60
    assert got["planned_operation_s"] == got["planned_busy_s"] == 225 * 60  # 07:00-11:00 minus the tea break
    leading = 165 * 60  # 07:00-10:00 minus the tea break 09:30-09:45
    silence = 19 * 60 + 40  # 10:20:20-10:40:00
    assert got["unknown_s"] == pytest.approx(leading + silence)
    assert got["run_s"] == pytest.approx(1220 + 1200)  # 10:00:00-10:20:20, 10:40-11:00
    assert got["known_planned_busy_s"] == pytest.approx(2420)
    assert (got["down_s"], got["micro_stop_s"], got["good_count"]) == (0, 0, 40)
    assert got["oee"] == pytest.approx(40 * 45 / 2420)
    assert got["teep"] == pytest.approx(40 * 45 / 14400)  # 0.125
    assert got["teep"] == pytest.approx(got["oee"] * got["known_planned_busy_s"] / got["calendar_s"])
    assert got["energy"]["kwh"] == pytest.approx(4.0)
    assert got["energy"]["avg_kw"] == pytest.approx(1.0)  # 4 kWh over the 4 h window
    _, totals, _ = hand_reader.window_reads.totals(hand_reader.line("L1"), ["M2"], start, end, HAND_NOW)
    assert totals["M2"].state_s == pytest.approx({"unknown": 10800 + silence, "running": 2420})
    timeline = hand_reader.timeline("L1", start, end, HAND_NOW)["machines"][1]
    assert timeline["id"] == "M2"
    assert timeline["segments"] == [[start, _local(10), "unknown", 0], [_local(10), _local(10, 20, 20), "running", 0],
                                    [_local(10, 20, 20), _local(10, 40), "unknown", 0],
                                    [_local(10, 40), end, "running", 0]]


def test_hand_computed_today_with_an_edge_only_machine(hand_reader: PlantReader) -> None:
    start = _local(0)  # "today": the collector started at 10:00 (M2) and 12:10 (M1)
    got = hand_reader.line_kpis("L1", start, HAND_NOW, HAND_NOW, machines=True)
    planned = (330 - 15 - 30) * 60  # 07:00-12:30 minus tea and meal
    silence = 19 * 60 + 40
    assert got["calendar_s"] == pytest.approx(12.5 * 3600)
    assert got["planned_busy_s"] == pytest.approx(planned)
    assert got["unknown_s"] == pytest.approx(165 * 60 + silence)
    assert got["run_s"] == pytest.approx(1220 + 3000 + 1800)  # 10:00-10:20:20, 10:40-11:30, 12:00-12:30
    assert got["unplanned_run_s"] == pytest.approx(1800)  # the meal break
    assert (got["good_count"], got["unplanned_good_count"]) == (100, 30)
    assert got["oee"] == pytest.approx(100 * 45 / 6020)
    assert got["teep"] == pytest.approx(100 * 45 / 45000)  # 0.1, not ~ the OEE
    m1, m2 = got["machines"]
    assert m2["unknown_s"] == got["unknown_s"]
    assert m1["calendar_s"] == pytest.approx(12.5 * 3600)
    assert m1["planned_busy_s"] == pytest.approx(planned)
    assert m1["unknown_s"] == pytest.approx((310 - 45) * 60)  # 07:00-12:10 minus tea and meal
    assert m1["run_s"] == pytest.approx(1200) and m1["good_count"] == 20  # 12:10:30 ... 12:29:30
    assert m1["oee"] == pytest.approx(20 * 30 / 1200)

    series = hand_reader.kpi_series("L1", start, HAND_NOW, 3600, HAND_NOW)
    rows = [[round(b[k], 6) for k in ("calendar_s", "planned_busy_s", "unknown_s", "run_s")]
            for b in series["buckets"]]
    assert rows == ([[3600, 0, 0, 0]] * 7 + [  # 00:00-07:00: nothing planned
        [3600, 3600, 3600, 0], [3600, 3600, 3600, 0], [3600, 2700, 2700, 0],  # 07-10: no data
        [3600, 3600, silence, 2420], [3600, 1800, 0, 1800], [1800, 1800, 0, 1800]])
    m1_series = hand_reader.kpi_series("L1", start, HAND_NOW, 3600, HAND_NOW, machine="M1")
    assert [b["unknown_s"] for b in m1_series["buckets"]][7:] == pytest.approx([3600, 3600, 2700, 3600, 1800, 600])
    assert [b["run_s"] for b in m1_series["buckets"]][-1] == pytest.approx(1200)

    energy = hand_reader.energy("L1", start, HAND_NOW, HAND_NOW)
    assert [m["kwh"] for m in energy["machines"]] == pytest.approx([2.0, 13.0])  # 20 and 130 readings
    assert energy["kwh"] == pytest.approx(15.0)
    assert energy["avg_kw"] == pytest.approx(15.0 / 12.5)  # over the whole window, not the 2.5 h with data
    assert energy["machines"][1]["avg_kw"] == pytest.approx(13.0 / 12.5)


def test_a_machines_live_state_kept_while_its_events_and_staleness_stay() -> None:
    """``live.machine_now`` keeps each machine's answer (``answered``) while its events (the
    same objects), the plant and staleness stay; anything else computes it again."""
    from store import live

    plant = two_machine_plant()
    line = plant.lines[0]
    t0 = RECENT
    running = {"state": Event("L1", "M1", Signal.STATE, "running", "Good", t0),
               "good": Event("L1", "M1", Signal.GOOD, 7, "Good", t0 + 1)}
    answered: live.Answered = {}
    gap = plant.gap_timeout_s

    def now_at(at: float, events: dict[str, Event] = running, p: Any = plant) -> Any:
        return live.machine_now(p, line, "M1", events, at, answered)

    first = now_at(t0 + 2)
    assert (first["state"], first["since"], first["good"], first["stale"]) == ("running", t0, 7, False)
    first["bad_nodes"].append("mine")  # a caller fills in its copy
    assert now_at(t0 + 3) == {**first, "bad_nodes": []}
    silent = now_at(t0 + 1 + gap + 5)  # the same events, stale now
    assert (silent["state"], silent["since"], silent["stale"]) == ("unknown", t0 + 1 + gap, True)
    assert now_at(t0 + 4)["state"] == "running"
    more = {**running, "good": Event("L1", "M1", Signal.GOOD, 8, "Good", t0 + 2)}
    assert now_at(t0 + 4, more)["good"] == 8
    equal = {k: Event(e.line, e.machine, e.signal, e.value, e.status, e.ts) for k, e in more.items()}
    assert now_at(t0 + 4, equal)["good"] == 8
    renamed = plant.model_copy(update={"lines": [line.model_copy(update={"machines": [
        m.model_copy(update={"name": "Press 1"}) if m.id == "M1" else m for m in line.machines]})]})
    assert live.machine_now(renamed, renamed.lines[0], "M1", equal, t0 + 4, answered)["name"] == "Press 1"


def test_a_line_now_reads_peoples_classifications_with_its_bookkeeping(reader: PlantReader) -> None:
    """``line_now`` reads the line's classifications in the round trip of its bookkeeping
    (``classifications.read_after``): the same stops as read apart, a classification moved
    by late data included; an index that misses a classification is read apart."""
    from domain.classification import Classification, stop_id

    start, end = RECENT + 2 * HOUR, RECENT + 6.5 * HOUR
    m1 = [s for s in reader.downtime("L1", start, end, NOW)["events"] if s["machine"] == "M1"]
    exact = stop_id("L1", "M1", m1[0]["start"])
    reader.classifications.put("L1", exact, Classification(3, by="op", at=NOW))
    moved = m1[1]  # stored under a start late data moved by 2 s: attaches by overlap
    reader.classifications.put("L1", stop_id("L1", "M1", moved["start"] - 2),
                               Classification(4, by="op", at=NOW, end=moved["end"]))

    class Counting:  # the classifications' own client, counting their round trips
        def __init__(self, inner: Any) -> None:
            self.inner, self.trips = inner, 0

        def pipeline(self, *args: Any, **kwargs: Any) -> Any:
            self.trips += 1
            return self.inner.pipeline(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    own = reader.classifications.redis = Counting(reader.redis)  # type: ignore[assignment]

    def line_now() -> tuple[Any, int]:
        own.trips = 0
        return reader.line_now("L1", start, end, NOW), own.trips

    got, trips = line_now()
    assert trips == 0, "classifications read in a round trip of their own"
    full = reader.downtime("L1", start, end, NOW)
    assert got[0] == {**full, "events": []}  # the same Pareto, per machine and untagged figures
    reasons = {s["start"]: s["reason"] for s in full["events"] if s["machine"] == "M1"}
    assert reasons[m1[0]["start"]] == 3 and reasons[moved["start"]] == 4
    unclassified = PlantReader(reader.redis, reader.plant)
    unclassified.classifications.apply = lambda line, stops, read=None: stops  # type: ignore[method-assign]
    assert unclassified.line_now("L1", start, end, NOW)[0] != got[0], "the classifications change the figures"
    reader.redis.zrem(contract.classification_starts_key("L1"), exact)  # as before the index existed
    again, trips = line_now()
    assert trips == 1 and again == got  # read apart (Classifications.attached): the same


def test_classifications_read_with_the_bookkeeping_cover_what_they_read() -> None:
    from store.classifications import Read

    read = Read.of(100.0, [2, 2, [b"L1~M1~150000", b"150", b"L1~M1~170000", b"170"], [b"{}", None]])
    assert read.starts == [("L1~M1~150000", 150.0), ("L1~M1~170000", 170.0)]
    assert read.covers(100.0) and read.covers(120.0) and not read.covers(99.9)
    assert read.get("L1~M1~170000") is None and set(read.raw) == {"L1~M1~150000"}
    assert not Read.of(100.0, [3, 2, [], []]).covers(200.0)  # a classification missing from the index


def test_a_worker_commit_is_read_with_the_stamp_that_says_so(reader: PlantReader, plant: Any,
                                                              events: list[Event]) -> None:
    """The bookkeeping's whole hash comes back with its stamp when the stamp moved (one
    command, ``window_reads._STAMP_OR_ALL``), never read apart; the figures are those of a
    fresh reader after the commit, and the unchanged stamp returns the stamp only."""
    start, now = RECENT + 2 * HOUR, NOW + 20
    calls: dict[str, int] = {}

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return getattr(self.inner, name)

    reader.window_reads.redis = Counting(reader.redis)  # type: ignore[assignment]
    before = reader.line_now("L1", start, now, now)
    last = max((e for e in events if e.signal == Signal.GOOD and e.machine == "M2"), key=lambda e: e.ts)
    write_events(reader.redis, [Event("L1", "M2", Signal.GOOD, int(last.value) + 1, "Good", END + 5)])
    run_worker_until_drained(reader.redis, plant, now=now)
    calls.clear()
    after = reader.line_now("L1", start, now, now)
    assert calls.get("hgetall", 0) == 0 and calls.get("pipeline") == 1, calls
    assert after == PlantReader(reader.redis, plant).line_now("L1", start, now, now)
    assert after[1]["good_count"] == before[1]["good_count"] + 1
    stamp = reader.redis.hmget(contract.rollup_state_key("L1"), "ver", "amend", "beat", "epoch")
    reply = reader.redis.eval(window_reads._STAMP_OR_ALL, 1, contract.rollup_state_key("L1"),
                              *[b"" if v is None else v for v in stamp])
    assert reply == [stamp]


def test_stops_set_members_are_parsed_once_per_reader(redis_client: redis.Redis) -> None:
    """The day still filling is read again at every worker commit: its members stay the same
    ``Stop`` objects (which the answers' per-stop caches key on), per line; ``forget`` (late
    data rewrote stored stops) parses them again."""
    from domain.accounting import Stop
    from domain.model import State
    from store.classifications import Classifications
    from store.line_worker import stop_member
    from store.stop_reads import StopReads, _StopsByMachine

    reads = StopReads(redis_client, Classifications(redis_client))
    members = [stop_member(Stop("L1", "M1", 100.0, 160.0, State.FAULT, 3)),
               stop_member(Stop("L1", "M2", 120.0, None, State.IDLE, 0)), "not a member"]
    first, again = (_StopsByMachine("L1", members, reads._parsed) for _ in range(2))
    from domain.classification import ClassifiedStop, unclassified
    assert first.of("M1") == [unclassified(Stop("L1", "M1", 100.0, 160.0, State.FAULT, 3))]
    assert type(first.of("M1")[0]) is ClassifiedStop and first.of("M1")[0].stop_id == "L1~M1~100000", \
        "parsed into the form Classifications.apply gives an unclassified stop"
    assert first.of("M2")[0].end is None and first.of("M3") == []
    assert again.of("M1")[0] is first.of("M1")[0] and again.of("M2")[0] is first.of("M2")[0]
    other_line = _StopsByMachine("L2", members, reads._parsed).of("M1")[0]
    assert other_line.line == "L2" and other_line is not first.of("M1")[0]
    assert unclassified(first.of("M1")[0], reads.classifications.kept) is first.of("M1")[0]
    reads.report.events[(0, 0.0, 0.0)] = (None, None, None)  # type: ignore[assignment]
    reads.report.sums[("L1", "M1", 0.0)] = (None, None)  # type: ignore[assignment]
    reads.classifications.pieces[(0, None)] = (None, [])  # type: ignore[index]
    reads.forget()
    assert _StopsByMachine("L1", members, reads._parsed).of("M1")[0] is not first.of("M1")[0]
    assert not reads.report.events and not reads.report.sums, "what was kept per stop goes with them"
    assert not reads.classifications.kept and not reads.classifications.pieces


def test_a_machines_settled_stops_are_summed_once_per_reader(reader: PlantReader, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """A live view asked again sums only the stops that may still change (here M1's last one,
    which runs past the window's end; every machine's last ended one is kept too): the others
    are the same objects, classified ones included; a new classification sums its machine's
    stops again. The figures are a fresh reader's."""
    import domain.stop_sums as stop_sums
    from domain.classification import Classification, stop_id

    added: list[str] = []
    real = stop_sums.MachineSums.add
    monkeypatch.setattr(stop_sums.MachineSums, "add",
                        lambda self, stop, *args: (added.append(stop.machine), real(self, stop, *args))[1])
    start, end = RECENT + 2 * HOUR, RECENT + 6.5 * HOUR
    m1 = [s for s in reader.downtime("L1", start, end, NOW)["events"] if s["machine"] == "M1"]
    reader.classifications.put("L1", stop_id("L1", "M1", m1[0]["start"]), Classification(3, by="op", at=NOW))

    def summed(now: float) -> list[str]:
        added.clear()
        got = reader.line_now("L1", start, end, now)
        out = sorted(added)
        assert got == PlantReader(reader.redis, reader.plant).line_now("L1", start, end, now)
        return out

    assert reader.plant.line("L1").output_machine == "M2"  # its stops are summed for its untagged figures too
    # M1's stops were classified since the read above: summed again; M2's were kept by that read
    assert summed(NOW) == ["M1"] * len(m1)
    assert m1[-1]["start"] < end < m1[-1]["end"]
    assert summed(NOW + 1) == ["M1"], "only a stop that may still change: M1's last, past the window's end"
    reader.classifications.put("L1", stop_id("L1", "M1", m1[1]["start"]), Classification(4, by="op", at=NOW + 2))
    again = summed(NOW + 2)
    assert again == ["M1"] * len(m1), "M1's stops summed again (one classified since), not M2's"
