"""The time-range bar of the line and machine pages, kept in the URL query string.

``?start=shift`` (named: shift, last_shift, today, yesterday, 7d, 30d) or
``?start=2025-11-24T07:00&end=2025-11-24T15:00`` (ISO 8601, plant local time when no
offset is given): the same parameters as the HTTP API, so a view can be bookmarked
and its numbers compared with ``/api``. The URL is the one source of truth; the
``WINDOW`` store carries the parameters to the panels, which resolve them at each
refresh (a live window's end moves with the clock).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from components import data, theme

RANGE = "range-choice"
CUSTOM_START = "range-custom-start"
CUSTOM_END = "range-custom-end"
CUSTOM_BOX = "range-custom-box"
APPLY = "range-apply"
WINDOW = "range-window"  # store: {"start": param, "end": param | None}
LABEL = "range-label"
TICK = "range-tick"  # refresh of live windows
URL = "range-url"  # the page's own view of the address bar (the root's is only for routing)

CUSTOM = "custom"
LIVE_REFRESH_MS = 2000


def params_from_query(query: dict[str, str]) -> dict[str, str | None]:
    start = query.get("start") or data.DEFAULT_RANGE
    end = query.get("end") or None
    return {"start": start, "end": end if start not in data.NAMED_RANGES else None}


def params_from_search(search: str | None) -> dict[str, str | None]:
    query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    return params_from_query(query)


def search_for(params: dict[str, str | None], keep: dict[str, str] | None = None) -> str:
    """Query string for a window (other parameters in ``keep`` stay)."""
    query = {k: v for k, v in (keep or {}).items() if k not in ("start", "end")}
    query["start"] = params["start"] or data.DEFAULT_RANGE
    if params.get("end"):
        query["end"] = params["end"]  # type: ignore[assignment]
    return "?" + urlencode(query)


def choice_for(params: dict[str, str | None]) -> str:
    return params["start"] if params["start"] in data.NAMED_RANGES else CUSTOM  # type: ignore[return-value]


def layout(query: dict[str, str], tz: str) -> html.Div:
    params = params_from_query(query)
    choice = choice_for(params)
    options = [{"label": label, "value": value} for value, label in data.NAMED_RANGES.items()]
    options.append({"label": "Custom", "value": CUSTOM})
    return html.Div(className="range-bar", children=[
        dcc.Location(id=URL, refresh=False),
        dcc.Store(id=WINDOW, data=params),
        dcc.Interval(id=TICK, interval=LIVE_REFRESH_MS),
        dbc.RadioItems(
            id=RANGE, options=options, value=choice, inline=True,
            className="btn-group flex-wrap", inputClassName="btn-check",
            labelClassName="btn btn-outline-primary", labelCheckedClassName="active",
        ),
        html.Div(id=CUSTOM_BOX, className="range-custom" + ("" if choice == CUSTOM else " d-none"), children=[
            dcc.Input(id=CUSTOM_START, type="datetime-local", value=data.iso_to_local_input(params["start"], tz),
                      className="form-control form-control-sm"),
            html.Span("to"),
            dcc.Input(id=CUSTOM_END, type="datetime-local", value=data.iso_to_local_input(params.get("end"), tz),
                      className="form-control form-control-sm"),
            dbc.Button("Apply", id=APPLY, size="sm", color="primary"),
        ]),
        html.Span(id=LABEL, className="range-label text-body-secondary"),
    ])


@callback(
    Output(URL, "search"),
    Output(WINDOW, "data"),
    Output(RANGE, "value"),
    Output(CUSTOM_BOX, "className"),
    Input(RANGE, "value"),
    Input(APPLY, "n_clicks"),
    Input(URL, "search"),
    State(CUSTOM_START, "value"),
    State(CUSTOM_END, "value"),
    State(WINDOW, "data"),
    prevent_initial_call=True,
)
def sync(choice: str, _apply: int | None, search: str | None, custom_start: str | None, custom_end: str | None,
         current: dict[str, Any]) -> tuple[Any, ...]:
    """Range bar -> URL, and URL (back/forward) -> range bar: the URL holds the view."""
    keep = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    trigger = ctx.triggered_id
    if trigger == URL:
        params = params_from_search(search)
        if params == current:
            return no_update, no_update, no_update, no_update
        choice = choice_for(params)
        return no_update, params, choice, _box_class(choice)
    if choice == CUSTOM and trigger == RANGE:
        return no_update, no_update, no_update, _box_class(CUSTOM)
    if choice == CUSTOM:
        if not custom_start:
            return no_update, no_update, no_update, _box_class(CUSTOM)
        tz = data.plant().timezone
        try:
            params = {"start": data.local_input_to_iso(custom_start, tz),
                      "end": data.local_input_to_iso(custom_end, tz) if custom_end else None}
        except ValueError:
            return no_update, no_update, no_update, _box_class(CUSTOM)
    else:
        params = {"start": choice, "end": None}
    return search_for(params, keep), params, no_update, _box_class(choice)


def _box_class(choice: str) -> str:
    return "range-custom" + ("" if choice == CUSTOM else " d-none")


def resolve(params: dict[str, Any] | None, at: float) -> data.Window:
    """The window for the stored parameters; a bad custom range falls back to this shift."""
    params = params or {"start": data.DEFAULT_RANGE, "end": None}
    try:
        return data.resolve_window(data.plant(), params.get("start"), params.get("end"), at)
    except ValueError:
        return data.resolve_window(data.plant(), data.DEFAULT_RANGE, None, at)


def panel_context(params: dict[str, Any] | None, line: str) -> tuple[Any, Any, data.Window, float, bool]:
    """What every line-panel refresh starts from: plant, line config, window, now, and
    whether this is an interval tick. Stops the update for an unknown line and for ticks
    of a closed (not live) window, which has nothing new to show."""
    p = data.plant()
    cfg = p.line(line)
    if cfg is None:
        raise PreventUpdate
    at = data.now()
    window = resolve(params, at)
    ticking = ctx.triggered_id == TICK
    if ticking and not window.live:
        raise PreventUpdate
    return p, cfg, window, at, ticking


def step_for(window: data.Window) -> int:
    """Bucket size for series: hours up to two days, then days."""
    return 3600 if window.end - window.start <= 2 * 86400 else 86400


@callback(Output(LABEL, "children"), Input(WINDOW, "data"), Input(TICK, "n_intervals"))
def show_window(params: dict[str, Any], _n: int | None) -> str:
    at = data.now()
    window = resolve(params, at)
    tz = data.plant().timezone
    span = f"{theme.local_datetime(window.start, tz)} \u2192 {theme.local_datetime(window.end, tz)}"
    return f"{window.label}: {span}" + (" (live)" if window.live else "")
