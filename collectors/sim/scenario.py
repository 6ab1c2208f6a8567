"""Scenario replay: a recorded (or written by hand) sequence of PLC values, played into
the simulator's OPC UA server with each value's own time as its SourceTimestamp, faster
than real time, so a whole shift plays in a minute and the dashboard shows it as it was.

File format (CSV, UTF-8)::

    # lines starting with '#' are comments
    time,line,machine,signal,value,status
    2025-03-03T07:00:00.000+08:00,BW1,ST70,state,6,
    2025-03-03T07:00:51.200+08:00,BW1,ST70,good,1,
    2025-03-03T09:12:05.000+08:00,BW1,ST70,energy_kwh,,BadSensorFailure

* ``time``: ISO 8601 with a UTC offset (``+08:00``, ``Z``); rows may come in any order,
  they are played in time order (rows with the same time in file order).
* ``line``, ``machine``: ids from the plant file; ``signal``: one of ``state``, ``good``,
  ``reject``, ``energy_kwh``, ``power_kw``, ``reason`` (a node configured for it).
* ``value``: the raw value as the PLC shows it: the raw state (a PackML number, or the
  text/number of the machine's state map), cumulative counters as integers, kWh and kW
  as decimals, reason codes as integers. Empty only with a bad status.
* ``status`` (optional column, empty = Good): an OPC UA status code name.

``generate_scenario`` writes such a file from the simulator's machine model.

Time: ``replay_scenario`` plays the rows with their own times (``shift="none"``) or moved
(``shift_rows``): ``"exact"`` so that the scenario ends when the replay ends (at speed 1
it plays live), ``"days"`` by whole days of the plant's calendar, the latest such move
that ends no later than the replay (local clock times, so shifts, breaks and tariff
periods, stay as they are). Either way no row is played before its time.

Gaps: OPC UA reports changes only, and the collector's heartbeats come every
``plant.heartbeat_s`` of wall time, i.e. rarely in the time of a scenario played faster
than real time; so a machine's rows must be at most ``plant.gap_timeout_s`` apart, else
the gaps are unknown time (``replay_scenario`` warns). The generator writes the meter
every ``gap_timeout_s / 2``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from asyncua import ua

from collectors.sim.machine_model import MachineModel, calendar_segments
from collectors.sim.simulator import PlantSimulator
from config.settings import Settings
from domain.model import Signal
from domain.plant import Plant

log = logging.getLogger(__name__)

COLUMNS = ("time", "line", "machine", "signal", "value", "status")
_INT_SIGNALS = {Signal.GOOD, Signal.REJECT, Signal.REASON}
_FLOAT_SIGNALS = {Signal.ENERGY, Signal.POWER}
_PLC_SIGNALS = _INT_SIGNALS | _FLOAT_SIGNALS | {Signal.STATE}

Shift = Literal["exact", "days", "none"]
SHIFTS: tuple[Shift, ...] = ("exact", "days", "none")


class ScenarioError(ValueError):
    """A scenario file that cannot be played; the message names the file and row."""


@dataclass(frozen=True, slots=True)
class ScenarioRow:
    time: float  # epoch seconds
    line: str
    machine: str
    signal: Signal
    value: int | float | str | None
    status: str = "Good"


def _parse_value(signal: Signal, text: str) -> int | float | str | None:
    text = text.strip()
    if not text:
        return None
    if signal in _INT_SIGNALS:
        return int(text)
    if signal in _FLOAT_SIGNALS:
        return float(text)
    return int(text) if text.lstrip("-").isdigit() else text


def _parse_row(record: dict[str, str], plant: Plant | None) -> ScenarioRow:
    stamp = datetime.fromisoformat(record["time"].strip().replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        raise ValueError(f"time {record['time']!r} has no UTC offset")
    signal = Signal(record["signal"].strip())
    if signal not in _PLC_SIGNALS:
        raise ValueError(f"signal {signal} is written by the collector, not by a PLC")
    status = (record.get("status") or "").strip() or "Good"
    if not hasattr(ua.StatusCodes, status):
        raise ValueError(f"unknown OPC UA status {status!r}")
    value = _parse_value(signal, record["value"] or "")
    if value is None and status.startswith("Good"):
        raise ValueError("empty value with a Good status")
    row = ScenarioRow(stamp.timestamp(), record["line"].strip(), record["machine"].strip(), signal, value, status)
    if plant is not None:
        _check_against(plant, row)
    return row


def _check_against(plant: Plant, row: ScenarioRow) -> None:
    line = plant.line(row.line)
    machine = line.machine(row.machine) if line else None
    if machine is None:
        raise ValueError(f"no machine {row.line}/{row.machine} in the plant")
    if row.signal not in machine.nodes:
        raise ValueError(f"{row.line}/{row.machine} has no {row.signal} node")


def parse_scenario(text: str, plant: Plant | None = None, source: str = "<scenario>") -> list[ScenarioRow]:
    """Rows in play order. Raises ScenarioError naming the row of the first problem."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    missing = [c for c in COLUMNS[:5] if c not in (reader.fieldnames or [])]
    if missing:
        raise ScenarioError(f"{source}: missing column(s) {', '.join(missing)} (header: {','.join(COLUMNS)})")
    rows = []
    for number, record in enumerate(reader, start=2):
        try:
            rows.append(_parse_row(record, plant))
        except (ValueError, KeyError, AttributeError) as exc:
            raise ScenarioError(f"{source}: data row {number - 1}: {exc}") from exc
    return sorted(rows, key=lambda r: r.time)


