"""The dependency audit's verdicts, from pip-audit's JSON report (the report format of the pinned
pip-audit): a known vulnerability fails the run unless accepted with a reason and a date; an audit that
could not reach its data says so and passes."""

import datetime as dt
import importlib.util
import json
import sys
import tomllib

import pytest

from tests.conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "dependency_audit", REPO_ROOT / "scripts" / "dependency_audit.py"
)
audit = importlib.util.module_from_spec(spec)
sys.modules["dependency_audit"] = audit  # dataclasses look their module up there
spec.loader.exec_module(audit)

TODAY = dt.date(2026, 12, 3)
VULN = {
    "id": "GHSA-aaaa-bbbb-cccc",
    "aliases": ["CVE-2026-0001", "PYSEC-2026-1"],
    "fix_versions": ["5.2.20"],
    "description": "SQL injection in something",
}


def report(*dependencies) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def accepted(id_="CVE-2026-0001", package="django", review_by=None):
    return audit.AcceptedException(
        id=id_, package=package, reason="not reachable in our use", accepted=TODAY, review_by=review_by
    )


def test_every_pinned_dependency_is_audited():
    requirements = audit.pinned_requirements()
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert len(requirements) == len(project["dependencies"]) + len(project["optional-dependencies"]["dev"])
    assert any(r.startswith("Django==") for r in requirements)
    assert "pip-audit==2.10.1" in requirements and "django-csp==4.0" in requirements


def test_an_unpinned_dependency_stops_the_audit(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["Django>=5"]\n')
    with pytest.raises(SystemExit, match="pin every dependency"):
        audit.pinned_requirements(pyproject)


def test_a_known_vulnerability_fails_the_run():
    verdict = audit.judge(
        1,
        report(
            {"name": "django", "version": "5.2.19", "vulns": [VULN]},
            {"name": "redis", "version": "8.1.0", "vulns": []},
        ),
        "",
        [],
        TODAY,
    )
    assert not verdict.ok and verdict.reachable
    assert "VULNERABLE django 5.2.19: GHSA-aaaa-bbbb-cccc (fixed in 5.2.20)" in "\n".join(verdict.lines)


def test_an_accepted_vulnerability_passes_until_its_review_date():
    dependency = {"name": "Django", "version": "5.2.19", "vulns": [VULN]}
    verdict = audit.judge(1, report(dependency), "", [accepted()], TODAY)
    assert verdict.ok and "accepted GHSA-aaaa-bbbb-cccc in django" in "\n".join(verdict.lines)
    expired = audit.judge(
        1, report(dependency), "", [accepted(review_by=TODAY - dt.timedelta(days=1))], TODAY
    )
    assert not expired.ok and "expired" in "\n".join(expired.lines)
    other_package = audit.judge(1, report(dependency), "", [accepted(package="flask")], TODAY)
    assert not other_package.ok


def test_an_exception_no_longer_needed_is_reported():
    verdict = audit.judge(
        0, report({"name": "django", "version": "5.2.20", "vulns": []}), "", [accepted()], TODAY
    )
    assert verdict.ok and "no longer needed" in "\n".join(verdict.lines)


@pytest.mark.parametrize(
    "stdout, stderr",
    [
        (
            "",
            "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev'): Failed to resolve",
        ),
        ("", "pip-audit timed out after 90 s"),
        (
            report(
                {
                    "name": "django",
                    "skip_reason": "Dependency not found on PyPI and could not be audited: django",
                },
                {
                    "name": "redis",
                    "skip_reason": "Dependency not found on PyPI and could not be audited: redis",
                },
            ),
            "",
        ),
    ],
)
def test_unreachable_vulnerability_data_is_reported_and_does_not_fail(stdout, stderr):
    verdict = audit.judge(1, stdout, stderr, [], TODAY)
    assert verdict.ok and not verdict.reachable
    assert verdict.lines[0].startswith("Dependency audit NOT DONE")


def test_any_other_failure_of_pip_audit_fails_the_run():
    verdict = audit.judge(2, "", "usage: pip-audit: error: unrecognized arguments", [], TODAY)
    assert not verdict.ok


def test_the_committed_exceptions_file_is_well_formed():
    for exception in audit.load_exceptions():
        assert exception.reason and exception.accepted <= dt.date.today()


def test_an_exception_without_reason_or_date_is_refused(tmp_path):
    path = tmp_path / "exceptions.toml"
    path.write_text('[[exception]]\nid = "GHSA-x"\npackage = "django"\n')
    with pytest.raises(SystemExit, match="reason and accepted"):
        audit.load_exceptions(path)
