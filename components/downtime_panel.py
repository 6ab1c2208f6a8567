"""Downtime panel of the line page: state timeline per machine, Pareto of stop reasons
by duration and by count, and the stops list (ongoing first) with CSV download.

Click a Pareto bar to list the stops behind it; click a machine's row of the timeline
to open the machine's page (the range in the query string carries over).

The filter is in the URL (``?reason=<group>``), so the list, its CSV and a bookmark
agree; machine links keep the range.

``draw`` sends everything when the range or filter changes (or a draw went missing);
in a live window ``update`` follows every 2 s (``ranges.Live``). While the stops and the
timeline's segments stay what the browser already shows (``structure_key``, held in the
``LIVE.drawn`` store), a tick only
moves what is ongoing: the open segments' ends and the Pareto by duration travel as
``dash.Patch``, the ongoing stops' durations go to their own cells (``ONGOING``); the
rest is sent whole only when a stop starts, ends or changes. The stops list is the heavy
part: about 110 KB at 200 rows, and patching inside it makes dash-renderer walk its
~1,400 components, which kept the browser's main thread busy for more than the 2 s
between refreshes; a cell of its own costs nothing to update.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import ALL, Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from components import data, export, line_view, ranges, theme, tiles, untagged
from components.callbacks import Callbacks
from components.i18n import N_, _, reason_text
from domain import answers
from domain.downtime import NO_REASON_GROUP, SMALL_STOP_GROUP
from domain.model import State as MachineState
from domain.model import parse_state

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

LINE = "dt-line"
TIMELINE = "dt-timeline"
PARETO_DURATION = "dt-pareto-duration"
PARETO_COUNT = "dt-pareto-count"
STOPS = "dt-stops"
FILTER = "dt-filter"  # store: selected reason code or None
FILTER_LABEL = "dt-filter-label"
CLEAR = "dt-clear"
SUMMARY = "dt-summary"
CSV = "dt-csv"
DOWNLOAD = "dt-download"
ONGOING = "dt-ongoing"  # {"type": ONGOING, "row": i}: the duration cell of an ongoing stop (row i)
LIVE = ranges.Live("dt")
REASON_PARAM = "reason"  # ?reason=<Pareto group>: the stops list's filter, in the URL
URL = "dt-url"  # the panel's own hold on the address bar (the range bar's is ranges.URL; one writer per property)

MAX_ROWS = 200
NO_REASON = N_("no reason")
SMALL_STOPS = N_("small stops")


def layout(line: str, reason: str | None = None) -> html.Section:
    return html.Section(className="panel", id="panel-downtime", children=[
        dcc.Store(id=LINE, data=line),
        dcc.Location(id=URL, refresh=False),
        dcc.Store(id=FILTER, data=reason),
        *LIVE.stores(),
        html.H2(_("Downtime"), className="panel-title"),
        html.Div(id=SUMMARY, className="kpi-tiles"),
        dcc.Graph(id=TIMELINE, config={"displayModeBar": False}, className="fig"),
        dbc.Row([
            dbc.Col(dcc.Graph(id=PARETO_DURATION, config={"displayModeBar": False}, className="fig"), lg=6),
            dbc.Col(dcc.Graph(id=PARETO_COUNT, config={"displayModeBar": False}, className="fig"), lg=6),
        ]),
        html.Div(className="d-flex align-items-center gap-2 mt-2 flex-wrap", children=[
            html.H3(_("Stops"), className="h6 mb-0"),
            html.Span(id=FILTER_LABEL, className="text-body-secondary"),
            dbc.Button(_("Show all"), id=CLEAR, size="sm", color="link"),
            dbc.Button(_("Download CSV"), id=CSV, size="sm", color="secondary", outline=True, className="ms-auto"),
        ]),
        dcc.Download(id=DOWNLOAD),
        html.Div(id=STOPS, className="table-responsive stops"),
    ])


# --- pure builders --------------------------------------------------------------------

def _local(ts: float, zone: ZoneInfo) -> str:
    # datetime, not pandas: a quarter of the cost, and a 12 h timeline has ~300 segments each refresh
    return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S")


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
            trace["base"].append(_local(seg["start"], zone))
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


def event_group(event: Mapping[str, Any]) -> str:
    """The Pareto group of a stop, as ``domain.downtime`` groups them."""
    if event.get("reason"):
        return str(event["reason"])
    return SMALL_STOP_GROUP if event.get("micro") else NO_REASON_GROUP


def ordered_stops(events: Sequence[Mapping[str, Any]], group: str | None = None) -> Sequence[Mapping[str, Any]]:
    """Ongoing stops first, then newest first; optionally only one Pareto group."""
    if group is not None:
        events = [e for e in events if event_group(e) == group]
    return sorted(events, key=lambda e: (e.get("end") is not None, -(e.get("start") or 0)))


def stops_table(events: Sequence[Mapping[str, Any]], now: float, tz: str, machine_href: str | None = None,
                live_cells: bool = False, search: str = "", classify: str = "", here: str = "") -> Any:
    """Ongoing stops first (``ordered_stops``); ``live_cells``: their durations in ``ONGOING`` cells.
    ``classify`` (``untagged.access``): each stop's reason is a button that opens the
    reason picker, or a "log in to classify" link (back to ``here``) above the list."""
    if not events:
        return html.P(_("No stops in this range."), className="text-body-secondary")
    login = [untagged.login_link(here)] if classify == untagged.MAY_LOG_IN else []
    zone = ZoneInfo(tz)
    head = html.Thead(html.Tr([html.Th(h) for h in (_("Machine"), _("Start"), _("End"), _("Duration"), _("Reason"),
                                                     _("Category"))]))
    body = []
    for i, e in enumerate(events[:MAX_ROWS]):
        ongoing = e.get("end") is None
        machine = str(e.get("machine", ""))
        cell = dcc.Link(machine, href=f"{machine_href}/{machine}{search}") if machine_href else machine
        andon = stop_andon(e)
        body.append(html.Tr(className=(f"stop-ongoing stop-{andon}" if ongoing else
                                       ("stop-planned" if e.get("planned") else "")),
                            children=[
            html.Td(cell),
            html.Td(_local(e["start"], zone)[5:16] if theme.is_number(e.get("start")) else theme.DASH),
            html.Td(html.Span(_("ongoing"), className=f"badge andon-badge andon-{andon}") if ongoing
                    else _local(e["end"], zone)[5:16]),
            html.Td(stop_duration(e, now), id={"type": ONGOING, "row": i}) if ongoing and live_cells else
            html.Td(stop_duration(e, now)),
            html.Td(reason_cell(e, classify)),
            html.Td(category_text(e)),
        ]))
    more = [html.P(_("{n} more in the CSV download.").format(n=len(events) - MAX_ROWS),
                   className="text-body-secondary")] \
        if len(events) > MAX_ROWS else []
    return html.Div([*login, dbc.Table([head, html.Tbody(body)], size="sm", hover=True, className="stops-table"),
                     *more])


def reason_cell(event: Mapping[str, Any], classify: str) -> Any:
    label = line_view.group_name(event_group(event), event["reason"], event["reason_text"])
    return untagged.stop_button(event, label) if classify == untagged.CAN_CLASSIFY and untagged.classifiable(event) \
        else label


def category_text(event: Mapping[str, Any]) -> str:
    category = str(event.get("category"))
    if event.get("micro"):
        text = _("Small stop")
    else:
        text = theme.label(theme.LOSS_LABELS, category) if category in theme.LOSS_LABELS else \
            event.get("category") or theme.DASH
    return str(text) + (" " + _("(planned)") if event.get("planned") else "")


def stop_andon(event: Mapping[str, Any]) -> str:
    """The andon colour of a stop, as the wall shows its machine: setup is a changeover (blue)."""
    if event.get("planned"):
        return theme.PLANNED
    return theme.CHANGEOVER if event.get("category") == "setup_adjustment" else theme.DOWN


def stop_duration(event: Mapping[str, Any], now: float) -> str:
    """Its duration; an ongoing stop's runs up to ``now``."""
    if event.get("end") is None and theme.is_number(event.get("start")):
        return theme.duration(now - float(event["start"]))
    return theme.duration(event.get("duration_s"))


