"""``Memo``: a bounded, thread-safe, single-flight cache of computed values; ``SingleFlight``:
the single flight alone (nothing kept once a computation is over).

Live views are keyed by the line's ``LiveFeed`` version: the first request for a key
computes it, requests arriving meanwhile wait for that result instead of computing it
again, and later ones get it from the cache until the version moves on. An error is not
cached (each waiter then computes for itself, and sees the error itself).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class _Flight:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class Memo:
    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._lock = threading.Lock()
        self.computed = 0  # computations run (tests, benchmarks)
        self.hits = 0

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if not leader:
            flight.done.wait()
            if flight.error is None:
                with self._lock:
                    self.hits += 1
                return flight.value
            return compute()
        try:
            value = compute()
        except BaseException as exc:
            flight.error = exc
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()
            raise
        flight.value = value
        with self._lock:
            self.computed += 1
            self._flights.pop(key, None)
            self._data[key] = value
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
        flight.done.set()
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class SingleFlight:
    """Concurrent calls with one key run ``compute`` once; the others get its value (or,
    when it raised, compute for themselves and see their own error). Nothing is kept
    once the computation is over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}
        self.led = 0  # computations run (tests, benchmarks)
        self.joined = 0  # answers shared
        self.waiting = 0  # calls waiting for another's computation now

    def run(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
                self.led += 1
        if not leader:
            with self._lock:
                self.waiting += 1
            flight.done.wait()
            with self._lock:
                self.waiting -= 1
                if flight.error is None:
                    self.joined += 1
            if flight.error is not None:
                return compute()
            return flight.value
        try:
            flight.value = compute()
            return flight.value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
