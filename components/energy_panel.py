"""Energy panel of the line page: kW per machine over time, kWh per good part per hour,
energy used while not running, cost and CO2.

The kW chart is the big one: ``draw`` sends it once per range; in a live window each
2 s ``update`` sends only the new points (``extendData``) and patches the per-part bars,
never the whole figures again (``ranges.Live``); the tiles and the bars only when they
changed (``push.changed``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, Patch, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from components import data, panel_data, push, ranges, shared, theme, tiles
from components.callbacks import Callbacks
from components.i18n import _
from domain import answers

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

LINE = "en-line"
TILES = "en-tiles"
POWER = "en-power"
PER_GOOD = "en-per-good"
POWER_STATE = "en-power-state"  # store: what the kW chart holds: {"params", "machines", "last_t", "step"}
LIVE = ranges.Live("en")

MAX_POINTS = 2000  # per machine in the kW chart


def layout(line: str) -> html.Section:
    return html.Section(className="panel", id="panel-energy", children=[
        dcc.Store(id=LINE, data=line),
        dcc.Store(id=POWER_STATE),
        *LIVE.stores(),
        html.H2(_("Energy"), className="panel-title"),
        html.Div(id=TILES, className="kpi-tiles"),
        dbc.Row([
            dbc.Col(dcc.Graph(id=POWER, config={"displayModeBar": False}, className="fig"), lg=7),
            dbc.Col(dcc.Graph(id=PER_GOOD, config={"displayModeBar": False}, className="fig"), lg=5),
        ]),
    ])


# --- pure builders --------------------------------------------------------------------

def power_step(window: data.Window) -> int:
    """About 500-700 points per machine whatever the range."""
    span = window.end - window.start
    for step in (60, 300, 900, 3600):
        if span / step <= 800:
            return step
    return 3600


def local_times(times: list[float], tz: str) -> list[str]:
    zone = ZoneInfo(tz)
    return [pd.Timestamp(t, unit="s", tz="UTC").tz_convert(zone).strftime("%Y-%m-%d %H:%M:%S") for t in times]


def power_figure(series: dict[str, list[tuple[float, float | None]]], machines: list[str], tz: str,
                 dark: bool = False, title: str | None = None) -> go.Figure:
    """Stacked kW per machine: the top edge is the line's draw."""
    fig = go.Figure()
    for machine in machines:
        points = series.get(machine, [])
        fig.add_scatter(x=local_times([t for t, _ in points], tz), y=[kw for _, kw in points], name=machine,
                        mode="lines", stackgroup="kw", line={"width": 1},
                        hovertemplate=f"{machine} %{{y:.1f}} kW<extra></extra>")
    fig.update_layout(template=theme.DARK if dark else theme.LIGHT, uirevision="keep", height=320,
                      title={"text": title or _("Power per machine (kW, stacked)"), "x": 0}, yaxis={"title": "kW"},
                      xaxis=theme.date_axis())
    return fig


def new_points(series: dict[str, list[tuple[float, float | None]]], machines: list[str], after: float, tz: str
               ) -> tuple[dict[str, list[list[Any]]], list[int], float] | None:
    """``extendData`` for points later than ``after`` (None when there are none)."""
    xs, ys, last = [], [], after
    for machine in machines:
        fresh = [(t, kw) for t, kw in series.get(machine, []) if t > after]
        xs.append(local_times([t for t, _ in fresh], tz))
        ys.append([kw for _, kw in fresh])
        if fresh:
            last = max(last, fresh[-1][0])
    if last <= after:
        return None
    return {"x": xs, "y": ys}, list(range(len(machines))), last


def complete(series: dict[str, list[tuple[float, float | None]]], step: int, at: float
             ) -> dict[str, list[tuple[float, float | None]]]:
    """Only buckets that have ended: a live chart never shows a half-filled last point."""
    return {m: [(t, kw) for t, kw in pts if t + step <= at] for m, pts in series.items()}


