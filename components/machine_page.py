"""Machine page ``/line/<line>/machine/<machine>``: live state, KPIs, state timeline,
signals (kW, parts per hour), the machine's stops and its flags (readings not counted
because the machine cannot have made them), over the range in the URL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from components import (
    data,
    downtime_charts,
    energy_panel,
    line_view,
    oee_panel,
    panel_data,
    push,
    ranges,
    shared,
    stops_list,
    theme,
    untagged,
)
from components.callbacks import Callbacks
from components.i18n import N_, _, local
from components.overview import LINE_LINK, nav
from domain import andon
from domain.model import parse_state
from domain.plant import Plant

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

IDS = "mc-ids"  # store: {"line", "machine"}
LIVE = "mc-live"
TILES = "mc-tiles"
NOTE = "mc-note"
TIMELINE = "mc-timeline"
POWER = "mc-power"
PARTS = "mc-parts"
STOPS = "mc-stops"
LIVE_IDS = ranges.Live("mc")
OUTPUTS = ("live", "tiles", "note", "timeline", "power", "parts", "stops")  # refresh's outputs before the record
FLAG_SIGNALS = {"good": (N_("Good counter"), N_("parts")), "reject": (N_("Reject counter"), N_("parts")),
                "energy_kwh": (N_("Energy meter"), "kWh"), "power_kw": (N_("Power"), "kW")}
FLAG_KINDS = {"implausible_delta": N_("Implausible jump (not counted)"),
              "implausible_power": N_("Above maximum power (not used)"),
              "future_timestamp": N_("Timestamp in the future (not used)"),
              "old_timestamp": N_("Timestamp too old (not used)")}


def layout(plant: Plant, line: str, machine: str, query: dict[str, str]) -> html.Div:
    cfg = plant.line(line)
    mcfg = cfg.machine(machine) if cfg else None
    if cfg is None or mcfg is None:
        return html.Div([nav(plant), dbc.Container(html.P(
            _("No machine {machine} on line {line}.").format(machine=repr(machine), line=repr(line))))])
    search = ranges.search_for(ranges.params_from_query(query, plant.timezone))
    graph: dict[str, Any] = {"config": {"displayModeBar": False}, "className": "fig"}
    return html.Div(className="machine-page", **theme.LIGHT_PAGE, children=[
        dcc.Store(id=IDS, data={"line": line, "machine": machine}),
        *LIVE_IDS.stores(),
        nav(plant, f"/line/{line}", search, here=f"/line/{line}/machine/{machine}"),
        dbc.Container(fluid=True, children=[
            html.Div(className="page-head", children=[
                html.Div([dcc.Link(_("Overview"), href="/"), " / ", dcc.Link(cfg.id, href=f"/line/{line}{search}",
                                                                    id={"type": LINE_LINK, "line": line,
                                                                        "place": "crumbs"}),
                          " / ", html.Span(mcfg.id)], className="crumbs"),
                html.H1(f"{mcfg.id} \u00b7 {local(mcfg.name)}" if mcfg.name else mcfg.id, className="h4 mb-2"),
                html.Div(_("Ideal cycle time {seconds} s").format(seconds=f"{mcfg.ideal_cycle_time_s:g}"),
                         className="text-body-secondary small"),
                dcc.Link(_("Untagged stops"), href=f"/line/{line}/untagged?machine={machine}",  # issue 11
                         className="btn btn-sm btn-outline-danger mt-2",
                         style={"minHeight": "44px", "display": "inline-flex", "alignItems": "center"}),
            ]),
            html.Div(id=LIVE, className="machine-live"),
            ranges.layout(query, plant.timezone, line),
            html.Section(className="panel", children=[
                html.H2(_("KPIs"), className="panel-title"),
                html.Div(id=TILES, className="kpi-tiles"),
                html.Div(id=NOTE, className="panel-note"),
                dcc.Graph(id=TIMELINE, **graph),
                dbc.Row([dbc.Col(dcc.Graph(id=POWER, **graph), lg=6), dbc.Col(dcc.Graph(id=PARTS, **graph), lg=6)]),
                html.H3(_("Stops"), className="h6 mt-2"),
                html.Div(id=STOPS, className="table-responsive stops"),
            ]),
            untagged.classify_dialog(plant, line),
        ]),
    ])


def live_card(machine: Mapping[str, Any] | None, now: float, tz: str) -> Any:
    if not machine:
        return html.Div(_("No live data for this machine."), className=f"live-card andon-{theme.NO_DATA}")
    state = parse_state(machine.get("state"))
    stale = not andon.machine_is_live(machine)
    status = theme.NO_DATA if stale else andon.andon_of(state, andon.reason_of(machine))
    since = machine.get("since")
    label = theme.label(theme.ANDON_LABELS, status) if status == theme.CHANGEOVER else \
        theme.label(theme.STATE_LABELS, state)
    head = theme.since_text(andon.last_data([machine]), now, tz) if stale else \
        f"{label} {line_view.since_for(since, now, tz) or theme.DASH}"
    reason = "" if stale or state == state.RUNNING else line_view.reason_text(andon.reason_of(machine), state)
    facts = [(_("Power"), theme.kw(machine.get("power_kw"))), (_("Good counter"), theme.count(machine.get("good"))),
             (_("Reject counter"), theme.count(machine.get("reject"))),
             (_("Energy meter"), theme.number(machine.get("energy_kwh"), 1, "kWh"))]
    refused = [f"{node.get('signal')} ({node.get('node_id') or ''} {node.get('status') or ''})".replace(" )", ")")
               for node in machine.get("bad_nodes") or []]
    return html.Div(className=f"live-card andon-{status}", children=[
        html.Div([html.Span(head, className="live-state"), html.Span(reason, className="live-reason")]),
        html.Div([html.Span([html.Span(k, className="live-key"), v], className="live-fact") for k, v in facts],
                 className="live-facts"),
        html.Div([_("Not collected, refused by the OPC UA server:"), " ", "; ".join(refused)],
                 className="live-refused") if refused else None,
    ])


def parts_figure(points: Sequence[Mapping[str, Any]], tz: str, step_s: int) -> go.Figure:
    xs = energy_panel.local_times([p["start"] for p in points], tz)
    fig = go.Figure()
    fig.add_bar(x=xs, y=[p.get("good_count") for p in points], name=_("good"), xperiod=step_s * 1000,
                xperiodalignment="middle",
                marker_color=theme.ANDON_COLOURS[theme.RUNNING])
    fig.add_bar(x=xs, y=[p.get("reject_count") for p in points], name=_("rejects"), xperiod=step_s * 1000,
                xperiodalignment="middle",
                marker_color=theme.ANDON_COLOURS[theme.DOWN])
    fig.update_layout(template=theme.LIGHT, uirevision="keep", barmode="stack", height=300, xaxis=theme.date_axis(),
                      title={"text": _("Parts per hour") if step_s <= 3600 else _("Parts per day"), "x": 0})
    return fig


def flags_list(flags: Sequence[Mapping[str, Any]], tz: str) -> Any:
    """The machine's flags (newest first, as the reader lists them): when, which signal,
    what was rejected. Shown so a figure that looks low can be trusted or explained."""
    if not flags:
        return html.Div()
    head = html.Thead(html.Tr([html.Th(h) for h in (_("Time"), _("Signal"), _("Rejected"), _("Kind"))]))
    rows = []
    for f in flags:
        label, unit = FLAG_SIGNALS.get(str(f.get("signal")), (str(f.get("signal", "")), ""))
        kind = FLAG_KINDS.get(str(f.get("kind")))
        rows.append(html.Tr([html.Td(theme.local_datetime(f.get("ts"), tz, seconds=True)), html.Td(_(label)),
                             html.Td(rejected_text(f.get("value"), _(unit))),
                             html.Td(_(kind) if kind else str(f.get("kind", "")))]))
    return html.Div(className="machine-flags", children=[
        html.H3(_("Flags"), className="h6 mt-3"),
        dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, className="flags-table"),
    ])


def rejected_text(value: object, unit: str) -> str:
    """A rejected delta or reading: exact up to billions (3 999 999 891 parts), else 1e+308."""
    if not theme.is_number(value):
        return theme.DASH if value is None else str(value)
    v = float(value)
    if abs(v) >= 1e12:
        return f"{v:.3g} {unit}".strip()
    return f"{theme.count(v) if v.is_integer() else theme.number(v, 2)} {unit}".strip()


def view(params: dict[str, Any], ids: dict[str, str]) -> tuple[Any, ...]:
    """The page's seven outputs for a range, and its ``ranges.Live`` drawn record (with
    the outputs' digests, ``push.digests``)."""
    p = data.plant()
    line, machine = ids["line"], ids["machine"]
    at = data.now()
    window, error = ranges.resolve_or_error(params, at)
    if window is None:
        empty = theme.empty_figure()
        return (no_update, ranges.refused(str(error)), "", empty, empty, empty, "", ranges.drawn(params, None))
    step = ranges.step_for(window)
    pstep = energy_panel.power_step(window)
    try:
        lines = {ln["id"]: ln for ln in data.live_lines(at)}
        kpis = data.machine_kpis(line, machine, window.start, window.end, at)
        segments = panel_data.timeline_rows(data.timeline(line, window.start, window.end, at),
                                            panel_data.reason_texts(p), panel_data.setup_codes(p))
        power = panel_data.power_points(data.power_series(line, window.start, window.end, pstep, at))
        points = panel_data.series_points(data.kpi_series(line, window.start, window.end, step, at, machine=machine))
        events = [e for e in panel_data.downtime_events(data.downtime(line, window.start, window.end, at))
                  if e.get("machine") == machine]
    except data.DataUnavailable:
        raise PreventUpdate from None
    live_line = lines.get(line)
    live_machine = next((m for m in live_line["machines"] if m["id"] == machine), None) if live_line else None
    contents = dict(zip(OUTPUTS, (
        live_card(live_machine, at, p.timezone),
        oee_panel.kpi_tiles(kpis),
        oee_panel.threshold_note(kpis, p.micro_stop_threshold_s),
        downtime_charts.timeline_figure(segments, [machine], p.timezone, height=170, title=_("State timeline")),
        energy_panel.power_figure(energy_panel.complete(power, pstep, at), [machine], p.timezone,
                                  title=_("Power (kW, average per bucket)")),
        parts_figure(points, p.timezone, step),
        html.Div([stops_list.stops_table(stops_list.ordered_stops(events), at, p.timezone,
                                         classify=untagged.access(line),
                                         here=f"/line/{line}/machine/{machine}{ranges.search_for(params)}"),
                  flags_list(kpis["flags"]["implausible"], p.timezone)]),
    ), strict=True))
    return (*contents.values(), ranges.drawn(params, window, shown=push.digests(contents)))


