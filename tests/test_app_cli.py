"""The entry point's command line: ``run``'s flags without the subcommand, and one
"Dash is running" line when the dashboard starts."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import app
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("argv", "command", "port", "plant"), [
    ([], app.cmd_run, None, None),
    (["--port", "8051"], app.cmd_run, 8051, None),
    (["--log-level", "DEBUG", "--port", "8051", "--history-hours", "0"], app.cmd_run, 8051, None),
    (["--plant", "p.yaml", "--port", "1"], app.cmd_run, 1, "p.yaml"),
    (["run", "--port", "8052"], app.cmd_run, 8052, None),
    (["--plant", "p.yaml", "run"], app.cmd_run, None, "p.yaml"),
    (["dashboard", "--port", "8053"], app.cmd_dashboard, 8053, None),
    (["check", "--plant", "q.yaml"], app.cmd_check, None, "q.yaml"),
])
def test_flags_of_run_work_without_the_subcommand(argv: list[str], command: object, port: int | None,
                                                  plant: str | None) -> None:
    args = app.parse_args(argv)
    assert args.func is command
    assert getattr(args, "port", None) == port
    assert args.plant == plant


def test_commands_list_every_subcommand() -> None:
    parser = app.build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[union-attr]
    assert set(app.COMMANDS) == set(choices)


def test_dashboard_says_it_is_running_once(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "dashboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "dashboard", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"})
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_dash-layout", timeout=5).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(30)
    text = log.read_text()
    assert text.count(f"Dashboard: http://127.0.0.1:{port}/") == 1, text
    assert text.count("Uvicorn running on") == 1, text  # the server's own line, once (no second log handler)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


PARTS = re.compile(r" (worker|alerts) ")  # the demo's parts in processes of their own


def answers(port: int) -> bool:
    """Whether the dashboard accepts connections (the demo has started)."""
    import socket

    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def demo_env() -> dict[str, str]:
    """The environment of a demo started with no configuration: without the suite's
    REDIS_URL, which names another test worker's database (a demo inheriting it wrote its
    plant's events into the streams of that worker's collector tests), so on its embedded
    Redis."""
    return {k: v for k, v in os.environ.items() if k != "REDIS_URL"}


def test_sigterm_stops_the_demo_and_its_worker_process(tmp_path: Path) -> None:
    """The rollup worker runs in its own process under ``python app.py``, at a CPU priority
    10 below the dashboard's (``WORKER_NICE``'s default), the alert loop at the same: a
    SIGTERM to the demo (systemd, docker stop) must not leave them behind."""
    import signal

    import yaml

    from config.loader import DEMO_PLANT

    raw = yaml.safe_load(DEMO_PLANT.read_text(encoding="utf-8"))
    for endpoint in raw["endpoints"].values():
        endpoint["url"] = f"opc.tcp://127.0.0.1:{free_port()}/test/"  # another demo may hold 4840
    plant = tmp_path / "plant.yaml"
    plant.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    log = tmp_path / "app.log"
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--plant", str(plant), "--port",
                                 str(port), "--data-dir", str(tmp_path / "var"), "--history-hours", "0"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=demo_env())
        try:
            deadline = time.monotonic() + 120
            while len(workers := [c for c in children(proc.pid) if PARTS.search(cmdline(c))]) < 2 or not answers(port):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            mine = os.getpriority(os.PRIO_PROCESS, proc.pid)
            nice = {PARTS.search(cmdline(c))[1]: os.getpriority(os.PRIO_PROCESS, c) for c in workers}  # type: ignore[index]
            while nice["worker"] == mine:  # (lowered once the worker has reached Redis)
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
                nice["worker"] = os.getpriority(os.PRIO_PROCESS, next(c for c in workers if " worker " in cmdline(c)))
            assert nice == {"worker": min(mine + 10, 19), "alerts": mine}
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(90) == 0, log.read_text()
            except subprocess.TimeoutExpired:
                pytest.fail("python app.py did not stop on SIGTERM:\n" + log.read_text())
        finally:
            if proc.poll() is None:  # (failed before its stop: nothing of the demo is left running)
                for pid in [*children(proc.pid), proc.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proc.wait(10)
    deadline = time.monotonic() + 30
    while any(PARTS.search(cmdline(w)) for w in workers):
        assert time.monotonic() < deadline, f"worker or alert process left behind: {workers}"
        time.sleep(0.2)
