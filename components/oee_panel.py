"""OEE panel of the line page: A/P/Q/OEE tiles, OEE per hour against the line's target,
the loss waterfall, and the shift comparison table with CSV download.

``draw`` sends everything when the range changes (or a draw went missing); in a live
window ``update`` follows every 2 s and patches the hourly chart and the waterfall
(``dash.Patch``: only the values travel) of the figures ``draw`` made (``ranges.Live``),
each output only when its content changed (``push.changed``).
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

from components import data, export, panel_data, push, ranges, shared, theme, tiles, untagged
from components.callbacks import Callbacks
from components.i18n import N_, _
from domain import answers, calendar
from domain.plant import Plant

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

TILES = "oee-tiles"
HOURLY = "oee-hourly"
WATERFALL = "oee-waterfall"
THRESHOLD = "oee-threshold"
SHIFTS = "oee-shifts"
SHIFTS_CSV = "oee-shifts-csv"
SHIFTS_DOWNLOAD = "oee-shifts-download"
LINE = "oee-line"  # store: the line id
LIVE = ranges.Live("oee")

MAX_SHIFTS = 93  # a month of three shifts


def layout(line: str) -> html.Section:
    return html.Section(className="panel", id="panel-oee", children=[
        dcc.Store(id=LINE, data=line),
        *LIVE.stores(),
        html.H2(_("OEE"), className="panel-title"),
        html.Div(id=TILES, className="kpi-tiles"),
        html.Div(id=THRESHOLD, className="panel-note"),
        dbc.Row([
            dbc.Col(dcc.Graph(id=HOURLY, config={"displayModeBar": False}, className="fig"), lg=7),
            dbc.Col(dcc.Graph(id=WATERFALL, config={"displayModeBar": False}, className="fig"), lg=5),
        ]),
        html.Div(className="d-flex align-items-center justify-content-between mt-3", children=[
            html.H3(_("Shifts in this range"), className="h6 mb-0"),
            dbc.Button(_("Download CSV"), id=SHIFTS_CSV, size="sm", color="secondary", outline=True),
        ]),
        dcc.Download(id=SHIFTS_DOWNLOAD),
        html.Div(id=SHIFTS, className="table-responsive"),
    ])


# --- pure builders --------------------------------------------------------------------

def kpi_tiles(kpis: Mapping[str, Any], target_oee: float | None = None) -> list[Any]:
    flags = kpis.get("flags") or {}
    over = bool(flags.get("performance_over_100"))
    rows = [
        (_("OEE"), kpis.get("oee"), _("target {pct}").format(pct=theme.pct(target_oee, 0)) if target_oee
         else _("A \u00d7 P \u00d7 Q"), "kpi-oee"),
        (_("Availability"), kpis.get("availability"),
         _("run {run} of {planned} planned").format(run=theme.duration(kpis.get("run_s")),
                                                     planned=theme.duration(kpis.get("planned_busy_s"))), ""),
        (_("Performance"), kpis.get("performance"),
         _("over 100 %: check the ideal cycle time") if over
         else _("{n} parts").format(n=theme.count(kpis.get("total_count"))),
         "kpi-flag" if over else ""),
        (_("Quality"), kpis.get("quality"),
         _("{good} good, {rejects} rejects").format(good=theme.count(kpis.get("good_count")),
                                                    rejects=theme.count(kpis.get("reject_count"))), ""),
        (_("TEEP"), kpis.get("teep"), _("OEE over all calendar time"), ""),
    ]
    out = []
    for name, value, sub, extra in rows:
        if extra == "kpi-oee":
            extra = ""
            if target_oee and theme.is_number(value):
                extra = "kpi-good" if value >= target_oee else "kpi-bad"
        out.append(tiles.kpi_tile(name, theme.pct(value), sub, extra))
    return out


def threshold_note(kpis: Mapping[str, Any], default_s: float) -> str:
    flags = kpis.get("flags") or {}
    threshold = flags.get("micro_stop_threshold_s", default_s)
    micro = kpis.get("micro_stop_s")
    unknown = kpis.get("unknown_s")
    parts = [_("Micro-stop threshold {threshold}: unexplained stops shorter than this count as small stops "
               "(performance), longer ones as downtime (availability).").format(threshold=theme.duration(threshold))]
    if theme.is_number(micro):
        parts.append(_("Small stops in range: {duration}.").format(duration=theme.duration(micro)))
    if theme.is_number(unknown) and unknown > 0:
        parts.append(_("No data for {duration} of planned time (neither run nor down).").format(
            duration=theme.duration(unknown)))
    return " ".join(parts)


def hourly_points(series: Any) -> Sequence[Mapping[str, Any]]:
    return panel_data.series_points(series)


def hourly_xy(points: Sequence[Mapping[str, Any]], tz: str) -> tuple[list[str], list[float | None]]:
    zone = ZoneInfo(tz)
    xs = [pd.Timestamp(p["start"], unit="s", tz="UTC").tz_convert(zone).strftime("%Y-%m-%d %H:%M") for p in points]
    ys = [round(p["oee"] * 100, 1) if theme.is_number(p.get("oee")) else None for p in points]
    return xs, ys


def hourly_colours(ys: list[float | None], target_oee: float) -> list[str]:
    return [theme.ANDON_COLOURS[theme.RUNNING] if y is not None and y >= target_oee * 100 else
            theme.ANDON_COLOURS[theme.DOWN] for y in ys]


def hourly_figure(points: Sequence[Mapping[str, Any]], target_oee: float, tz: str, step_s: int = 3600,
                  dark: bool = False) -> go.Figure:
    xs, ys = hourly_xy(points, tz)
    fig = go.Figure(go.Bar(x=xs, y=ys, marker_color=hourly_colours(ys, target_oee), name=_("OEE"),
                           xperiod=step_s * 1000, xperiodalignment="middle", width=theme.bar_width_ms(step_s),
                           hovertemplate="%{x}<br>" + _("OEE") + " %{y:.1f} %<extra></extra>"))
    fig.add_trace(theme.span_trace(theme.bucket_span([float(p["start"]) for p in points], tz, step_s)))
    fig.add_hline(y=target_oee * 100, line_dash="dash", line_color="#6c757d",
                  annotation_text=_("target {pct}").format(pct=f"{target_oee * 100:.0f} %"),
                  annotation_position="top left")
    fig.update_layout(template=theme.DARK if dark else theme.LIGHT, uirevision="keep", height=300,
                      title={"text": _("OEE per hour") if step_s <= 3600 else _("OEE per day"), "x": 0},
                      yaxis={"title": "%", "rangemode": "tozero"}, xaxis=theme.date_axis(), showlegend=False)
    return fig


STEP_LABELS = {
    "planned_busy_time": N_("Planned busy time"),
    "unknown": N_("No data"),
    "availability_losses": N_("Availability losses"),
    "performance_losses": N_("Performance losses"),
    "quality_losses": N_("Quality losses"),
    "fully_productive_time": N_("Fully productive"),
}


SHORT_LABELS = {
    "Planned busy time": N_("Planned"),
    "Availability losses": N_("Availability"),
    "Performance losses": N_("Performance"),
    "Quality losses": N_("Quality"),
    "Fully productive": N_("Productive"),
}


def waterfall_steps(kpis: answers.Kpis | answers.MachineKpis) -> list[tuple[str, float]]:
    """(label, signed hours) from planned busy time through the losses to fully
    productive time. The reader's ``losses.waterfall`` (``domain.kpi``) lists totals
    and losses as positive seconds; losses and excluded time become negative steps."""
    steps = []
    for item in kpis["losses"]["waterfall"]:
        name = item["step"]
        sign = -1.0 if item["kind"] in ("loss", "excluded") else 1.0
        steps.append((STEP_LABELS.get(name, name.replace("_", " ").capitalize()), sign * item["seconds"] / 3600))
    return steps


def waterfall_figure(steps: list[tuple[str, float]], dark: bool = False) -> go.Figure:
    measures = ["absolute"] + ["relative"] * (len(steps) - 2) + ["total"] if len(steps) >= 2 else ["absolute"]
    fig = go.Figure(go.Waterfall(
        x=[_(SHORT_LABELS.get(s[0], s[0])) for s in steps], y=[round(s[1], 3) for s in steps], measure=measures,
        customdata=[_(s[0]) for s in steps],
        decreasing={"marker": {"color": theme.ANDON_COLOURS[theme.DOWN]}},
        increasing={"marker": {"color": theme.ANDON_COLOURS[theme.RUNNING]}},
        totals={"marker": {"color": theme.ANDON_COLOURS[theme.CHANGEOVER]}},
        connector={"line": {"color": "#adb5bd"}},
        hovertemplate="%{customdata}: %{y:.2f} h<extra></extra>",
    ))
    fig.update_layout(template=theme.DARK if dark else theme.LIGHT, uirevision="keep", height=300, showlegend=False,
                      title={"text": _("Where the planned time went (hours)"), "x": 0}, yaxis={"title": "h"},
                      xaxis={"tickangle": -30, "automargin": True})
    return fig


def shift_rows(shift_kpis: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per shift instance: the same numbers the API gives for that window."""
    rows = []
    for inst, k in shift_kpis:
        rows.append({
            "shift": inst.label,
            "availability": k.get("availability"),
            "performance": k.get("performance"),
            "quality": k.get("quality"),
            "oee": k.get("oee"),
            "good_count": k.get("good_count"),
            "reject_count": k.get("reject_count"),
            "down_s": k.get("down_s"),
            "alerts": k.get("alerts"),
        })
    return rows


