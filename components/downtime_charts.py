"""The downtime panel's charts: the state timeline per machine and the Pareto of stop
reasons (by duration, by count), each as a figure and as the patch a live tick sends
(the open segments' ends, the bars and the cumulative line). Pure builders: no
callbacks, no data access.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
from dash import Patch, no_update

from components import line_view, theme
from components.i18n import _, reason_text
from components.stops_list import local_time, stop_andon
from domain.model import State as MachineState
from domain.model import parse_state


def timeline_traces(segments: dict[str, list[dict[str, Any]]], machines: list[str], tz: str,
                    open_from: float | None = None) -> list[tuple[MachineState, dict[str, list[Any]]]]:
    """The timeline's bar traces, one per state present (in ``MachineState`` order), each
    with ``base``/``x``/``y``/``text`` per segment and ``open``: the indices of segments
    ending at ``open_from`` or later (the ones a live tick moves)."""
    zone = ZoneInfo(tz)
    by_state: dict[MachineState, dict[str, list[Any]]] = {}
    for machine in machines:
        for seg in segments.get(machine, []):
            state = parse_state(seg.get("state"))
            end = seg.get("end")
            if end is None or not theme.is_number(seg.get("start")):
                continue
            trace = by_state.setdefault(state, {"base": [], "x": [], "y": [], "text": [], "open": []})
            if open_from is not None and float(end) >= open_from:
                trace["open"].append(len(trace["x"]))
            trace["base"].append(local_time(seg["start"], zone))
            trace["x"].append((float(end) - float(seg["start"])) * 1000)
            trace["y"].append(machine)
            reason = reason_text(seg.get("reason"), seg.get("reason_text")) if seg.get("reason") else ""
            trace["text"].append(f"{theme.label(theme.STATE_LABELS, state)} {theme.duration(float(end) - seg['start'])}"
                                 + (f"<br>{reason}" if reason else ""))
    return [(state, by_state[state]) for state in MachineState if state in by_state]


def timeline_figure(segments: dict[str, list[dict[str, Any]]], machines: list[str], tz: str, dark: bool = False,
                    height: int | None = None, title: str | None = None) -> go.Figure:
    """One row per machine, one bar trace per state (so the legend names the colours)."""
    fig = go.Figure()
    for state, t in timeline_traces(segments, machines, tz):
        fig.add_bar(base=t["base"], x=t["x"], y=t["y"], orientation="h", name=theme.label(theme.STATE_LABELS, state),
                    marker_color=theme.STATE_COLOURS[state], hovertext=t["text"], hoverinfo="text+y",
                    marker_line_width=0)
    fig.update_layout(template=theme.DARK if dark else theme.LIGHT, uirevision="keep", barmode="overlay",
                      height=height or max(180, 60 + 34 * len(machines)),
                      title={"text": title or _("State timeline (click a machine to open it)"), "x": 0},
                      xaxis=theme.date_axis(),
                      legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
                      yaxis={"categoryorder": "array", "categoryarray": list(reversed(machines)), "title": None})
    return fig


def timeline_patch(traces: list[tuple[MachineState, dict[str, list[Any]]]]) -> Any:
    """The open segments' lengths and hover texts, for the figure built from the same segments."""
    if not any(t["open"] for _state, t in traces):
        return no_update
    patch: Any = Patch()
    for i, (_state, t) in enumerate(traces):
        for j in t["open"]:
            patch["data"][i]["x"][j] = t["x"][j]
            patch["data"][i]["hovertext"][j] = t["text"][j]
    return patch


def pareto_series(rows: Sequence[Mapping[str, Any]], by: str) -> dict[str, list[Any]]:
    """Bars sorted high to low (``labels``, ``values``, ``colours``, ``groups``: the reason
    codes) and the cumulative share in percent."""
    key = "duration_s" if by == "duration" else "count"
    rows = sorted(rows, key=lambda r: r.get(key) or 0, reverse=True)
    labels = [pareto_label(r) for r in rows]
    values = [(r.get(key) or 0) / (60 if by == "duration" else 1) for r in rows]
    total = sum(values) or 1
    cumulative, running = [], 0.0
    for v in values:
        running += v
        cumulative.append(round(running / total * 100, 1))
    return {
        "labels": labels,
        "values": [round(v, 1) for v in values],
        "cumulative": cumulative,
        "colours": [theme.ANDON_COLOURS[stop_andon(r)] for r in rows],  # setup: blue, as on the wall
        "groups": [r["group"] for r in rows],
    }


def pareto_label(row: Mapping[str, Any]) -> str:
    """A Pareto bar's name: the reader's (English) label, or the reason in the page's language."""
    return line_view.group_name(row["group"], row["reason"], row["label"])


def pareto_figure(rows: Sequence[Mapping[str, Any]], by: str, dark: bool = False) -> go.Figure:
    """Bars sorted high to low and the cumulative share; customdata is the reason code."""
    s = pareto_series(rows, by)
    fig = go.Figure()
    fig.add_bar(x=s["labels"], y=s["values"], marker_color=s["colours"], customdata=s["groups"],
                name="min" if by == "duration" else _("stops"),
                hovertemplate="%{x}<br>%{y} " + ("min" if by == "duration" else _("stops")) + "<extra></extra>")
    fig.add_scatter(x=s["labels"], y=s["cumulative"], yaxis="y2", mode="lines+markers", name=_("cumulative %"),
                    line={"color": "#6c757d"}, hovertemplate="%{y:.0f} %<extra></extra>")
    fig.update_layout(template=theme.DARK if dark else theme.LIGHT, uirevision="keep", height=320, showlegend=False,
                      title={"text": _("Stop reasons by duration (min)") if by == "duration"
                             else _("Stop reasons by count"), "x": 0},
                      yaxis2={"overlaying": "y", "side": "right", "range": [0, 105], "showgrid": False,
                              "tickvals": [0, 50, 80, 100], "ticksuffix": " %"},
                      xaxis={"tickangle": -25, "automargin": True}, margin={"r": 56})
    return fig


def pareto_patch(rows: Sequence[Mapping[str, Any]], by: str) -> Any:
    """The bars and the cumulative line of ``pareto_figure``, as a patch of its data."""
    s = pareto_series(rows, by)
    patch: Any = Patch()
    bars, line = patch["data"][0], patch["data"][1]
    bars["x"], bars["y"], bars["customdata"] = s["labels"], s["values"], s["groups"]
    bars["marker"]["color"] = s["colours"]
    line["x"], line["y"] = s["labels"], s["cumulative"]
    return patch
