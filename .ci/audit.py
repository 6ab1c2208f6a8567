"""Dependency audit: pip-audit over the packages installed in a virtualenv (default: the
test venv ``.venv``, so transitive dependencies are audited at the versions CI runs).

Exit 1 on a known vulnerability that ``.ci/audit-exceptions.txt`` does not list with a
reason. When no advisory data can be reached (no package index to install pip-audit
from, or the advisory service answers for none of the packages: an offline or mirrored
network), the audit is SKIPPED with a message saying so, exit 0, so CI stays usable
offline; run it where the service is reachable (README, "Security").

    python .ci/audit.py [--python .venv/bin/python] [--service pypi|osv] [--report FILE]

``--report``: read a pip-audit JSON report instead of running pip-audit (tests, or a
report made on another machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCEPTIONS = ROOT / ".ci" / "audit-exceptions.txt"
PIP_AUDIT = "pip-audit==2.10.1"
TOOL_VENV = Path(tempfile.gettempdir()) / "oee-pip-audit"  # apart from the audited venv
UNREACHABLE = ("connection", "resolve", "timed out", "timeout", "network", "unreachable", "name or service")


def read_exceptions(path: Path = EXCEPTIONS) -> dict[str, str]:
    """``ID reason...`` per line (``#`` comments); an exception without a reason is an error."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: exception {vuln_id} needs a reason after the id")
        out[vuln_id] = reason.strip()
    return out


def pip_audit_binary() -> Path | None:
    binary = TOOL_VENV / "bin" / "pip-audit"
    if binary.exists():
        return binary
    steps = [[sys.executable, "-m", "venv", str(TOOL_VENV)],
             [str(TOOL_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", PIP_AUDIT]]
    for step in steps:
        if subprocess.run(step, capture_output=True, text=True, timeout=600).returncode != 0:
            return None
    return binary if binary.exists() else None


def run_pip_audit(python: Path, service: str, ignore: list[str]) -> tuple[dict | None, str]:
    """The JSON report, or None and why."""
    binary = pip_audit_binary()
    if binary is None:
        return None, f"cannot install {PIP_AUDIT} (no package index reachable)"
    command = [str(binary), "--format", "json", "--progress-spinner", "off", "--vulnerability-service", service]
    for vuln_id in ignore:
        command += ["--ignore-vuln", vuln_id]
    env = {**os.environ, "PIPAPI_PYTHON_LOCATION": str(python)}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    try:
        return json.loads(proc.stdout), ""
    except ValueError:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        if any(word in proc.stderr.lower() for word in UNREACHABLE):
            return None, f"the advisory service is unreachable ({detail})"
        raise SystemExit(f"pip-audit failed (exit {proc.returncode}): {detail}") from None


def judge(report: dict, exceptions: dict[str, str]) -> int:
    """Prints the verdict; the exit status for CI."""
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    skipped = [d for d in deps if "skip_reason" in d]
    found = [(d, v) for d in audited for v in d.get("vulns", []) if v.get("id") not in exceptions
             and not set(v.get("aliases", [])) & set(exceptions)]
    if found:
        for dep, vuln in found:
            fixes = ", ".join(vuln.get("fix_versions", [])) or "none yet"
            print(f"VULNERABLE {dep['name']} {dep.get('version')}: {vuln.get('id')} (fixed in: {fixes}) "
                  f"{(vuln.get('description') or '').splitlines()[0][:160] if vuln.get('description') else ''}")
        print(f"dependency audit FAILED: {len(found)} known vulnerabilities. Upgrade the pin in requirements.txt, "
              f"or list the id with the reason it does not apply in {EXCEPTIONS.relative_to(ROOT)}.")
        return 1
    if not audited:
        print(f"dependency audit SKIPPED: the advisory service had data for none of the {len(deps)} installed "
              "packages (this network cannot reach it, or its mirror has no advisory data). Run .ci/audit.py "
              "where pypi.org or api.osv.dev is reachable (README, Security).")
        return 0
    for exc_id, reason in exceptions.items():
        print(f"accepted exception {exc_id}: {reason}")
    if skipped:
        print(f"not audited ({len(skipped)}): " + ", ".join(sorted(d["name"] for d in skipped)))
    print(f"dependency audit OK: {len(audited)} packages, no known vulnerabilities without a documented exception")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="the environment to audit")
    parser.add_argument("--service", choices=("pypi", "osv"), default=os.environ.get("AUDIT_SERVICE", "pypi"))
    parser.add_argument("--report", help="a pip-audit JSON report to judge instead of running pip-audit")
    args = parser.parse_args(argv)
    exceptions = read_exceptions()
    if args.report:
        report: dict | None = json.loads(Path(args.report).read_text(encoding="utf-8"))
    else:
        report, why = run_pip_audit(Path(args.python), args.service, list(exceptions))
        if report is None:
            print(f"dependency audit SKIPPED: {why}. Run .ci/audit.py where advisory data is reachable "
                  "(README, Security).")
            return 0
    return judge(report, exceptions)


if __name__ == "__main__":
    sys.exit(main())
