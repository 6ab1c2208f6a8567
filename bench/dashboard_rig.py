"""The running parts a dashboard benchmark needs, each a real process on free ports, as
production runs them: redis-server, the plant simulator (``bench/live_plant.py``), the
collector and the rollup worker (``app.py collect`` / ``app.py worker``), the dashboard
server (``server_command``: uvicorn as the README's production line; any other command
through ``Rig(server_cmd=...)``), and headless Chromium.

    with Rig(tmp, hours=13) as rig:        # every process is stopped on exit
        rig.url, rig.plant, rig.bump("BW1", "ST80", 50)
        rig.restart_server({"LIVE_PUSH": "0"})  # the same server command, another environment

The plant is the demo plant with line BW1 lengthened to 8 machines (``ST80``, a copy of
``ST70``, becomes the output machine): the line page benchmark wants an 8-machine line.
Its shifts have no breaks, so every moment is planned time: parts made in a break count as
unplanned output, which the wall and the line page do not show, and the end-to-end
measurement (a jump of the output machine's counter) would wait in vain during a break.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from config.loader import DEMO_PLANT, load_plant
from domain.plant import Plant
from store.clients import node
from tests.support import RedisServer, external_redis_url, free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")

LONG_LINE = "BW1"
ADDED_MACHINE = "ST80"


# --- the plant file ------------------------------------------------------------------------

def bench_plant_text(opc_port: int) -> str:
    """The demo plant, BW1 with an eighth machine as its output, served on ``opc_port``."""
    raw = yaml.safe_load(DEMO_PLANT.read_text(encoding="utf-8"))
    for endpoint in raw["endpoints"].values():
        endpoint["url"] = f"opc.tcp://127.0.0.1:{opc_port}/bench/"
    line = next(ln for ln in raw["lines"] if ln["id"] == LONG_LINE)
    added = copy.deepcopy(line["machines"][-1])
    previous = added["id"]
    added.update(id=ADDED_MACHINE, name="Hemming and final check")
    added["nodes"] = {k: v.replace(f".{previous}.", f".{ADDED_MACHINE}.") for k, v in added["nodes"].items()}
    line["machines"].append(added)
    line["output_machine"] = ADDED_MACHINE
    for shift in raw["shifts"]:
        shift["breaks"] = []  # parts made in a break are unplanned output: the tiles would not move
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def write_bench_plant(folder: Path, opc_port: int) -> tuple[Path, Plant]:
    path = folder / "bench_plant.yaml"
    path.write_text(bench_plant_text(opc_port), encoding="utf-8")
    return path, load_plant(path)


# --- processes -----------------------------------------------------------------------------

class Proc:
    """A child process in its own process group, output to a log file; ``stop`` ends the
    group (uvicorn's workers too), by this process's id only."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path,
                 stdin: int | None = None, stdout: int | IO[bytes] | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=stdin, stdout=stdout or self._log,
                                      stderr=self._log, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, proc: Proc | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited while waiting for {what}:\n{proc.log_tail()}")
        try:
            last = predicate()
        except Exception as exc:  # not up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    tail = f"\n{proc.log_tail()}" if proc is not None else ""
    raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}: {last!r}{tail}")


def get_json(url: str, timeout_s: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


class LivePlant(Proc):
    """``bench/live_plant.py``: history, then the live simulator, commands on stdin."""

    def __init__(self, plant_file: Path, hours: float, seed: int, env: dict[str, str], log_dir: Path) -> None:
        argv = [PYTHON, str(ROOT / "bench" / "live_plant.py"), "--plant", str(plant_file), "--hours", str(hours),
                "--seed", str(seed)]
        super().__init__("live_plant", argv, env, log_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.ready = self._answer(timeout_s=120)

    def _answer(self, timeout_s: float) -> dict[str, Any]:
        import selectors

        assert self.popen.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.popen.stdout, selectors.EVENT_READ)
            if not sel.select(timeout_s):
                raise RuntimeError(f"live plant: no answer in {timeout_s:g} s\n{self.log_tail()}")
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"live plant exited:\n{self.log_tail()}")
        return json.loads(line)  # type: ignore[no-any-return]

    def bump(self, line: str, machine: str, parts: int) -> dict[str, Any]:
        """The machine's good counter + ``parts`` at the OPC UA server; ``{"t", "value"}``."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(f"bump {line} {machine} {parts}\n".encode())
        self.popen.stdin.flush()
        return self._answer(timeout_s=10)


SERVER = "server"  # the dashboard server's name in ``Rig.pids()`` and its log file


def server_command(workers: int, threads: int = 0) -> list[str]:
    """The dashboard server as production runs it (README "What runs where": uvicorn worker
    processes); ``{port}`` is filled in at start; another server through
    ``Rig(server_cmd=...)``. ``threads`` is not used: under uvicorn an open screen holds no
    thread, and each worker runs callbacks in its own pool (``components.delivery``)."""
    return [PYTHON, "-m", "uvicorn", "--factory", "app:create_server", "--workers", str(workers),
            "--host", "127.0.0.1", "--port", "{port}", "--no-access-log"]


def start_server(command: Sequence[str], env: dict[str, str], log_dir: Path) -> tuple[Proc, str]:
    """``command`` (``{port}`` replaced by a free port; a bare program name found beside this
    Python first) started and answering ``/api/lines``; the process and its base URL."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    if "/" not in argv[0] and Path(sys.executable).with_name(argv[0]).exists():  # the venv's gunicorn, uvicorn...
        argv[0] = str(Path(sys.executable).with_name(argv[0]))
    proc = Proc(SERVER, argv, env, log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: get_json(url + "/api/lines"), 60, "the dashboard server", proc)
    except BaseException:
        proc.stop()
        raise
    return proc, url


