"""Overview ``/`` for tablets: every line as a card; tap a card to open the line.

Light theme, 768-1920 px wide, touch targets no smaller than a thumb. Cards update
in place (pattern-matching outputs on text, classes and the output bar) when a line
changes (``components.push``; every 2 s while the push stream is down).
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qs, urlencode

import dash_bootstrap_components as dbc
from dash import ALL, ClientsideFunction, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from components import alerts_panel, data, i18n, push, shared, theme
from components.callbacks import Callbacks
from components.i18n import _, local
from components.wall import OFFLINE_AFTER_MS, REFRESH_MS, apq_keys
from domain.plant import Line, Plant

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

ROOT = "ov-root"
TICK = "ov-tick"
VIEW = "ov-view"
LAST_OK = "ov-last-ok"
LAST_SEEN = "ov-last-seen"
SHOWN = "ov-shown"  # the line versions on screen (components.push.only_changed)
BANNER = "ov-banner"
SHIFT = "ov-shift"
CARD = "ov-card"  # {"type": CARD, "line": id}
BAR = "ov-bar"  # {"type": BAR, "line": id}
FIELD = "ov-field"  # {"type": FIELD, "line": id, "field": name}
LINE_LINK = "line-link"  # {"type": LINE_LINK, "line": id, "place": "nav" | "crumbs"}: keeps the range (line_page)


def _f(line: str, name: str, children: Any = theme.DASH, className: str = "") -> html.Span:
    return html.Span(children, id={"type": FIELD, "line": line, "field": name}, className=className)


def nav(plant: Plant, active: str = "/", search: str = "", here: str | None = None) -> dbc.Navbar:
    """The app's bar; on line and machine pages (``search``: their range) line links keep the range.
    ``here``: this page's path, for the language switch (a full load of the same view)."""
    def link(href: str, text: str, line: str | None = None) -> Any:
        cls = "nav-link active" if href == active else "nav-link"
        if line is None or not search:
            return dcc.Link(text, href=href, className=cls)
        return dcc.Link(text, href=f"{href}{search}", className=cls,
                        id={"type": LINE_LINK, "line": line, "place": "nav"})

    items = [link("/", _("Overview"))] + [link(f"/line/{ln.id}", ln.id, ln.id) for ln in plant.lines]
    items.append(link("/wall", _("Wall screen")))
    if manages_reasons():
        items.append(link("/admin/reasons", _("Reason lists")))
    items.append(language_switch(here or active, search))
    return dbc.Navbar(
        dbc.Container([
            dcc.Link(local(plant.name), href="/", className="navbar-brand"),
            dbc.Nav([dbc.NavItem(i) for i in items], className="ms-auto flex-wrap"),
        ], fluid=True),
        color="dark", dark=True, className="mb-3 app-nav",
    )


def manages_reasons() -> bool:
    """The caller is logged in as someone who manages reason lists (engineers, admins)."""
    from redis.exceptions import RedisError

    from api import auth, context
    from domain.roles import PERMISSIONS, Action

    if not context.has_request() or not auth.installed():
        return False
    try:
        who = auth.current_principal()
    except RedisError:
        return False
    return who is not None and Action.MANAGE_REASONS in PERMISSIONS.get(who.role, frozenset())


def language_switch(path: str, search: str = "") -> html.A:
    """A link to the same page in the other language: a full load, so the page, its
    callbacks and the cookie all change together (``components.i18n``)."""
    other = "en" if i18n.current() != "en" else "zh-CN"
    query = {k: v[-1] for k, v in parse_qs(search.lstrip("?")).items() if k != i18n.QUERY}
    query[i18n.QUERY] = other
    return html.A(i18n.NAMES[other], href=f"{path}?{urlencode(query)}", className="nav-link lang-switch",
                  lang=other, title=_("Language"))


def card(line: Line) -> dbc.Col:
    lid = line.id
    return dbc.Col(
        dcc.Link(href=f"/line/{lid}", className="ov-link", children=dbc.Card(
            id={"type": CARD, "line": lid},
            className=f"ov-card andon-{theme.NO_DATA}",
            children=[
                html.Div(className="ov-head", children=[
                    html.Div([html.Span(lid, className="ov-id"), html.Span(local(line.name), className="ov-name")]),
                    html.Div([_f(lid, "status", "\u2026", "ov-status"), _f(lid, "for", "", "ov-for")],
                             className="ov-badge"),
                ]),
                dbc.CardBody([
                    html.Div(_f(lid, "reason", "", "ov-reason"), className="ov-reason-row"),
                    html.Div(className="ov-kpis", children=[
                        html.Div([html.Div(_("OEE"), className="ov-label"), _f(lid, "oee", theme.DASH, "ov-oee"),
                                  html.Div([_("target") + " ", theme.pct(line.target_oee, 0)], className="ov-sub")]),
                        html.Div(className="ov-apq", children=[
                            html.Div([html.Span(k, className="ov-label"), _f(lid, key)]) for key, k in apq_keys()
                        ]),
                    ]),
                    html.Div(className="ov-output", children=[
                        html.Div([html.Span(_("Output") + " ", className="ov-label"),
                                  _f(lid, "output", theme.DASH, "fw-semibold"),
                                  " / ", _f(lid, "target"), " ", _f(lid, "pace", "", "ov-pace")]),
                        html.Div(html.Div(id={"type": BAR, "line": lid}, className="ov-bar-fill"), className="ov-bar"),
                    ]),
                    html.Div(className="ov-foot", children=[
                        html.Div([html.Span(_("Power") + " ", className="ov-label"), _f(lid, "kw")]),
                        html.Div([html.Span(_("Top stop this shift") + " ", className="ov-label"),
                                  _f(lid, "top_reason")]),
                        html.Div([html.Span(_("Untagged stops") + " ", className="ov-label"), _f(lid, "untagged")]),
                    ]),
                    _f(lid, "nodata", "", "ov-nodata"),
                ]),
            ],
        )),
        xs=12, md=6, lg=4, className="mb-3",
    )


