"""What the browser downloads, and how: compressed, cached for good when the URL names the
version, and only the bundles a page uses.

Shop-floor tablets and old PCs sit on plant Wi-Fi: uncompressed, the line page was 6.7 MB
(plotly.js alone 4.8 MB) and the wall 1.8 MB on every cold start.

- ``LightDash`` drops the dash_table bundle Dash writes into every page (Dash 4 lists it
  unconditionally; no page here uses ``DataTable``: add it back here if one ever does).
- ``dcc.Graph`` loads plotly.js only on pages with a figure; ``assets/dashboard.js`` points
  it at the vendored finance bundle (``PLOTLY_BUNDLE``: scatter, bar, waterfall and the other
  finance traces; 1.3 MB instead of 4.8 MB). ``PLOTLY_TRACES`` is what that bundle draws.
- Responses are compressed (``Compression``, ASGI middleware): static files (Dash's
  component suites, ``assets/``) with brotli or gzip at a high level, once per process
  (``_StaticCompressor``); callbacks, layout, API answers and HTML at quick levels (brotli
  4, gzip 6); never the live-push event stream.
- Server callbacks run in a thread pool (``LightDash.callback``): Dash's FastAPI backend
  calls a plain callback on the event loop, where one slow figure would hold up every
  other request and event stream of the process.
- Fingerprinted URLs are cached as immutable for a year: Dash's component suites
  (``.v4_4_1m<mtime>.js``), assets with Dash's ``?m=<mtime>`` stamp, and files under
  ``assets/fonts/`` and ``assets/vendor/``, whose names carry their version.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gzip
import logging
import re
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import brotli
from dash import Dash
from dash.fingerprint import check_fingerprint
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.security import flag_bad_values
from components import shared

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
DYNAMIC_GZIP_LEVEL = 6
DYNAMIC_BROTLI_QUALITY = 4
MIN_SIZE = 500
CALLBACK_THREADS = 16  # callbacks of one server process at once (Redis reads wait, so more than the cores)
_UNUSED_BUNDLE = re.compile(r'<script src="[^"]*/_dash-component-suites/dash/dash_table/[^"]*"></script>\n?')


class LightDash(Dash):
    """Dash whose pages list only the bundles this dashboard uses."""

    def interpolate_index(self, **kwargs: Any) -> str:  # type: ignore[override]  # Dash calls it with keywords only
        kwargs["scripts"] = without_unused_bundles(kwargs.get("scripts", ""))
        return str(super().interpolate_index(**kwargs))

    def callback(self, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        """``Dash.callback`` whose functions run in the process's callback threads (with the
        request's context) and answer 400 for values they cannot use (``api.security``);
        those marked ``components.shared.answer`` are answered once per line version
        (``components.shared.SharedAnswers``, told here of their key and ticks)."""
        before = set(self.callback_map)
        register = super().callback(*args, **kwargs)  # the callback's key is in the map from here on
        added = set(self.callback_map) - before

        def decorate(func: Callable[..., Any]) -> Any:
            ticks = shared.ticks_of(func)
            if ticks is not None:
                shared.shared_callbacks(self).update(dict.fromkeys(added, ticks))
            return register(in_thread(flag_bad_values(func)))

        return decorate


_pool: list[ThreadPoolExecutor] = []


def in_thread(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as a coroutine function that runs it in the callback threads."""

    @functools.wraps(func)
    async def threaded(*args: Any, **kwargs: Any) -> Any:
        if not _pool:
            _pool.append(ThreadPoolExecutor(CALLBACK_THREADS, thread_name_prefix="callback"))
        call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(_pool[0], call)

    return threaded


def without_unused_bundles(scripts: str) -> str:
    return _UNUSED_BUNDLE.sub("", scripts)


def install(app: Dash) -> None:
    """Compression and cache headers on ``app``'s server (middleware: add it outside the
    session and request layers). Call once, after the app is built."""
    app.server.add_middleware(Compression, suites=f"{app.config.requests_pathname_prefix}_dash-component-suites/",
                              assets=app.get_asset_url(""))


class Compression:
    """brotli or gzip by the client's ``Accept-Encoding``; static files compressed once per
    process at a high level and marked immutable when fingerprinted."""

    def __init__(self, app: ASGIApp, suites: str, assets: str) -> None:
        self.app = app
        self.suites = suites
        self.assets = assets
        self.static = _StaticCompressor()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        static = scope["method"] in ("GET", "HEAD") and (path.startswith(self.suites) or path.startswith(self.assets))
        immutable = static and is_fingerprinted(path, parse_qs(scope.get("query_string", b"").decode("latin-1")),
                                                self.suites, self.assets)
        encoding = choose_encoding(Headers(scope=scope).get("accept-encoding", ""))
        start: Message | None = None
        chunks: list[bytes] = []

        async def compressing(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if immutable and message["status"] == 200:
                    headers["Cache-Control"] = IMMUTABLE
                media = headers.get("content-type", "").split(";")[0].strip()
                if (encoding is None or message["status"] != 200 or "content-encoding" in headers
                        or not compressible(media) or scope["method"] == "HEAD"):
                    if compressible(media):
                        headers.add_vary_header("Accept-Encoding")
                    await send(message)
                    return
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            data = b"".join(chunks)
            headers = MutableHeaders(scope=start)
            headers.add_vary_header("Accept-Encoding")
            if len(data) >= MIN_SIZE:
                assert encoding is not None
                # a static file's first compression (plotly.js at a high level: about half a
                # second) in a thread, so open event streams and other requests go on meanwhile
                data = (await asyncio.to_thread(self.static.compress, path, encoding, data) if static
                        else _compress(encoding, data))
                headers["Content-Encoding"] = encoding
                etag = headers.get("etag")
                if etag:
                    headers["ETag"] = f'{etag[:-1]}:{encoding}"' if etag.endswith('"') else f"{etag}:{encoding}"
            headers["Content-Length"] = str(len(data))
            await send(start)
            await send({"type": "http.response.body", "body": data, "more_body": False})

        await self.app(scope, receive, compressing)


def compressible(media: str) -> bool:
    """Text worth compressing; never the event stream (each event must go out as it comes)."""
    return media in COMPRESSIBLE or media in ("text/html", "application/xml")


def _compress(encoding: str, data: bytes) -> bytes:
    if encoding == "br":
        return bytes(brotli.compress(data, quality=DYNAMIC_BROTLI_QUALITY))
    return gzip.compress(data, compresslevel=DYNAMIC_GZIP_LEVEL, mtime=0)


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

    def compress(self, path: str, encoding: str, data: bytes) -> bytes:
        key = (path, encoding, len(data), zlib.crc32(data))
        body = self._bodies.get(key)
        if body is None:
            body = brotli.compress(data, quality=STATIC_BROTLI_QUALITY) if encoding == "br" else \
                gzip.compress(data, compresslevel=STATIC_GZIP_LEVEL, mtime=0)
            if len(self._bodies) >= self.MAX_ENTRIES:
                self._bodies.clear()
            self._bodies[key] = body
        return body
