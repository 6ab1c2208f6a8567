"""The rollup worker against a real Redis: rollups equal the raw computation, a restart
resumes without counting anything twice, retention, the rollup text format."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import _worker_nice
from domain import contract
from domain.classification import Classification, stop_id
from domain.model import Event, Signal, State
from domain.totals import Totals
from store.classifications import Classifications
from store.closed_rollups import read_minute_rollups
from store.reader import PlantReader
from store.rollup import LineConflict, RollupWorker, WorkerOptions, apply_retention
from store.sums import RollupSum, missing_totals_fields
from tests.history import line_history, write_events
from tests.store_support import HOUR, RECENT, assert_close, reference_kpis, run_worker_until_drained, two_machine_plant

ROOT = Path(__file__).resolve().parent.parent
START = RECENT + 1.5 * HOUR + 7.25  # mid-minute, mid-hour: 01:30 UTC = 09:30 in Shanghai, before a break
END = RECENT + 7.25 * HOUR  # after the shift change at 06:00 UTC (14:00 local)
NOW = END + 30


@pytest.fixture(scope="module")
def plant() -> Any:
    return two_machine_plant()


@pytest.fixture(scope="module")
def events(plant: Any) -> list[Event]:
    return line_history(plant, "L1", START, END, seed=11, power_every_s=2.0, mean_run_s=400.0)


def rollup_dump(client: redis.Redis) -> dict[bytes, Any]:
    """Everything the worker wrote except its bookkeeping hash."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match=b"plant:*"):
        kind = client.type(key)
        if kind == b"hash" and not key.endswith((b":rollup", b":live")):
            out[key] = client.hgetall(key)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
    return out


WINDOWS = [
    (START, NOW),  # everything, ending in the open edge
    (RECENT + 2 * HOUR, RECENT + 5 * HOUR),  # whole hours, across the break
    (RECENT + 1.75 * HOUR, RECENT + 6.5 * HOUR),  # minutes + hours + minutes, across the shift change
    (RECENT + 3 * HOUR + 120, RECENT + 3 * HOUR + 1800),  # inside one hour
    (RECENT + 5.9 * HOUR, RECENT + 6.1 * HOUR),  # around the shift change
]


def test_rollups_equal_the_raw_computation(redis_client: redis.Redis, plant: Any, events: list[Event]) -> None:
    write_events(redis_client, events)
    run_worker_until_drained(redis_client, plant, NOW)
    reader = PlantReader(redis_client, plant)
    for start, end in WINDOWS:
        for machine in ("M1", "M2"):
            got = reader.machine_kpis("L1", machine, start, end, NOW)
            window_start = math.floor(start / 60) * 60
            expected = reference_kpis(plant, events, machine, window_start, end, NOW, origin=START)
            assert expected["total_count"] > 0 or end - start < HOUR
            assert_close(got, expected, f"{machine} {start - RECENT}..{end - RECENT}")


def test_live_worker_and_open_edge_agree_with_raw_at_every_step(redis_client: redis.Redis, plant: Any,
                                                                events: list[Event]) -> None:
    """Events arrive in time; the worker runs now and then; queries end at now (open edge)."""
    clock = [START]
    worker = RollupWorker(redis_client, plant, options=WorkerOptions(grace_s=5), clock=lambda: clock[0])
    reader = PlantReader(redis_client, plant)
    sent = 0
    checks = 0
    for step_end in [START + 37, START + 1000.5, RECENT + 2 * HOUR + 3, RECENT + 3.5 * HOUR, END - 61.7, NOW]:
        batch = [e for e in events[sent:] if e.ts < step_end]
        write_events(redis_client, batch)
        sent += len(batch)
        clock[0] = step_end
        worker.drain()
        # more events arrive after the worker's pass: the reader must pick them from the stream
        late = [e for e in events[sent:] if e.ts < step_end + 20]
        write_events(redis_client, late)
        sent += len(late)
        now = step_end + 20
        for machine in ("M1", "M2"):
            got = reader.machine_kpis("L1", machine, START, now, now)
            expected = reference_kpis(plant, events, machine, math.floor(START / 60) * 60, now, now, origin=START)
            assert_close(got, expected)
            checks += 1
    assert checks == 12


