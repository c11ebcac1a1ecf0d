"""Dependency audit for CI: `python -m lineage.security_audit` runs pip-audit over the installed
environment (the project itself, installed editable, is skipped) and fails on any known vulnerability.

A vulnerability that cannot be fixed yet is ignored only through IGNORED_VULNERABILITIES below, each
with the reason it does not apply or what we wait for; every other finding fails the run.

pip-audit asks a vulnerability database (PyPI's JSON API by default) about each installed
distribution. Where that database cannot be reached (a sandbox whose package mirror serves only the
simple index), pip-audit reports every dependency as "not found" and, on its own, would still say
"No known vulnerabilities found". This wrapper says plainly that nothing was audited instead; it fails
then only when LINEAGE_AUDIT_REQUIRE_DB=1, so CI on a machine without the database still runs the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Vulnerability id -> why it is ignored. Empty: nothing is ignored.
IGNORED_VULNERABILITIES: dict[str, str] = {}


def pip_audit_command() -> list[str]:
    executable = Path(sys.executable).with_name("pip-audit")
    command = [str(executable) if executable.exists() else "pip-audit", "--skip-editable", "--format", "json",
               "--progress-spinner", "off"]
    for vuln_id in sorted(IGNORED_VULNERABILITIES):
        command += ["--ignore-vuln", vuln_id]
    return command


def summarise(report: dict) -> dict:
    """Counts and findings from pip-audit's JSON report."""
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    findings = [
        (d["name"], d.get("version", "?"), v["id"], ", ".join(v.get("fix_versions") or []) or "no fix yet")
        for d in dependencies
        for v in d.get("vulns", [])
        if v["id"] not in IGNORED_VULNERABILITIES
    ]
    return {"dependencies": len(dependencies), "audited": len(dependencies) - len(skipped), "skipped": len(skipped),
            "findings": findings}


def main() -> int:
    require_db = os.environ.get("LINEAGE_AUDIT_REQUIRE_DB") == "1"
    completed = subprocess.run(pip_audit_command(), capture_output=True, text=True, check=False)
    try:
        report = json.loads(completed.stdout or "{}")
    except json.JSONDecodeError:
        report = None
    if not report or "dependencies" not in report:
        print(f"pip-audit did not produce a report (exit {completed.returncode}):\n{completed.stderr.strip()}")
        return 1 if require_db or completed.returncode not in (0, 1) else 0
    summary = summarise(report)
    for vuln_id, reason in sorted(IGNORED_VULNERABILITIES.items()):
        print(f"pip-audit: ignoring {vuln_id}: {reason}")
    if summary["findings"]:
        print(f"pip-audit: {len(summary['findings'])} known vulnerabilities in the installed environment:")
        for name, version, vuln_id, fixes in summary["findings"]:
            print(f"  {name} {version}: {vuln_id} (fixed in: {fixes})")
        print("Upgrade within the ranges in pyproject.toml, or add a justified entry to IGNORED_VULNERABILITIES.")
        return 1
    if summary["dependencies"] and summary["audited"] == 0:
        print(f"pip-audit: WARNING: no vulnerability database could be reached; none of the "
              f"{summary['dependencies']} installed distributions was audited.")
        return 1 if require_db else 0
    print(f"pip-audit: no known vulnerabilities in {summary['audited']} audited distributions"
          f" ({summary['skipped']} could not be audited).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
