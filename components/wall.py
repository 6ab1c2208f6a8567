"""Wall screen: ``/wall`` (every line) and ``/wall/<line>``; ``?rotate=N`` shows one line
at a time, N seconds each, above a strip with every line's state (a line that goes down
is seen at once, not when its turn comes). Dark, full screen at 1920x1080, read from 5 m.

Live without reloading: a tick of the 2 s interval asks for the numbers, which land in
place (text children and tile classes via pattern-matching outputs, no re-render); the
server advances the tick when a line changed (``components.push``: the interval runs only
while the push stream is down), and only the changed lines' fields are sent. If
the server cannot be reached, a client-side watchdog greys the numbers and says
"no data since HH:MM" until answers come back; rotation also runs in the browser.
"""

from __future__ import annotations

import logging
from typing import Any

from dash import ALL, ClientsideFunction, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from components import alerts_panel, data, push, shared, theme
from components.callbacks import Callbacks
from components.i18n import _, client_texts, local, pgettext
from domain.andon import POOR_PERFORMANCE
from domain.plant import Line, Plant

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

log = logging.getLogger(__name__)

ROOT = "wall-root"
TICK = "wall-tick"
ROTATE_TICK = "wall-rotate-tick"
VIEW = "wall-view"
LAST_OK = "wall-last-ok"
LAST_SEEN = "wall-last-seen"
SHOWN = "wall-shown"  # the line versions on screen (components.push.only_changed)
BANNER = "wall-banner"
CLOCK = "wall-clock"
TILE = "wall-tile"  # {"type": TILE, "line": id}
FIELD = "wall-field"  # {"type": FIELD, "line": id, "field": name}
STRIP = "wall-strip-chip"  # {"type": STRIP, "line": id}: a line's state in the rotating wall's strip

REFRESH_MS = 2000
OFFLINE_AFTER_MS = 7000  # three missed refreshes and a bit

FIELDS = ("status", "for", "reason", "oee", "target_oee", "a", "p", "q", "output", "target", "pace",
          "target_shift", "kw", "kwh_per_good", "nodata", "stale", "strip", "untagged")


def field_id(line: str, name: str) -> dict[str, str]:
    return {"type": FIELD, "line": line, "field": name}


def _f(line: str, name: str, children: Any = "", className: str = "") -> html.Span:
    return html.Span(children, id=field_id(line, name), className=className)


def tile(line: Line) -> html.Div:
    """One line's tile; the live callback fills the fields in place."""
    lid = line.id
    return html.Div(
        id={"type": TILE, "line": lid},
        className=f"wall-tile andon-{theme.NO_DATA}",
        children=[
            html.Div(className="wall-state", children=[
                html.Div([html.Div([html.Span(lid, className="wall-line-id"),
                                    _f(lid, "untagged", "", "wall-untagged")], className="wall-line-top"),
                          html.Span(local(line.name), className="wall-line-name")], className="wall-line"),
                html.Div([_f(lid, "status", "\u2026", "wall-status"), _f(lid, "for", "", "wall-for")],
                         className="wall-status-row"),
                _f(lid, "reason", "", "wall-reason"),
                _f(lid, "stale", "", "wall-stale"),
            ]),
            html.Div(className="wall-cell wall-oee", children=[
                html.Div(_("OEE"), className="wall-label"),
                html.Div([_f(lid, "oee", theme.DASH, "wall-num-xl"), html.Span("%", className="wall-unit")]),
                html.Div([_("target") + " ", _f(lid, "target_oee", theme.pct(line.target_oee, 0))],
                         className="wall-sub"),
            ]),
            html.Div(className="wall-cell wall-apq", children=[
                html.Div([html.Span(label, className="wall-apq-key"), _f(lid, k, theme.DASH, "wall-num-m")],
                         className="wall-apq-row")
                for k, label in apq_keys()
            ]),
            html.Div(className="wall-cell wall-output", children=[
                html.Div(label(_("Output / target"), pgettext("wall, small screen", "Output")), className="wall-label"),
                html.Div([_f(lid, "output", theme.DASH, "wall-num-l"), html.Span(" / ", className="wall-slash"),
                          _f(lid, "target", theme.DASH, "wall-num-target")]),
                html.Div([_f(lid, "pace", "", "wall-pace")]),
                html.Div([*label(_("shift target"), pgettext("wall, small screen", "shift")), " ",
                          _f(lid, "target_shift", theme.DASH)], className="wall-sub"),
            ]),
            html.Div(className="wall-cell wall-energy", children=[
                html.Div(label(_("Power now"), pgettext("wall, small screen", "Power")), className="wall-label"),
                _f(lid, "kw", theme.DASH, "wall-num-m"),
                html.Div(label(_("kWh per good part"), pgettext("wall, small screen", "Per good part")),
                         className="wall-label mt-2"),
                _f(lid, "kwh_per_good", theme.DASH, "wall-num-m"),
            ]),
            _f(lid, "nodata", "", "wall-nodata"),
        ],
    )