def shift_table(rows: list[dict[str, Any]], target_oee: float | None = None) -> Any:
    if not rows:
        return html.P(_("No shift in this range."), className="text-body-secondary")
    head = html.Thead(html.Tr([html.Th(h) for h in (_("Shift"), _("A"), _("P"), _("Q"), _("OEE"), _("Good"),
                                                     _("Rejects"), _("Down"), _("Alerts"))]))
    body = []
    for r in rows:
        oee_cls = ""
        if target_oee and theme.is_number(r["oee"]):
            oee_cls = "text-success fw-semibold" if r["oee"] >= target_oee else "text-danger fw-semibold"
        body.append(html.Tr([
            html.Td(r["shift"]), html.Td(theme.pct(r["availability"])), html.Td(theme.pct(r["performance"])),
            html.Td(theme.pct(r["quality"])), html.Td(theme.pct(r["oee"]), className=oee_cls),
            html.Td(theme.count(r["good_count"])), html.Td(theme.count(r["reject_count"])),
            html.Td(theme.duration(r["down_s"])), html.Td(theme.count(r.get("alerts"))),
        ]))
    return dbc.Table([head, html.Tbody(body)], size="sm", hover=True, striped=True, className="shift-table")


SHIFT_COLUMNS = {"shift": N_("Shift"), "availability": N_("Availability"), "performance": N_("Performance"),
                 "quality": N_("Quality"), "oee": N_("OEE"), "good_count": N_("Good parts"),
                 "reject_count": N_("Rejects"), "down_s": N_("Down (s)")}