def test_hour_rollups_equal_the_sum_of_their_minutes(redis_client: redis.Redis, plant: Any,
                                                     events: list[Event]) -> None:
    write_events(redis_client, events)
    run_worker_until_drained(redis_client, plant, NOW)
    hour = RECENT + 3 * HOUR
    day = math.floor(hour / 86400) * 86400
    stored = redis_client.hget(contract.hour_rollup_key("L1", "M1", day), str(int((hour - day) // HOUR)))
    assert stored is not None
    assert not redis_client.exists(contract.minute_rollup_key("L1", "M1", hour)), "closed: one string"
    minutes = read_minute_rollups(redis_client, "L1", "M1", hour)
    assert sorted(minutes) == list(range(60))
    total = RollupSum()
    for part in minutes.values():
        total.add(part)
    assert_close(RollupSum.decode(stored, hour).to_totals().to_dict(), total.to_totals().to_dict(), tol=1e-4)


def test_stops_and_their_reasons_are_stored(redis_client: redis.Redis, plant: Any, events: list[Event]) -> None:
    write_events(redis_client, events)
    run_worker_until_drained(redis_client, plant, NOW)
    stops = [contract.decode_stop_member(m) for m in redis_client.zrange(contract.stops_key("L1"), 0, -1)]
    assert len(stops) > 10
    assert {s[0] for s in stops} == {"M1", "M2"}
    assert any(s[4] for s in stops), "some stops carry a reason code"
    assert sum(1 for s in stops if s[2] is None) <= 2, "at most one ongoing stop per machine"
    for _, start, end, _, _ in stops:
        assert end is None or end > start


# --- exactly once: restarts, crashes, redelivery --------------------------------------


def test_redelivered_entries_never_count_twice(redis_client: redis.Redis, plant: Any, events: list[Event]) -> None:
    write_events(redis_client, events)
    run_worker_until_drained(redis_client, plant, NOW)
    before = rollup_dump(redis_client)
    # rewind the group: every entry is delivered again to a fresh worker
    redis_client.xgroup_setid(contract.events_key("L1"), "rollup", "0")
    run_worker_until_drained(redis_client, plant, NOW)
    assert rollup_dump(redis_client) == before


def test_entries_read_by_a_crashed_worker_are_processed_after_restart(redis_client: redis.Redis, plant: Any,
                                                                      events: list[Event]) -> None:
    half = len(events) // 2
    write_events(redis_client, events[:half])
    run_worker_until_drained(redis_client, plant, events[half].ts, batch_count=500)
    write_events(redis_client, events[half:])
    # a worker reads a batch and dies before writing anything: the entries stay pending
    got = redis_client.xreadgroup("rollup", "rollup", {contract.events_key("L1"): ">"}, count=700)
    assert len(got[0][1]) == 700
    run_worker_until_drained(redis_client, plant, NOW, batch_count=500)
    assert redis_client.xpending(contract.events_key("L1"), "rollup")["pending"] == 0
    reader = PlantReader(redis_client, plant)
    for machine in ("M1", "M2"):
        expected = reference_kpis(plant, events, machine, math.floor(START / 60) * 60, NOW, NOW, origin=START)
        assert_close(reader.machine_kpis("L1", machine, START, NOW, NOW), expected)


def test_a_line_has_one_worker_at_a_time_and_another_takes_over(redis_client: redis.Redis, plant: Any,
                                                                 events: list[Event]) -> None:
    write_events(redis_client, events)
    # a lease longer than a pass of 300 entries takes on a loaded machine (one of 300 ms ran out
    # under the first worker at load average 20)
    options = WorkerOptions(batch_count=300, lease_ms=2000)
    first = RollupWorker(redis_client, plant, options=options, clock=lambda: NOW)
    second = RollupWorker(redis_client, plant, options=options, clock=lambda: NOW)
    first.process_once()  # its own pending entries: none
    for _ in range(10):
        assert first.process_once() > 0
        assert second.process_once() == 0, "the line is the first worker's"
    # the first stops (hangs, dies): until its lease runs out
    deadline = time.monotonic() + 30
    while redis_client.exists(contract.rollup_lease_key("L1")):
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.05)
    second.drain()
    assert first.process_once() == 0, "a worker that lost its lease writes nothing"
    second.close()
    reader = PlantReader(redis_client, plant)
    for machine in ("M1", "M2"):
        expected = reference_kpis(plant, events, machine, math.floor(START / 60) * 60, NOW, NOW, origin=START)
        assert_close(reader.machine_kpis("L1", machine, START, NOW, NOW), expected)


def test_a_worker_that_lost_its_lease_cannot_commit(redis_client: redis.Redis, plant: Any,
                                                    events: list[Event]) -> None:
    write_events(redis_client, events[:5000])
    lease = contract.rollup_lease_key("L1")
    steal = [False]

    def clock() -> float:  # called between reading a batch and committing it
        if steal[0]:
            redis_client.set(lease, "someone-else")  # e.g. a pause longer than the lease
        return NOW

    worker = RollupWorker(redis_client, plant, options=WorkerOptions(batch_count=300), clock=clock)
    worker.process_once()  # its own pending entries: none
    assert worker.process_once() > 0
    version = redis_client.hget(contract.rollup_state_key("L1"), "ver")
    steal[0] = True
    with pytest.raises(LineConflict):
        worker.process_once()
    steal[0] = False
    assert worker.process_once() == 0
    assert redis_client.hget(contract.rollup_state_key("L1"), "ver") == version, "nothing written"
    assert redis_client.xpending(contract.events_key("L1"), "rollup")["pending"] == 300, "left for the owner"


_WORKER_SCRIPT = """
import sys, threading
sys.path.insert(0, {root!r})
import redis
from store.rollup import WorkerOptions, run_worker
from tests.store_support import two_machine_plant
run_worker(redis.Redis.from_url({url!r}), two_machine_plant(), threading.Event(), now=lambda: {now!r},
           options=WorkerOptions(batch_count=100, block_ms=50, lease_ms=500))
"""


def test_killed_worker_resumes_without_losing_or_doubling(redis_client: redis.Redis, redis_url: str, plant: Any,
                                                          events: list[Event]) -> None:
    write_events(redis_client, events)
    script = _WORKER_SCRIPT.format(root=str(ROOT), url=redis_url, now=NOW)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while int(redis_client.hget(contract.rollup_state_key("L1"), "ver") or 0) < 20:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    pending = redis_client.xinfo_groups(contract.events_key("L1"))[0]
    assert pending["last-delivered-id"] != redis_client.xrevrange(contract.events_key("L1"), count=1)[0][0], \
        "killed mid-way"
    run_worker_until_drained(redis_client, plant, NOW)
    reader = PlantReader(redis_client, plant)
    for machine in ("M1", "M2"):
        expected = reference_kpis(plant, events, machine, math.floor(START / 60) * 60, NOW, NOW, origin=START)
        assert_close(reader.machine_kpis("L1", machine, START, NOW, NOW), expected)


# --- the timer, odd entries -----------------------------------------------------------------


def test_minutes_close_without_events_and_silence_turns_unknown(redis_client: redis.Redis, plant: Any) -> None:
    t0 = RECENT + 3 * HOUR
    events = [Event("L1", "M1", Signal.STATE, "running", "Good", t0 + 1),
              Event("L1", "M1", Signal.GOOD, 5, "Good", t0 + 2)]
    write_events(redis_client, events)
    clock = [t0 + 10]
    worker = RollupWorker(redis_client, plant, options=WorkerOptions(grace_s=5), clock=lambda: clock[0])
    worker.drain()
    clock[0] = t0 + 10 * 60 + 6  # no events for ten minutes
    assert worker.process_once() == 0
    minutes = read_minute_rollups(redis_client, "L1", "M1", t0)
    assert sorted(minutes) == list(range(10))
    last = minutes[9].to_totals()
    assert last.state_s == {"unknown": 60.0}, "silent longer than gap_timeout_s: unknown"
    changes = [contract.decode_state_member(m) for m in redis_client.zrange(contract.states_key("L1"), 0, -1)]
    assert [(c[1], c[2]) for c in changes] == [(t0, "unknown"), (t0 + 1, "running"), (t0 + 2 + 30, "unknown")]


def test_garbage_entries_and_unknown_machines_are_acknowledged_and_skipped(redis_client: redis.Redis,
                                                                           plant: Any) -> None:
    stream = contract.events_key("L1")
    t0 = RECENT + 3 * HOUR
    redis_client.xadd(stream, {"hello": "world"})
    redis_client.xadd(stream, {"m": "M9", "s": "state", "v": "running", "q": "Good", "t": str(int(t0 * 1000))})
    redis_client.xadd(stream, {"m": "M1", "s": "nonsense", "v": "1", "q": "Good", "t": str(int(t0 * 1000))})
    redis_client.xadd(stream, {"m": "M1", "s": "good", "v": "many", "q": "Good", "t": str(int(t0 * 1000))})
    redis_client.xadd(stream, {"m": "M1", "s": "state", "v": "running", "q": "Good", "t": str(int(t0 * 1000) + 5)})
    redis_client.xadd(stream, {"m": "M1", "s": "state", "v": "running", "q": "Good", "t": str(10**16)})
    clock = [t0 + 280]
    worker = RollupWorker(redis_client, plant, clock=lambda: clock[0])
    worker.drain()
    clock[0] = t0 + 300  # nothing more arrived: the machine's minutes close on the clock
    worker.process_once()
    assert redis_client.xpending(stream, "rollup")["pending"] == 0
    assert set(worker.lines["L1"].machines) == {"M1"}
    assert len(read_minute_rollups(redis_client, "L1", "M1", t0)) == 4
    flags = [json.loads(m) for m in redis_client.zrange(contract.flags_key("L1"), 0, -1)]
    assert [(f["m"], f["k"], f["v"]) for f in flags] == [("M1", "future_timestamp", 10**13)]


def test_retention_drops_old_rollups_stops_and_state_changes(redis_client: redis.Redis) -> None:
    plant = two_machine_plant(retention={"minute_rollup_days": 1, "hour_rollup_days": 2, "downtime_days": 1.5})
    now = time.time()
    old = line_history(plant, "L1", now - 2.6 * 86400, now - 2.5 * 86400, seed=3, power_every_s=10)
    new = line_history(plant, "L1", now - 3 * HOUR, now - 2 * HOUR, seed=4, power_every_s=10)
    write_events(redis_client, old + new)
    run_worker_until_drained(redis_client, plant, now)
    apply_retention(redis_client, plant, now)
    keys = [k.decode() for k in redis_client.keys("plant:*")]
    minute_keys = [k for k in keys if ":min:" in k or ":min60:" in k]
    hour_keys = [k for k in keys if ":hour:" in k]
    assert minute_keys and all(redis_client.ttl(k) <= 86400 + 2 * HOUR for k in minute_keys)
    old_hour = math.floor((now - 2.55 * 86400) / HOUR) * HOUR
    assert read_minute_rollups(redis_client, "L1", "M1", old_hour) == {}, "minutes older than a day are gone"
    assert read_minute_rollups(redis_client, "L1", "M1", math.floor((now - 2.5 * HOUR) / HOUR) * HOUR)
    assert hour_keys and all(0 < redis_client.ttl(k) <= 3 * 86400 for k in hour_keys)
    oldest_stop = redis_client.zrange(contract.stops_key("L1"), 0, 0, withscores=True)[0][1]
    assert oldest_stop >= now - 1.5 * 86400
    oldest_change = redis_client.zrange(contract.states_key("L1"), 0, 0, withscores=True)[0][1]
    assert oldest_change >= now - 86400


def test_retention_drops_the_classifications_of_stops_past_it(redis_client: redis.Redis) -> None:
    """Kept as long as their stops (``downtime_days``), found by the start index, which is
    built first for classifications stored before it existed; in batches."""
    plant = two_machine_plant(retention={"downtime_days": 1.5})
    now = time.time()
    store = Classifications(redis_client)
    old = [stop_id("L1", "M1", now - 2 * 86400 + i) for i in range(5)]
    recent = [stop_id("L1", "M2", now - 86400), stop_id("L1", "M1", now - 60)]
    for sid in old[:3] + recent:
        store.put("L1", sid, Classification(3, "jam", "op", now))
    unindexed = old[3:]  # stored before the start index existed
    redis_client.hset(contract.classifications_key("L1"), mapping={sid: json.dumps(Classification(4).to_dict())
                                                                   for sid in unindexed})
    assert store.trim("L1", now - 1.5 * 86400, batch=2) == 5
    apply_retention(redis_client, plant, now)  # nothing more to drop
    assert sorted(k.decode() for k in redis_client.hkeys(contract.classifications_key("L1"))) == sorted(recent)
    assert sorted(k.decode() for k in redis_client.zrange(contract.classification_starts_key("L1"), 0, -1)) == \
        sorted(recent)
    store.put("L1", old[0], Classification(3, "late", "op", now))  # a stop past retention classified again
    apply_retention(redis_client, plant, now)
    assert redis_client.hlen(contract.classifications_key("L1")) == len(recent)


# --- the rollup text ------------------------------------------------------------------------


def test_every_totals_field_is_stored() -> None:
    assert missing_totals_fields() == set()


numbers = st.one_of(st.just(0.0), st.integers(0, 10**6).map(float),
                    st.floats(0, 1e6, allow_nan=False).map(lambda v: round(v, 6)))


@settings(max_examples=200, deadline=None)
@given(scalars=st.lists(numbers, min_size=len(contract.ROLLUP_FIELDS), max_size=len(contract.ROLLUP_FIELDS)),
       states=st.dictionaries(st.sampled_from([s.value for s in State] + ["custom_state"]), numbers, max_size=4),
       quarters=st.dictionaries(st.sampled_from([0, 900, 1800, 2700]), numbers, max_size=4),
       start=st.sampled_from([1_700_000_000.0, 1_700_000_060.0, 1_700_000_100.0]))
def test_rollup_text_round_trips(scalars: list[float], states: dict[str, float], quarters: dict[int, float],
                                 start: float) -> None:
    hour = start - start % 3600
    original = RollupSum(scalars, states, {hour + q: kwh for q, kwh in quarters.items()})
    text = original.encode(start)
    back = RollupSum.decode(text, start)
    assert back.scalars == pytest.approx(original.scalars, rel=1e-6, abs=1e-6)  # 7 significant digits
    assert back.states == pytest.approx({k: v for k, v in states.items() if v}, rel=1e-6, abs=1e-6)
    energy = scalars[contract.ROLLUP_FIELDS.index("energy_kwh")]
    kept = {q: v for q, v in original.quarters.items() if v}
    if kept or not energy:
        assert back.quarters == pytest.approx(kept, rel=1e-6, abs=1e-6)


def test_a_running_minute_is_short() -> None:
    totals = Totals(calendar_s=60, planned_operation_s=60, run_s=60, total_count=1, good_count=1,
                    ideal_time_s=55, energy_kwh=0.2, energy_cost=0.124, co2_kg=0.11406,
                    state_s={"running": 60.0}, quarter_kwh={1_700_000_100.0: 0.2})
    text = RollupSum.from_totals(totals).encode(1_700_000_160.0)
    assert len(text) <= 64, text  # fits Redis' compact hash encoding
    assert RollupSum.decode(text, 1_700_000_160.0).to_totals() == totals


_amounts = st.floats(min_value=0, max_value=1e6, allow_nan=False) | st.sampled_from([0.0, 0.1, 1 / 3, 59.999999])
_counts = st.integers(min_value=0, max_value=10**9)


@st.composite
def _totals(draw: Any) -> Totals:
    """Totals as the engine makes them: floats, whole counts, states, quarter-hour energy."""
    from domain.contract import ROLLUP_FIELDS, ROLLUP_INT_FIELDS

    values = {name: draw(_counts if name in ROLLUP_INT_FIELDS else _amounts) for name in ROLLUP_FIELDS}
    states = draw(st.dictionaries(st.sampled_from([s.value for s in State]), _amounts, max_size=4))
    quarters = draw(st.dictionaries(st.sampled_from([1_700_000_100, 1_700_001_000.0, 1_700_001_900.0]), _amounts,
                                    max_size=3))
    return Totals(**values, state_s=states, quarter_kwh=quarters)


@given(st.lists(_totals(), min_size=1, max_size=5))
@settings(max_examples=200, deadline=None)
def test_adding_totals_in_place_gives_the_sum_of_their_rollup_sums(parts: list[Totals]) -> None:
    """``add_totals`` (the open edge's minutes added to a window's sums) gives what adding
    each one's ``from_totals`` gives, bit for bit: every field, state and quarter, in order."""
    ours, reference = RollupSum(), RollupSum()
    for totals in parts:
        assert ours.add_totals(totals) is ours
        reference.add(RollupSum.from_totals(totals))
    assert [x.hex() for x in ours.scalars] == [x.hex() for x in reference.scalars]
    assert list(ours.states.items()) == list(reference.states.items())
    assert list(ours.quarters.items()) == list(reference.quarters.items())
    assert all(type(q) is float for q in ours.quarters)
    assert ours.to_totals() == reference.to_totals()


@pytest.mark.parametrize(("before", "calendar_s", "planned_s", "scalars", "states"), [
    # nothing yet: the whole gap is unknown; its planned part is planned and unknown time
    ({}, 60.0, 45.0, {"calendar_s": 60.0, "planned_operation_s": 45.0, "unknown_s": 45.0}, {"unknown": 60.0}),
    # after 30 s of running (all planned): added to them; a gap outside the shifts adds no planned time
    ({"calendar_s": 30.0, "planned_operation_s": 30.0, "run_s": 30.0, "state_s": {"running": 30.0}}, 20.0, 0.0,
     {"calendar_s": 50.0, "planned_operation_s": 30.0, "run_s": 30.0}, {"running": 30.0, "unknown": 20.0}),
    # unknown time already there: it grows
    ({"calendar_s": 10.0, "planned_operation_s": 10.0, "unknown_s": 10.0, "state_s": {"unknown": 10.0}}, 5.0, 5.0,
     {"calendar_s": 15.0, "planned_operation_s": 15.0, "unknown_s": 15.0}, {"unknown": 15.0}),
])
def test_time_without_data_is_unknown_and_planned_where_the_shifts_say(
        before: dict[str, Any], calendar_s: float, planned_s: float, scalars: dict[str, float],
        states: dict[str, float]) -> None:
    got = RollupSum().add_totals(Totals(**before)).add_no_data(calendar_s, planned_s).to_totals()
    assert got == Totals(**scalars, state_s=states)


def test_the_carry_stays_small(redis_client: redis.Redis, plant: Any, events: list[Event]) -> None:
    write_events(redis_client, events)
    run_worker_until_drained(redis_client, plant, NOW)
    carries = [v for k, v in redis_client.hgetall(contract.rollup_state_key("L1")).items() if k.startswith(b"c:")]
    assert len(carries) == 2 and all(len(c) < 3000 for c in carries), [len(c) for c in carries]


@pytest.mark.parametrize("carry", [
    {"w": 60.0, "acc": {"open": {"run_s": 12.5, "energy_kwh": 1.5e-7, "state_s": {State.RUNNING: 12.5}}},
     "p": [[1, "x"]], "stop": None, "n": 1e16},
    {"w": 60.0, "last": {"power_kw": [float("nan"), "bad"]}},  # json's NaN, not orjson's null
    {"w": 60.0, "n": float("-inf")},
    {"w": 60.0, "q": {1.5: 2.0, 3: 1}},  # numbers as keys: json writes their text, which reads back as text
    {"w": 60.0, "big": 2**70},  # beyond orjson's 64 bits
])
def test_a_carry_is_written_with_the_values_json_writes(carry: dict[str, Any]) -> None:
    """The worker writes a thousand carries a second with orjson, and with ``json`` whatever
    orjson would write otherwise: what a reader parses is what ``json.dumps`` wrote."""
    from store.bookkeeping import carry_text

    text, expected = carry_text(carry), json.dumps(carry, separators=(",", ":"))
    assert text == expected or json.loads(text) == json.loads(expected) and "NaN" not in expected, (text, expected)


@pytest.mark.parametrize("processed", [61.5, 1e16, float("-inf")])
def test_a_carrys_head_is_written_with_the_values_json_writes(processed: float) -> None:
    """A head (CRC-32 of the carry's text, watermark, last id, time processed, open stop),
    by orjson when its numbers are finite: a reader parses what ``json.dumps`` wrote."""
    import zlib

    from store.bookkeeping import carry_text, head_text

    carry = {"w": 60.0, "acc": {"timeline": {"t": processed}}, "id": "7-0", "stop": None}
    text = carry_text(carry)
    assert json.loads(head_text(text, carry)) == [zlib.crc32(text.encode()), 60.0, "7-0", processed, None]


def test_a_plain_carry_is_written_by_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is taken: a carry of the worker's (finite numbers, text keys) never reaches ``json``."""
    import store.bookkeeping as bookkeeping

    monkeypatch.setattr(bookkeeping.json, "dumps", lambda *a, **k: pytest.fail("json.dumps called"))
    carry = {"w": 60.0, "acc": {"open": {"run_s": 12.5, "state_s": {State.RUNNING: 12.5}}}, "stop": None}
    assert json.loads(bookkeeping.carry_text(carry)) == carry


def test_readers_take_each_machines_head_without_parsing_its_carry(redis_client: redis.Redis, plant: Any,
                                                                    events: list[Event]) -> None:
    """The worker writes each carry's head (watermark, last id, time processed, open stop)
    beside it; a reader uses it only with the carry it was written for, else parses the carry."""
    from store.bookkeeping import head_of, snapshot_of, watermarks_of

    write_events(redis_client, events[: len(events) // 2])
    run_worker_until_drained(redis_client, plant, NOW)
    key = contract.rollup_state_key("L1")
    raw = redis_client.hgetall(key)
    snapshot = snapshot_of(raw)
    assert sorted(snapshot.heads) == ["M1", "M2"] and snapshot.parsed == {}  # nothing parsed to read the heads
    for machine, head in snapshot.heads.items():
        carry = json.loads(raw[contract.carry_field(machine).encode()])
        assert head == head_of(carry)
        assert head.id != contract.NO_STREAM_ID and head.t >= head.w
        assert snapshot.carry(machine) == carry and machine in snapshot.parsed  # parsed when asked for
    assert watermarks_of(raw)[0] == {m: h.w for m, h in snapshot.heads.items()}
    # a worker of an earlier release rewrites M1's carry and leaves its head as it was
    written = json.loads(raw[b"c:M1"])
    written["w"] += 60.0
    written["acc"]["timeline"]["t"] += 60.0
    redis_client.hset(key, "c:M1", json.dumps(written, separators=(",", ":")))
    stale = snapshot_of(redis_client.hgetall(key))
    assert stale.heads["M1"] == head_of(written) != snapshot.heads["M1"]
    assert stale.heads["M2"] == snapshot.heads["M2"] and "M2" not in stale.parsed
    assert watermarks_of(redis_client.hgetall(key))[0]["M1"] == written["w"]
    # without heads at all (an earlier release's bookkeeping): every carry parsed, the same heads
    redis_client.hdel(key, "h:M1", "h:M2")
    assert snapshot_of(redis_client.hgetall(key)).heads == stale.heads
    # a garbled head is not used
    redis_client.hset(key, "h:M2", b"[1,2")
    assert snapshot_of(redis_client.hgetall(key)).heads["M2"] == snapshot.heads["M2"]


@pytest.mark.parametrize(("raw", "expected"), [("", 10), (" 0 ", 0), ("19", 19)])
def test_worker_nice_setting(raw: str, expected: int) -> None:
    assert _worker_nice(raw) == expected


@pytest.mark.parametrize("raw", ["low", "-5", "2.5", "20"])
def test_a_wrong_worker_nice_setting_says_what_is_wrong(raw: str) -> None:
    with pytest.raises(SystemExit, match=f"WORKER_NICE: '{raw}' is not a whole number from 0 to 19"):
        _worker_nice(raw)