def ongoing_durations(events: list[dict[str, Any]], cell_ids: list[dict[str, Any]], now: float) -> list[str]:
    """The texts of the ``ONGOING`` cells ``stops_table(events, ...)`` made, in the order of ``cell_ids``."""
    return [stop_duration(events[i["row"]], now) if i["row"] < min(len(events), MAX_ROWS) else theme.DASH
            for i in cell_ids]


def structure_key(params: Any, group: str | None, events: Sequence[Mapping[str, Any]],
                  segments: dict[str, list[dict[str, Any]]], open_from: float) -> str:
    """Everything the panel shows except what grows with the clock (ongoing stops'
    durations, open segments' ends): while it is unchanged, a tick can patch."""
    stops = [[e.get(k) for k in ("machine", "start", "end", "reason", "reason_text", "micro", "planned", "category")]
             for e in events]
    segs = {m: [[s.get("start"), s.get("state"), s.get("reason_text"),
                 None if theme.is_number(s.get("end")) and float(s["end"]) >= open_from else s.get("end")]
                for s in rows] for m, rows in segments.items()}
    text = json.dumps([params, group, stops, segs], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


STOP_COLUMNS = {"machine": N_("Machine"), "start_local": N_("Start (local)"), "end_local": N_("End (local)"),
                "start_utc_epoch_s": N_("Start (UTC epoch s)"), "end_utc_epoch_s": N_("End (UTC epoch s)"),
                "duration_s": N_("Duration (s)"), "lost_s": N_("Lost (s)"), "reason": N_("Reason code"),
                "reason_text": N_("Reason"), "category": N_("Category"), "planned": N_("Planned"),
                "micro": N_("Small stop")}


def stops_csv(events: Sequence[Mapping[str, Any]], tz: str) -> str:
    """The stops as CSV; headers and reason texts in the page's language (codes and
    categories stay as the API gives them)."""
    zone = ZoneInfo(tz)
    rows = [{
        "machine": e.get("machine"),
        "start_local": _local(e["start"], zone) if theme.is_number(e.get("start")) else "",
        "end_local": _local(e["end"], zone) if theme.is_number(e.get("end")) else "",
        "start_utc_epoch_s": e.get("start"), "end_utc_epoch_s": e.get("end"),
        "duration_s": e.get("duration_s"), "lost_s": e.get("lost_s"), "reason": e.get("reason"),
        "reason_text": reason_text(e["reason"], e.get("reason_text")) if e.get("reason") else e.get("reason_text"),
        "category": e.get("category"), "planned": e.get("planned"),
        "micro": e.get("micro"),
    } for e in events]
    frame = pd.DataFrame(rows, columns=list(STOP_COLUMNS))
    return export.csv_text(frame.rename(columns=export.headers(STOP_COLUMNS)))


def summary_tiles(raw: answers.Downtime, threshold_s: float) -> list[Any]:
    summary = raw["summary"]
    micro = (_(", {n} small stops ({duration})").format(n=theme.count(summary["micro_stops"]),
                                                        duration=theme.duration(summary.get("micro_stop_s")))
             if summary.get("micro_stops") else "")
    # The line's OEE is its output machine's; these add up every machine's stops, and say so.
    items = [
        (_("Unplanned stops, all machines"), theme.count(summary.get("stops")),
         _("{duration} lost, summed over machines").format(duration=theme.duration(summary.get("down_s"))) + micro),
        (_("MTBF, all machines"), theme.duration(raw.get("mtbf_s")), _("mean time between failures")),
        (_("MTTR, all machines"), theme.duration(raw.get("mttr_s")), _("mean time to repair")),
        (_("Micro-stop threshold"), theme.duration(threshold_s), _("shorter stops without a reason: small stops")),
    ]
    return [tiles.kpi_tile(n, v, s) for n, v, s in items]


# --- callbacks ------------------------------------------------------------------------

def _view(params: dict[str, Any], reason: str | None, line: str) -> dict[str, Any]:
    """What the panel shows for a range and a filter (``{"error": message}`` for a range
    the API refuses)."""
    p, cfg, window, at, error = ranges.panel_context(params, line)
    if window is None:
        return {"error": str(error)}
    try:
        raw = data.downtime(line, window.start, window.end, at)
        segments = data.timeline_rows(data.timeline(line, window.start, window.end, at), data.reason_texts(p),
                                           data.setup_codes(p))
    except data.DataUnavailable:
        raise PreventUpdate from None
    events = data.downtime_events(raw)
    open_from = window.end - 1  # segments and stops reaching the window's end are still going on
    return {
        "plant": p, "window": window, "at": at, "raw": raw, "segments": segments, "open_from": open_from,
        "machines": [m.id for m in cfg.machines], "stops": ordered_stops(events, reason), "events": events,
        "threshold": float(raw.get("micro_stop_threshold_s", p.micro_stop_threshold_s)),
        "key": structure_key(params, reason, events, segments, open_from),
    }


def filter_label(reason: str | None, events: Sequence[Mapping[str, Any]]) -> str:
    if reason is None:
        return ""
    texts = {event_group(e): e.get("reason_text") for e in events}
    if reason not in (SMALL_STOP_GROUP, NO_REASON_GROUP):
        text = reason_text(reason, texts.get(reason))
    else:
        text = texts.get(reason) or _(SMALL_STOPS if reason == SMALL_STOP_GROUP else NO_REASON)
    return _("only: {reason}").format(reason=text)


def _full(v: dict[str, Any], params: dict[str, Any], reason: str | None, line: str) -> tuple[Any, ...]:
    p = v["plant"]
    return (
        summary_tiles(v["raw"], v["threshold"]),
        timeline_figure(v["segments"], v["machines"], p.timezone),
        pareto_figure(data.pareto_rows(v["raw"], "duration"), "duration"),
        pareto_figure(data.pareto_rows(v["raw"], "count"), "count"),
        stops_table(v["stops"], v["at"], p.timezone, machine_href=f"/line/{line}/machine",
                    live_cells=True, search=ranges.search_for(params), classify=untagged.access(line),
                    here=f"/line/{line}{ranges.search_for(params)}"),
        filter_label(reason, v["events"]),
        ranges.drawn(params, v["window"], reason, key=v["key"]),
    )


@callbacks.callback(
    Output(SUMMARY, "children"),
    Output(TIMELINE, "figure"),
    Output(PARETO_DURATION, "figure"),
    Output(PARETO_COUNT, "figure"),
    Output(STOPS, "children"),
    Output(FILTER_LABEL, "children"),
    Output(LIVE.drawn, "data"),
    Output({"type": ONGOING, "row": ALL}, "children"),
    Input(ranges.WINDOW, "data"),
    Input(FILTER, "data"),
    Input(LIVE.redraw, "data"),
    Input(LIVE.pulse, "data"),
    State(LINE, "data"),
    State(LIVE.drawn, "data"),
)
def refresh(params: dict[str, Any], reason: str | None, redraw: Any, pulse: Any, line: str,
            held: dict[str, Any] | None) -> tuple[Any, ...]:
    if ranges.is_live_tick(LIVE, held, params, reason):
        return update(pulse, params, reason, held, line)
    return (*draw(params, reason, redraw, line), [no_update] * len(_ongoing_cells()))  # a new table: new cells


def draw(params: dict[str, Any], reason: str | None, _redraw: Any, line: str) -> tuple[Any, ...]:
    """Everything, whatever asked first (the page's first request, a new range or filter, a redraw)."""
    v = _view(params, reason, line)
    if "error" in v:
        empty = theme.empty_figure()
        return ranges.refused(v["error"]), empty, empty, empty, "", "", ranges.drawn(params, None, reason)
    return _full(v, params, reason, line)


def update(_pulse: Any, params: dict[str, Any], reason: str | None, held: dict[str, Any] | None,
           line: str) -> tuple[Any, ...]:
    """A live window's tick. While the stops and segments are what the browser holds
    (``structure_key``), only what goes on moves (patches, the ongoing cells); otherwise
    everything is sent again."""
    ranges.live_context(params, held, line, reason)
    v = _view(params, reason, line)
    if "error" in v:
        raise PreventUpdate
    if (held or {}).get("key") == v["key"]:
        p = v["plant"]
        return (
            summary_tiles(v["raw"], v["threshold"]),
            timeline_patch(timeline_traces(v["segments"], v["machines"], p.timezone, v["open_from"])),
            pareto_patch(data.pareto_rows(v["raw"], "duration"), "duration"),
            no_update,  # counts change only with the stops
            no_update,
            no_update,
            no_update,
            ongoing_durations(v["stops"], _ongoing_cells(), v["at"]),
        )
    return (*_full(v, params, reason, line), [no_update] * len(_ongoing_cells()))  # new table, new cells


def _ongoing_cells() -> list[dict[str, Any]]:
    """The ``ONGOING`` cells on the page when the request was made (the last output)."""
    outputs = ctx.outputs_list
    return [o["id"] for o in outputs[-1]] if len(outputs) == 8 else []


def reason_query(search: str | None) -> str | None:
    """The Pareto filter in the address bar (``?reason=<group>``)."""
    values = parse_qs((search or "").lstrip("?")).get(REASON_PARAM)
    return values[-1] if values else None


def search_with_reason(search: str | None, reason: str | None) -> str:
    query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items() if k != REASON_PARAM}
    if reason is not None:
        query[REASON_PARAM] = reason
    return "?" + urlencode(query) if query else ""


