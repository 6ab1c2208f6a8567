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
rest is sent whole only when a stop starts, ends or changes. And each output only when
what it shows changed since the browser's last answer (``push.changed``: the drawn record
carries a digest per output): the tiles, the Paretos and the filter label travel only
when they moved, the stops list only when its stops did. The stops list is the heavy
part: about 110 KB at 200 rows, and patching inside it makes dash-renderer walk its
~1,400 components, which kept the browser's main thread busy for more than the 2 s
between refreshes; a cell of its own costs nothing to update.

The stops list is ``components.stops_list``, the charts ``components.downtime_charts``;
this module is the panel's layout and callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from components import data, export, panel_data, push, ranges, shared, theme, tiles, untagged
from components.callbacks import Callbacks
from components.downtime_charts import (
    pareto_figure,
    pareto_patch,
    pareto_series,
    timeline_figure,
    timeline_patch,
    timeline_traces,
)
from components.i18n import N_, _, reason_text
from components.stops_list import (
    MAX_ROWS,
    ONGOING,
    event_group,
    ongoing_durations,
    ordered_stops,
    stop_duration,
    stops_csv,
    stops_table,
)
from domain import answers
from domain.downtime import NO_REASON_GROUP, SMALL_STOP_GROUP

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
LIVE = ranges.Live("dt")
REASON_PARAM = "reason"  # ?reason=<Pareto group>: the stops list's filter, in the URL
URL = "dt-url"  # the panel's own hold on the address bar (the range bar's is ranges.URL; one writer per property)
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


# --- live ticks and tiles --------------------------------------------------------------

def structure_key(params: Any, group: str | None, events: Sequence[Mapping[str, Any]],
                  segments: dict[str, list[dict[str, Any]]], open_from: float) -> str:
    """Everything the panel shows except what grows with the clock (ongoing stops'
    durations, open segments' ends): while it is unchanged, a tick can patch."""
    segs = {m: [[s.get("start"), s.get("state"), s.get("reason_text"),
                 None if theme.is_number(s.get("end")) and float(s["end"]) >= open_from else s.get("end")]
                for s in rows] for m, rows in segments.items()}
    return push.digest([params, group, stop_fields(events), segs])


