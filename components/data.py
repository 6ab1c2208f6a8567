"""The dashboard's one door to data: the PlantReader on the app's Flask server.

Every callback reads through here, so the dashboard shows exactly what the HTTP API
serves (both use the same ``store.reader.PlantReader``). ``create_app`` puts the
reader, the plant and the clock on ``app.server.config``; nothing is kept in module
globals (the app runs in several gunicorn workers, each with its own reader).

Reader errors (Redis down, a restart in progress) become ``DataUnavailable`` so a
callback can show "no data since ..." instead of a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from redis.exceptions import RedisError

from components.i18n import N_, _, date_time, local
from domain import calendar
from domain.plant import Line, Plant

log = logging.getLogger(__name__)

READER_KEY = "PLANT_READER"
PLANT_KEY = "PLANT"
CLOCK_KEY = "DASHBOARD_CLOCK"

NAMED_RANGES = {  # English msgids: ``_`` where shown
    "shift": N_("This shift"),
    "last_shift": N_("Last shift"),
    "today": N_("Today"),
    "yesterday": N_("Yesterday"),
    "7d": N_("7 days"),
    "30d": N_("30 days"),
}
DEFAULT_RANGE = "shift"


class DataUnavailable(Exception):
    """The reader could not answer (Redis unreachable, timed out, restarting)."""


def reader() -> Any:
    return current_app.config[READER_KEY]


def plant() -> Plant:
    """The plant, with the reason lists engineers manage (``store.reasons``) when the
    reader keeps them: the pickers offer, and the screens name, what the figures use."""
    lists = getattr(current_app.config.get(READER_KEY), "reason_lists", None)
    return lists.effective() if lists is not None else current_app.config[PLANT_KEY]  # type: ignore[no-any-return]


def now() -> float:
    clock: Callable[[], float] = current_app.config[CLOCK_KEY]
    return float(clock())


def _call(method: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return getattr(reader(), method)(*args, **kwargs)
    except (RedisError, OSError) as exc:
        log.warning("reader.%s failed: %s", method, exc)
        raise DataUnavailable(str(exc)) from exc


# --- live state ---------------------------------------------------------------------

def live_lines(at: float) -> list[dict[str, Any]]:
    """``reader.lines(now)`` as a list of line dicts, each with its ``machines``."""
    return normalise_lines(_call("lines", at))


def normalise_lines(raw: Any) -> list[dict[str, Any]]:
    """The reader may answer ``{"lines": [...]}``, a list, or a dict keyed by line id."""
    if isinstance(raw, dict) and "lines" in raw:
        raw = raw["lines"]
    if isinstance(raw, dict):
        raw = [{"id": key, **value} for key, value in raw.items()]
    out = []
    for line in raw or []:
        machines = line.get("machines") or []
        if isinstance(machines, dict):
            machines = [{"id": key, **value} for key, value in machines.items()]
        out.append({**line, "machines": list(machines)})
    return out


# --- windows and KPIs ---------------------------------------------------------------

def line_kpis(line: str, start: float, end: float, at: float) -> dict[str, Any]:
    return _call("line_kpis", line, start, end, at)  # type: ignore[no-any-return]


def machine_kpis(line: str, machine: str, start: float, end: float, at: float) -> dict[str, Any]:
    return _call("machine_kpis", line, machine, start, end, at)  # type: ignore[no-any-return]


def downtime(line: str, start: float, end: float, at: float) -> dict[str, Any]:
    return _call("downtime", line, start, end, at)  # type: ignore[no-any-return]


def energy(line: str, start: float, end: float, at: float) -> dict[str, Any]:
    return _call("energy", line, start, end, at)  # type: ignore[no-any-return]


def kpi_series(line: str, start: float, end: float, step_s: float, at: float, machine: str | None = None) -> Any:
    return _call("kpi_series", line, start, end, step_s, at, machine=machine)


def timeline(line: str, start: float, end: float, at: float) -> Any:
    return _call("timeline", line, start, end, at)


def power_series(line: str, start: float, end: float, step_s: float, at: float) -> Any:
    return _call("power_series", line, start, end, step_s, at)


# --- time ranges ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float
    label: str
    live: bool  # the window reaches now: refresh it


def resolve_window(p: Plant, start_param: str | None, end_param: str | None, at: float) -> Window:
    """A named range or ISO 8601 times -> a window, exactly as the HTTP API resolves
    them (``store.windows``). Raises ValueError (``WindowError``) on bad input."""
    from store.windows import resolve_window as shared

    got = shared(p, start_param or DEFAULT_RANGE, end_param, at)
    name = NAMED_RANGES.get(start_param or DEFAULT_RANGE)
    name = _(name) if name else name
    if name:
        label = f"{name} ({got.label})" if got.label and got.label not in NAMED_RANGES else name
    else:
        label = f"{_short(got.start, p.timezone)} \u2192 {_short(got.end, p.timezone)}"
    return Window(got.start, got.end, label, live=got.end >= at - 1)


def local_input_to_iso(text: str, tz: str) -> str:
    """A ``datetime-local`` input value (plant local time, no offset) -> ISO 8601 with
    the plant's offset, as the API wants it."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed.isoformat(timespec="minutes")


def iso_to_local_input(text: str | None, tz: str) -> str | None:
    if not text or text in NAMED_RANGES:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(ZoneInfo(tz))
    return parsed.strftime("%Y-%m-%dT%H:%M")


def _short(ts: float, tz: str) -> str:
    return date_time(datetime.fromtimestamp(ts, ZoneInfo(tz)), _("dd MMM HH:mm"))


# --- shift context for targets and pace ------------------------------------------------