def per_good(point: answers.KpiBucket) -> float | None:
    return point["energy"]["kwh_per_good_unit"]


def per_good_figure(points: Sequence[answers.KpiBucket], tz: str, step_s: int, dark: bool = False) -> go.Figure:
    ys = [per_good(p) for p in points]
    fig = go.Figure(go.Bar(x=local_times([p["start"] for p in points], tz), y=ys,
                           xperiod=step_s * 1000, xperiodalignment="middle", width=theme.bar_width_ms(step_s),
                           marker_color=theme.ANDON_COLOURS[theme.CHANGEOVER],
                           hovertemplate="%{x}<br>%{y:.2f} " + _("kWh per good part") + "<extra></extra>"))
    fig.add_trace(theme.span_trace(theme.bucket_span([float(p["start"]) for p in points], tz, step_s)))
    fig.update_layout(template=theme.DARK if dark else theme.LIGHT, uirevision="keep", height=320, showlegend=False,
                      title={"text": _("kWh per good part, per hour") if step_s <= 3600
                             else _("kWh per good part, per day"), "x": 0},
                      yaxis={"title": _("kWh / part"), "rangemode": "tozero"}, xaxis=theme.date_axis())
    return fig


def energy_tiles(kpis: Mapping[str, Any], fallback_currency: str) -> list[Any]:
    e = kpis.get("energy") or {}
    currency = e.get("currency") or fallback_currency
    items = [
        (_("Energy"), theme.number(e.get("kwh"), 0, "kWh"), _("avg {kw}").format(kw=theme.kw(e.get("avg_kw")))),
        (_("Peak demand"), theme.kw(e.get("peak_kw")), _("highest 15-min average")),
        (_("kWh per good part"), theme.number(e.get("kwh_per_good_unit"), 2),
         _("per part {kwh}").format(kwh=theme.number(e.get("kwh_per_unit"), 2))),
        (_("While not running"), theme.number(e.get("not_running_kwh"), 0, "kWh"),
         _("{pct} of the energy").format(pct=theme.pct(e.get("not_running_share")))),
        (_("Cost"), theme.number(e.get("cost"), 0, currency), _("time-of-use tariff")),
        ("CO\u2082", theme.number(e.get("co2_kg"), 0, "kg"), _("grid emission factor")),
    ]
    return [tiles.kpi_tile(n, v, s) for n, v, s in items]


# --- callbacks ------------------------------------------------------------------------

def per_good_bars(points: Sequence[answers.KpiBucket], tz: str, step_s: int) -> dict[str, list[Any]]:
    """The bars of ``per_good_figure`` and the axis's extent: what its patch carries."""
    return {"x": local_times([p["start"] for p in points], tz), "y": [per_good(p) for p in points],
            "span": theme.bucket_span([float(p["start"]) for p in points], tz, step_s)}


def per_good_patch(bars: dict[str, list[Any]]) -> Any:
    """The bars of ``per_good_figure`` (``per_good_bars``), as a patch of its data."""
    patch: Any = Patch()
    patch["data"][0]["x"] = bars["x"]
    patch["data"][0]["y"] = bars["y"]
    return theme.span_patch(patch, bars["span"])


def live_contents(kpis: answers.Kpis, points: Sequence[answers.KpiBucket], tz: str, currency: str, step_s: int
                  ) -> dict[str, Any]:
    """What a live tick may change besides the kW chart, per output: the tiles and the
    per-part bars (``components.push`` digests them)."""
    return {"tiles": energy_tiles(kpis, currency), "per_good": per_good_bars(points, tz, step_s)}


