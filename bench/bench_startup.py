"""From ``python app.py`` to live numbers on the wall: what a wall screen shows while the demo
starts (the history backfill, then the rollup worker catching it up).

    python bench/bench_startup.py [--runs 1] [--seconds 180]

Each run starts ``python app.py --port P --data-dir TMP`` (empty data: the 24 h demo history
is written and caught up) and at once opens ``/wall`` in headless Chromium, reloading it
until the server serves it. Every 0.5 s it notes the wall's banner and whether the OEE
figures show digits. Prints when the server first answered, when the wall first showed
numbers (the issue's target: within 20 s), each banner text with when it was first seen,
and whether "server not answering" appeared while the server answered /api/health.
Figures are printed, not asserted: the machine is shared.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "bench")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from dashboard_rig import chromium, machine_info  # noqa: E402

from config.loader import DEMO_PLANT  # noqa: E402
from tests.support import free_port  # noqa: E402

NUMBERS_JS = "return [...document.querySelectorAll('.wall-num-xl')].some(e => /\\d/.test(e.textContent));"
BANNER_JS = """const b = document.getElementById('wall-banner');
    return b && !b.classList.contains('d-none') ? b.textContent : '';"""


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 503 from /api/health is an answer
    except OSError:
        return False


def demo_plant_on(folder: Path, opc_port: int) -> Path:
    """The demo plant with its simulator on ``opc_port`` (another demo may hold 4840)."""
    raw = yaml.safe_load(DEMO_PLANT.read_text(encoding="utf-8"))
    for endpoint in raw["endpoints"].values():
        endpoint["url"] = f"opc.tcp://127.0.0.1:{opc_port}/bench/"
    path = folder / "plant.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def one_run(seconds: float, log_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as data_dir:
        plant = demo_plant_on(Path(data_dir), free_port())
        log = (log_dir / f"app-{port}.log").open("w")
        started = time.monotonic()
        app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--plant", str(plant), "--port", str(port),
                                "--data-dir", str(Path(data_dir) / "var")], stdout=log, stderr=subprocess.STDOUT,
                               cwd=ROOT)
        driver = chromium()
        first_answer = numbers_at = None
        banners: dict[str, float] = {}
        lied = 0
        try:
            while time.monotonic() - started < seconds:
                now = time.monotonic() - started
                if first_answer is None:
                    if answers(f"{base}/api/health"):
                        first_answer = now
                        driver.get(f"{base}/wall")
                    else:
                        time.sleep(0.25)
                        continue
                banner = driver.execute_script(BANNER_JS) or ""
                if banner:
                    banners.setdefault(banner.split("(")[0].strip(), now)
                if "not answering" in banner and answers(f"{base}/api/health"):
                    lied += 1
                if numbers_at is None and driver.execute_script(NUMBERS_JS):
                    numbers_at = now
                if numbers_at is not None and now - numbers_at > 10:
                    break
                time.sleep(0.5)
        finally:
            driver.quit()
            app.terminate()
            app.wait(30)
            log.close()
    print(f"  server answering after {first_answer if first_answer is not None else float('nan'):.1f} s; "
          f"wall numbers after {numbers_at if numbers_at is not None else float('nan'):.1f} s (target <= 20 s); "
          f"'not answering' shown while the server answered: {lied} times", flush=True)
    for text, at in banners.items():
        print(f"    {at:6.1f} s  {text}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=180.0, help="give up on a run after this long")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-logs-") as logs:
        for n in range(args.runs):
            print(f"run {n + 1}: machine {machine_info()}", flush=True)
            one_run(args.seconds, Path(logs))


if __name__ == "__main__":
    main()
