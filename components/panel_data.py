"""The reader's answers as the panels use them: pure reshaping of ``domain.answers`` (no
reads; ``components.data`` re-exports these for the panels)."""

from __future__ import annotations

from typing import Any

from components.i18n import local
from domain import answers
from domain.plant import Plant


def series_points(series: answers.KpiSeries) -> list[answers.KpiBucket]:
    """``kpi_series`` buckets (each with ``start``, ``end`` and the KPI keys), by time."""
    return sorted(series["buckets"], key=lambda p: p["start"])


def timeline_rows(timeline: answers.Timeline, reason_texts: dict[int, str] | None = None,
                  setup_codes: set[int] | None = None) -> dict[str, list[dict[str, Any]]]:
    """``timeline``: machine id -> segments ``{start, end, state, reason, reason_text}``
    (the reader sends each as ``[start, end, state, reason code]``). An idle segment with
    a setup reason (``setup_codes``) is shown as a changeover, as the andon shows it
    (``theme.andon_of``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for machine in timeline["machines"]:
        rows = []
        for start, end, state, code in machine["segments"]:
            row: dict[str, Any] = {"start": start, "end": end, "state": state, "reason": code}
            if code and reason_texts:
                row["reason_text"] = reason_texts.get(int(code), f"Reason {code}")
            if setup_codes and code and state == "idle" and int(code) in setup_codes:
                row["state"] = "changeover"
            rows.append(row)
        out[machine["id"]] = rows
    return out


def reason_texts(p: Plant) -> dict[int, str]:
    """Reason code -> text in the page's language."""
    return {code: local(reason.text) for code, reason in p.reasons.items()}


def setup_codes(p: Plant) -> set[int]:
    """Reason codes of setups (changeovers, tool and roll changes): blue on every screen."""
    return {code for code, reason in p.reasons.items() if str(reason.category) == "setup_adjustment"}


def power_points(series: answers.PowerSeries) -> dict[str, list[tuple[float, float | None]]]:
    """``power_series``: machine id -> [(bucket start, average kW)], by time."""
    starts = series["starts"]
    return {machine: sorted(zip(starts, values, strict=True), key=lambda p: p[0])
            for machine, values in series["machines"].items()}


def downtime_events(report: answers.Downtime | None) -> list[answers.StopEvent]:
    return list(report["events"]) if report else []


def pareto_rows(report: answers.Downtime | None, by: str) -> list[answers.ParetoRow]:
    """Pareto rows by "duration" or "count": {group, reason, label, category, count, duration_s, shares}."""
    if not report:
        return []
    return list(report["pareto"]["by_duration"] if by == "duration" else report["pareto"]["by_count"])
