"""Cumulative part counters and energy meters -> non-negative deltas.

PLC part counters and kWh meters are cumulative: what happened between two readings is
their difference. Raw differences go wrong in three ways, and each has a rule:

* **Rollover.** A counter of N bits wraps from 2**N - 1 to 0; a meter configured with
  ``meter_rollover_kwh`` wraps at that value. A drop is a wrap when the wrapped delta
  ``value + modulus - previous`` is at most ``modulus / 16``: the previous reading was
  near the top and the new one near zero, a plausible amount of production between two
  samples. That delta is counted.
* **Reset.** Any other drop (PLC restart, counter cleared, meter exchanged) is a reset:
  the delta at the drop is 0 and the new value is the new baseline. Why 0 and not the
  new value: a PLC publishes its counter right after a restart, so the first value
  after a reset is almost always 0 or a few parts; counting it would recover those few
  parts but would also count a whole unrelated register (a preset counter, a replaced
  meter with its own history) as one huge spike. Under-counting a handful of parts at a
  restart is the safer error, and it is visible (a reset), while a spike is not.
* **Bad samples.** Readings with a Bad status, non-numeric, non-finite or negative
  values are ignored: neither counted nor used as a baseline. Readings older than the
  last one applied (out of order) are ignored too: the baseline already includes them,
  and using them would look like a reset.

The first good reading is the baseline (delta 0): a counter's absolute value says
nothing about the current window.

* **Implausible jumps.** ``apply`` takes a ceiling ``limit(elapsed_s)`` on the delta
  over the event time since the previous reading (``domain.plausibility``). A larger
  delta (a plausible-looking wrap included) is not counted and is returned as rejected;
  the reading becomes the new baseline, so the next normal reading counts from it and a
  return to the old range afterwards is a reset (0), as above.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

WRAP_PLAUSIBLE_FRACTION = 1 / 16

Number = int | float
DeltaLimit = Callable[[float], float]  # elapsed event time (s) -> the largest plausible delta


def counter_delta(previous: Number | None, value: Number, modulus: Number | None) -> Number:
    """Production between two readings of a cumulative counter (never negative)."""
    if previous is None:
        return 0
    if value >= previous:
        return value - previous
    if modulus is not None:
        wrapped = value + modulus - previous
        if 0 <= wrapped <= modulus * WRAP_PLAUSIBLE_FRACTION:
            return wrapped
    return 0  # a reset: the new value is the new baseline


def reading(value: object) -> Number | None:
    """A usable counter/meter reading, or None (text, NaN, infinite, negative)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value >= 0 else None


@dataclass(slots=True)
class CumulativeCounter:
    """The baseline of one cumulative signal; ``update`` turns readings into deltas."""

    modulus: Number | None = None  # 2**bits for counters, meter_rollover_kwh for meters
    last: Number | None = None
    last_ts: float | None = None

    def update(self, value: object, ts: float, good: bool = True) -> Number:
        """Delta since the previous reading; 0 for ignored readings (see module doc)."""
        return self.apply(value, ts, good)[0]

    def apply(self, value: object, ts: float, good: bool = True,
              limit: DeltaLimit | None = None) -> tuple[Number, Number]:
        """(counted delta, rejected delta): a delta above ``limit(elapsed)`` is rejected
        (not counted; the reading still becomes the baseline). Both 0 for ignored readings."""
        number = reading(value) if good else None
        if number is None or (self.last_ts is not None and ts < self.last_ts):
            return 0, 0
        delta = counter_delta(self.last, number, self.modulus)
        elapsed = 0.0 if self.last_ts is None else ts - self.last_ts
        self.last, self.last_ts = number, ts
        if delta and limit is not None and delta > limit(elapsed):
            return 0, delta
        return delta, 0

    def to_dict(self) -> dict[str, Number | None]:
        return {"last": self.last, "ts": self.last_ts}

    def restore(self, data: dict[str, Number | None]) -> None:
        self.last = data.get("last")
        ts = data.get("ts")
        self.last_ts = None if ts is None else float(ts)