def stop_fields(events: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """What the stops list shows of each stop, but the ongoing ones' durations (they grow
    with the clock: their cells follow as ``ongoing``)."""
    return [[None if k == "duration_s" and e.get("end") is None else e.get(k)
             for k in ("machine", "start", "end", "duration_s", "reason", "reason_text", "micro", "planned",
                       "category")] for e in events]


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
        segments = panel_data.timeline_rows(data.timeline(line, window.start, window.end, at),
                                            panel_data.reason_texts(p), panel_data.setup_codes(p))
    except data.DataUnavailable:
        raise PreventUpdate from None
    events = panel_data.downtime_events(raw)
    open_from = window.end - 1  # segments and stops reaching the window's end are still going on
    return {
        "plant": p, "window": window, "at": at, "raw": raw, "segments": segments, "open_from": open_from,
        "machines": [m.id for m in cfg.machines], "stops": ordered_stops(events, reason), "events": events,
        "threshold": float(raw.get("micro_stop_threshold_s", p.micro_stop_threshold_s)),
        "key": structure_key(params, reason, events, segments, open_from),
        "pareto": {kind: panel_data.pareto_rows(raw, kind) for kind in ("duration", "count")},  # digested and sent
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


OUTPUTS = ("summary", "timeline", "by_duration", "by_count", "stops", "label")  # refresh's first six outputs


def _contents(v: dict[str, Any], params: dict[str, Any], reason: str | None) -> dict[str, Any]:
    """What each output shows, in a form cheap to digest (``push.digests``): the figures by
    their series, the stops list by the fields it shows (it is built only to be sent; who
    may classify changes with a login, which draws the page anew); ``ongoing``: the texts
    of the ongoing stops' cells as the list made with them shows them."""
    stops, rows, pareto = v["stops"], v["raw"], v["pareto"]
    return {
        "summary": summary_tiles(rows, v["threshold"]),
        "timeline": [v["machines"], timeline_traces(v["segments"], v["machines"], v["plant"].timezone, v["open_from"])],
        "by_duration": pareto_series(pareto["duration"], "duration"),
        "by_count": pareto_series(pareto["count"], "count"),
        "stops": [params, reason, stop_fields(stops)],
        "label": filter_label(reason, v["events"]),
        "ongoing": {i: stop_duration(e, v["at"]) for i, e in enumerate(stops[:MAX_ROWS]) if e.get("end") is None},
    }


def _outputs(v: dict[str, Any], params: dict[str, Any], line: str, contents: dict[str, Any], patch: bool
             ) -> dict[str, Callable[[], Any]]:
    """How each output is sent, when it is: whole, or (``patch``: the browser holds the
    figures of the same stops and segments) the timeline and the Pareto by duration as
    patches of what goes on."""
    p, pareto, search = v["plant"], v["pareto"], ranges.search_for(params)
    return {
        "summary": lambda: contents["summary"],
        "timeline": (lambda: timeline_patch(contents["timeline"][1])) if patch else
        (lambda: timeline_figure(v["segments"], v["machines"], p.timezone)),
        "by_duration": (lambda: pareto_patch(pareto["duration"], "duration")) if patch else
        (lambda: pareto_figure(pareto["duration"], "duration")),
        "by_count": lambda: pareto_figure(pareto["count"], "count"),
        "stops": lambda: stops_table(v["stops"], v["at"], p.timezone, machine_href=f"/line/{line}/machine",
                                     live_cells=True, search=search, classify=untagged.access(line),
                                     here=f"/line/{line}{search}"),
        "label": lambda: contents["label"],
    }


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
@shared.answer(LIVE.pulse)
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
    contents = _contents(v, params, reason)
    outputs = _outputs(v, params, line, contents, patch=False)
    return (*(outputs[name]() for name in OUTPUTS),
            ranges.drawn(params, v["window"], reason, key=v["key"], shown=push.digests(contents)))


def update(_pulse: Any, params: dict[str, Any], reason: str | None, held: dict[str, Any] | None,
           line: str) -> tuple[Any, ...]:
    """A live window's tick: only the outputs whose content changed since the browser's
    last answer (``push.changed``). While the stops and segments are what the browser
    holds (``structure_key``), the figures move by patches and the ongoing stops' cells
    by their texts; otherwise what changed is sent whole."""
    ranges.live_context(params, held, line, reason)
    v = _view(params, reason, line)
    if "error" in v:
        raise PreventUpdate
    contents = _contents(v, params, reason)
    shown = push.digests(contents)
    fresh = push.changed(held, shown)
    patch = (held or {}).get("key") == v["key"]
    outputs = _outputs(v, params, line, contents, patch)
    cells = _ongoing_cells()
    ongoing = ongoing_durations(v["stops"], cells, v["at"]) if "ongoing" in fresh and "stops" not in fresh \
        else [no_update] * len(cells)  # a new list comes with its cells' texts
    record = ranges.drawn(params, v["window"], reason, key=v["key"], shown=shown) if fresh or not patch else no_update
    return (*(outputs[name]() if name in fresh else no_update for name in OUTPUTS), record, ongoing)


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
    events = ordered_stops(panel_data.downtime_events(data.downtime(line, window.start, window.end, at)), reason)
    suffix = f"-reason-{reason}" if reason is not None else ""
    return export.send_csv(stops_csv(events, data.plant().timezone),
                           f"{line}-stops-{params.get('start', 'range')}{suffix}.csv")


LIVE.declare(callbacks, FILTER)
LIVE.redraw_on(callbacks, untagged.SAVED)
