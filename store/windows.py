"""Query windows: named ranges in plant local time and ISO 8601 times with an offset.

Shared by the HTTP API and the dashboard, so ``?start=yesterday`` means the same on both.
Pure: ``now`` is passed in.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from domain import calendar
from domain.plant import Plant

MAX_WINDOW_DAYS = 400
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