@callbacks.callback(
    Output(LIVE, "children"),
    Output(TILES, "children"),
    Output(NOTE, "children"),
    Output(TIMELINE, "figure"),
    Output(POWER, "figure"),
    Output(PARTS, "figure"),
    Output(STOPS, "children"),
    Output(LIVE_IDS.drawn, "data"),
    Input(ranges.WINDOW, "data"),
    Input(LIVE_IDS.redraw, "data"),
    Input(LIVE_IDS.pulse, "data"),
    State(IDS, "data"),
    State(LIVE_IDS.drawn, "data"),
)
@shared.answer(LIVE_IDS.pulse)
def refresh(params: dict[str, Any], redraw: Any, pulse: Any, ids: dict[str, str], held: dict[str, Any] | None
            ) -> tuple[Any, ...]:
    if ranges.is_live_tick(LIVE_IDS, held, params):
        return update(pulse, params, held, ids)
    return draw(params, redraw, ids)


def draw(params: dict[str, Any], _redraw: Any, ids: dict[str, str]) -> tuple[Any, ...]:
    """Everything, whatever asked first (the page's first request, a new range, a redraw)."""
    return view(params, ids)


def update(_pulse: Any, params: dict[str, Any], held: dict[str, Any] | None, ids: dict[str, str]) -> tuple[Any, ...]:
    """A live window's tick: the page again (one machine: small), but only the outputs
    that changed since the browser's last answer (``push.changed``), and the drawn record
    with their digests."""
    if not ranges.is_drawn(held, params) or not (held or {}).get("live"):
        raise PreventUpdate
    *out, drawn = view(params, ids)
    if not drawn.get("live"):
        raise PreventUpdate
    fresh = push.changed(held, drawn[push.SHOWN])
    return (*push.unless_held(dict(zip(OUTPUTS, out, strict=True)), fresh), drawn if fresh else no_update)


LIVE_IDS.declare(callbacks)
LIVE_IDS.redraw_on(callbacks, untagged.SAVED)
