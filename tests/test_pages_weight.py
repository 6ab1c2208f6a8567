"""Light pages (``components/delivery.py``): what a browser with an empty cache downloads.

Through a real server (uvicorn on a free port, the seeded Redis and rollup worker of the
browser tests): every page's HTML, scripts and stylesheets are compressed, fingerprinted
files are cached as immutable, no page lists the dash_table bundle; and in Chromium, a
first load stays within the issue's budgets (bytes on the wire as Chromium counts them,
``Network.loadingFinished.encodedDataLength``), with plotly.js from the vendored partial
bundle that draws every trace type the figures use.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import brotli
import pytest

from api.context import config_of
from components import delivery
from config.loader import DEMO_PLANT
from config.settings import Settings
from tests.browser_support import CHROMIUM, new_chromium
from tests.support import AppServer
from tests.test_components import PLANT

PAGES = {"wall": "/wall", "overview": "/", "line": "/line/BW1", "machine": "/line/BW1/machine/ST30"}
BUDGETS = {"wall": 600_000, "overview": 600_000, "line": 1_500_000, "machine": 1_500_000}  # bytes, first load
BROWSER_ACCEPTS = "gzip, deflate, br, zstd"
YEAR_S = 31536000
CLOCK_SHIFT_S = {"s": 0.0}  # tests/test_startup_truth.py moves the server's clock on


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[str]:
    """The app as ``app.py`` builds it (dashboard + /api), clock pinned to the seeded data."""
    from api import create_api_router
    from components import data
    from components.app_factory import create_app
    from tests.test_browser import history_end, seed_plant

    reader, now = seed_plant(redis_url, PLANT, end=history_end(PLANT.timezone))
    settings = Settings(plant_path=DEMO_PLANT, plant=PLANT, redis_url=redis_url)
    app = create_app(settings, lambda: reader, clock=lambda: now + CLOCK_SHIFT_S["s"])
    app.server.include_router(create_api_router(config_of(app.server)[data.READER_KEY],
                                                       clock=lambda: now + CLOCK_SHIFT_S["s"]))
    served = AppServer(app)
    served.start()
    yield served.url
    served.stop()


def get(url: str, accept: str = BROWSER_ACCEPTS) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()


def decoded(headers: dict[str, str], body: bytes) -> bytes:
    encoding = headers.get("content-encoding")
    if encoding == "br":
        return brotli.decompress(body)
    if encoding == "gzip":
        return gzip.decompress(body)
    assert encoding is None, encoding
    return body


def page_resources(server: str, path: str) -> list[str]:
    """The scripts and stylesheets a page's HTML lists, plus what its CSS loads (fonts)."""
    _, headers, body = get(server + path)
    html = decoded(headers, body).decode()
    urls = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    fonts = []
    for url in urls:
        if ".css" in url:
            _, h, b = get(server + url)
            base = url.split("?")[0].rsplit("/", 1)[0]
            fonts += [f"{base}/{f}" for f in re.findall(r"url\(([^)'\"]+\.woff2)\)", decoded(h, b).decode())]
    return urls + fonts


def is_fingerprinted(url: str) -> bool:
    path = url.split("?")[0]
    return bool(re.search(r"\.v[\w-]+m\d+\.", path)) or "?m=" in url or "/assets/fonts/" in path \
        or "/assets/vendor/" in path


@pytest.mark.parametrize("page", list(PAGES))
def test_page_resources_compressed_and_fingerprinted_ones_immutable(server: str, page: str) -> None:
    status, headers, _ = get(server + PAGES[page])
    assert status == 200 and headers.get("content-encoding") in ("br", "gzip"), headers
    urls = page_resources(server, PAGES[page])
    assert any(u.endswith(".woff2") for u in urls) and any("dash_renderer" in u for u in urls), urls
    assert not [u for u in urls if "dash_table" in u], "a page lists the dash_table bundle; no page uses it"
    for url in urls:
        status, headers, body = get(server + url)
        assert status == 200, url
        if not url.endswith(".woff2"):  # woff2 is compressed already
            assert headers.get("content-encoding") == "br", (url, headers)
            assert "accept-encoding" in headers.get("vary", "").lower(), (url, headers)
        identity = get(server + url, accept="")[2]
        assert decoded(headers, body) == identity, url
        if is_fingerprinted(url):
            cache = headers.get("cache-control", "")
            assert "immutable" in cache and f"max-age={YEAR_S}" in cache, (url, cache)


