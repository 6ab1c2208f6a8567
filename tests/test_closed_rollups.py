"""Sums of a filling rollup hash (this hour's minutes) taken up where the last read stopped:
exactly the numbers of adding every rollup again, in index order."""

from __future__ import annotations

import random

import pytest

from domain.contract import ROLLUP_FIELDS
from store.cache import LruCache
from store.closed_rollups import HOUR_S, MINUTE_S, HashEntry, Prefixes
from store.sums import RollupSum

HOUR = 1_764_000_000.0 - 1_764_000_000.0 % HOUR_S
KEY = ("L1", "M1", HOUR, float(MINUTE_S))


def minute_text(index: int, seed: int = 0) -> str:
    """A minute's rollup with values whose sum depends on the order of the additions."""
    rng = random.Random(index * 1000 + seed)
    part = RollupSum([rng.choice((0.0, 0.1, 1 / 3, 7.7, 60.0)) for _ in ROLLUP_FIELDS],
                     {"RUNNING": rng.random() * 60, "IDLE": 60 / 7} if index % 3 else {"DOWN": 0.3},
                     {HOUR + (index // 15) * 900: rng.random() / 3})
    return part.encode(HOUR + index * MINUTE_S)


def plain_sum(texts: dict[int, str], first: int, last: int, out: RollupSum | None = None) -> RollupSum:
    out = out or RollupSum()
    HashEntry(HOUR, MINUTE_S, dict(texts)).add_range(out, first, last)
    return out


def read(texts: dict[int, str], prefixes: Prefixes, first: int, last: int, out: RollupSum | None = None
         ) -> tuple[RollupSum, HashEntry]:
    """One reader's pass over the hash as Redis gives it now (a new entry per read)."""
    entry = HashEntry(HOUR, MINUTE_S, dict(texts), None, prefixes, KEY)
    out = out or RollupSum()
    entry.add_range(out, first, last)
    return out, entry


def same(a: RollupSum, b: RollupSum) -> bool:
    """Equal to the last bit, dictionaries in the same order."""
    return (a.scalars == b.scalars and list(a.states.items()) == list(b.states.items())
            and list(a.quarters.items()) == list(b.quarters.items()))


def test_a_growing_hash_read_minute_by_minute_sums_exactly_and_parses_only_the_new_minute() -> None:
    prefixes: Prefixes = LruCache(16)
    texts: dict[int, str] = {}
    for minute in range(59):
        texts[minute] = minute_text(minute)
        got, entry = read(texts, prefixes, 0, minute + 1)
        assert same(got, plain_sum(texts, 0, minute + 1)), minute
        assert len(entry.parsed) == (minute + 1 if minute == 0 else 1)  # the earlier minutes were summed before


@pytest.mark.parametrize(("case", "before", "after"), [
    ("the same range again", 20, 20),
    ("a shorter range", 30, 12),
    ("a longer range", 5, 40),
])
def test_any_range_after_any_other_sums_exactly(case: str, before: int, after: int) -> None:
    prefixes: Prefixes = LruCache(16)
    texts = {i: minute_text(i) for i in range(50)}
    read(texts, prefixes, 0, before)
    got, _ = read(texts, prefixes, 0, after)
    assert same(got, plain_sum(texts, 0, after)), case


def test_a_rewritten_or_filled_minute_is_summed_again() -> None:
    prefixes: Prefixes = LruCache(16)
    texts = {i: minute_text(i) for i in range(30) if i != 7}  # minute 7 not stored yet
    read(texts, prefixes, 0, 30)
    texts[7] = minute_text(7)
    got, _ = read(texts, prefixes, 0, 31)
    assert same(got, plain_sum(texts, 0, 31))
    texts[3] = minute_text(3, seed=1)  # late data rewrote minute 3
    got, _ = read(texts, prefixes, 0, 32)
    assert same(got, plain_sum(texts, 0, 32))
    assert not same(got, plain_sum({**texts, 3: minute_text(3)}, 0, 32))  # the rewrite counts


def test_a_range_added_to_a_sum_that_holds_something_or_not_from_the_start_is_added_one_by_one() -> None:
    prefixes: Prefixes = LruCache(16)
    texts = {i: minute_text(i) for i in range(40)}
    read(texts, prefixes, 0, 20)
    lead = RollupSum.decode(minute_text(99), HOUR - MINUTE_S)
    got, entry = read(texts, prefixes, 0, 30, lead.copy())
    assert same(got, plain_sum(texts, 0, 30, lead.copy()))
    assert len(entry.parsed) == 30  # no prefix taken: a different order of additions
    got, _ = read(texts, prefixes, 10, 30)
    assert same(got, plain_sum(texts, 10, 30))