def load_scenario(path: Path | str, plant: Plant | None = None) -> list[ScenarioRow]:
    return parse_scenario(Path(path).read_text(encoding="utf-8"), plant, str(path))


def format_scenario(rows: Sequence[ScenarioRow], tz: ZoneInfo) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        stamp = datetime.fromtimestamp(r.time, tz).isoformat(timespec="milliseconds")
        value = "" if r.value is None else r.value
        writer.writerow([stamp, r.line, r.machine, str(r.signal), value, "" if r.status == "Good" else r.status])
    return out.getvalue()


def generate_scenario(
    plant: Plant, line: str, machine: str, start: float, end: float, *, seed: int = 1,
    meter_period_s: float | None = None,
) -> list[ScenarioRow]:
    """One machine's values over [start, end) from the simulator's machine model.

    The meter (kWh and kW) is written every ``meter_period_s`` (default
    ``plant.gap_timeout_s / 2``, as a real meter changes all the time): a scenario played
    faster than real time has no heartbeats between its rows (see the module docstring).
    """
    line_cfg = plant.line(line)
    machine_cfg = line_cfg.machine(machine) if line_cfg else None
    if machine_cfg is None:
        raise ValueError(f"no machine {line}/{machine} in the plant")
    if meter_period_s is None:
        meter_period_s = plant.gap_timeout_s / 2
    tz = ZoneInfo(plant.timezone)
    model = MachineModel(plant, line, machine_cfg, start, seed, meter_period_s=meter_period_s)
    model.start(calendar_segments(plant, tz, start, start + 1e-3)[0][2])
    writes = model.snapshot() + model.advance(calendar_segments(plant, tz, start, end))
    return [ScenarioRow(round(w.ts, 3), line, machine, w.signal, w.value) for w in writes]


def _local_days(ts: float, tz: ZoneInfo, days: int) -> float:
    """``ts`` moved by whole days of the calendar of ``tz`` (the same local clock time)."""
    return round((datetime.fromtimestamp(ts, tz) + timedelta(days=days)).timestamp(), 3)


def shift_rows(rows: Sequence[ScenarioRow], tz: ZoneInfo, *, speed: float, starts_at: float,
               shift: Shift = "exact") -> list[ScenarioRow]:
    """The rows (in play order) moved in time for a replay at ``speed`` that starts at wall
    time ``starts_at`` (or later): row i is played at ``starts_at + (time_i - time_0) / speed``
    and none is played before its (moved) time.

    * ``"exact"``: moved by as much as makes the last row's time the wall time at which it
      is played: the scenario ends when the replay ends (at speed 1 it plays live from
      ``starts_at``; faster, into the recent past; slower than 1, it starts at
      ``starts_at``). The move is whole milliseconds.
    * ``"days"``: moved by whole days of the calendar of ``tz`` (each row keeps its local
      clock time, so shifts, breaks and tariff periods stay as they are), the latest such
      move (forwards or backwards) that plays no row before its time.
    * ``"none"``: as they are.
    """
    if shift == "none" or not rows:
        return list(rows)
    first, last = rows[0].time, rows[-1].time
    # the latest move that plays no row before its time (binding: the last row at speed >= 1)
    limit = min(starts_at - first, starts_at + (last - first) / speed - last)
    if shift == "exact":
        delta = math.floor(limit * 1000) / 1000
        return [replace(r, time=round(r.time + delta, 3)) for r in rows]
    if shift != "days":
        raise ValueError(f"shift must be one of {', '.join(SHIFTS)}, not {shift!r}")
    days = math.floor(limit / 86400) + 1  # one more than the exact move: daylight saving may allow it
    while True:
        moved = [replace(r, time=_local_days(r.time, tz, days)) for r in rows]
        if all(m.time <= starts_at + (r.time - first) / speed for m, r in zip(moved, rows, strict=True)):
            return moved
        days -= 1


