"""The store-and-forward buffer: written ahead to disk, order, the drop policy, reopen, crash."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.buffer import StoreAndForwardBuffer, encode_line
from domain.model import Event, Signal


def ev(i: int, machine: str = "ST10", signal: Signal = Signal.GOOD, line: str = "BW1") -> Event:
    return Event(line, machine, signal, i, "Good", 1_700_000_000 + i / 1000)


def drain(buf: StoreAndForwardBuffer, chunk: int = 7) -> list[Event]:
    out: list[Event] = []
    while len(buf):
        got = buf.peek(chunk)
        out.extend(got)
        buf.pop(len(got))
    return out


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("seg-*.jsonl"))


def test_every_event_is_written_ahead_to_disk_in_order(tmp_path: Path) -> None:
    buf = StoreAndForwardBuffer(tmp_path)
    buf.extend(ev(i) for i in range(25))
    assert (len(buf), buf.disk_count) == (25, 25)
    assert sum(p.stat().st_size for p in tmp_path.glob("seg-*.jsonl")) == buf.disk_bytes_used > 0
    got = buf.peek(12)
    buf.pop(12)
    buf.extend(ev(i) for i in range(25, 30))  # newer events go behind what is waiting
    assert buf.disk_count == 18
    assert got + drain(buf) == [ev(i) for i in range(30)]
    assert files(tmp_path) == [] and not (tmp_path / "cursor.json").exists()


def test_values_survive_the_file_format(tmp_path: Path) -> None:
    events = [
        Event("BW1", "ST10", Signal.STATE, "running", "Good", 1.5),
        Event("BW1", "ST10", Signal.ENERGY, 12.25, "Good", 2.0),
        Event("BW1", "ST10", Signal.ENERGY, float("inf"), "BadValue", 3.0),
        Event("BW1", "ST10", Signal.GOOD, "", "BadSensorFailure", 4.0),
        Event("BW1", "ST10", Signal.HEARTBEAT, None, "Good", 5.0),
        Event("BW1", "ST10", Signal.LINK, "down", "Good", 6.0),
        Event("BW1", "ST10", Signal.REASON, 31, "Good", 7.0),
        Event("CM1", "OP10 \"ü\"", Signal.STATE, "a,b\nc", "Good", 8.0),
    ]
    buf = StoreAndForwardBuffer(tmp_path)
    buf.extend(events)
    assert buf.disk_count == len(events)
    assert drain(buf) == events


def test_reopen_resumes_after_what_was_forwarded(tmp_path: Path) -> None:
    buf = StoreAndForwardBuffer(tmp_path, segment_bytes=300)
    buf.extend(ev(i) for i in range(40))
    buf.peek(12)
    buf.pop(12)
    buf.extend(ev(i) for i in range(40, 45))
    buf.close()
    again = StoreAndForwardBuffer(tmp_path, segment_bytes=300)
    assert len(again) == 33
    assert drain(again, chunk=5) == [ev(i) for i in range(12, 45)]


def test_a_killed_process_loses_nothing_it_handed_over_and_resends_nothing_forwarded(tmp_path: Path) -> None:
    buf = StoreAndForwardBuffer(tmp_path, segment_bytes=200)
    buf.extend(ev(i) for i in range(10))
    buf.extend(ev(i) for i in range(10, 30))
    buf.peek(7)
    buf.pop(7)  # forwarded
    buf.peek(5)  # in flight when the process dies: sent again
    del buf  # no close(): as if killed
    again = StoreAndForwardBuffer(tmp_path, segment_bytes=200)
    assert drain(again, chunk=4) == [ev(i) for i in range(7, 30)]


def test_crash_without_close_keeps_the_disk_part_and_cuts_a_torn_record(tmp_path: Path) -> None:
    buf = StoreAndForwardBuffer(tmp_path)
    buf.extend(ev(i) for i in range(10))
    buf.peek(4)
    buf.pop(4)
    del buf  # no close(): as if the process died
    segment = tmp_path / files(tmp_path)[-1]
    with segment.open("ab") as f:
        f.write(encode_line(ev(10))[:-9])  # a record cut off in the middle
    again = StoreAndForwardBuffer(tmp_path)
    assert drain(again) == [ev(i) for i in range(4, 10)]


def test_a_damaged_record_is_skipped_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buf = StoreAndForwardBuffer(tmp_path)
    buf.extend(ev(i) for i in range(3))
    segment = tmp_path / files(tmp_path)[-1]
    with segment.open("ab") as f:
        f.write(b'{"not": "an event"}\n')
    buf.close()
    again = StoreAndForwardBuffer(tmp_path)
    again.extend(ev(i) for i in range(3, 6))
    assert len(again) == 7
    with caplog.at_level(logging.ERROR, logger="collectors.buffer"):
        assert drain(again, chunk=2) == [ev(i) for i in range(6)]
    assert len(again) == 0 and files(tmp_path) == []
    assert sum("damaged record" in r.getMessage() for r in caplog.records) == 1


def test_drops_past_the_disk_bound_but_keeps_the_latest_value_of_every_signal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = len(encode_line(ev(100)))
    buf = StoreAndForwardBuffer(tmp_path, disk_bytes=record * 10)
    early = [ev(100 + i) for i in range(10)]  # fills the disk
    late = [ev(200 + i, machine=m, signal=s) for i in range(30) for m in ("ST10", "ST20")
            for s in (Signal.GOOD, Signal.STATE)]
    with caplog.at_level(logging.WARNING, logger="collectors.buffer"):
        buf.extend(early)
        buf.extend(late)
    assert buf.dropping
    assert any("disk bound" in r.getMessage() and "dropping" in r.getMessage() for r in caplog.records)
    assert len(buf) == 10 + 4
    assert buf.dropped == len(late) - 4
    out = drain(buf, chunk=3)
    assert out[:10] == early
    latest = {(e.machine, e.signal): e.value for e in out[10:]}
    assert latest == {(m, s): 229 for m in ("ST10", "ST20") for s in (Signal.GOOD, Signal.STATE)}
    assert not buf.dropping
    assert any("intermediate events were dropped" in r.getMessage() for r in caplog.records)


def test_latest_value_updated_between_peek_and_pop_is_not_lost(tmp_path: Path) -> None:
    buf = StoreAndForwardBuffer(tmp_path, disk_bytes=1)
    buf.extend([ev(1), ev(2)])  # nothing fits on disk: latest only
    assert buf.peek(10) == [ev(2)]
    buf.append(ev(3))  # arrives while ev(2) is being forwarded
    buf.pop(1)
    assert buf.peek(10) == [ev(3)]


def test_pop_needs_a_peek(tmp_path: Path) -> None:
    buf = StoreAndForwardBuffer(tmp_path)
    buf.extend(ev(i) for i in range(5))
    buf.peek(2)
    with pytest.raises(ValueError):
        buf.pop(3)


def test_rotates_segments_and_deletes_forwarded_ones(tmp_path: Path) -> None:
    buf = StoreAndForwardBuffer(tmp_path, segment_bytes=250)
    buf.extend(ev(i) for i in range(30))
    assert len(files(tmp_path)) > 3
    before = len(files(tmp_path))
    buf.peek(15)
    buf.pop(15)
    assert len(files(tmp_path)) < before
    assert drain(buf) == [ev(i) for i in range(15, 30)]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("extend"), st.integers(0, 30)),
        st.tuples(st.just("forward"), st.integers(1, 25)),
        st.tuples(st.just("reopen"), st.just(0)),
        st.tuples(st.just("crash"), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops, segment=st.sampled_from([120, 400, 10_000]))
def test_any_sequence_forwards_everything_once_in_order(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]], segment: int
) -> None:
    """Extend, forward, close and reopen, or die without closing (``kill -9``): every
    event is forwarded exactly once, in order."""
    directory = tmp_path_factory.mktemp("buf")
    buf = StoreAndForwardBuffer(directory, segment_bytes=segment)
    sent: list[Event] = []
    forwarded: list[Event] = []
    n = 0
    for op, k in ops:
        if op == "extend":
            batch = [ev(n + i) for i in range(k)]
            n += k
            buf.extend(batch)
            sent.extend(batch)
        elif op == "forward":
            got = buf.peek(k)
            buf.pop(len(got))
            forwarded.extend(got)
        else:
            if op == "reopen":
                buf.close()
            buf = StoreAndForwardBuffer(directory, segment_bytes=segment)
        assert len(buf) == len(sent) - len(forwarded)
    forwarded.extend(drain(buf))
    assert forwarded == sent
