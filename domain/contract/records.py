"""What the rollup worker stores under its keys (``domain.contract.keys``): rollup texts,
closed hours packed whole, and the members of the stops, states and flags sets. Written
by ``store.rollup``, read by ``store.reader``.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping

from domain.contract.keys import as_text
from domain.plausibility import Flag

# Rollup text: ``<scalars>;<states>;<quarters>``, empty trailing sections omitted.
# Scalars are the ``ROLLUP_FIELDS`` of ``domain.totals.Totals`` in that order, comma
# separated, zero written as empty, 7 significant digits. States: ``<code><seconds>``
# comma separated (``STATE_CODES``; longer names stand for themselves; the seconds are
# left out when the state lasted the whole ``calendar_s``). Quarters:
# ``<offset s from the rollup start>:<kWh>``; omitted when all energy falls in the
# quarter containing the start, ``-`` when there is energy but no quarter breakdown.

ROLLUP_FIELDS = (  # append only once data is stored: rollups are positional
    "calendar_s", "planned_operation_s", "run_s", "stopped_s", "unknown_s", "unplanned_run_s",
    "total_count", "good_count", "reject_count", "ideal_time_s", "reject_ideal_time_s",
    "energy_kwh", "energy_not_running_kwh", "energy_cost", "co2_kg",
    "unplanned_good_count", "unplanned_reject_count",
    # classified from whole stops for a window (domain.totals.CLASSIFIED_FIELDS): 0 in
    # raw rollups, so last, where trailing empty values are left out
    "planned_down_s", "planned_busy_s", "micro_stop_s", "down_s", "failure_s", "setup_s",
    "starved_blocked_s", "unexplained_s", "stops",
)
ROLLUP_INT_FIELDS = frozenset(
    {"total_count", "good_count", "reject_count", "stops", "unplanned_good_count", "unplanned_reject_count"}
)
STATE_CODES = {
    "running": "r", "idle": "i", "starved": "s", "blocked": "b", "fault": "f",
    "changeover": "c", "planned_stop": "p", "unknown": "u",
}
_STATE_NAMES = {code: name for name, code in STATE_CODES.items()}
QUARTER_S = 900
_ENERGY_INDEX = ROLLUP_FIELDS.index("energy_kwh")


def join_minutes(texts: Mapping[int, str]) -> bytes:
    """The minute rollups of an hour as one text (line i = minute i), zlib-compressed
    (a closed hour is written once and read whole: a quarter of the bytes)."""
    return pack("\n".join(texts.get(i, "") for i in range(60)).rstrip("\n"))


def split_minutes(raw: bytes | str | None) -> dict[int, str]:
    """The minute texts of a closed hour (compressed, or plain text as first stored)."""
    return {i: text for i, text in enumerate(unpack(raw).split("\n")) if text} if raw else {}


def pack(text: str) -> bytes:
    """zlib-compressed UTF-8: for values written once and read whole (closed hours, the
    worker's checkpoints)."""
    return zlib.compress(text.encode(), 6)


def unpack(raw: bytes | str | None) -> str:
    """The text of ``pack``; plain text (no zlib header, which starts with ``x``) as is."""
    if not raw:
        return ""
    if isinstance(raw, bytes) and raw[:1] == b"x":
        return zlib.decompress(raw).decode()
    return as_text(raw)


def encode_flag_member(flag: Flag) -> str:
    """Member of the flags set for a flag (score: ``flag.ts``). Compact JSON with sorted
    keys and the time in whole milliseconds: a flag produced again (a rewind, a replay)
    is the same member, so the set holds it once."""
    value = flag.value
    if isinstance(value, float) and not math.isfinite(value):
        value = None  # JSON has no inf/NaN
    return json.dumps({"m": flag.machine, "s": flag.signal, "t": round(flag.ts, 3), "k": flag.kind, "v": value},
                      sort_keys=True, separators=(",", ":"), allow_nan=False)


def decode_flag_member(line: str, raw: bytes | str) -> Flag:
    """The flag of a flags-set member. Raises ValueError on a member that is not one."""
    try:
        data = json.loads(as_text(raw))
        value = data["v"]
        if isinstance(value, bool) or not isinstance(value, int | float | str | None):
            raise ValueError("v: not a number, text or null")
        return Flag(line, str(data["m"]), str(data["s"]), float(data["t"]), str(data["k"]), value)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a flag: {raw!r}") from exc


def format_number(value: float) -> str:
    """Shortest text for a rollup number: '' for zero, integers without a point, else 7
    significant digits (a 1e-7 relative error, far below any meter's)."""
    if value == 0 or math.isnan(value):
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.7g}"
    if "e" in text:
        text = f"{value:.7f}".rstrip("0").rstrip(".")
    if text in ("", "0", "-0"):
        return ""
    if text.startswith("0."):
        return text[1:]
    if text.startswith("-0."):
        return "-" + text[2:]
    return text


