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