@callbacks.callback(
    Output(URL, "search"),
    Input(PARETO_DURATION, "clickData"),
    Input(PARETO_COUNT, "clickData"),
    Input(CLEAR, "n_clicks"),
    State(URL, "search"),
    prevent_initial_call=True,
)
def select_reason(by_duration: dict[str, Any] | None, by_count: dict[str, Any] | None, _clear: int | None,
                  search: str | None) -> Any:
    """Pareto bar clicked -> its reason code into the URL, which filters the stops list
    (``filter_from_url``): the table, the CSV and a bookmark agree."""
    clicked = {PARETO_DURATION: by_duration, PARETO_COUNT: by_count}.get(ctx.triggered_id)
    reason = reason_from_click(clicked) if clicked else None
    new = search_with_reason(search, reason)
    return new if new != (search or "") else no_update


@callbacks.callback(
    Output(FILTER, "data"),
    Input(URL, "search"),
    State(FILTER, "data"),
)
def filter_from_url(search: str | None, current: str | None) -> Any:
    reason = reason_query(search)
    return reason if reason != current else no_update


def reason_from_click(click: dict[str, Any]) -> str | None:
    """The Pareto group (reason code as text, or no_reason / small_stops) of a clicked bar."""
    points = click.get("points") or []
    if not points or points[0].get("customdata") is None:
        return None
    return str(points[0]["customdata"])


