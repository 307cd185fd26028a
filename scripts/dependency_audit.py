"""Dependency audit (run by `make test`): the pinned versions in pyproject.toml checked with pip-audit
against its vulnerability data. Fails on a known vulnerability unless it is listed, with a reason and
a date, in .ci/audit-exceptions.toml.

When the vulnerability data cannot be reached (no network, or a package index without the per-release
data pip-audit reads), it says so plainly and does not fail the run: an audit that could not look
must not pass for a clean one, nor block every test run.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCEPTIONS_FILE = ROOT / ".ci" / "audit-exceptions.toml"
TIMEOUT_SECONDS = 90
UNREACHABLE_MARKERS = (
    "ConnectionError",
    "NameResolutionError",
    "Failed to resolve",
    "Max retries exceeded",
    "timed out",
    "Temporary failure in name resolution",
)
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[^\s;]+$")


def pinned_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Every dependency of the project and of its `dev` extra, each pinned to one version."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = [*project["dependencies"], *project.get("optional-dependencies", {}).get("dev", [])]
    unpinned = [r for r in requirements if not PIN.match(r.strip())]
    if unpinned:
        raise SystemExit(f"Dependency audit: pin every dependency to one version (name==x.y): {unpinned}")
    return [r.strip() for r in requirements]


@dataclass
class AcceptedException:
    id: str
    package: str
    reason: str
    accepted: dt.date
    review_by: dt.date | None = None

    def applies(self, today: dt.date) -> bool:
        return self.review_by is None or today <= self.review_by


def load_exceptions(path: Path = EXCEPTIONS_FILE) -> list[AcceptedException]:
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text(encoding="utf-8")).get("exception", [])
    accepted = []
    for entry in entries:
        missing = [key for key in ("id", "package", "reason", "accepted") if not entry.get(key)]
        if missing or not isinstance(entry["accepted"], dt.date):
            raise SystemExit(
                f"{path.name}: every exception needs id, package, reason and accepted (a date): {entry}"
            )
        accepted.append(
            AcceptedException(
                id=entry["id"],
                package=entry["package"].lower(),
                reason=entry["reason"],
                accepted=entry["accepted"],
                review_by=entry.get("review_by"),
            )
        )
    return accepted


@dataclass
class Verdict:
    ok: bool
    reachable: bool
    lines: list[str] = field(default_factory=list)


def judge(
    returncode: int, stdout: str, stderr: str, exceptions: list[AcceptedException], today: dt.date
) -> Verdict:
    """What pip-audit's JSON report (or its failure) means for the run."""
    try:
        report = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        report = None
    if report is None:
        if any(marker in stderr for marker in UNREACHABLE_MARKERS):
            reason = next(line for line in reversed(stderr.strip().splitlines()) if line.strip())
            return Verdict(
                ok=True,
                reachable=False,
                lines=[
                    "Dependency audit NOT DONE: the vulnerability data could not be reached from this "
                    "machine (not failing the run).",
                    f"  {reason[:300]}",
                ],
            )
        return Verdict(
            ok=False, reachable=True, lines=[f"pip-audit failed (exit {returncode}):", stderr[-2000:]]
        )

    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    audited = [d for d in dependencies if not d.get("skip_reason")]
    if dependencies and not audited:
        return Verdict(
            ok=True,
            reachable=False,
            lines=[
                "Dependency audit NOT DONE: the vulnerability service answered for none of the "
                f"{len(dependencies)} pinned packages (not failing the run).",
                f"  e.g. {skipped[0]['skip_reason']}",
            ],
        )
    accepted = {(e.id, e.package): e for e in exceptions if e.applies(today)}
    lines, failures, used = [], 0, set()
    for dependency in audited:
        name = dependency["name"].lower()
        for vuln in dependency.get("vulns", []):
            ids = [vuln["id"], *vuln.get("aliases", [])]
            match = next((accepted[(i, name)] for i in ids if (i, name) in accepted), None)
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            if match:
                used.add((match.id, match.package))
                lines.append(f"  accepted {vuln['id']} in {name} {dependency['version']}: {match.reason}")
            else:
                failures += 1
                lines.append(
                    f"  VULNERABLE {name} {dependency['version']}: {vuln['id']} (fixed in {fixed}) "
                    f"{(vuln.get('description') or '')[:200]}"
                )
    for exception in exceptions:
        if not exception.applies(today):
            lines.append(f"  exception {exception.id} ({exception.package}) expired on {exception.review_by}")
        elif (exception.id, exception.package) not in used:
            lines.append(f"  exception {exception.id} ({exception.package}) no longer needed: remove it")
    if skipped:
        lines.append(f"  not audited (unknown to the service): {', '.join(d['name'] for d in skipped)}")
    summary = (
        f"Dependency audit: {len(audited)} pinned packages checked, {failures} unaccepted vulnerabilities, "
        f"{len(used)} accepted."
    )
    return Verdict(ok=failures == 0, reachable=True, lines=[summary, *lines])


def run_pip_audit(requirements: list[str]) -> tuple[int, str, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(requirements) + "\n")
        path = handle.name
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        path,
        "--no-deps",  # every requirement is pinned; their own dependencies are not resolved
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--timeout",
        "15",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
        return result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired:
        return 1, "", f"pip-audit timed out after {TIMEOUT_SECONDS} s"
    finally:
        Path(path).unlink(missing_ok=True)


def main() -> int:
    verdict = judge(*run_pip_audit(pinned_requirements()), load_exceptions(), dt.date.today())
    print("\n".join(verdict.lines), flush=True)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
