"""How a simulated machine behaves: a seeded state machine over simulated time.

Pure: time is passed in, randomness comes from a ``random.Random(seed)``; the simulator
server and the scenario generator drive it. ``advance`` returns the writes a PLC would
make, each with its own timestamp.

Raw values (for the built-in ``packml`` state map; other maps get a raw value that maps
to the wanted canonical state, see ``raw_state_for``):

=============  ======================  ==============  ================================
phase          PackML StateCurrent     canonical       reason code
=============  ======================  ==============  ================================
running        6 Execute               running         0
micro stop     11 Held                 fault           0 (short, no reason: small stop)
fault          11 Held                 fault           an equipment_failure reason
aborted        9 Aborted               fault           an equipment_failure reason
starved        5 Suspended             starved         first starved_blocked reason (30)
blocked        5 Suspended             starved         last starved_blocked reason (31)
changeover     2 Stopped               idle            reason 20 (else a setup_adjustment one)
maintenance    2 Stopped               idle            a planned reason (40)
break          4 Idle                  idle            0 (the calendar plans it)
off shift      2 Stopped               idle            0 (not planned time)
=============  ======================  ==============  ================================

Counters advance one part per cycle (ideal cycle time x 1.02-1.10, x1.25-1.40 on a slow
run), a part is a reject with ``machine.reject_rate``; they wrap at ``counter_bits``.
The energy meter integrates ``power_running_kw`` while running and ``power_idle_kw``
otherwise (each with a little noise) and wraps at ``meter_rollover_kwh``.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum
from zoneinfo import ZoneInfo

from domain.calendar import planned_busy_intervals, shift_at
from domain.model import Signal, State
from domain.plant import PACKML, LossCategory, Machine, Plant, StateMap

METER_PERIOD_S = 10.0  # simulated seconds between energy/power writes (at least)


class Calendar(Enum):
    BUSY = "busy"
    BREAK = "break"
    OFF = "off"


class Phase(Enum):
    RUNNING = "running"
    MICRO_STOP = "micro_stop"
    FAULT = "fault"
    ABORTED = "aborted"
    STARVED = "starved"
    BLOCKED = "blocked"
    CHANGEOVER = "changeover"
    MAINTENANCE = "maintenance"
    BREAK = "break"
    OFF_SHIFT = "off_shift"


PACKML_RAW = {
    Phase.RUNNING: 6,
    Phase.MICRO_STOP: 11,
    Phase.FAULT: 11,
    Phase.ABORTED: 9,
    Phase.STARVED: 5,
    Phase.BLOCKED: 5,
    Phase.CHANGEOVER: 2,
    Phase.MAINTENANCE: 2,
    Phase.BREAK: 4,
    Phase.OFF_SHIFT: 2,
}

WANTED_STATE = {
    Phase.RUNNING: (State.RUNNING,),
    Phase.MICRO_STOP: (State.FAULT, State.IDLE),
    Phase.FAULT: (State.FAULT,),
    Phase.ABORTED: (State.FAULT,),
    Phase.STARVED: (State.STARVED, State.IDLE),
    Phase.BLOCKED: (State.BLOCKED, State.STARVED, State.IDLE),
    Phase.CHANGEOVER: (State.CHANGEOVER, State.IDLE),
    Phase.MAINTENANCE: (State.PLANNED_STOP, State.IDLE),
    Phase.BREAK: (State.IDLE, State.PLANNED_STOP),
    Phase.OFF_SHIFT: (State.IDLE, State.PLANNED_STOP),
}

# What ends a run: (phase, weight).
STOP_WEIGHTS = (
    (Phase.MICRO_STOP, 0.40),
    (Phase.FAULT, 0.20),
    (Phase.ABORTED, 0.03),
    (Phase.STARVED, 0.15),
    (Phase.BLOCKED, 0.12),
    (Phase.CHANGEOVER, 0.07),
    (Phase.MAINTENANCE, 0.03),
)
_STOP_PHASES = tuple(phase for phase, _ in STOP_WEIGHTS)
_STOP_CHANCES = tuple(weight for _, weight in STOP_WEIGHTS)


def raw_state_for(state_map: StateMap, phase: Phase) -> int | str:
    """The raw value a PLC would publish for ``phase`` under ``state_map``."""
    if state_map == PACKML:
        return PACKML_RAW[phase]
    for wanted in WANTED_STATE[phase]:
        for raw, state in state_map.values.items():
            if state == wanted:
                return int(raw) if raw.lstrip("-").isdigit() else raw
    return next(iter(state_map.values))


@dataclass(frozen=True, slots=True)
class Write:
    """One value a PLC writes: signal, value, time (epoch seconds)."""

    signal: Signal
    value: int | float | str
    ts: float


# The demo plant's lines and the reason codes their machines send (config/demo_plant.yaml
# groups the codes the same way). Shared codes (changeover 20, waiting 30/31, planned 40/41)
# go everywhere; a line not listed here (another plant's scenario) uses every code.
DEMO_LINE_REASONS: dict[str, frozenset[int]] = {
    "BW1": frozenset({1, 2, 3, 4, 5}),  # body welding: tip dress, weld, robot, fixture, light curtain
    "CM1": frozenset({6, 7, 8}),  # machining: tool, spindle/coolant, gauge
    "BR1": frozenset({9, 10, 11, 12}),  # rolling mill: cobble, roll change, hydraulics, shear blade
}


def line_reasons(line_id: str, codes: tuple[int, ...]) -> tuple[int, ...]:
    """The codes of one category a machine of ``line_id`` may send (all when none is the line's)."""
    own = DEMO_LINE_REASONS.get(line_id)
    if own is None:
        return codes
    return tuple(c for c in codes if c in own or c >= 20) or codes


@dataclass(frozen=True, slots=True)
class ReasonCodes:
    failures: tuple[int, ...]
    setups: tuple[int, ...]
    planned: tuple[int, ...]
    starved: int
    blocked: int

    @classmethod
    def of(cls, plant: Plant) -> ReasonCodes:
        def codes(category: LossCategory) -> tuple[int, ...]:
            return tuple(sorted(code for code, r in plant.reasons.items() if r.category == category))

        waiting = codes(LossCategory.STARVED_BLOCKED)
        planned = tuple(sorted(code for code, r in plant.reasons.items() if r.planned))
        return cls(
            failures=codes(LossCategory.EQUIPMENT_FAILURE) or (0,),
            setups=codes(LossCategory.SETUP_ADJUSTMENT) or (0,),
            planned=planned or (0,),
            starved=waiting[0] if waiting else 0,
            blocked=waiting[-1] if waiting else 0,
        )


def calendar_segments(plant: Plant, tz: ZoneInfo, start: float, end: float) -> list[tuple[float, float, Calendar]]:
    """[start, end) cut at shift and break boundaries, each piece busy, break or off shift."""
    out: list[tuple[float, float, Calendar]] = []
    cursor = start
    for s, e in planned_busy_intervals(plant.shifts, tz, start, end):
        if s > cursor:
            out.append((cursor, s, _unplanned_kind(plant, tz, (cursor + s) / 2)))
        out.append((s, e, Calendar.BUSY))
        cursor = e
    if cursor < end:
        out.append((cursor, end, _unplanned_kind(plant, tz, (cursor + end) / 2)))
    return out


def _unplanned_kind(plant: Plant, tz: ZoneInfo, at: float) -> Calendar:
    return Calendar.BREAK if shift_at(plant.shifts, tz, at) is not None else Calendar.OFF


def start_models(
    plant: Plant, start: float, seed: int, meter_period_s: float = METER_PERIOD_S,
    endpoints: Collection[str] | None = None,
) -> dict[tuple[str, str], MachineModel]:
    """Every machine's model (or those on ``endpoints``), started at ``start``: the
    simulator and the demo history start them this one way, so a seed gives one plant."""
    tz = ZoneInfo(plant.timezone)
    kind = calendar_segments(plant, tz, start, start + 1e-3)[0][2]
    models: dict[tuple[str, str], MachineModel] = {}
    for line in plant.lines:
        for machine in line.machines:
            if endpoints is None or machine.endpoint in endpoints:
                model = MachineModel(plant, line.id, machine, start, seed, meter_period_s=meter_period_s)
                model.start(kind)
                models[(line.id, machine.id)] = model
    return models


class MachineModel:
    """One machine's phases, counters and meter over simulated time."""

    def __init__(
        self, plant: Plant, line_id: str, machine: Machine, start: float, seed: int,
        meter_period_s: float = METER_PERIOD_S,
    ) -> None:
        self.line_id = line_id
        self.machine = machine
        self.rng = random.Random(f"{seed}:{line_id}:{machine.id}")
        self.state_map = plant.state_map_for(machine)
        self.reasons = ReasonCodes.of(plant)
        # Each machine has its own few failure and setup reasons, as real machines do,
        # and only those of its kind of line (a welding robot reports no cobble).
        failures = line_reasons(line_id, self.reasons.failures)
        self.failure_codes = tuple(self.rng.sample(failures, min(3, len(failures))))
        setups = line_reasons(line_id, self.reasons.setups)
        self.setup_codes = (20,) if 20 in setups else tuple(self.rng.sample(setups, min(2, len(setups))))
        self.counter_modulus: int = 1 << (machine.counter_bits or 32)
        self.t = start
        self.good_total = 0  # parts ever made (not wrapped)
        self.reject_total = 0
        self.energy_total_kwh = 0.0
        self.phase = Phase.OFF_SHIFT
        self.reason = 0
        self.power_kw = machine.power_idle_kw
        self.phase_end = float("inf")
        self.next_part = float("inf")
        self.next_meter = start
        self.meter_period_s = meter_period_s
        self._cycle_factor = 1.0
        self._level = 1.0
        self._writes: list[Write] = []

    # --- values as the PLC shows them -------------------------------------------------

    @property
    def good(self) -> int:
        return self.good_total % self.counter_modulus

    @property
    def reject(self) -> int:
        return self.reject_total % self.counter_modulus

    @property
    def energy_kwh(self) -> float:
        rollover = self.machine.meter_rollover_kwh
        return self.energy_total_kwh % rollover if rollover else self.energy_total_kwh

    @property
    def raw_state(self) -> int | str:
        return raw_state_for(self.state_map, self.phase)

    def snapshot(self) -> list[Write]:
        """Every signal's current value at the current time (initial values of the nodes)."""
        values: dict[Signal, int | float | str] = {
            Signal.STATE: self.raw_state,
            Signal.GOOD: self.good,
            Signal.REJECT: self.reject,
            Signal.ENERGY: round(self.energy_kwh, 4),
            Signal.POWER: round(self.power_kw, 3),
            Signal.REASON: self.reason,
        }
        return [Write(s, v, self.t) for s, v in values.items() if s in self.machine.nodes]

    # --- driving ----------------------------------------------------------------------

    def start(self, kind: Calendar) -> list[Write]:
        """Enter the first phase at the start time (running staggered if planned)."""
        self._enter(self._calendar_phase(kind) if kind is not Calendar.BUSY else Phase.RUNNING)
        if self.phase is Phase.RUNNING:
            self.phase_end = self.t + self.rng.uniform(0.1, 1.0) * self.rng.expovariate(1 / 1800)
        return self._take()

    def advance(self, segments: Sequence[tuple[float, float, Calendar]]) -> list[Write]:
        """Run through calendar segments (consecutive, from the current time on)."""
        for _, end, kind in segments:
            if end <= self.t:
                continue
            self._follow_calendar(kind)
            self._run_until(end)
        return self._take()

    def _take(self) -> list[Write]:
        out, self._writes = self._writes, []
        return out

    def _follow_calendar(self, kind: Calendar) -> None:
        calendar_phase = self.phase in (Phase.BREAK, Phase.OFF_SHIFT)
        if kind is Calendar.BUSY and calendar_phase:
            self._enter(Phase.RUNNING)
        elif kind is not Calendar.BUSY and self.phase is not self._calendar_phase(kind):
            self._enter(self._calendar_phase(kind))

    @staticmethod
    def _calendar_phase(kind: Calendar) -> Phase:
        return Phase.BREAK if kind is Calendar.BREAK else Phase.OFF_SHIFT

    def _run_until(self, end: float) -> None:
        while True:
            t_next = min(self.phase_end, self.next_part, self.next_meter)
            if t_next > end:
                self._integrate(end)
                return
            self._integrate(t_next)
            if t_next == self.next_part:
                self._make_part()
            elif t_next == self.phase_end:
                self._enter(self._next_phase())
            else:
                self._write_meter()

    def _integrate(self, t: float) -> None:
        self.energy_total_kwh += self.power_kw * (t - self.t) / 3600.0
        self.t = t

    def _make_part(self) -> None:
        if self.rng.random() < self.machine.reject_rate:
            self.reject_total += 1
            self._emit(Signal.REJECT, self.reject)
        else:
            self.good_total += 1
            self._emit(Signal.GOOD, self.good)
        self.next_part = self.t + self._cycle()

    def _cycle(self) -> float:
        return self.machine.ideal_cycle_time_s * self._cycle_factor * self.rng.uniform(1.0, 1.04)

    def _next_phase(self) -> Phase:
        if self.phase is not Phase.RUNNING:
            return Phase.RUNNING
        return self.rng.choices(_STOP_PHASES, _STOP_CHANCES)[0]

    def _enter(self, phase: Phase) -> None:
        self.phase = phase
        self.phase_end = self.t + self._duration(phase)
        self.next_part = float("inf")
        reason = self._reason_for(phase)
        if phase is Phase.RUNNING:
            slow_run = self.rng.random() < 0.1
            self._cycle_factor = self.rng.uniform(1.25, 1.40) if slow_run else self.rng.uniform(1.02, 1.06)
            self.next_part = self.t + self._cycle()
            self._level = self.rng.uniform(0.92, 1.04)
            self._emit(Signal.STATE, self.raw_state)
            self._set_reason(reason)
        else:
            self._level = self.rng.uniform(0.95, 1.05)
            self._set_reason(reason)
            self._emit(Signal.STATE, self.raw_state)
        self._write_meter()

    def _set_reason(self, reason: int) -> None:
        if reason != self.reason:
            self.reason = reason
            self._emit(Signal.REASON, reason)

    def _reason_for(self, phase: Phase) -> int:
        r = self.reasons
        if phase in (Phase.FAULT, Phase.ABORTED):
            return self.rng.choice(self.failure_codes)
        if phase is Phase.CHANGEOVER:
            return self.rng.choice(self.setup_codes)
        if phase is Phase.MAINTENANCE:
            return r.planned[0]
        if phase is Phase.STARVED:
            return r.starved
        if phase is Phase.BLOCKED:
            return r.blocked
        return 0

    def _duration(self, phase: Phase) -> float:
        rng = self.rng
        minutes = {
            Phase.RUNNING: lambda: max(2.0, rng.expovariate(1 / 30)),
            Phase.MICRO_STOP: lambda: rng.uniform(10, 110) / 60,
            Phase.FAULT: lambda: 3 + rng.expovariate(1 / 8),
            Phase.ABORTED: lambda: 10 + rng.expovariate(1 / 20),
            Phase.STARVED: lambda: 1 + rng.expovariate(1 / 3),
            Phase.BLOCKED: lambda: 0.5 + rng.expovariate(1 / 2),
            Phase.CHANGEOVER: lambda: rng.uniform(12, 30),
            Phase.MAINTENANCE: lambda: rng.uniform(20, 45),
        }
        if phase in (Phase.BREAK, Phase.OFF_SHIFT):
            return float("inf")  # the calendar ends these
        return minutes[phase]() * 60.0

    def _write_meter(self) -> None:
        base = self.machine.power_running_kw if self.phase is Phase.RUNNING else self.machine.power_idle_kw
        self.power_kw = base * self._level * self.rng.uniform(0.98, 1.02)
        self._emit(Signal.POWER, round(self.power_kw, 3))
        self._emit(Signal.ENERGY, round(self.energy_kwh, 4))
        self.next_meter = self.t + self.meter_period_s

    def _emit(self, signal: Signal, value: int | float | str) -> None:
        if signal in self.machine.nodes:
            self._writes.append(Write(signal, value, self.t))
