"""``create_app(settings, reader_factory)``: the Dash app on Dash's FastAPI backend, its
router, its assets, and the layers around it (sessions, login gate, language, security
headers, compression: ASGI middleware); ``create_dashboard(settings)`` adds the HTTP API.

Called at the entry point (``app.py``). The reader, plant, clock and live feed go on the
server's own ``config`` (``api.context.config_of(app.server)``; see ``components.data``),
never into module globals: each uvicorn worker builds its own.

Everything the browser loads is served by this app (Dash's own JS with
``serve_locally``; Bootstrap 5 CSS, the Inter font, a partial plotly.js and our CSS/JS
from ``assets/``): factory networks are often offline. ``components.delivery`` keeps it
light (compression, caching, only the bundles a page uses).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from dash import Dash, Input, Output, State, dcc, html
from fastapi import FastAPI
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api import context, security
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
    shared,
    untagged,
    wall,
    warm,
)
from domain.plant import Plant

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
URL = "url"
PAGE = "page"
# every page and panel that declares callbacks (components.callbacks): each app registers them all
PAGE_MODULES = (wall, overview, line_page, ranges, oee_panel, downtime_panel, energy_panel, machine_page,
                untagged, handover, admin_users, admin_reasons, audit_page, alerts_panel)


def create_dashboard(settings: Any, clock: Callable[[], float] = time.time) -> Dash:
    """The Dash app with the HTTP API on its FastAPI server (``app.server``: the ASGI app)."""
    from api.alerts import create_alerts_router
    from api.routes import create_api_router

    if not settings.redis_url:
        raise SystemExit("REDIS_URL is not set: the dashboard needs the Redis the collectors write to")

    def api(server: FastAPI, reader: Any) -> None:
        server.include_router(create_api_router(reader, clock=clock, shared_kpis=_shared_line_kpis))
        server.include_router(create_alerts_router(reader, clock=clock))  # issue 12: alert history, acknowledgement

    app = create_app(settings, lambda: data.reader_for(settings), clock, api=api)
    pool = data.reader_pool(settings)
    if pool is not None:  # a big plant's live views in more processes (started with the first view)
        context.config_of(app.server)[data.POOL_KEY] = pool
        warmer = context.config_of(app.server)[data.WARM_KEY]
        warmer.threads = pool.warm_threads
        warmer.on_commit = pool.prepare_now  # the live feed saw the worker commit: the children prepare now
    return app


def _shared_line_kpis(line: str, start: float, end: float, at: float) -> Any:
    """``/api/lines``' KPIs of a line: the screens' (``components.data.shift_kpis``: once per
    line version while the live feed runs), with Redis' errors as the API reports them."""
    from redis.exceptions import RedisError

    try:
        return data.shift_kpis(line, start, end, at)
    except data.DataUnavailable as exc:
        raise RedisError(str(exc)) from exc