def shifts_csv(rows: list[dict[str, Any]]) -> str:
    """The shift table as CSV, headers in the page's language (``export.headers``)."""
    frame = pd.DataFrame(rows, columns=list(SHIFT_COLUMNS))
    return export.csv_text(frame.rename(columns=export.headers(SHIFT_COLUMNS)))


# --- data + callbacks -----------------------------------------------------------------

def shift_kpis(line: str, window: data.Window, at: float) -> list[tuple[Any, dict[str, Any]]]:
    p = data.plant()
    shifts = calendar.shifts_overlapping(p.shifts, ZoneInfo(p.timezone), window.start, window.end)
    shifts = [s for s in shifts if s.start < at][-MAX_SHIFTS:]
    return [(s, {**data.line_kpis(line, max(s.start, window.start), min(s.end, window.end, at), at),
                 "alerts": data.alert_count(line, s.start, s.end)}) for s in shifts]


@callbacks.callback(
    Output(TILES, "children"),
    Output(THRESHOLD, "children"),
    Output(HOURLY, "figure"),
    Output(WATERFALL, "figure"),
    Output(SHIFTS, "children"),
    Output(LIVE.drawn, "data"),
    Input(ranges.WINDOW, "data"),
    Input(LIVE.redraw, "data"),
    Input(LIVE.pulse, "data"),
    State(LINE, "data"),
    State(LIVE.drawn, "data"),
)
@shared.answer(LIVE.pulse)
def refresh(params: dict[str, Any], redraw: Any, pulse: Any, line: str, held: dict[str, Any] | None
            ) -> tuple[Any, ...]:
    if ranges.is_live_tick(LIVE, held, params):
        tiles, note, hourly, water, drawn = update(pulse, params, held, line)
        return tiles, note, hourly, water, no_update, drawn
    return draw(params, redraw, line)