def longest_gaps(rows: Sequence[ScenarioRow]) -> dict[tuple[str, str], float]:
    """Per (line, machine): the longest time between two of its rows that reach a collector
    (OPC UA reports changes: a row with its node's previous value and status does not)."""
    last: dict[tuple[str, str], float] = {}
    gaps: dict[tuple[str, str], float] = {}
    shown: dict[tuple[str, str, Signal], tuple[object, str]] = {}
    for row in rows:
        node = (row.line, row.machine, row.signal)
        if shown.get(node) == (row.value, row.status):
            continue
        shown[node] = (row.value, row.status)
        key = (row.line, row.machine)
        gaps[key] = max(gaps.get(key, 0.0), row.time - last.get(key, row.time))
        last[key] = row.time
    return gaps


def _warn_about_gaps(plant: Plant, rows: Sequence[ScenarioRow], speed: float, path: Path | str) -> None:
    if speed <= 1:
        return  # the collector's heartbeats cover the gaps
    long = {key: gap for key, gap in longest_gaps(rows).items() if gap > plant.gap_timeout_s}
    if long:
        machines = ", ".join(f"{line}/{machine} ({gap:.0f} s)" for (line, machine), gap in sorted(long.items()))
        log.warning(
            "%s: rows of %s are further apart than gap_timeout_s (%g s): played at %gx, the collector's "
            "heartbeats (every %g s of wall time) cannot fill such gaps in the scenario's time, so they "
            "show as unknown time; add readings (e.g. the meter every %g s)",
            path, machines, plant.gap_timeout_s, speed, plant.heartbeat_s, plant.gap_timeout_s / 2)


async def replay(
    sim: PlantSimulator, rows: Sequence[ScenarioRow], speed: float = 60.0, stop: asyncio.Event | None = None
) -> int:
    """Write every row into ``sim`` at ``speed`` x its pace, its time as SourceTimestamp.

    Returns how many rows were written (fewer if ``stop`` was set first).
    """
    if not rows:
        return 0
    t0, wall0 = rows[0].time, time.monotonic()
    written = 0
    for row in rows:
        delay = wall0 + (row.time - t0) / speed - time.monotonic()
        if delay > 0.001:
            await asyncio.sleep(delay)
        if stop is not None and stop.is_set():
            break
        await sim.write(row.line, row.machine, row.signal, row.value, status=row.status, source_ts=row.time)
        written += 1
    return written


async def replay_scenario(
    settings: Settings,
    path: Path | str,
    speed: float = 60.0,
    stop: asyncio.Event | None = None,
    *,
    url: str | None = None,
    lead_in_s: float = 2.0,
    start: asyncio.Event | None = None,
    shift: Shift = "none",
    linger_s: float | None = None,
) -> int:
    """Serve the plant's nodes (no simulated production) and play a scenario file into them.

    Binds to ``url`` or the first endpoint's URL. Playing starts ``lead_in_s`` after the
    server (time for collectors to subscribe), or when ``start`` is set if given. Without
    ``stop`` it returns ``linger_s`` after the scenario has been played (default: two of
    the endpoints' longest publishing interval, so that subscribers get the last values);
    with ``stop`` it keeps serving the last values until ``stop`` is set. Returns the
    number of rows written.

    ``shift``: the rows' times as in the file (``"none"``) or moved (``shift_rows``, as if
    playing started when the server starts: it starts later, so no row is early).
    """
    plant = settings.plant
    rows = load_scenario(path, plant)
    _warn_about_gaps(plant, rows, speed, path)
    if rows and shift != "none":
        tz = ZoneInfo(plant.timezone)
        moved = shift_rows(rows, tz, speed=speed, starts_at=time.time(), shift=shift)
        log.info("%s: moved by %s to %s - %s", path, _describe(moved[0].time - rows[0].time),
                 datetime.fromtimestamp(moved[0].time, tz).isoformat(timespec="seconds"),
                 datetime.fromtimestamp(moved[-1].time, tz).isoformat(timespec="seconds"))
        rows = moved
    first = rows[0].time if rows else None
    # Nodes the scenario has not written yet have no value, as on a server just started.
    sim = PlantSimulator(plant, url=url, autorun=False, start=first, initial_status="BadWaitingForInitialData")
    async with sim:
        await (start.wait() if start is not None else asyncio.sleep(lead_in_s))
        log.info("replaying %d rows of %s at %gx", len(rows), path, speed)
        written = await replay(sim, rows, speed, stop)
        log.info("scenario %s played (%d rows)", path, written)
        if stop is not None:
            await stop.wait()
        else:
            if linger_s is None:
                linger_s = 2 * max(e.publishing_interval_ms for e in plant.endpoints.values()) / 1000
            await asyncio.sleep(linger_s)
    return written


def _describe(seconds: float) -> str:
    days, rest = divmod(abs(seconds), 86400)
    sign = "-" if seconds < 0 else "+"
    return f"{sign}{int(days)} d {rest / 3600:.3f} h" if days else f"{sign}{rest / 3600:.3f} h"
