"""The CI dependency audit's verdict (.ci/audit.py) on pip-audit reports: a known
vulnerability fails unless documented with a reason; no advisory data at all is a
visible skip, not a pass."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "audit.py"


def _audit() -> Any:
    spec = importlib.util.spec_from_file_location("ci_audit", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VULN = {"id": "GHSA-aaaa-bbbb-cccc", "aliases": ["CVE-2026-0001"], "fix_versions": ["3.1.4"], "description": "leak"}


def _report(*deps: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(deps), "fixes": []}


@pytest.mark.parametrize(
    ("report", "exceptions", "status", "says"),
    [
        (_report({"name": "flask", "version": "3.1.3", "vulns": [VULN]}), {}, 1, "dependency audit FAILED: 1"),
        (_report({"name": "flask", "version": "3.1.3", "vulns": [VULN]}), {"GHSA-aaaa-bbbb-cccc": "n/a"}, 0, "OK: 1"),
        (_report({"name": "flask", "version": "3.1.3", "vulns": [VULN]}), {"CVE-2026-0001": "n/a"}, 0, "OK: 1"),
        (_report({"name": "flask", "version": "3.1.3", "vulns": []}, {"name": "x", "skip_reason": "not found"}), {}, 0,
         "not audited (1): x"),
        (_report({"name": "x", "skip_reason": "not found"}, {"name": "y", "skip_reason": "not found"}), {}, 0,
         "SKIPPED: the advisory service had data for none of the 2"),
    ],
    ids=["vulnerable", "documented-by-id", "documented-by-alias", "partly-audited", "no-advisory-data"],
)
def test_verdict(capsys: pytest.CaptureFixture[str], report: dict, exceptions: dict, status: int, says: str) -> None:
    assert _audit().judge(report, exceptions) == status
    assert says in capsys.readouterr().out


def test_exception_needs_a_reason(tmp_path: Path) -> None:
    audit = _audit()
    good = tmp_path / "ok.txt"
    good.write_text("# comment\nGHSA-aaaa-bbbb-cccc  debugger only, never enabled (until 2027-06-30)\n\n")
    assert audit.read_exceptions(good) == {"GHSA-aaaa-bbbb-cccc": "debugger only, never enabled (until 2027-06-30)"}
    bad = tmp_path / "bad.txt"
    bad.write_text("GHSA-aaaa-bbbb-cccc   # no reason\n")
    with pytest.raises(SystemExit, match="needs a reason"):
        audit.read_exceptions(bad)
