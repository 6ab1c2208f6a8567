"""How a machine's time, energy and parts are booked into ``Totals``.

``MachineContext`` is a machine with what the plant file says about it (its planned
calendar, energy source, plausibility limits), looked up once. The ``add_*`` functions
book a segment of time in one state, energy and part counts into ``Totals``: the engine's
minutes (``domain.engine``) and whole windows (``domain.engine.totals_from_events``)
share them, so both follow the same rules (README "Definitions"). ``Stop`` is the record
of one stop that ``domain.timeline.Timeline`` reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from domain.calendar import Interval, clip, planned_busy_intervals, total
from domain.energy import QUARTER_S, co2_kg, cost_of_interval, price_at, quarter_start, zone
from domain.model import Signal, State
from domain.plant import Line, Machine, Plant
from domain.plausibility import Limits
from domain.totals import Totals

MINUTE_S = 60.0


@dataclass(frozen=True, slots=True)
class MinuteRollup:
    minute_start: float  # epoch seconds, a multiple of 60
    totals: Totals


@dataclass(frozen=True, slots=True)
class Stop:
    """A period in which the machine was not running (and the state was known).

    ``end`` is None while the stop is ongoing. ``reason`` is the last non-zero reason
    code seen during the stop (0: none). Classification (planned, micro-stop, loss
    category, reason text) is done with the plant config by ``domain.downtime``.
    """

    line: str
    machine: str
    start: float
    end: float | None
    state: State
    reason: int

    def duration(self, now: float) -> float:
        return (self.end if self.end is not None else now) - self.start

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "machine": self.machine, "start": self.start, "end": self.end,
                "state": str(self.state), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stop:
        return cls(data["line"], data["machine"], float(data["start"]),
                   None if data["end"] is None else float(data["end"]), State(data["state"]), int(data["reason"]))


def is_stopped(state: State) -> bool:
    return state not in (State.RUNNING, State.UNKNOWN)


def floor_minute(t: float) -> float:
    return math.floor(t / MINUTE_S) * MINUTE_S


class PlannedCalendar:
    """Planned operation time (shifts minus breaks), cached in UTC blocks.

    The engine asks for every segment of every minute; the calendar itself walks
    days and time-zone conversions, so blocks of a few hours are computed once.
    """

    BLOCK_S = 6 * 3600.0
    MAX_BLOCKS = 64

    def __init__(self, plant: Plant) -> None:
        self._shifts = plant.shifts
        self._tz = zone(plant.timezone)
        self._blocks: dict[float, list[Interval]] = {}

    def _block(self, block_start: float) -> list[Interval]:
        cached = self._blocks.get(block_start)
        if cached is None:
            if len(self._blocks) >= self.MAX_BLOCKS:
                self._blocks.clear()
            cached = planned_busy_intervals(self._shifts, self._tz, block_start, block_start + self.BLOCK_S)
            self._blocks[block_start] = cached
        return cached

    def intervals(self, start: float, end: float) -> list[Interval]:
        """Planned operation intervals within [start, end), sorted, not overlapping."""
        out: list[Interval] = []
        block = math.floor(start / self.BLOCK_S) * self.BLOCK_S
        while block < end:
            out.extend(clip(self._block(block), start, end))
            block += self.BLOCK_S
        return out

    def seconds(self, start: float, end: float) -> float:
        """``total(self.intervals(start, end))``, the same sum in the same order, without the
        lists for a span within one block (a minute's segment, per machine at every read)."""
        block = math.floor(start / self.BLOCK_S) * self.BLOCK_S
        if end > block + self.BLOCK_S:
            return total(self.intervals(start, end))
        out: float = 0  # as sum(): an int 0 plus the first part is that part exactly
        for s, e in self._block(block):
            if s >= end:
                break  # sorted
            a, b = max(s, start), min(e, end)
            if a < b:
                out += b - a
        return out

    def is_planned(self, at: float) -> bool:
        block = math.floor(at / self.BLOCK_S) * self.BLOCK_S
        return any(s <= at < e for s, e in self._block(block))


@dataclass(frozen=True)
class MachineContext:
    """A machine with what the plant file says about it, looked up once."""

    plant: Plant
    line: Line
    machine: Machine
    tz: ZoneInfo
    calendar: PlannedCalendar = field(compare=False)
    uses_meter: bool  # energy from the kWh meter (else integrated power)
    limits: Limits  # what the machine can plausibly produce (domain.plausibility)

    @classmethod
    def of(cls, plant: Plant, line: Line, machine: Machine) -> MachineContext:
        nodes = machine.nodes
        uses_meter = Signal.ENERGY in nodes or Signal.POWER not in nodes
        return cls(plant, line, machine, zone(plant.timezone), PlannedCalendar(plant), uses_meter,
                   Limits.of(plant, machine))

    @property
    def counter_modulus(self) -> int | None:
        bits = self.machine.counter_bits
        return None if bits is None else 2**bits


# --- Adding what happened to Totals (shared by minutes and whole windows) ------------


def add_time(totals: Totals, ctx: MachineContext, start: float, end: float, state: State,
             power_kw: float | None) -> None:
    """Time [start, end) in one effective state (and, without a meter, one power)."""
    if end <= start:
        return
    duration = end - start
    planned = ctx.calendar.seconds(start, end)
    totals.calendar_s += duration
    totals.planned_operation_s += planned
    key = str(state)
    totals.state_s[key] = totals.state_s.get(key, 0.0) + duration
    if state == State.RUNNING:
        totals.run_s += planned
        totals.unplanned_run_s += duration - planned
    elif state == State.UNKNOWN:
        totals.unknown_s += planned
    else:
        totals.stopped_s += planned
    if power_kw:
        add_power_energy(totals, ctx, start, end, power_kw, state == State.RUNNING)


def add_power_energy(totals: Totals, ctx: MachineContext, start: float, end: float, power_kw: float,
                     running: bool) -> None:
    """Constant power over [start, end), split by quarter hour and tariff period."""
    a = start
    while a < end:
        quarter = quarter_start(a)
        b = min(end, quarter + QUARTER_S)
        kwh = power_kw * (b - a) / 3600.0
        add_energy(totals, ctx, kwh, running, quarter, cost_of_interval(ctx.plant.tariff, ctx.tz, kwh, a, b))
        a = b


def add_meter_energy(totals: Totals, ctx: MachineContext, at: float, kwh: float, running: bool) -> None:
    add_energy(totals, ctx, kwh, running, quarter_start(at), kwh * price_at(ctx.plant.tariff, ctx.tz, at))


def add_energy(totals: Totals, ctx: MachineContext, kwh: float, running: bool, quarter: float, cost: float) -> None:
    totals.energy_kwh += kwh
    if not running:
        totals.energy_not_running_kwh += kwh
    totals.energy_cost += cost
    totals.co2_kg += co2_kg(kwh, ctx.plant.co2_kg_per_kwh)
    totals.quarter_kwh[quarter] = totals.quarter_kwh.get(quarter, 0.0) + kwh


def add_count(totals: Totals, ctx: MachineContext, at: float, good: int, reject: int) -> None:
    """Parts counted at ``at``: in OEE only inside planned operation time."""
    if ctx.calendar.is_planned(at):
        totals.good_count += good
        totals.reject_count += reject
        totals.total_count += good + reject
        totals.ideal_time_s += ctx.machine.ideal_cycle_time_s * (good + reject)
        totals.reject_ideal_time_s += ctx.machine.ideal_cycle_time_s * reject
    else:
        totals.unplanned_good_count += good
        totals.unplanned_reject_count += reject