@callbacks.callback(
    Output(TILES, "children"),
    Output(POWER, "figure"),
    Output(POWER, "extendData"),
    Output(PER_GOOD, "figure"),
    Output(POWER_STATE, "data"),
    Output(LIVE.drawn, "data"),
    Input(ranges.WINDOW, "data"),
    Input(LIVE.redraw, "data"),
    Input(LIVE.pulse, "data"),
    State(LINE, "data"),
    State(LIVE.drawn, "data"),
    State(POWER_STATE, "data"),
)
@shared.answer(LIVE.pulse)
def refresh(params: dict[str, Any], redraw: Any, pulse: Any, line: str, held: dict[str, Any] | None,
            power: dict[str, Any] | None) -> tuple[Any, ...]:
    if ranges.is_live_tick(LIVE, held, params):
        return update(pulse, params, held, line, power)
    tiles, fig, per_good, state, drawn = draw(params, redraw, line)
    return tiles, fig, no_update, per_good, state, drawn


def draw(params: dict[str, Any], _redraw: Any, line: str) -> tuple[Any, ...]:
    """Everything, whatever asked first (the page's first request, a new range, a redraw)."""
    p, cfg, window, at, error = ranges.panel_context(params, line)
    if window is None:
        empty = theme.empty_figure()
        return ranges.refused(str(error)), empty, empty, None, ranges.drawn(params, None)
    machines = [m.id for m in cfg.machines]
    step = power_step(window)
    try:
        kpis = data.line_kpis(line, window.start, window.end, at)
        bucket = ranges.step_for(window)
        points = panel_data.series_points(data.kpi_series(line, window.start, window.end, bucket, at))
        power = data.power_series(line, window.start, window.end, step, at)
        series = complete(panel_data.power_points(power), step, at)
    except data.DataUnavailable:
        raise PreventUpdate from None  # the browser asks again (ranges.REDRAW_AFTER_MS)
    last = max((pts[-1][0] for pts in series.values() if pts), default=window.start)
    state = {"params": params, "machines": machines, "last_t": last, "step": step}
    contents = live_contents(kpis, points, p.timezone, p.tariff.currency, bucket)
    return (contents["tiles"], power_figure(series, machines, p.timezone), per_good_figure(points, p.timezone, bucket),
            state, ranges.drawn(params, window, shown=push.digests(contents)))


def update(_pulse: Any, params: dict[str, Any], held: dict[str, Any] | None, line: str,
           power: dict[str, Any] | None) -> tuple[Any, ...]:
    """A live window's tick: new kW points only, the tiles and the per-part bars (patched)
    only when they changed since the browser's last answer (tiles, kW figure, kW
    extendData, per-part figure, power state, drawn record)."""
    p, cfg, window, at = ranges.live_context(params, held, line)
    machines = [m.id for m in cfg.machines]
    step = power_step(window)
    extend = bool(power) and (power or {}).get("params") == params and (power or {}).get("step") == step \
        and (power or {}).get("machines") == machines
    since = float(power["last_t"]) if extend and power else window.start
    try:
        kpis = data.line_kpis(line, window.start, window.end, at)
        bucket = ranges.step_for(window)
        points = panel_data.series_points(data.kpi_series(line, window.start, window.end, bucket, at))
        series = complete(panel_data.power_points(data.power_series(line, since, window.end, step, at)), step, at)
    except data.DataUnavailable:
        raise PreventUpdate from None
    contents = live_contents(kpis, points, p.timezone, p.tariff.currency, bucket)
    shown = push.digests(contents)
    fresh = push.changed(held, shown)
    tiles, per_good = push.unless_held({**contents, "per_good": per_good_patch(contents["per_good"])}, fresh)
    drawn = ranges.drawn(params, window, shown=shown) if fresh else no_update
    if not extend:  # the range grew into a coarser bucket size: the kW chart is drawn again
        last = max((pts[-1][0] for pts in series.values() if pts), default=window.start)
        state = {"params": params, "machines": machines, "last_t": last, "step": step}
        return tiles, power_figure(series, machines, p.timezone), no_update, per_good, state, drawn
    got = new_points(series, machines, since, p.timezone)
    if got is None:
        return tiles, no_update, no_update, per_good, no_update, drawn
    new, indices, last = got
    return tiles, no_update, (new, indices, MAX_POINTS), per_good, {**(power or {}), "last_t": last}, drawn


LIVE.declare(callbacks)
