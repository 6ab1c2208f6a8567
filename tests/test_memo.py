"""``store.memo.Memo``: each key computed once and kept (least recently used out first),
errors never kept; concurrent callers wait for the first one's computation."""

from __future__ import annotations

import threading
import time

import pytest

from store.memo import Memo


def test_a_value_is_computed_once_and_kept() -> None:
    memo = Memo(max_entries=2)
    assert memo.get("a", lambda: 1) == 1
    assert memo.get("a", lambda: 2) == 1
    assert (memo.computed, memo.hits, len(memo)) == (1, 1, 1)


def test_the_least_recently_used_goes_first() -> None:
    memo = Memo(max_entries=2)
    memo.get("a", lambda: "A")
    memo.get("b", lambda: "B")
    memo.get("a", lambda: "not again")  # a is used again: b is now the oldest
    memo.get("c", lambda: "C")
    assert memo.get("a", lambda: "again") == "A"
    assert memo.get("b", lambda: "B again") == "B again"
    assert memo.computed == 4


def test_an_error_is_not_kept() -> None:
    memo = Memo()

    def fail() -> str:
        raise RuntimeError("Redis went away")

    with pytest.raises(RuntimeError):
        memo.get("a", fail)
    assert memo.get("a", lambda: "back") == "back"
    assert (memo.computed, len(memo)) == (1, 1)


def test_callers_at_the_same_time_wait_for_one_computation() -> None:
    memo = Memo()
    release = threading.Event()
    calls: list[int] = []
    got: list[object] = []

    def compute() -> object:
        calls.append(1)
        release.wait(30)
        return object()

    threads = [threading.Thread(target=lambda: got.append(memo.get("a", compute))) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while memo._flights.waiting < 2:  # the two others wait for the first
        assert time.monotonic() < deadline, "the others never waited"
        time.sleep(0.005)
    release.set()
    for t in threads:
        t.join(30)
    assert len(calls) == 1 and len(got) == 3 and got[0] is got[1] is got[2]
    assert (memo.computed, memo.hits) == (1, 2)