def create_app(settings: Any, reader_factory: Callable[[], Any], clock: Callable[[], float] = time.time,
               api: Callable[[FastAPI, Any], None] | None = None) -> Dash:
    """The dashboard. ``reader_factory()`` returns a ``store.reader.PlantReader``;
    ``clock`` gives epoch seconds (tests pin it to seeded data); ``api(server, reader)``
    includes the read API's routers (before the catch-all 404 of ``/api``)."""
    from api.document import create_document_router
    from api.routes import json_errors_under_api

    server = FastAPI(lifespan=_lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    reader = reader_factory()
    context.config_of(server).update({data.READER_KEY: reader, data.PLANT_KEY: settings.plant, data.CLOCK_KEY: clock,
                                     data.WARM_KEY: warm.Warmer()})
    app = delivery.LightDash(
        __name__,
        server=server,  # type: ignore[arg-type]  # Dash's stubs name Flask's types; it takes a FastAPI too
        assets_folder=str(ASSETS),
        assets_path_ignore=["vendor"],  # served, never listed in a page: dcc.Graph loads plotly.js when needed
        serve_locally=True,
        compress=False,  # components.delivery compresses (brotli or gzip; static files once)
        title=settings.plant.name,
        update_title="",  # no "Updating..." in the tab title
        suppress_callback_exceptions=True,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.index_string = app.index_string.replace("<html>", '<html lang="en">', 1)  # screen readers, translators
    app.layout = root_layout
    for module in PAGE_MODULES:
        module.register(app)
    app.callback(Output(PAGE, "children"), Input(URL, "pathname"), State(URL, "search"))(route)
    from api import live  # live push: /api/live/events, one stream follower per process (assets/push.js)

    live.install(server, (lambda: reader.redis) if hasattr(reader, "redis") else None,  # (a stand-in reader: none)
                 [ln.id for ln in settings.plant.lines])
    if api is not None:
        api(server, reader)
    from api.writes import install_operator_loop, session_layers  # login, sessions, the operator loop (issue 11)

    data_dir = getattr(settings, "data_dir", "var")
    operator_loop = install_operator_loop(server, reader, settings.plant, clock, data_dir)
    server.include_router(create_document_router())  # /api/openapi.json
    json_errors_under_api(server)  # JSON 404/405 under /api
    login.install(server)  # the login page (a screen, in the page's language) over api.auth's rules
    # the layers, innermost first
    shared.install(app)  # shared callbacks answered once per line version
    security.install(app)  # 400 (not 500) for callback requests the renderer would never send
    server.add_middleware(PageRoutes, prefix=app.config.routes_pathname_prefix)
    i18n.install(app)  # the page's language: ?lang= cookie, <html lang>, title (components.i18n)
    from api.auth import LoginGate

    server.add_middleware(LoginGate)
    server.add_middleware(context.RequestContext)
    if operator_loop:
        session_layers(server, data_dir)
    delivery.install(app)  # compression, immutable caching of fingerprinted files
    security.install_headers(server, getattr(settings, "frame_ancestors", None), app.csp_hashes)
    return app


@contextlib.asynccontextmanager
async def _lifespan(server: FastAPI) -> AsyncIterator[None]:
    # Dash's FastAPI backend adds a catch-all GET route at start (before this runs): it would
    # answer unknown /api and /_dash- paths with the index (200) and serve pages without
    # Dash's request set-up. PageRoutes serves the pages; every other unknown path is a 404.
    server.router.routes[:] = [r for r in server.router.routes if not is_catch_all(r)]
    from api import live

    live.serving(context.config_of(server))  # screens' live reads may start the feed (stopped below)
    yield

    pool = context.config_of(server).get(data.POOL_KEY)
    if pool is not None:
        pool.close()

    live.shutdown(context.config_of(server))  # open event streams end; the feed's threads stop


class PageRoutes:
    """Every GET no route answers is a page of the dashboard (``/wall``, ``/line/BW1``...):
    served as Dash's index (``dcc.Location`` reads the path in the browser); not under
    ``/api/``, ``/assets/`` or Dash's own routes (there a 404 stays a 404)."""

    NOT_PAGES = ("/api/", "/api", "/assets/", "/_dash-")

    def __init__(self, app: ASGIApp, prefix: str = "/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"] != self.prefix
                and not scope["path"].startswith(self.NOT_PAGES)
                and not any(answers(route, scope) for route in scope["app"].router.routes)):
            scope = {**scope, "path": self.prefix, "raw_path": self.prefix.encode()}
        await self.app(scope, receive, send)


CATCH_ALL = re.compile(r"/?\{\w+:path\}")


def is_catch_all(route: Any) -> bool:
    """Dash's catch-all (``{path:path}``, added at the server's start): it serves the index
    without running Dash's request set-up (its scripts and stylesheets list), so a page's
    first request in a fresh server process would get a page without the app's own scripts
    (no push, no offline banner)."""
    return bool(CATCH_ALL.fullmatch(str(getattr(route, "path", ""))))


def answers(route: Any, scope: Scope) -> bool:
    """Whether a route of ours (not Dash's catch-all) answers ``scope``."""
    return not is_catch_all(route) and route.matches(scope)[0] == Match.FULL


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


def tune_runtime() -> None:
    """A dashboard process's garbage collector, once it is set up: what exists by then
    (modules, the app, the plant) is never traced again (``gc.freeze``), and young
    collections run every 50,000 net allocations instead of 700. A live view of every line
    allocates much and keeps the line's followers and caches: with the defaults, collections
    took 10-25 ms of a 50-line overview and a full one 180 ms (``bench/bench_views.py``).
    (A shorter GIL switch interval, 1 or 2 ms, made no difference beyond the benchmarks'
    noise to ``/api/lines?line=X`` under a pushed 50-line overview or to 30 screens.)"""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve(app: Dash, host: str, port: int) -> None:
    """The dashboard under uvicorn in this process until SIGINT/SIGTERM (then the live feed
    stops: the lifespan above)."""
    import uvicorn

    tune_runtime()
    uvicorn.Server(uvicorn.Config(app.server, host=host, port=port, access_log=False, log_config=None)).run()
