"""The pure pieces of ``PlantReader``'s answers: the window as served, an implausible
reading, a KPI report and its energy made JSON-safe (non-finite floats become None),
local ISO times and average power. No Redis, no clock: everything is passed in.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from domain import answers, kpi
from domain.plausibility import Flag
from store.windows import Window


def kw(kwh: float, span_s: float) -> float | None:
    """Average power over ``span_s`` seconds (None for an empty span)."""
    return kwh * 3600.0 / span_s if span_s > 0 else None


def window_dict(window: Window | tuple[float, float], now: float, tz: ZoneInfo) -> answers.Window:
    start, end = window[0], window[1]
    return {"start": start, "end": end, "now": now, "live": end >= now,
            "start_iso": iso(start, tz), "end_iso": iso(end, tz)}


def iso(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def flag_dict(flag: Flag, at: float, tz: ZoneInfo) -> answers.Flag:
    value = flag.value if not isinstance(flag.value, float) or math.isfinite(flag.value) else None
    return {"machine": flag.machine, "signal": flag.signal, "time": iso(at, tz), "ts": at, "kind": flag.kind,
            "value": value}


def report_dict(report: kpi.KpiReport) -> answers.Kpis:
    data = report.to_dict()
    data.pop("window", None)
    cleaned: answers.Kpis = json_safe(data)
    return cleaned


def clean_energy(report: kpi.KpiReport) -> answers.EnergyKpis:
    cleaned: answers.EnergyKpis = json_safe(report.energy())
    return cleaned


def json_safe(value: Any) -> Any:
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