class Rig:
    """Redis (unless REDIS_URL), live plant, collector, worker, the dashboard server; all
    stopped on exit."""

    def __init__(self, folder: Path, *, hours: float, seed: int = 7, workers: int = 3, threads: int = 4,
                 server_cmd: Sequence[str] | None = None, log: Callable[[str], None] = print) -> None:
        self.folder = folder
        self.hours = hours
        self.seed = seed
        self.server_cmd = list(server_cmd) if server_cmd else server_command(workers, threads)
        self.log = log
        self.procs: list[Proc] = []
        self.redis_server: RedisServer | None = None
        self.redis_url = ""
        self.plant_file = Path()
        self.plant: Plant | None = None
        self.live: LivePlant | None = None
        self.server: Proc | None = None
        self.url = ""

    def __enter__(self) -> Rig:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def env(self) -> dict[str, str]:
        return {**os.environ, "REDIS_URL": self.redis_url, "PLANT_FILE": str(self.plant_file),
                "DATA_DIR": str(self.folder / "var"), "PYTHONUNBUFFERED": "1"}

    def _start(self) -> None:

        started = time.perf_counter()
        self.redis_url = external_redis_url() or ""
        if not self.redis_url:
            self.redis_server = RedisServer()
            self.redis_server.start()
            self.redis_url = self.redis_server.url
        client = node(self.redis_url)
        client.flushdb()
        client.close()
        self.plant_file, self.plant = write_bench_plant(self.folder, free_port())
        self.log(f"  redis {self.redis_url}; plant file {self.plant_file}")
        self.live = LivePlant(self.plant_file, self.hours, self.seed, self.env(), self.folder)
        self.procs.append(self.live)
        self.log(f"  live plant: {self.live.ready['events']:,} history events ({self.hours:g} h) written, "
                 f"simulator on {self.live.ready['url']}")
        self.procs.append(Proc("worker", [PYTHON, "app.py", "worker"], self.env(), self.folder))
        self.procs.append(Proc("collector", [PYTHON, "app.py", "collect"], self.env(), self.folder))
        self.restart_server()
        wait_until(self._caught_up, 120, "the collector's data and the worker catching up on the history")
        self.log(f"  {self.server_text()} on {self.url}; worker caught up "
                 f"({time.perf_counter() - started:.0f} s setup)")

    def server_text(self) -> str:
        return " ".join(Path(self.server_cmd[0]).name if i == 0 else part for i, part in enumerate(self.server_cmd))

    def restart_server(self, extra_env: dict[str, str] | None = None) -> str:
        """(Re)starts the dashboard server with ``server_cmd`` on a new port, the rig's
        environment plus ``extra_env``; its base URL (also ``self.url``)."""
        if self.server is not None:
            self.server.stop()
            self.procs.remove(self.server)
            self.server = None
        self.server, self.url = start_server(self.server_cmd, {**self.env(), **(extra_env or {})}, self.folder)
        self.procs.append(self.server)
        return self.url

    def _caught_up(self) -> bool:
        health = get_json(self.url + "/api/health")
        lags = [line["worker"]["closed_lag_s"] for line in health["lines"]]
        return all(line["ok"] for line in health["lines"]) and all(lag is not None and lag < 120 for lag in lags)

    def bump(self, line: str, machine: str, parts: int) -> dict[str, Any]:
        assert self.live is not None
        return self.live.bump(line, machine, parts)

    def pids(self) -> dict[str, list[int]]:
        """Process ids per part (the server: master and workers), for CPU accounting."""
        out = {}
        for proc in self.procs:
            out[proc.name] = [proc.pid, *children_of(proc.pid)]
        if self.redis_server is not None and self.redis_server.proc is not None:
            out["redis"] = [self.redis_server.proc.pid]
        return out

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        if self.redis_server is not None:
            self.redis_server.cleanup()
            self.redis_server = None


def children_of(pid: int) -> list[int]:
    """Descendants of ``pid`` (the server's workers), from the parent ids in /proc."""
    parents: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[ppid].append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given live processes (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def with_children(pid: int) -> list[int]:
    """``pid`` and every live process below it (a dashboard's reader pool, ``store.reader_pool``)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo.extend(parents.get(out[-1], ()))
    return out


def system_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_info() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "?")
    load = Path("/proc/loadavg").read_text().split()[:3]
    return f"{os.cpu_count()} CPUs ({model}), load average {' '.join(load)}"


# --- the browser ---------------------------------------------------------------------------

def chromium(performance_log: bool = False) -> Any:
    """Headless Chromium as the browser tests start it; optionally with the network log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1920,1080")
    prefs = {"browser": "ALL"}
    if performance_log:
        prefs["performance"] = "ALL"
    options.set_capability("goog:loggingPrefs", prefs)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    if performance_log:
        driver.execute_cdp_cmd("Network.enable", {"maxPostDataSize": 1 << 20})
    return driver