@dataclass(frozen=True, slots=True)
class ShiftContext:
    name: str
    label: str
    start: float
    end: float
    planned_s: float  # shift minus breaks
    planned_elapsed_s: float  # of that, up to now
    planned_now: bool  # inside the shift and not on a break


def shift_context(p: Plant, at: float) -> ShiftContext:
    tz = ZoneInfo(p.timezone)
    inst = calendar.current_or_last_shift(p.shifts, tz, at)
    planned = inst.planned_busy()
    elapsed = calendar.total(calendar.clip(planned, inst.start, min(at, inst.end)))
    planned_now = any(s <= at < e for s, e in planned)
    return ShiftContext(inst.name, inst.label, inst.start, inst.end, calendar.total(planned), elapsed, planned_now)


def line_views(line_ids: list[str] | None = None, at: float | None = None) -> tuple[list[dict[str, Any]], float]:
    """Live view models (``components.live.line_view``) of the given lines (all by default)
    for the current shift, and the time they are for."""
    from components.live import line_view

    p = plant()
    at = now() if at is None else at
    shift = shift_context(p, at)
    start, end = shift.start, min(at, shift.end)
    live_by_id = {line["id"]: line for line in live_lines(at)}
    views = []
    for cfg in p.lines:
        if line_ids is not None and cfg.id not in line_ids:
            continue
        kpis = line_kpis(cfg.id, start, end, at)  # a line's counts are its output machine's
        stops = downtime(cfg.id, start, end, at)
        live = live_by_id.get(cfg.id, {"id": cfg.id, "machines": []})
        views.append(line_view(cfg, live, kpis, stops, shift, at, p.timezone))
    return views, at


def line_config(p: Plant, line_id: str) -> Line | None:
    return p.line(line_id)


# --- shapes: the reader's answers as the panels use them ---------------------------------

def normalise_series(raw: Any) -> list[dict[str, Any]]:
    """``kpi_series`` points, each with ``start`` (epoch s) and the KPI keys."""
    if isinstance(raw, dict):
        raw = raw.get("points") or raw.get("series") or raw.get("buckets") or []
    out = []
    for point in raw or []:
        start = point.get("start", point.get("t", point.get("time")))
        if start is None:
            continue
        out.append({**point, "start": float(start)})
    return sorted(out, key=lambda p: p["start"])


def normalise_timeline(raw: Any, reason_texts: dict[int, str] | None = None,
                       setup_codes: set[int] | None = None) -> dict[str, list[dict[str, Any]]]:
    """``timeline``: machine id -> segments ``{start, end, state, reason, reason_text}``.
    The reader sends segments as ``[start, end, state, reason code]``. An idle segment
    with a setup reason (``setup_codes``) is shown as a changeover, as the andon shows
    it (``theme.andon_of``)."""
    if isinstance(raw, dict) and "machines" in raw:
        raw = raw["machines"]
    if isinstance(raw, list):
        raw = {m.get("id") or m.get("machine"): m.get("segments", []) for m in raw}
    out: dict[str, list[dict[str, Any]]] = {}
    for machine, segments in (raw or {}).items():
        if isinstance(segments, dict):
            segments = segments.get("segments", [])
        rows = []
        for seg in segments:
            if isinstance(seg, list | tuple):
                seg = dict(zip(("start", "end", "state", "reason"), seg, strict=False))
            code = seg.get("reason") or 0
            if not seg.get("reason_text") and code and reason_texts:
                seg = {**seg, "reason_text": reason_texts.get(int(code), f"Reason {code}")}
            if setup_codes and code and seg.get("state") == "idle" and int(code) in setup_codes:
                seg = {**seg, "state": "changeover"}
            rows.append(seg)
        out[str(machine)] = rows
    return out


def reason_texts(p: Plant) -> dict[int, str]:
    """Reason code -> text in the page's language."""
    return {code: local(reason.text) for code, reason in p.reasons.items()}


def setup_codes(p: Plant) -> set[int]:
    """Reason codes of setups (changeovers, tool and roll changes): blue on every screen."""
    return {code for code, reason in p.reasons.items() if str(reason.category) == "setup_adjustment"}


def normalise_power(raw: Any) -> dict[str, list[tuple[float, float | None]]]:
    """``power_series``: machine id -> [(epoch s, kW)], sorted by time."""
    times = None
    if isinstance(raw, dict):
        times = raw.get("starts") or raw.get("times") or raw.get("t")
        raw = raw.get("machines", raw)
    if isinstance(raw, list):
        raw = {m.get("id") or m.get("machine"): m.get("points", m.get("values", [])) for m in raw}
    out: dict[str, list[tuple[float, float | None]]] = {}
    for machine, values in (raw or {}).items():
        if not isinstance(values, list):
            continue
        points: list[tuple[float, float | None]] = []
        for i, v in enumerate(values):
            if isinstance(v, dict):
                points.append((float(v.get("t", v.get("start", 0))), v.get("kw", v.get("avg_kw"))))
            elif isinstance(v, list | tuple):
                points.append((float(v[0]), v[1]))
            elif times is not None:
                points.append((float(times[i]), v))
        out[str(machine)] = sorted(points, key=lambda p: p[0])
    return out


def downtime_events(raw: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((raw or {}).get("events") or (raw or {}).get("stops") or [])


def pareto_rows(raw: dict[str, Any] | None, by: str) -> list[dict[str, Any]]:
    """Pareto rows by "duration" or "count": {reason, reason_text, duration_s, count, planned}."""
    raw = raw or {}
    rows = raw.get(f"pareto_by_{by}")
    if rows is None:
        rows = (raw.get("pareto") or {}).get(f"by_{by}") or (raw.get("pareto") or {}).get(by) or []
    return list(rows)
