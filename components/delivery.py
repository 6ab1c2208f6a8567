"""What the browser downloads, and how: compressed, cached for good when the URL names the
version, and only the bundles a page uses.

Shop-floor tablets and old PCs sit on plant Wi-Fi: uncompressed, the line page was 6.7 MB
(plotly.js alone 4.8 MB) and the wall 1.8 MB on every cold start.

- ``LightDash`` drops the dash_table bundle Dash writes into every page (Dash 4 lists it
  unconditionally; no page here uses ``DataTable``: add it back here if one ever does).
- ``dcc.Graph`` loads plotly.js only on pages with a figure; ``assets/dashboard.js`` points
  it at the vendored finance bundle (``PLOTLY_BUNDLE``: scatter, bar, waterfall and the other
  finance traces; 1.3 MB instead of 4.8 MB). ``PLOTLY_TRACES`` is what that bundle draws.
- Responses are compressed: static files (Dash's component suites, ``assets/``) with brotli
  or gzip at a high level, once per process (``_StaticCompressor``); callbacks, layout and
  HTML by flask-compress at its quick default levels.
- Fingerprinted URLs are cached as immutable for a year: Dash's component suites
  (``.v4_4_1m<mtime>.js``), assets with Dash's ``?m=<mtime>`` stamp, and files under
  ``assets/fonts/`` and ``assets/vendor/``, whose names carry their version.
"""

from __future__ import annotations

import logging
import re
import zlib
from typing import Any

import brotli
from dash import Dash
from dash.fingerprint import check_fingerprint
from flask import Flask, Response, request
from flask_compress import Compress

log = logging.getLogger(__name__)

PLOTLY_BUNDLE = "vendor/plotly-finance-4.1.0.min.js"  # under assets/; named in assets/dashboard.js too
PLOTLY_TRACES = frozenset({"scatter", "bar", "waterfall", "histogram", "pie", "funnel", "funnelarea", "indicator",
                           "ohlc", "candlestick"})
IMMUTABLE = "public, max-age=31536000, immutable"
VERSIONED_ASSET_DIRS = ("fonts/", "vendor/")  # file names carry the version (assets/licenses/README.txt)
COMPRESSIBLE = frozenset({"application/javascript", "text/javascript", "text/css", "application/json",
                          "image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon", "text/plain"})
STATIC_GZIP_LEVEL = 9
STATIC_BROTLI_QUALITY = 9  # 1.3 MB of plotly.js: 384 KB in 0.6 s once; quality 11 saves 9 % more for 8 s
_UNUSED_BUNDLE = re.compile(r'<script src="[^"]*/_dash-component-suites/dash/dash_table/[^"]*"></script>\n?')


class LightDash(Dash):
    """Dash whose pages list only the bundles this dashboard uses."""

    def interpolate_index(self, **kwargs: Any) -> str:  # type: ignore[override]  # Dash calls it with keywords only
        kwargs["scripts"] = without_unused_bundles(kwargs.get("scripts", ""))
        return str(super().interpolate_index(**kwargs))


def without_unused_bundles(scripts: str) -> str:
    return _UNUSED_BUNDLE.sub("", scripts)


def install(app: Dash) -> None:
    """Compression and cache headers on ``app``'s server. Call once, after the app is built."""
    server: Flask = app.server
    server.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    Compress(server)
    suites = f"{app.config.requests_pathname_prefix}_dash-component-suites/"
    assets = app.get_asset_url("")
    compressor = _StaticCompressor()

    # Registered after flask-compress, so it runs before it (Flask runs these in reverse):
    # static bodies arrive here compressed for good, and flask-compress leaves them alone.
    @server.after_request
    def static_delivery(response: Response) -> Response:
        if request.method not in ("GET", "HEAD") or response.status_code != 200:
            return response
        path = request.path
        if not (path.startswith(suites) or path.startswith(assets)):
            return response
        if is_fingerprinted(path, request.args, suites, assets):
            response.headers["Cache-Control"] = IMMUTABLE
        return compressor.apply(response, request.headers.get("Accept-Encoding", ""))


def is_fingerprinted(path: str, args: Any, suites: str, assets: str) -> bool:
    """Whether ``path`` names one version of a file forever (safe to cache as immutable)."""
    if path.startswith(suites):
        return bool(check_fingerprint(path[len(suites):])[1])
    if path.startswith(assets):
        return "m" in args or path[len(assets):].startswith(VERSIONED_ASSET_DIRS)
    return False


def choose_encoding(accept_encoding: str) -> str | None:
    """``br`` if the client takes it, else ``gzip``, else None (identity)."""
    offered = set()
    for part in accept_encoding.lower().split(","):
        name, _, params = part.strip().partition(";")
        if params.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        offered.add(name.strip())
    for encoding in ("br", "gzip"):
        if encoding in offered:
            return encoding
    return None


class _StaticCompressor:
    """Compressed bodies of static files, kept per process: the set of files is small and
    fixed, and compressing plotly.js at these levels costs about half a second."""

    MAX_ENTRIES = 128

    def __init__(self) -> None:
        self._bodies: dict[tuple[str, str, int, int], bytes] = {}

    def apply(self, response: Response, accept_encoding: str) -> Response:
        response.vary.add("Accept-Encoding")
        encoding = choose_encoding(accept_encoding)
        if encoding is None or response.mimetype not in COMPRESSIBLE or "Content-Encoding" in response.headers:
            return response
        response.direct_passthrough = False
        data = response.get_data()
        if len(data) < 500:
            return response
        key = (request.path, encoding, len(data), zlib.crc32(data))
        body = self._bodies.get(key)
        if body is None:
            body = brotli.compress(data, quality=STATIC_BROTLI_QUALITY) if encoding == "br" else \
                _gzip(data)
            if len(self._bodies) >= self.MAX_ENTRIES:
                self._bodies.clear()
            self._bodies[key] = body
        response.set_data(body)
        response.headers["Content-Encoding"] = encoding
        etag, weak = response.get_etag()
        if etag:
            response.set_etag(f"{etag}:{encoding}", weak=bool(weak))
        return response


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=STATIC_GZIP_LEVEL, mtime=0)
