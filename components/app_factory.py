"""``create_app(settings, reader_factory)``: the Dash app, its router and its assets.

Called at the entry point (``app.py``); the caller registers the HTTP API blueprint on
``app.server``. The reader, plant and clock go on ``app.server.config`` (see
``components.data``), never into module globals: each gunicorn worker builds its own.

Everything the browser loads is served by this app (Dash's own JS with
``serve_locally``; Bootstrap 5 CSS, the Inter font, a partial plotly.js and our CSS/JS
from ``assets/``): factory networks are often offline. ``components.delivery`` keeps it
light (compression, caching, only the bundles a page uses).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from dash import Dash, Input, Output, State, dcc, html

from api import security
from components import (
    admin_reasons,
    admin_users,
    alerts_panel,
    audit_page,
    data,
    delivery,
    downtime_panel,
    energy_panel,
    handover,
    i18n,
    line_page,
    login,
    machine_page,
    oee_panel,
    overview,
    ranges,
    untagged,
    wall,
)
from domain.plant import Plant

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
URL = "url"
PAGE = "page"
# every page and panel that declares callbacks (components.callbacks): each app registers them all
PAGE_MODULES = (wall, overview, line_page, ranges, oee_panel, downtime_panel, energy_panel, machine_page,
                untagged, handover, admin_users, admin_reasons, audit_page, alerts_panel)


def create_app(settings: Any, reader_factory: Callable[[], Any], clock: Callable[[], float] = time.time) -> Dash:
    """The dashboard. ``reader_factory()`` returns a ``store.reader.PlantReader``;
    ``clock`` gives epoch seconds (tests pin it to seeded data)."""
    app = delivery.LightDash(
        __name__,
        assets_folder=str(ASSETS),
        assets_path_ignore=["vendor"],  # served, never listed in a page: dcc.Graph loads plotly.js when needed
        add_log_handler=False,  # the entry point's logging prints "Dash is running" once
        serve_locally=True,
        title=settings.plant.name,
        update_title="",  # no "Updating..." in the tab title
        suppress_callback_exceptions=True,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.server.config.update({
        data.READER_KEY: reader_factory(),
        data.PLANT_KEY: settings.plant,
        data.CLOCK_KEY: clock,
    })
    app.index_string = app.index_string.replace("<html>", '<html lang="en">', 1)  # screen readers, translators
    app.layout = root_layout
    for module in PAGE_MODULES:
        module.register(app)
    app.callback(Output(PAGE, "children"), Input(URL, "pathname"), State(URL, "search"))(route)
    delivery.install(app)  # compression, immutable caching of fingerprinted files
    security.install(app, getattr(settings, "frame_ancestors", None))  # headers, CSP, 4xx for bad callbacks
    i18n.install(app)  # the page's language: ?lang= cookie, <html lang>, title (components.i18n)
    from api import live  # live push: /api/live/events, one stream follower per process (assets/push.js)

    live.install(app.server, lambda: app.server.config[data.READER_KEY].redis, [ln.id for ln in settings.plant.lines])
    from api.writes import install_operator_loop  # login, sessions, the operator loop's endpoints (issue 11)

    install_operator_loop(app.server, app.server.config[data.READER_KEY], settings.plant, clock,
                          getattr(settings, "data_dir", "var"))
    login.install(app.server)  # the login page (a screen, in the page's language) over api.auth's rules
    return app


def root_layout() -> html.Div:
    return html.Div([dcc.Location(id=URL, refresh=False), html.Div(id=PAGE)])


def route(pathname: str | None, search: str | None) -> Any:
    return page_for(data.plant(), pathname or "/", search or "")


def page_for(plant: Plant, pathname: str, search: str) -> Any:
    """The page for a URL (pure): path segments name the line/machine, the query the view."""
    query = {k: v[-1] for k, v in parse_qs(search.lstrip("?")).items()}
    parts = [p for p in pathname.strip("/").split("/") if p]
    if not parts:
        return overview.layout(plant)
    if parts[0] == "wall" and len(parts) <= 2:
        return wall.layout(plant, parts[1] if len(parts) == 2 else None, query.get("rotate"))
    if parts[0] == "line" and len(parts) == 2:
        return line_page.layout(plant, parts[1], query)
    if parts == ["admin", "users"]:
        return admin_users.layout(plant)
    if parts == ["admin", "reasons"]:
        return admin_reasons.layout(plant)
    if parts == ["audit"]:
        return audit_page.layout(plant)
    if parts[0] == "line" and len(parts) == 3 and parts[2] in ("untagged", "handover"):
        return (untagged if parts[2] == "untagged" else handover).layout(plant, parts[1], query)
    if parts[0] == "line" and len(parts) == 4 and parts[2] == "machine":
        return machine_page.layout(plant, parts[1], parts[3], query)
    return not_found(pathname)


def not_found(pathname: str) -> html.Div:
    return html.Div(className="container py-5", children=[
        html.H1(i18n._("Page not found"), className="h3"),
        html.P(i18n._("Nothing at {path}.").format(path=pathname)),
        dcc.Link(i18n._("Back to the overview"), href="/"),
    ])

