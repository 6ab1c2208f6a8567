"""Query windows: named ranges in plant local time and ISO 8601 times with an offset, and
the grid of a window's buckets on the plant's local clock (``bucket_bounds``).

Shared by the HTTP API and the dashboard, so ``?start=yesterday`` means the same on both.
Pure: ``now`` is passed in.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from domain import calendar
from domain.plant import Plant

MAX_WINDOW_DAYS = 400
MAX_BUCKETS = 5000
MINUTE_S = 60.0
DAY_S = 86400.0
NAMED_RANGES = ("shift", "last_shift", "today", "yesterday", "7d", "30d")
DEFAULT_RANGE = "shift"
_MAX_PARAM_LEN = 64
# "+08:00" in a query string arrives as " 08:00" when the client did not encode the "+".
_UNENCODED_PLUS = re.compile(r"^(\S+T[\d:.,]+) (\d{2}(:?\d{2})?)$")


class WindowError(ValueError):
    """A window parameter that cannot be used; ``str()`` says which and why."""


class Window(NamedTuple):
    start: float  # epoch seconds UTC
    end: float  # epoch seconds UTC, at most ``now``
    label: str  # e.g. "2026-11-25 A", "today", "" for explicit times


def parse_time(name: str, text: str) -> float:
    """Epoch seconds of an ISO 8601 time that carries a UTC offset (or Z)."""
    if len(text) > _MAX_PARAM_LEN:
        raise WindowError(f"{name}: not an ISO 8601 time with offset: {text[:_MAX_PARAM_LEN]!r}...")
    fixed = _UNENCODED_PLUS.sub(r"\1+\2", text.strip())
    try:
        parsed = datetime.fromisoformat(fixed)
    except ValueError:
        raise WindowError(f"{name}: not an ISO 8601 time with offset: {text!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise WindowError(f"{name}: {text!r} has no UTC offset (add Z or e.g. +08:00)")
    try:
        ts = parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        raise WindowError(f"{name}: time out of range: {text!r}") from None
    if not math.isfinite(ts):
        raise WindowError(f"{name}: time out of range: {text!r}")
    return ts


def named_window(plant: Plant, name: str, now: float) -> Window:
    tz = ZoneInfo(plant.timezone)
    if name == "shift":
        inst = calendar.current_or_last_shift(plant.shifts, tz, now)
        return Window(inst.start, min(inst.end, now), inst.label)
    if name == "last_shift":
        inst = calendar.previous_shift(plant.shifts, tz, now)
        return Window(inst.start, min(inst.end, now), inst.label)
    if name == "today":
        return Window(calendar.local_day(tz, now)[0], now, "today")
    if name == "yesterday":
        start, end = calendar.local_day(tz, now, -1)
        return Window(start, min(end, now), "yesterday")
    days = int(name.removesuffix("d"))
    return Window(now - days * 86400.0, now, name)


def resolve_window(plant: Plant, start_param: str | None, end_param: str | None, now: float,
                   max_days: float = MAX_WINDOW_DAYS) -> Window:
    """The window for query parameters. Raises ``WindowError`` with a message for the client.

    * nothing: the current shift (between shifts: the last one), up to now;
    * ``start`` = a named range (``shift``, ``last_shift``, ``today``, ``yesterday``,
      ``7d``, ``30d``; days are plant local days, ``7d``/``30d`` end now), without ``end``;
    * ``start`` = ISO 8601 time with offset, optional ``end`` (default now).

    The end is capped at ``now``: nothing is known about the future.
    """
    start_text = (start_param or "").strip()
    end_text = (end_param or "").strip()
    if not start_text:
        if end_text:
            raise WindowError("start: required when end is given")
        start_text = DEFAULT_RANGE
    if start_text in NAMED_RANGES:
        if end_text:
            raise WindowError(f"end: not allowed with the named range {start_text!r}")
        window = named_window(plant, start_text, now)
    else:
        start = parse_time("start", start_text)
        end = parse_time("end", end_text) if end_text else now
        if start >= now:
            raise WindowError("start is in the future")
        if end <= start:
            raise WindowError("end must be after start")
        window = Window(start, min(end, now), "")
    if window.end - window.start > max_days * 86400.0:
        raise WindowError(f"window longer than {max_days:g} days")
    return window


# --- the bucket grid (pure) -------------------------------------------------------------------

def bucket_of(bounds: Sequence[float], t: float) -> int:
    """The index of the bucket of ``bounds`` that holds ``t`` (the first or last one outside them)."""
    return min(max(bisect_right(bounds, t) - 1, 0), len(bounds) - 2)


def bucket_bounds(window: Window, step_s: float, tz: ZoneInfo) -> list[float]:
    """Bucket boundaries on the plant's local clock grid (whole hours, quarter hours,
    local days, ...); the first and last bucket may be partial."""
    step = bucket_step(step_s)
    if math.ceil((window.end - window.start) / step) + 1 > MAX_BUCKETS:
        raise WindowError(f"step: {step:g} s makes more than {MAX_BUCKETS} buckets")
    grid = _local_days(window, tz, int(step // DAY_S)) if step % DAY_S == 0 else _local_grid(window, tz, step)
    return [window.start, *(t for t in grid if window.start < t < window.end), window.end]


def _local_grid(window: Window, tz: ZoneInfo, step: float) -> list[float]:
    midnight = datetime.fromtimestamp(window.start, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    origin = midnight.timestamp()
    first = origin + math.ceil((window.start - origin) / step) * step
    return [first + i * step for i in range(math.ceil((window.end - first) / step) + 1)]


def _local_days(window: Window, tz: ZoneInfo, days: int) -> list[float]:
    """Local midnights every ``days`` days (as long as the local days really are)."""
    day = datetime.fromtimestamp(window.start, tz).date()
    out = []
    while True:
        day += timedelta(days=days)
        at = datetime.combine(day, datetime.min.time(), tzinfo=tz).timestamp()
        out.append(at)
        if at >= window.end:
            return out


def bucket_step(step_s: float) -> float:
    """Buckets are whole minutes."""
    if not math.isfinite(step_s) or step_s < MINUTE_S:
        raise WindowError("step: at least 60 seconds")
    return float(round(step_s / MINUTE_S) * MINUTE_S)
