"""The job runner (crm.jobs.runner) owns a job's whole lifecycle: start (a redelivered message is a
no-op), the job's language, progress, the output file, success and failure with a readable message."""

import ast
import logging
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from crm.errors import ApplicationError
from crm.jobs.models import BackgroundJob
from crm.jobs.runner import run_job
from crm.jobs.services import job_create, job_fail
from tests.conftest import REPO_ROOT

FAILED = BackgroundJob.Status.FAILED
SUCCEEDED = BackgroundJob.Status.SUCCEEDED


def _job(**params) -> BackgroundJob:
    return job_create(kind="test.runner", params=params)


def test_the_body_runs_in_the_language_of_the_job(tenant):
    job = _job(language="zh-hans")
    run_job(
        job.pk, lambda run: run.succeed(message=translation.gettext("Ready to download")), failure_message="x"
    )
    job.refresh_from_db()
    assert job.status == SUCCEEDED and job.progress == 100
    with translation.override("zh-hans"):
        assert job.message == translation.gettext("Ready to download") != "Ready to download"
    assert translation.get_language() == "en"  # the caller's language is back


def test_without_a_language_of_its_own_the_job_speaks_the_tenants(tenant):
    job = _job()
    tenant.default_language = "zh-hans"  # the connection's tenant, as a worker sees it
    languages = []
    run_job(job.pk, lambda run: languages.append(translation.get_language()), failure_message="x")
    assert languages == ["zh-hans"]


def test_a_finished_job_is_not_run_again(tenant):
    job = _job()
    calls = []
    assert run_job(job.pk, lambda run: calls.append(1) or "first", failure_message="x") == "first"
    assert run_job(job.pk, lambda run: calls.append(2) or "again", failure_message="x") is None
    assert calls == [1]


def test_a_job_whose_params_moved_on_is_not_started(tenant):
    job = _job(stage="preview")
    calls = []
    assert run_job(job.pk, calls.append, failure_message="x", start_if={"stage": "validating"}) is None
    job.refresh_from_db()
    assert calls == [] and job.status == BackgroundJob.Status.PENDING


def test_an_unexpected_error_is_logged_and_the_user_reads_the_fixed_message(tenant, caplog):
    job = _job(language="zh-hans")

    def body(run):
        raise RuntimeError("relation customers_secret does not exist")

    with caplog.at_level(logging.ERROR, logger="crm.jobs.runner"), pytest.raises(RuntimeError):
        run_job(job.pk, body, failure_message=_("The export failed. Please try again."))
    job.refresh_from_db()
    assert job.status == FAILED
    with translation.override("zh-hans"):
        assert job.shown_message == translation.gettext("The export failed. Please try again.")
    assert "customers_secret" not in job.message
    assert "customers_secret" in caplog.text and "Traceback" in caplog.text  # the log keeps the details


def test_an_application_error_is_shown_as_it_is_and_not_raised(tenant):
    job = _job()

    def body(run):
        raise ApplicationError("The user who asked for this export is no longer active.")

    assert run_job(job.pk, body, failure_message="The export failed.") is None
    job.refresh_from_db()
    assert job.status == FAILED
    assert job.message == "The user who asked for this export is no longer active."


def test_a_body_that_returns_succeeds_unless_something_else_finished_the_job(tenant):
    done = _job()
    run_job(done.pk, lambda run: None, failure_message="x")
    done.refresh_from_db()
    assert done.status == SUCCEEDED

    # e.g. a second delivery that waited on the first one's lock and found the job failed
    other = _job()
    run_job(other.pk, lambda run: job_fail(job_id=run.job_id, message="stopped"), failure_message="x")
    other.refresh_from_db()
    assert other.status == FAILED and other.message == "stopped"


def test_succeed_merges_params_and_keeps_the_result(tenant):
    job = _job(stage="validating", filename="a.csv")
    run_job(
        job.pk, lambda run: run.succeed(result={"rows": 3}, params={"stage": "preview"}), failure_message="x"
    )
    job.refresh_from_db()
    assert job.params == {"stage": "preview", "filename": "a.csv"} and job.result == {"rows": 3}


def test_progress_is_written_once_per_change(tenant):
    job = _job()
    seen = []

    def body(run):
        with CaptureQueriesContext(connection) as queries:
            run.progress(40, "Writing rows")
            run.progress(40, "Writing rows")
            run.progress(140, "Writing rows")
        seen.append(sum("UPDATE" in q["sql"] for q in queries.captured_queries))
        seen.append(BackgroundJob.objects.get(pk=run.job_id).progress)

    run_job(job.pk, body, failure_message="x")
    assert seen == [2, 100]


def test_the_output_file_replaces_the_earlier_one(tenant):
    job = _job()
    names = []

    def body(run):
        names.append(run.save_output("runner-first.csv", b"first"))
        names.append(run.save_output("runner-second.csv", b"second"))

    run_job(job.pk, body, failure_message="x")
    job.refresh_from_db()
    assert job.output_file.name == names[1]
    assert f"/{tenant.schema_name}/" in job.output_file.path  # under the tenant's own folder
    with job.output_file.open("rb") as handle:
        assert handle.read() == b"second"
    assert not job.output_file.storage.exists(names[0])  # the earlier file is deleted, not orphaned
    job.output_file.storage.delete(names[1])