@callbacks.callback(
    Output(ranges.URL, "href"),
    Input(TIMELINE, "clickData"),
    State(LINE, "data"),
    State(ranges.WINDOW, "data"),
    prevent_initial_call=True,
)
def open_machine(click: dict[str, Any] | None, line: str, params: dict[str, Any] | None = None) -> Any:
    """A machine's row of the timeline clicked: its page, over the same range."""
    points = (click or {}).get("points") or []
    if not points or not points[0].get("y"):
        return no_update
    search = ranges.search_for(params) if params else ""
    return f"/line/{line}/machine/{points[0]['y']}{search}"


@callbacks.callback(
    Output(DOWNLOAD, "data"),
    Input(CSV, "n_clicks"),
    State(ranges.WINDOW, "data"),
    State(LINE, "data"),
    State(FILTER, "data"),
    prevent_initial_call=True,
)
def download_stops(_clicks: int, params: dict[str, Any], line: str, reason: str | None) -> dict[str, Any]:
    """The stops the table lists (same range, same filter), all of them."""
    at = data.now()
    window, _error = ranges.resolve_or_error(params, at)
    if window is None:
        raise PreventUpdate
    events = ordered_stops(data.downtime_events(data.downtime(line, window.start, window.end, at)), reason)
    suffix = f"-reason-{reason}" if reason is not None else ""
    return export.send_csv(stops_csv(events, data.plant().timezone),
                           f"{line}-stops-{params.get('start', 'range')}{suffix}.csv")


LIVE.declare(callbacks, FILTER)
LIVE.redraw_on(callbacks, untagged.SAVED)
