"""Line page ``/line/<line>``: the range bar and three panels (OEE, downtime, energy).

The page itself only places things; each panel module owns its layout and callbacks.
``?start=...&end=...`` in the URL holds the range (see ``components.ranges``).
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, dcc, html

from components import alerts_panel, downtime_panel, energy_panel, oee_panel, ranges, theme, untagged
from components.callbacks import Callbacks
from components.i18n import _, local
from components.overview import LINE_LINK, nav
from domain.plant import Plant

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

MACHINE_LINK = "line-machine-link"  # {"type": MACHINE_LINK, "line": id, "machine": id}


TAP = {"minHeight": "44px", "display": "inline-flex", "alignItems": "center"}  # a thumb's target


def layout(plant: Plant, line: str, query: dict[str, str]) -> html.Div:
    cfg = plant.line(line)
    if cfg is None:
        return html.Div([nav(plant), dbc.Container(html.P(_("No line {line} in this plant.").format(line=repr(line))))])
    params = ranges.params_from_query(query, plant.timezone)
    search = ranges.search_for(params)
    return html.Div(className="line-page", **theme.LIGHT_PAGE, children=[
        nav(plant, f"/line/{line}", search, here=f"/line/{line}"),
        dbc.Container(fluid=True, children=[
            html.Div(className="page-head", children=[
                html.Div([dcc.Link(_("Overview"), href="/"), " / ", html.Span(cfg.id)], className="crumbs"),
                html.H1(local(cfg.name) or cfg.id, className="h4 mb-2"),
                html.Div(className="machine-chips", children=[
                    dcc.Link(m.id, href=f"/line/{line}/machine/{m.id}{search}", title=local(m.name),
                             id={"type": MACHINE_LINK, "line": line, "machine": m.id},
                             className="btn btn-outline-secondary btn-sm")
                    for m in cfg.machines
                ]),
                html.Div(className="operator-links d-flex flex-wrap gap-2 mt-2", children=[  # issue 11
                    dcc.Link(_("Untagged stops"), href=f"/line/{line}/untagged", style=TAP,
                             className="btn btn-sm btn-outline-danger"),
                    dcc.Link(_("Shift handover"), href=f"/line/{line}/handover", style=TAP,
                             className="btn btn-sm btn-outline-secondary")]),
            ]),
            alerts_panel.alert_list(line),
            ranges.layout(query, plant.timezone, line),
            oee_panel.layout(line),
            downtime_panel.layout(line, query.get(downtime_panel.REASON_PARAM)),
            energy_panel.layout(line),
            untagged.classify_dialog(plant, line),  # a tap on a stop of the list opens it (issue 11)
        ]),
    ])


def machine_hrefs(link_ids: list[dict[str, str]], search: str | None) -> list[str]:
    return [f"/line/{i['line']}/machine/{i['machine']}{search or ''}" for i in link_ids]


def range_search(search: str | None) -> str:
    """The range part of the query string (a link to another page keeps the range only)."""
    return ranges.search_for(ranges.params_from_search(search))


@callbacks.callback(
    Output({"type": MACHINE_LINK, "line": ALL, "machine": ALL}, "href"),
    Input(ranges.URL, "search"),
    Input({"type": MACHINE_LINK, "line": ALL, "machine": ALL}, "id"),
    prevent_initial_call=True,
)
def keep_range_in_links(search: str | None, ids: list[dict[str, Any]]) -> list[str]:
    """Machine links carry the range the user is looking at."""
    return machine_hrefs(ids, range_search(search))


@callbacks.callback(
    Output({"type": LINE_LINK, "line": ALL, "place": ALL}, "href"),
    Input(ranges.URL, "search"),
    Input({"type": LINE_LINK, "line": ALL, "place": ALL}, "id"),
    prevent_initial_call=True,
)
def keep_range_in_line_links(search: str | None, ids: list[dict[str, Any]]) -> list[str]:
    """Links to line pages (the navigation bar, the machine page's crumbs) carry the range too."""
    return [f"/line/{i['line']}{range_search(search)}" for i in ids]