def draw(params: dict[str, Any], _redraw: Any, line: str) -> tuple[Any, ...]:
    """Everything, whatever asked first (the page's first request, a new range, a redraw)."""
    p, cfg, window, at, error = ranges.panel_context(params, line)
    if window is None:
        empty = theme.empty_figure()
        return ranges.refused(str(error)), "", empty, empty, "", ranges.drawn(params, None)
    try:
        kpis = data.line_kpis(line, window.start, window.end, at)
        step = ranges.step_for(window)
        points = hourly_points(data.kpi_series(line, window.start, window.end, step, at))
        table = shift_table(shift_rows(shift_kpis(line, window, at)), cfg.target_oee)
    except data.DataUnavailable:
        raise PreventUpdate from None  # the browser asks again (ranges.REDRAW_AFTER_MS)
    contents = live_contents(kpis, points, cfg.target_oee, p, step)
    return (contents["tiles"], contents["note"], hourly_figure(points, cfg.target_oee, p.timezone, step),
            waterfall_figure(waterfall_steps(kpis)), table,
            ranges.drawn(params, window, shown=push.digests(contents)))


def live_contents(kpis: answers.Kpis, points: Sequence[Mapping[str, Any]], target_oee: float, p: Plant,
                  step_s: float) -> dict[str, Any]:
    """What a live tick may change, per output: the tiles, the note, the hourly bars (the
    lists their patch carries) and the waterfall's heights."""
    xs, ys = hourly_xy(points, p.timezone)
    return {"tiles": kpi_tiles(kpis, target_oee), "note": threshold_note(kpis, p.micro_stop_threshold_s),
            "hourly": {"x": xs, "y": ys, "color": hourly_colours(ys, target_oee),
                       "span": theme.bucket_span([float(x["start"]) for x in points], p.timezone, step_s)},
            "waterfall": [round(s[1], 3) for s in waterfall_steps(kpis)]}


def update(_pulse: Any, params: dict[str, Any], held: dict[str, Any] | None, line: str) -> tuple[Any, ...]:
    """A live window's tick: of the tiles, the note, the hourly bars and the waterfall
    (patched), only those that changed since the browser's last answer; the drawn record
    with their digests (``components.push``)."""
    p, cfg, window, at = ranges.live_context(params, held, line)
    step = ranges.step_for(window)
    try:
        kpis = data.line_kpis(line, window.start, window.end, at)
        points = hourly_points(data.kpi_series(line, window.start, window.end, step, at))
    except data.DataUnavailable:
        raise PreventUpdate from None
    contents = live_contents(kpis, points, cfg.target_oee, p, step)
    shown = push.digests(contents)
    fresh = push.changed(held, shown)
    hourly: Any = Patch()
    hourly["data"][0]["x"] = contents["hourly"]["x"]
    hourly["data"][0]["y"] = contents["hourly"]["y"]
    hourly["data"][0]["marker"]["color"] = contents["hourly"]["color"]
    theme.span_patch(hourly, contents["hourly"]["span"])
    water: Any = Patch()
    water["data"][0]["y"] = contents["waterfall"]
    sent = {**contents, "hourly": hourly, "waterfall": water}
    return (*push.unless_held(sent, fresh), ranges.drawn(params, window, shown=shown) if fresh else no_update)


@callbacks.callback(
    Output(SHIFTS_DOWNLOAD, "data"),
    Input(SHIFTS_CSV, "n_clicks"),
    State(ranges.WINDOW, "data"),
    State(LINE, "data"),
    prevent_initial_call=True,
)
def download_shifts(_clicks: int, params: dict[str, Any], line: str) -> dict[str, Any]:
    at = data.now()
    window, _error = ranges.resolve_or_error(params, at)
    if window is None:
        raise PreventUpdate
    rows = shift_rows(shift_kpis(line, window, at))
    return export.send_csv(shifts_csv(rows), f"{line}-shifts-{params.get('start', 'range')}.csv")


LIVE.declare(callbacks)
LIVE.redraw_on(callbacks, untagged.SAVED)  # a stop re-filed as planned changes availability