def label(full: str, short: str) -> list[html.Span]:
    """A label in full words and in its short form, for a small wall (1024x768): the CSS
    (``assets/screens.css``) shows one of them, so the tiles' numbers keep their room."""
    return [html.Span(full, className="wall-long"), html.Span(short, className="wall-short")]


def apq_keys() -> list[tuple[str, str]]:
    """The wall's short names of availability, performance and quality (A, P, Q; 时间, 性能, 质量)."""
    return [("a", pgettext("short key", "A")), ("p", pgettext("short key", "P")), ("q", pgettext("short key", "Q"))]


def strip(lines: list[Line]) -> html.Div:
    """Every line's state, always in view on a rotating wall."""
    return html.Div(className="wall-strip", children=[
        html.Div(id={"type": STRIP, "line": ln.id}, className=f"wall-chip andon-{theme.NO_DATA}", children=[
            html.Span(ln.id, className="wall-chip-id"), _f(ln.id, "strip", "\u2026", "wall-chip-state"),
        ]) for ln in lines
    ])


def layout(plant: Plant, line: str | None = None, rotate: str | None = None, **_query: Any) -> html.Div:
    lines = [plant.line(line)] if line else list(plant.lines)
    if lines == [None]:
        return html.Div(_("No line {line} in this plant.").format(line=repr(line)), className="wall wall-missing",
                        **theme.DARK_PAGE)
    rotate_s = _rotate_seconds(rotate) if len(lines) > 1 else 0
    single = len(lines) == 1 or rotate_s > 0
    return html.Div(
        id=ROOT,
        className="wall",
        **theme.DARK_PAGE,
        children=[
            dcc.Interval(id=TICK, interval=REFRESH_MS),
            dcc.Interval(id=ROTATE_TICK, interval=max(rotate_s, 1) * 1000, disabled=rotate_s == 0),
            dcc.Store(id=VIEW, data={"lines": [ln.id for ln in lines if ln], "rotate": rotate_s,
                                      "tz": plant.timezone, "offline_after_ms": OFFLINE_AFTER_MS,
                                      "refresh_ms": REFRESH_MS, "root_class": "wall", "texts": client_texts()}),
            dcc.Store(id=LAST_OK),
            dcc.Store(id=LAST_SEEN),
            dcc.Store(id=SHOWN),
            html.Header(className="wall-header", children=[
                html.Span(local(plant.name), className="wall-plant"),
                html.Span(id=CLOCK, className="wall-clock"),
            ]),
            html.Div(id=BANNER, className="wall-banner d-none"),
            push.hook(TICK, [ln.id for ln in lines if ln], REFRESH_MS),  # pushed when a line changes
            alerts_panel.wall_alerts([ln.id for ln in lines if ln], sound=_query.get("sound") == "1"),
            html.Main([tile(ln) for ln in lines if ln],
                      className=f"wall-grid {'wall-single' if single else f'wall-rows-{len(lines)}'}"),
            *([strip([ln for ln in lines if ln])] if rotate_s > 0 else []),
        ],
    )


def _rotate_seconds(rotate: str | None) -> int:
    try:
        return max(0, min(3600, int(float(rotate or 0))))
    except ValueError:
        return 0


def tile_texts(view: dict[str, Any]) -> dict[str, str]:
    """The text of every field of one tile (pure: a ``live.line_view`` dict in)."""
    p_flag = " \u26a0" if view.get("performance_over_100") else ""
    return {
        "status": view["status_label"],
        "for": view["for"],
        "reason": (f"{view['machine']}: {view['reason']}" if view.get("machine") and view.get("reason")
                   else view.get("reason") or ""),
        "oee": theme.pct_number(view.get("oee")),
        "target_oee": theme.pct(view.get("target_oee"), 0),
        "a": _pct_sign(view.get("availability")),
        "p": _pct_sign(view.get("performance")) + p_flag,
        "q": _pct_sign(view.get("quality")),
        "output": theme.count(view.get("output")),
        "target": theme.count(view.get("target_so_far")),
        "pace": view.get("pace_text") or "",
        "target_shift": theme.count(view.get("target_shift")),
        "kw": theme.kw(view.get("kw")),
        "kwh_per_good": theme.significant(view.get("kwh_per_good"), "kWh"),
        "nodata": view.get("no_data_text") or "",
        "stale": view.get("stale_text") or "",
        "strip": f"{view['status_label']} {view['for']}".strip(),
        "untagged": untagged_text(view.get("untagged")),
    }


