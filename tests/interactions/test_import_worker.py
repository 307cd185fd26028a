"""The interactions import (an import kind) through a REAL Celery worker: check, preview, confirm,
write; the other tenant untouched."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from crm.jobs.models import BackgroundJob
from customers.models import Customer
from interactions import imports
from interactions.models import Interaction

pytestmark = pytest.mark.celery_worker


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


def test_an_interactions_import_runs_through_a_real_worker(
    celery_worker, committed_tenant, django_db_blocker
):
    tenant, other = committed_tenant(), committed_tenant()
    with django_db_blocker.unblock():
        with tenant_context(tenant):
            manager = User.objects.get(email=f"manager@{tenant.slug}.test")
            Customer.objects.create(name="王芳", email="wang@example.com", owner=manager)
            content = "邮箱,日期,渠道,主题\nwang@example.com,2025-03-01 10:00,微信,回访\n"
            job = imports.import_upload(
                actor=manager, uploaded_file=SimpleUploadedFile("h.csv", content.encode("utf-8"))
            )
            # Outside a transaction the task is sent at once (job_enqueue uses on_commit).
            imports.import_start(actor=manager, job=job, mapping=job.params["mapping"])
            job = _wait_for(job.pk, "preview")
            preview = job.result["preview"]
            assert (preview["valid_rows"], preview["error_count"]) == (1, 0)
            assert preview["sample"][0][0] == "王芳" and not Interaction.objects.exists()
            imports.import_confirm(actor=manager, job=job)
            job = _wait_for(job.pk, "done")
            assert job.status == BackgroundJob.Status.SUCCEEDED and job.result["imported"] == 1
            assert Interaction.objects.get().channel == "wechat"
        with tenant_context(other):
            assert not Interaction.objects.exists()
        connection.set_schema_to_public()
