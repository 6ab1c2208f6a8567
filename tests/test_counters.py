"""Cumulative counters and meters: resets, rollovers and bad samples never count negative."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.counters import CumulativeCounter, counter_delta, reading


@pytest.mark.parametrize("previous, value, modulus, delta", [
    (None, 500, None, 0),  # the first reading is the baseline
    (10, 10, None, 0),
    (10, 17, None, 7),
    (10, 0, None, 0),  # reset (PLC restart): new baseline, nothing counted
    (10, 3, None, 0),  # reset to a small value: still nothing counted (module docstring)
    (65530, 4, 2**16, 10),  # 16-bit wrap: 65530 -> 65535 -> 0 -> 4
    (2**32 - 1, 0, 2**32, 1),  # 32-bit wrap by one part
    (250, 5, 2**8, 11),
    (40000, 0, 2**16, 0),  # a drop from mid-range is a reset, not a wrap of 25,536 parts
    (240, 0, 2**8, 16),  # wrapped delta at the plausibility limit (256 / 16)
    (239, 0, 2**8, 0),  # one past it: a reset
    (200, 0, 2**8, 0),  # 56 parts "wrapped" would be more than 1/16 of the range: reset
    (999.75, 0.5, 1000.0, 0.75),  # kWh meter rollover
    (500.0, 0.0, 1000.0, 0.0),  # meter exchanged: reset
])
def test_counter_delta(previous: float | None, value: float, modulus: float | None, delta: float) -> None:
    assert counter_delta(previous, value, modulus) == pytest.approx(delta)


@pytest.mark.parametrize("value, usable", [
    (5, 5), (0, 0), (2.5, 2.5), (-1, None), ("12", None), (None, None), (True, None),
    (math.nan, None), (math.inf, None),
])
def test_reading(value: object, usable: float | None) -> None:
    assert reading(value) == usable


def test_counter_sequence_with_reset_wrap_bad_and_out_of_order_samples() -> None:
    counter = CumulativeCounter(modulus=2**16)
    samples = [  # (value, ts, good, expected delta)
        (65000, 1, True, 0),
        (65100, 2, True, 100),
        (20, 3, True, 456),  # wrap
        (0, 4, False, 0),  # bad: ignored, baseline stays 20
        (25, 5, True, 5),
        (24, 4.5, True, 0),  # older than the last reading: ignored (would look like a reset)
        (0, 6, True, 0),  # reset
        (3, 7, True, 3),
        ("oops", 8, True, 0),
        (4, 9, True, 1),
    ]
    for value, ts, good, expected in samples:
        assert counter.update(value, ts, good) == expected, (value, ts)


def test_counter_state_round_trips() -> None:
    counter = CumulativeCounter(modulus=256)
    counter.update(250, 1.0)
    restored = CumulativeCounter(modulus=256)
    restored.restore(counter.to_dict())
    assert restored.update(3, 2.0) == counter.update(3, 2.0) == 9


@given(
    start=st.integers(0, 2**16 - 1),
    steps=st.lists(st.one_of(st.integers(0, 500), st.just(-1)), max_size=60),
)
def test_deltas_are_never_negative_and_add_up_to_the_parts_made(start: int, steps: list[int]) -> None:
    """A 16-bit counter counting up in steps of up to 500 parts, sometimes reset to 0."""
    counter = CumulativeCounter(modulus=2**16)
    counter.update(start, 0)
    value, made, counted = start, 0, 0
    for i, step in enumerate(steps, start=1):
        if step < 0:
            value = 0  # reset: the parts (none) between restart and reading are lost by rule
        else:
            value, made = (value + step) % 2**16, made + step
        delta = counter.update(value, i)
        assert delta >= 0
        counted += delta
    # a reset from the top 1/16 of the range looks exactly like a wrap: the only
    # ambiguity, worth at most 4,096 parts per reset
    assert made <= counted <= made + 4096 * steps.count(-1)


# --- a ceiling on the delta (domain.plausibility supplies it) -------------------------

def five_plus_one_per_s(elapsed_s: float) -> float:
    return 5 + elapsed_s


@pytest.mark.parametrize("readings, expected", [
    # (value, t) ... -> (counted, rejected) per reading
    ([(100, 0), (110, 5)], [(0, 0), (10, 0)]),  # at the ceiling (5 + 5): counted
    ([(100, 0), (111, 5)], [(0, 0), (0, 11)]),  # one above: rejected
    ([(100, 0), (105, 0)], [(0, 0), (5, 0)]),  # same instant: the slack alone
    ([(100, 0), (5000, 1), (5003, 2)], [(0, 0), (0, 4900), (3, 0)]),  # re-baselined: counts from 5000
    ([(100, 0), (5000, 1), (101, 2)], [(0, 0), (0, 4900), (0, 0)]),  # back to the old range: a reset
    ([(65530, 0), (4, 5)], [(0, 0), (10, 0)]),  # a plausible wrap still counts
    ([(65000, 0), (20, 5)], [(0, 0), (0, 556)]),  # a wrap too big for the time: rejected
    ([(100, 0), (90, 1)], [(0, 0), (0, 0)]),  # a reset is not a flag
    ([(100, 10), (900, 9)], [(0, 0), (0, 0)]),  # older than the last reading: ignored
])
def test_deltas_above_the_ceiling_are_rejected(readings: list[tuple[int, float]],
                                                expected: list[tuple[int, int]]) -> None:
    counter = CumulativeCounter(modulus=2**16)
    assert [counter.apply(v, t, limit=five_plus_one_per_s) for v, t in readings] == expected


def test_without_a_ceiling_apply_is_update() -> None:
    counter = CumulativeCounter()
    assert [counter.apply(v, t) for v, t in [(0, 0), (10**12, 1)]] == [(0, 0), (10**12, 0)]


@given(steps=st.lists(st.tuples(st.integers(0, 10**9), st.floats(0, 100)), max_size=40))
def test_a_counted_delta_never_exceeds_the_ceiling(steps: list[tuple[int, float]]) -> None:
    counter = CumulativeCounter(modulus=2**32)
    t = 0.0
    for value, dt in steps:
        t += dt
        before = counter.last_ts
        counted, rejected = counter.apply(value, t, limit=five_plus_one_per_s)
        elapsed = 0.0 if before is None else t - before
        assert counted <= five_plus_one_per_s(elapsed) and not (counted and rejected)
        assert rejected == 0 or rejected > five_plus_one_per_s(elapsed)
        assert counter.last == value  # whatever happened, the reading is the baseline