def encode_rollup(scalars: list[float], states: Mapping[str, float], quarters: Mapping[float, float],
                  start: float) -> str:
    """Rollup text of one minute or hour starting at ``start`` (see the format above)."""
    values = [format_number(v) for v in scalars]
    while values and not values[-1]:
        values.pop()
    whole = values[0] if values else ""
    state_text = ",".join(
        STATE_CODES.get(name, name) + ("" if text == whole else text)
        for name, seconds in sorted(states.items())
        if (text := format_number(seconds))
    )
    sections = [",".join(values), state_text, _encode_quarters(quarters, scalars[_ENERGY_INDEX], start)]
    while len(sections) > 1 and not sections[-1]:
        sections.pop()
    return ";".join(sections)


def _encode_quarters(quarters: Mapping[float, float], energy_kwh: float, start: float) -> str:
    kept = {q: kwh for q, kwh in quarters.items() if format_number(kwh)}
    energy_text = format_number(energy_kwh)
    if not kept:
        return "-" if energy_text else ""
    home = start - start % QUARTER_S
    if len(kept) == 1 and home in kept and format_number(kept[home]) == energy_text:
        return ""
    return ",".join(f"{round(q - start)}:{format_number(kwh)}" for q, kwh in sorted(kept.items()))


def decode_rollup(text: str, start: float) -> tuple[list[float], dict[str, float], dict[float, float]]:
    """Scalars (in ``ROLLUP_FIELDS`` order), seconds per state and kWh per quarter start."""
    sections = text.split(";")
    scalars = [float(v) if v else 0.0 for v in sections[0].split(",")] if sections[0] else []
    scalars.extend([0.0] * (len(ROLLUP_FIELDS) - len(scalars)))
    states: dict[str, float] = {}
    if len(sections) > 1 and sections[1]:
        for item in sections[1].split(","):
            cut = next((i for i, ch in enumerate(item) if _is_number_start(ch)), len(item))
            name = _STATE_NAMES.get(item[:cut], item[:cut])
            states[name] = float(item[cut:]) if cut < len(item) else scalars[0]
    quarters: dict[float, float] = {}
    quarter_text = sections[2] if len(sections) > 2 else ""
    if quarter_text and quarter_text != "-":
        for item in quarter_text.split(","):
            offset, kwh = item.split(":")
            quarters[float(start + int(offset))] = float(kwh)
    elif not quarter_text and scalars[_ENERGY_INDEX]:
        quarters[float(start - start % QUARTER_S)] = scalars[_ENERGY_INDEX]
    return scalars[: len(ROLLUP_FIELDS)], states, quarters


def _is_number_start(ch: str) -> bool:
    return ch.isdigit() or ch in ".-"


def encode_stop_member(machine: str, start: float, end: float | None, state: str, reason: int) -> str:
    end_text = "" if end is None else str(round(end * 1000))
    return f"{machine}|{round(start * 1000)}|{end_text}|{state}|{reason}"


def decode_stop_member(raw: bytes | str) -> tuple[str, float, float | None, str, int]:
    """machine, start, end (None while ongoing), state, reason of a stops-set member."""
    machine, start_ms, end_ms, state, reason = as_text(raw).split("|")
    return machine, int(start_ms) / 1000.0, (int(end_ms) / 1000.0 if end_ms else None), state, int(reason)


def encode_state_member(machine: str, t: float, state: str) -> str:
    return f"{machine}|{round(t * 1000)}|{state}"


def decode_state_member(raw: bytes | str) -> tuple[str, float, str]:
    """machine, time, state of a state-change member."""
    machine, t_ms, state = as_text(raw).split("|")
    return machine, int(t_ms) / 1000.0, state