def test_gzip_for_clients_without_brotli_and_callbacks_compressed(server: str) -> None:
    url = next(u for u in page_resources(server, "/") if "dash_renderer" in u)
    _, headers, body = get(server + url, accept="gzip, deflate")
    assert headers.get("content-encoding") == "gzip"
    assert decoded(headers, body) == get(server + url, accept="")[2]
    _, headers, body = get(server + "/_dash-dependencies")
    assert headers.get("content-encoding") in ("br", "gzip", "zstd")
    assert "no-cache" not in get(server + f"/assets/{delivery.PLOTLY_BUNDLE}")[1].get("cache-control", "no-cache")


@pytest.mark.parametrize(("accept", "chosen"), [
    ("gzip, deflate, br, zstd", "br"),
    ("gzip, deflate", "gzip"),
    ("br;q=0, gzip", "gzip"),
    ("identity", None),
    ("", None),
    ("BR", "br"),
])
def test_choose_encoding(accept: str, chosen: str | None) -> None:
    assert delivery.choose_encoding(accept) == chosen


def test_plotly_bundle_draws_every_trace_type_the_figures_use() -> None:
    """A trace type the vendored bundle lacks would leave a figure blank: every ``go.X``
    and ``add_x`` in the panels must be one the finance bundle registers."""
    from pathlib import Path

    used: set[str] = set()
    for source in (Path(__file__).resolve().parent.parent / "components").glob("*.py"):
        text = source.read_text(encoding="utf-8")
        used |= {m.lower() for m in re.findall(r"\bgo\.([A-Z][A-Za-z]+)\(", text) if m not in ("Figure", "Layout")}
        used |= set(re.findall(r"\.add_(scatter|bar|waterfall|heatmap|histogram|pie|box|[a-z]+gl)\(", text))
    assert used, "no figure found in components/"
    assert used <= delivery.PLOTLY_TRACES, used - delivery.PLOTLY_TRACES


# --- Chromium: bytes of a first load ------------------------------------------------------

needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    driver = new_chromium(logs=("performance", "browser"), extra_flags=("--window-size=1920,1080",))
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    yield driver
    driver.quit()


READY_JS = {  # the page has drawn what it is for (figures with data, or the wall's numbers)
    "wall": "return [...document.querySelectorAll('.wall-num-xl')].some(e => /\\d/.test(e.textContent));",
    "overview": "return [...document.querySelectorAll('.ov-card')].length > 0 && /\\d/.test("
                "document.querySelector('.ov-card').textContent);",
    "line": "return [...document.querySelectorAll('.js-plotly-plot')].filter(g => (g.data || []).length).length >= 3;",
    "machine": "return [...document.querySelectorAll('.js-plotly-plot')].filter(g => (g.data || []).length).length"
               " >= 1;",
}


def first_load(driver: Any, url: str, ready_js: str, timeout_s: float = 90.0) -> dict[str, int]:
    """Loads ``url`` with an empty cache until ``ready_js`` holds; bytes per URL as received."""
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get_log("performance")
    driver.get(url)
    deadline = time.monotonic() + timeout_s
    while not driver.execute_script(ready_js):
        assert time.monotonic() < deadline, f"{url}: not drawn in {timeout_s:g} s"
        time.sleep(0.25)
    urls: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFinished" and params["requestId"] in urls:
            sizes[urls[params["requestId"]]] = sizes.get(urls[params["requestId"]], 0) + int(
                params["encodedDataLength"])
    return sizes


@needs_chromium
@pytest.mark.browser
@pytest.mark.parametrize("page", list(PAGES))
def test_first_load_within_budget_in_chromium(server: str, chromium: Any, page: str) -> None:
    sizes = first_load(chromium, server + PAGES[page], READY_JS[page])
    total = sum(sizes.values())
    listing = "\n".join(f"{n:9d} {u[len(server):][:90]}" for u, n in sorted(sizes.items(), key=lambda kv: -kv[1]))
    assert total <= BUDGETS[page], f"{page}: {total} bytes > {BUDGETS[page]}\n{listing}"
    assert not [u for u in sizes if "dash_table" in u], listing
    assert not [u for u in sizes if u.endswith("package_data/plotly.min.js")], "the full plotly.js was loaded"
    if page in ("line", "machine"):
        assert any(delivery.PLOTLY_BUNDLE in u for u in sizes), listing
        drawn = chromium.execute_script(
            "return [...document.querySelectorAll('.js-plotly-plot')].flatMap(g => (g.data || []).map("
            "t => t.type || 'scatter'));")
        registered = chromium.execute_script("return Object.keys(window.Plotly.PlotSchema.get().traces);")
        assert drawn and set(drawn) <= set(registered), (drawn, registered)