def layout(plant: Plant, **_query: Any) -> html.Div:
    return html.Div(id=ROOT, className="overview", **theme.LIGHT_PAGE, children=[
        dcc.Interval(id=TICK, interval=REFRESH_MS),
        dcc.Store(id=VIEW, data={"lines": [ln.id for ln in plant.lines], "tz": plant.timezone,
                                  "offline_after_ms": OFFLINE_AFTER_MS, "refresh_ms": REFRESH_MS,
                                  "root_class": "overview", "texts": i18n.client_texts()}),
        dcc.Store(id=LAST_OK),
        dcc.Store(id=LAST_SEEN),
        dcc.Store(id=SHOWN),
        nav(plant, "/"),
        dbc.Container(fluid=True, children=[
            html.Div(className="d-flex justify-content-between align-items-baseline", children=[
                html.H1(_("Lines"), className="h4 mb-3"),
                html.Span(id=SHIFT, className="text-body-secondary"),
            ]),
            html.Div(id=BANNER, className="wall-banner d-none"),
            push.hook(TICK, [ln.id for ln in plant.lines], REFRESH_MS),  # pushed when a line changes
            dbc.Row([card(ln) for ln in plant.lines]),
            alerts_panel.alert_list(None),
        ]),
    ])


def card_texts(view: dict[str, Any]) -> dict[str, str]:
    return {
        "status": view["status_label"],
        "for": view["for"],
        "reason": (f"{view['machine']}: {view['reason']}" if view.get("machine") and view.get("reason")
                   else view.get("reason") or "\u00a0"),
        "oee": theme.pct(view.get("oee")),
        "a": theme.pct(view.get("availability")),
        "p": theme.pct(view.get("performance")) + (" \u26a0 " + _("over 100 %") if view.get("performance_over_100")
                                                    else ""),
        "q": theme.pct(view.get("quality")),
        "output": theme.count(view.get("output")),
        "target": theme.count(view.get("target_so_far")),
        "pace": f"({view['pace_text']})" if view.get("pace") is not None else "",
        "kw": theme.kw(view.get("kw")),
        "top_reason": view.get("top_reason") or theme.DASH,
        "untagged": theme.count(view.get("untagged")),
        "nodata": view.get("no_data_text") or view.get("stale_text") or "",
    }


def bar_style(view: dict[str, Any]) -> dict[str, str]:
    """Output as a share of the whole shift's target; colour by pace."""
    out, target = view.get("output"), view.get("target_shift")
    share = min(1.0, out / target) if theme.is_number(out) and theme.is_number(target) and target > 0 else 0.0
    behind = theme.is_number(view.get("pace")) and view["pace"] < 0
    colour = theme.ANDON_COLOURS[theme.DOWN if behind else theme.RUNNING]
    return {"width": f"{share * 100:.1f}%", "background": colour}


@callbacks.callback(
    Output({"type": FIELD, "line": ALL, "field": ALL}, "children"),
    Output({"type": CARD, "line": ALL}, "className"),
    Output({"type": BAR, "line": ALL}, "style"),
    Output(SHIFT, "children"),
    Output(LAST_OK, "data"),
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
        raise PreventUpdate from None
    by_line = {v["line"]: v for v in views}
    texts = {lid: card_texts(v) for lid, v in by_line.items()}
    fields = [texts.get(o["id"]["line"], {}).get(o["id"]["field"], theme.DASH) for o in ctx.outputs_list[0]]
    cards = [f"ov-card andon-{by_line[o['id']['line']]['status']}" if o["id"]["line"] in by_line else "ov-card"
             for o in ctx.outputs_list[1]]
    bars = [bar_style(by_line.get(o["id"]["line"], {})) for o in ctx.outputs_list[2]]
    now_shown = push.shown_versions(views, data.live_token())  # pushed: only the changed lines' fields
    fields, cards, bars = (push.only_changed(values, [o["id"]["line"] for o in ctx.outputs_list[i]], shown, now_shown)
                           for i, values in enumerate(cast(tuple[list[Any], ...], (fields, cards, bars))))
    p = data.plant()
    shift = data.shift_context(p, at)
    shift_text = _("Shift {shift}").format(shift=shift.label) + f" \u00b7 {theme.clock(at, p.timezone)}"
    return fields, cards, bars, shift_text, {"at": at}, now_shown


callbacks.clientside_callback(ClientsideFunction("oee", "seen"), Output(LAST_SEEN, "data"), Input(LAST_OK, "data"))
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
