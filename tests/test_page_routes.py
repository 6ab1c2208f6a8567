"""Which GET answers what, on the dashboard served as in production (uvicorn with its
lifespan run, ``components.app_factory.PageRoutes``): every page, even as a fresh server
process's very first request, lists the app's own scripts and stylesheets (``assets/``:
push, the offline banner, the screens' styles); an unknown ``/api`` path is a JSON 404, an
unknown Dash or asset path a 404; any other path is the dashboard's page (its router says
"page not found")."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from tests.support import AppServer
from tests.test_security_headers import full_app

OWN_SCRIPTS = {"push.js", "dashboard.js", "screens.js", "alerts.js"}
OWN_STYLES = {"10-dashboard.css", "screens.css"}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def own_files(html: str) -> set[str]:
    urls = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    return {url.split("?")[0].rsplit("/", 1)[-1] for url in urls if "/assets/" in url}


@pytest.mark.parametrize("first", ["/wall", "/wall/BW1?rotate=15", "/line/BW1?start=shift", "/line/BW1/machine/ST10",
                                   "/"])
def test_a_fresh_servers_first_page_lists_the_apps_own_files(first: str) -> None:
    server = AppServer(full_app())
    server.start()
    try:
        status, html = get(server.url + first)
        assert status == 200
        assert own_files(html) >= OWN_SCRIPTS | OWN_STYLES, own_files(html)
        status, again = get(server.url + "/wall")
        assert status == 200 and own_files(again) == own_files(html)
    finally:
        server.stop()


def test_unknown_paths_are_404_outside_the_pages() -> None:
    server = AppServer(full_app())
    server.start()
    try:
        status, body = get(server.url + "/api/nope")
        assert (status, json.loads(body)) == (404, {"error": "no such endpoint: GET /api/nope"})
        assert get(server.url + "/_dash-nope")[0] == 404
        assert get(server.url + "/assets/nope.js")[0] == 404
        status, html = get(server.url + "/no/such/page")  # the dashboard's own "page not found"
        assert status == 200 and own_files(html) >= OWN_SCRIPTS
    finally:
        server.stop()
