"""Readings a machine cannot have produced: the limits, and the ``Flag`` that records one.

A PLC glitch (a counter jumping from 109 to 4,000,000,000, an energy reading of 1e308
with a Good status) is a number like any other; counted, it ruins a day, a shift and
every sum over them. Each cumulative signal therefore has a ceiling on how much it can
grow between two readings, from what the machine can physically do over the elapsed
event time ``dt`` (seconds since the previous reading of the same signal):

* **Part counters** (good and reject, each on its own): at most
  ``counter_factor x dt / ideal_cycle_time_s + counter_slack_parts`` parts. Defaults 3
  and 10 (``domain.plant.Plausibility``): the factor leaves room for an ideal cycle
  time set too slow (performance over 100 % is reported, not rejected) and for parts
  counted in batches; the slack covers counters read twice within a cycle and clock
  jitter between the PLC and the collector.
* **Energy meters**: at most ``max_power_kw x dt / 3600 + meter_slack_kwh`` kWh;
  ``max_power_kw`` per machine, else the plant-wide default (10,000 kW: above every
  ordinary machine tool, press, oven or mill drive, far below any glitch), slack 1 kWh
  (a meter's resolution step read twice in quick succession).
* **Power readings** above ``max_power_kw`` are not used (the previous reading is held
  for integration).

A delta above its ceiling is not counted: the reading re-baselines the counter (see
``domain.counters``) and is reported as a ``Flag`` with the rejected delta (for power:
the rejected kW). A delta exactly at the ceiling counts. Resets (0 counted) and
plausible rollovers are unchanged; a rollover whose wrapped delta is over the ceiling
is flagged like any other jump. The first reading is a baseline and never flagged.

Pure and deterministic: a flag depends only on the machine's readings in event-time
order (``dt`` is event time), so replaying the same events gives the same flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.plant import Machine, Plant

IMPLAUSIBLE_DELTA = "implausible_delta"  # a counter or meter delta over its ceiling
IMPLAUSIBLE_POWER = "implausible_power"  # a kW reading over the machine's maximum power


@dataclass(frozen=True, slots=True)
class Flag:
    """One implausible reading: not counted, recorded so people can see and trust that.

    ``ts`` is the reading's event time (epoch s); ``value`` the rejected delta (parts or
    kWh) for ``implausible_delta``, the rejected reading (kW) for ``implausible_power``
    (other kinds, such as the store's timestamp flags, may carry text or nothing)."""

    line: str
    machine: str
    signal: str
    ts: float
    kind: str
    value: int | float | str | None

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "machine": self.machine, "signal": self.signal, "ts": self.ts,
                "kind": self.kind, "value": self.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Flag:
        return cls(str(data["line"]), str(data["machine"]), str(data["signal"]), float(data["ts"]),
                   str(data["kind"]), data["value"])


@dataclass(frozen=True, slots=True)
class Limits:
    """One machine's ceilings (module docstring), resolved from the plant file once."""

    ideal_cycle_time_s: float
    counter_factor: float
    counter_slack_parts: float
    max_power_kw: float
    meter_slack_kwh: float

    @classmethod
    def of(cls, plant: Plant, machine: Machine) -> Limits:
        rules = plant.plausibility
        max_kw = machine.max_power_kw if machine.max_power_kw is not None else rules.max_power_kw
        return cls(machine.ideal_cycle_time_s, rules.counter_factor, rules.counter_slack_parts, max_kw,
                   rules.meter_slack_kwh)

    def max_parts(self, elapsed_s: float) -> float:
        """The most parts one counter can plausibly add in ``elapsed_s`` seconds."""
        return self.counter_factor * max(elapsed_s, 0.0) / self.ideal_cycle_time_s + self.counter_slack_parts

    def max_kwh(self, elapsed_s: float) -> float:
        """The most kWh the meter can plausibly add in ``elapsed_s`` seconds."""
        return self.max_power_kw * max(elapsed_s, 0.0) / 3600.0 + self.meter_slack_kwh

    def power_ok(self, kw: float) -> bool:
        return kw <= self.max_power_kw