@pytest.mark.celery_worker
def test_a_real_worker_runs_a_job_once_in_its_language_and_fails_it_readably(
    celery_worker, committed_tenant, django_db_blocker
):
    from customers.exports.services import EXPORT_KIND
    from customers.exports.tasks import export_task
    from tests.factories import CustomerFactory

    tenant = committed_tenant()
    with django_db_blocker.unblock(), tenant_context(tenant):
        manager = User.objects.get(email=f"manager@{tenant.slug}.test")
        sales = User.objects.get(email=f"sales@{tenant.slug}.test")
        CustomerFactory.create_batch(2)
        params = {"query": "", "format": "csv", "language": "zh-hans"}
        job = job_create(kind=EXPORT_KIND, created_by=manager, params=params)
        # The same message delivered twice (acks_late): the second finds the job finished.
        first, second = export_task.delay(job_id=job.pk), export_task.delay(job_id=job.pk)
        first.get(timeout=60)
        job.refresh_from_db()
        output = job.output_file.name
        second.get(timeout=60)
        job.refresh_from_db()
        assert job.status == SUCCEEDED and job.result == {"rows": 2}, celery_worker["log"].read_text()[-2000:]
        assert job.output_file.name == output  # written once
        # Stored as a key and parameters, shown in the reader's language (issue 15).
        assert (job.message, job.message_params) == ("%(count)d customers", {"count": 2})
        with translation.override("zh-hans"):
            assert job.shown_message == translation.gettext("%(count)d customers") % {"count": 2}
        with translation.override("en"):
            assert job.shown_message == "2 customers"

        User.objects.filter(pk=sales.pk).update(is_active=False)
        refused = job_create(kind=EXPORT_KIND, created_by=sales, params=params)
        export_task.delay(job_id=refused.pk).get(timeout=60)
        refused.refresh_from_db()
        assert refused.status == FAILED and not refused.output_file
        with translation.override("zh-hans"):
            assert refused.shown_message == translation.gettext(
                "The user who asked for this export is no longer active."
            )
        job.output_file.storage.delete(output)
    connection.set_schema_to_public()


# --- only crm/jobs writes BackgroundJob rows --------------------------------------------------------

WRITE_METHODS = {
    "update",
    "create",
    "delete",
    "bulk_create",
    "bulk_update",
    "get_or_create",
    "update_or_create",
}
LIFECYCLE = {"job_start", "job_progress", "job_succeed", "job_fail", "job_save_output"}


def _mentions_job_manager(node: ast.AST) -> bool:
    """Is `node` (a receiver chain) built on `BackgroundJob.objects` / `BackgroundJob._meta`?"""
    while isinstance(node, ast.Call | ast.Attribute | ast.Subscript):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "BackgroundJob"
        ):
            return True
        node = node.func if isinstance(node, ast.Call) else node.value
    return False


def job_writes_outside_jobs(root: Path) -> list[str]:
    """Every place outside crm/jobs (and tests, migrations) that writes BackgroundJob rows itself:
    a manager/queryset write, raw SQL on its table, a new instance, or a lifecycle call that belongs
    to the runner."""
    found = []
    packages = [
        p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists() and p.name != "tests"
    ]
    for path in sorted(path for package in packages for path in package.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith("crm/jobs/") or "/migrations/" in relative:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{relative}:{getattr(node, 'lineno', '?')}"
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WRITE_METHODS
                and _mentions_job_manager(node.func.value)
            ):
                found.append(f"{where} BackgroundJob ...{node.func.attr}()")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "BackgroundJob"
            ):
                found.append(f"{where} BackgroundJob(...)")
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "_meta"
                and isinstance(node.value, ast.Name)
                and node.value.id == "BackgroundJob"
            ):
                found.append(f"{where} BackgroundJob._meta (raw SQL)")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crm.jobs"):
                for alias in node.names:
                    if alias.name in LIFECYCLE:
                        found.append(f"{where} imports {alias.name} (use crm.jobs.runner)")
    return sorted(found, key=lambda line: (line.split(":")[0], int(line.split(":")[1].split(" ")[0])))


def test_only_crm_jobs_writes_background_job_rows():
    assert job_writes_outside_jobs(REPO_ROOT) == []


def test_the_ownership_check_finds_a_write(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "services.py").write_text(
        "from crm.jobs.services import job_succeed\n"
        "def f(job):\n"
        "    BackgroundJob.objects.filter(\n        pk=job.pk\n    ).update(status='failed')\n"
        "    BackgroundJob.objects.create(kind='x')\n"
        "    sql = f'UPDATE {BackgroundJob._meta.db_table} SET progress = 1'\n"
        "    BackgroundJob.objects.filter(pk=1).first()\n"
    )
    found = job_writes_outside_jobs(tmp_path)
    assert [line.split(" ", 1)[0] for line in found] == [
        "app/services.py:1",
        "app/services.py:3",
        "app/services.py:6",
        "app/services.py:7",
    ], found