def untagged_text(count: Any) -> str:
    """The current shift's stops nobody gave a reason (the queue's count; empty when none)."""
    return _("{n} untagged").format(n=theme.count(count)) if theme.is_number(count) and count > 0 else ""


def _pct_sign(value: Any) -> str:
    text = theme.pct_number(value)
    return text if text == theme.DASH else f"{text}{theme.THIN_SPACE}%"


def tile_class(view: dict[str, Any]) -> str:
    classes = ["wall-tile", f"andon-{view['status']}"]
    pace = view.get("pace")
    if theme.is_number(pace):
        classes.append("pace-ahead" if pace >= 0 else "pace-behind")
    if view.get("performance_over_100"):
        classes.append("perf-over")
    if theme.is_number(view.get("performance")) and view["performance"] < POOR_PERFORMANCE:
        classes.append("perf-low")
    return " ".join(classes)


def outputs_for(views: list[dict[str, Any]], field_ids: list[dict[str, Any]], tile_ids: list[dict[str, Any]]
                ) -> tuple[list[str], list[str]]:
    """Values in the order Dash lists the matched outputs (ALL wildcards)."""
    texts = {v["line"]: tile_texts(v) for v in views}
    classes = {v["line"]: tile_class(v) for v in views}
    fields = [texts.get(i["line"], {}).get(i["field"], theme.DASH) for i in field_ids]
    tiles = [classes.get(i["line"], f"wall-tile andon-{theme.NO_DATA}") for i in tile_ids]
    return fields, tiles


def chip_classes(views: list[dict[str, Any]], chip_ids: list[dict[str, Any]]) -> list[str]:
    status = {v["line"]: v["status"] for v in views}
    return [f"wall-chip andon-{status.get(i['line'], theme.NO_DATA)}" for i in chip_ids]


def clock_text(shift_label: str, now: float, tz: str) -> str:
    return _("Shift {shift}").format(shift=shift_label.split(" ")[-1]) + f"  \u00b7  {theme.clock(now, tz)}"


@callbacks.callback(
    Output({"type": FIELD, "line": ALL, "field": ALL}, "children"),
    Output({"type": TILE, "line": ALL}, "className"),
    Output(CLOCK, "children"),
    Output(LAST_OK, "data"),
    Output({"type": STRIP, "line": ALL}, "className"),
    Output(SHOWN, "data"),
    Input(TICK, "n_intervals"),
    State(VIEW, "data"),
    State(SHOWN, "data"),
)
@shared.answer(TICK)
def refresh(_n: int | None, view: dict[str, Any], shown: dict[str, Any] | None = None) -> tuple[Any, ...]:
    try:
        views, at = data.line_views(view["lines"])
    except data.DataUnavailable:
        raise PreventUpdate from None  # the browser's watchdog shows "no data since"
    p = data.plant()
    field_ids = [o["id"] for o in ctx.outputs_list[0]]
    tile_ids = [o["id"] for o in ctx.outputs_list[1]]
    chip_ids = [o["id"] for o in ctx.outputs_list[4]] if len(ctx.outputs_list) > 4 else []
    fields, tiles = outputs_for(views, field_ids, tile_ids)
    chips = chip_classes(views, chip_ids)
    now_shown = push.shown_versions(views, data.live_token())  # pushed: only the changed lines' fields
    fields, tiles, chips = (push.only_changed(values, [i["line"] for i in ids], shown, now_shown)
                            for values, ids in ((fields, field_ids), (tiles, tile_ids), (chips, chip_ids)))
    shift = data.shift_context(p, at)
    return fields, tiles, clock_text(shift.label, at, p.timezone), {"at": at}, chips, now_shown


# Rotation, the connection watchdog and its clock live in assets/dashboard.js.
callbacks.clientside_callback(
    ClientsideFunction("oee", "rotate"),
    Output({"type": TILE, "line": ALL}, "style"),
    Input(ROTATE_TICK, "n_intervals"),
    State(VIEW, "data"),
)
callbacks.clientside_callback(
    ClientsideFunction("oee", "seen"),
    Output(LAST_SEEN, "data"),
    Input(LAST_OK, "data"),
)
callbacks.clientside_callback(
    ClientsideFunction("oee", "watchdog"),
    Output(BANNER, "children"),
    Output(BANNER, "className"),
    Output(ROOT, "className"),
    Input(TICK, "n_intervals"),
    State(LAST_SEEN, "data"),
    State(LAST_OK, "data"),
    State(VIEW, "data"),
)
