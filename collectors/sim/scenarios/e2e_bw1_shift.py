"""Writes ``e2e_bw1_shift.csv``: the scenario of ``tests/test_e2e_replay.py``.

    python collectors/sim/scenarios/e2e_bw1_shift.py > collectors/sim/scenarios/e2e_bw1_shift.csv

Two machines of body-welding line BW1 (ST60 sealer, ST70 the line's output station),
09:00-10:05 of shift A on 2026-11-23 (Asia/Shanghai), across the 09:30-09:45 tea break.
The machines below are the whole story; the test's expected figures are worked out by
hand from the same facts (and from the CSV), never from this script or the engine.

How the PLC values are laid out, so that every value can be checked by eye:

* the kWh meter is read every minute at :00 (also the keep-alive: the plant file of the
  test has ``gap_timeout_s: 90``), its value the integral of ``running_kw`` while
  running and ``stopped_kw`` while stopped (a half minute of each is visible as such);
* a part is counted every ``cycle_s`` of running time, at :45 (ST70) or :15 (ST60): the
  good counter or, for the parts listed in ``rejects``, the reject counter goes up by 1;
* states change at :30 (PackML: 6 Execute, 4 Idle, 5 Suspended, 11 Held), with the
  reason code (if any) at the same instant and 0 again when the stop ends.

So no two values of one machine share a second unless they belong together.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

DAY = "2026-11-23"
OFFSET = "+08:00"
START, END = "09:00:00", "10:05:00"  # first and last reading
RUNNING = 6
HEADER = """\
# BW1 (ST60 sealer, ST70 output station), 2026-11-23 09:00-10:05 Asia/Shanghai, shift A
# with the 09:30-09:45 tea break: a micro-stop, a weld fault (reason 2) with a PLC restart
# (counters to 0), a changeover (reason 20), a starved stop, rejects, a BadSensorFailure
# kWh reading. Written by collectors/sim/scenarios/e2e_bw1_shift.py (the machines' story is
# there); played by tests/test_e2e_replay.py, which works out the expected KPIs by hand.
"""


@dataclass(frozen=True)
class Stop:
    start: str
    end: str
    state: int  # PackML
    reason: int = 0


@dataclass(frozen=True)
class MachineSpec:
    id: str
    cycle_s: int
    first_part: str  # the first part after START (sets the phase of the cycle)
    running_kw: int
    stopped_kw: int
    good0: int
    reject0: int
    meter0: Fraction
    stops: tuple[Stop, ...]
    rejects: frozenset[str] = frozenset()
    counter_reset: str | None = None  # the PLC restarts: both counters read 0
    bad_meter: str | None = None  # the meter reading at that minute is BadSensorFailure


MACHINES = (
    MachineSpec(
        "ST60", cycle_s=60, first_part="09:00:15", running_kw=12, stopped_kw=3,
        good0=18250, reject0=96, meter0=Fraction(35210),
        stops=(
            Stop("09:10:30", "09:13:30", 5),  # starved (Suspended), no reason: 180 s
            Stop("09:30:30", "09:44:30", 4),  # idle on the tea break (ran 30 s into it, restarted 30 s early)
        ),
        rejects=frozenset({"09:20:15"}),
        bad_meter="09:40:00",
    ),
    MachineSpec(
        "ST70", cycle_s=60, first_part="09:00:45", running_kw=6, stopped_kw=3,
        good0=5000, reject0=40, meter0=Fraction(1200),
        stops=(
            Stop("09:06:30", "09:07:30", 4),  # 60 s, no reason: a micro-stop
            Stop("09:20:30", "09:26:30", 11, reason=2),  # weld fault (Held), 360 s
            Stop("09:29:30", "09:46:30", 4),  # stops 30 s before the tea break, restarts 90 s late
            Stop("09:50:30", "09:54:30", 4, reason=20),  # model changeover, 240 s
        ),
        rejects=frozenset({"09:03:45", "09:15:45", "09:57:45"}),
        counter_reset="09:24:00",  # PLC restart during the fault
    ),
)


def at(clock: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{clock}{OFFSET}")


def stamp(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def kwh(meter: Fraction) -> str:
    assert (meter * 1000).denominator == 1, "every reading is a whole number of Wh"
    return f"{float(meter):.3f}"


def state_at(spec: MachineSpec, t: datetime) -> int:
    for stop in spec.stops:
        if at(stop.start) <= t < at(stop.end):
            return stop.state
    return RUNNING


def rows_of(spec: MachineSpec) -> list[tuple[datetime, str, object, str]]:
    """(time, signal, value, status) in time order."""
    start, end = at(START), at(END)
    rows: list[tuple[datetime, str, object, str]] = [
        (start, "state", RUNNING, ""), (start, "reason", 0, ""), (start, "good", spec.good0, ""),
        (start, "reject", spec.reject0, ""), (start, "energy_kwh", kwh(spec.meter0), ""),
    ]
    for stop in spec.stops:
        rows.append((at(stop.start), "state", stop.state, ""))
        if stop.reason:
            rows.append((at(stop.start), "reason", stop.reason, ""))
        rows.append((at(stop.end), "state", RUNNING, ""))
        if stop.reason:
            rows.append((at(stop.end), "reason", 0, ""))
    good, reject, meter = spec.good0, spec.reject0, spec.meter0
    progress = spec.cycle_s - int((at(spec.first_part) - start).total_seconds())  # running s into the part
    t = start
    while t < end:  # second by second: power, parts, meter readings
        running = state_at(spec, t) == RUNNING
        meter += Fraction(spec.running_kw if running else spec.stopped_kw, 3600)
        progress += running
        t += timedelta(seconds=1)
        if spec.counter_reset and t == at(spec.counter_reset):
            good, reject = 0, 0
            rows += [(t, "good", good, ""), (t, "reject", reject, "")]
        if progress == spec.cycle_s:
            progress = 0
            if stamp(t)[11:19] in spec.rejects:
                reject += 1
                rows.append((t, "reject", reject, ""))
            else:
                good += 1
                rows.append((t, "good", good, ""))
        if t.second == 0:
            bad = spec.bad_meter is not None and t == at(spec.bad_meter)
            rows.append((t, "energy_kwh", "" if bad else kwh(meter), "BadSensorFailure" if bad else ""))
    order = {"state": 0, "reason": 1, "good": 2, "reject": 3, "energy_kwh": 4}
    return sorted(rows, key=lambda r: (r[0], order[r[1]]))


def main() -> None:
    sys.stdout.write(HEADER)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["time", "line", "machine", "signal", "value", "status"])
    merged = [(t, spec.id, signal, value, status) for spec in MACHINES for t, signal, value, status in rows_of(spec)]
    for t, machine, signal, value, status in sorted(merged, key=lambda r: (r[0], r[1])):
        writer.writerow([stamp(t), "BW1", machine, signal, value, status])


if __name__ == "__main__":
    main()
