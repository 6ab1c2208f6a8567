"""``SingleFlight``: concurrent calls with one key compute once (nothing kept once the
computation is over); ``Memo``: a bounded, thread-safe cache of computed values over one.

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


class Memo:
    """A bounded cache over a ``SingleFlight``: a key's value is computed once, by the first
    caller, and kept (least recently used out first)."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._flights = SingleFlight()
        self._lock = threading.Lock()
        self.computed = 0  # computations run (tests, benchmarks)
        self._cached = 0  # answers from the cache

    @property
    def hits(self) -> int:
        """Answers not computed by their caller: from the cache or another's computation."""
        return self._cached + self._flights.joined

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        found, value = self._lookup(key)
        if found:
            return value

        def fill() -> Any:
            found, value = self._lookup(key)  # kept by a computation that ended meanwhile
            if found:
                return value
            value = compute()
            with self._lock:
                self.computed += 1
                self._keep(key, value)
            return value

        return self._flights.run(key, fill)

    def put(self, key: Hashable, value: Any) -> None:
        """Keeps ``value`` under ``key`` (computed along with another value: shared)."""
        with self._lock:
            self._keep(key, value)

    def _keep(self, key: Hashable, value: Any) -> None:
        """(holding ``_lock``) ``value`` kept as the newest; the least recently used out."""
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def _lookup(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            if key not in self._data:
                return False, None
            self._data.move_to_end(key)
            self._cached += 1
            return True, self._data[key]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key``'s value is kept (a look that neither counts nor reorders)."""
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        return len(self._data)
