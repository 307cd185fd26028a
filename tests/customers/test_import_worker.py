"""The import through a REAL Celery worker process (committed data in a throw-away tenant)."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from crm.jobs.models import BackgroundJob
from customers.imports import services
from customers.models import Customer, Tag

pytestmark = pytest.mark.celery_worker

CONTENT = (
    "姓名,手机号,邮箱,城市,标签\n"
    "王小明,138 0013 8000,wang@example.com,上海,VIP\n"
    "Anna Smith,+44 20 7946 0958,anna@example.com,London,VIP\n"
)


def _wait_for(job_id: int, stage: str, timeout: float = 60) -> BackgroundJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = BackgroundJob.objects.get(pk=job_id)
        if job.params.get("stage") == stage and not job.is_active:
            return job
        if job.status == BackgroundJob.Status.FAILED:
            pytest.fail(f"job failed: {job.message}")
        time.sleep(0.3)
    pytest.fail(f"job {job_id} did not reach {stage}: {BackgroundJob.objects.get(pk=job_id).params}")


def test_an_import_runs_to_the_end_in_a_real_worker(celery_worker, committed_tenant, django_db_blocker):
    tenant, other = committed_tenant(), committed_tenant()
    with django_db_blocker.unblock():
        with tenant_context(tenant):
            manager = User.objects.get(email=f"manager@{tenant.slug}.test")
            job = services.import_upload(
                actor=manager, uploaded_file=SimpleUploadedFile("worker.csv", CONTENT.encode("utf-8"))
            )
            # Outside a transaction the task is sent at once (job_enqueue uses on_commit).
            services.import_set_mapping(
                actor=manager, job=job, mapping=job.params["mapping"], policy="update"
            )
            job = _wait_for(job.pk, "preview")
            assert job.result["preview"]["errors_total"] == 0
            assert Customer.objects.count() == 0

            services.import_confirm(actor=manager, job=job, skip_invalid=False)
            job = _wait_for(job.pk, "done")
            assert job.status == BackgroundJob.Status.SUCCEEDED
            assert job.progress == 100
            assert job.result["written"]["customers_created"] == 2
            assert set(Customer.objects.values_list("phone", flat=True)) == {
                "+8613800138000",
                "+442079460958",
            }
            assert list(Tag.objects.values_list("name", flat=True)) == ["VIP"]
            # The import asks segmentation for a recompute; let the worker finish it before the
            # tenant's schema is dropped at teardown.
            deadline = time.monotonic() + 60
            while BackgroundJob.objects.filter(status__in=BackgroundJob.ACTIVE_STATUSES).exists():
                assert time.monotonic() < deadline, "follow-up jobs did not finish"
                time.sleep(0.3)
        with tenant_context(other):
            assert Customer.objects.count() == 0
        connection.set_schema_to_public()


@pytest.mark.django_db
def test_the_worker_knows_the_import_and_export_tasks():
    # (also makes pytest-django set up the test database when this module runs on its own)
    from crm.celery import app

    app.loader.import_default_modules()
    for name in (
        "customers.imports.tasks.import_validate_task",
        "customers.imports.tasks.import_run_task",
        "customers.imports.tasks.search_text_refresh_task",
        "customers.exports.tasks.export_task",
        "customers.exports.tasks.export_all_task",
    ):
        assert name in app.tasks, name


def test_the_worker_refuses_a_sheet_of_blank_rows_that_the_quick_look_did_not_reach(
    celery_worker, committed_tenant, django_db_blocker
):
    """The upload's quick look reads five rows; the rest (a gap of 150,000 blank rows, a few KB on
    disk) is only read by the worker, which refuses it at the default limit and writes nothing."""
    from tests.customers.test_import_bombs import inline_row, rewrite_xlsx, sheet_xml, xlsx_bytes

    rows = inline_row(1, "name", "email")
    rows += b"".join(inline_row(n, f"Customer {n}", f"c{n}@example.com") for n in range(2, 10))
    rows += inline_row(150_010, "Late", "late@example.com")
    data = rewrite_xlsx(xlsx_bytes([["x"]]), {"xl/worksheets/sheet1.xml": sheet_xml(rows, b"A1:B150010")})
    assert len(data) < 20_000
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with tenant_context(tenant):
            manager = User.objects.get(email=f"manager@{tenant.slug}.test")
            job = services.import_upload(actor=manager, uploaded_file=SimpleUploadedFile("blank.xlsx", data))
            services.import_set_mapping(
                actor=manager, job=job, mapping=job.params["mapping"], policy="update"
            )
            deadline = time.monotonic() + 60
            while True:
                job = BackgroundJob.objects.get(pk=job.pk)
                if job.status == BackgroundJob.Status.FAILED:
                    break
                assert job.params.get("stage") != "preview", "the worker accepted the blank rows"
                assert time.monotonic() < deadline, job.params
                time.sleep(0.3)
            assert "more than 100,000 blank rows" in job.message
            assert Customer.objects.count() == 0
        connection.set_schema_to_public()
