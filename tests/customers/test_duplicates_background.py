"""The duplicates page never makes a big tenant wait: above INLINE_SCAN_LIMIT customers the scan
runs as a background job (one per scope), and the last finished list stays on screen meanwhile."""

import time

import pytest
from django.db import connection
from django.urls import reverse
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.jobs.models import BackgroundJob
from customers.dedupe import selectors as dedupe_selectors
from customers.dedupe.jobs import SCAN_JOB_KIND, duplicate_scan_run
from customers.dedupe.selectors import duplicate_scan_for_page
from tests.factories import CustomerFactory


def test_a_big_scope_is_scanned_in_the_background_and_the_last_list_stays(
    tenant, manager_client, manager_user, monkeypatch
):
    monkeypatch.setattr(dedupe_selectors, "INLINE_SCAN_LIMIT", 0)
    first = CustomerFactory(email="same@example.com")
    second = CustomerFactory(email="same@example.com")
    url = reverse("customers:duplicates")
    pair = f'data-pair="{first.pk}-{second.pk}"'

    page = manager_client.get(url).content.decode()
    assert 'data-testid="duplicate-scan-running"' in page and "Still looking" in page and pair not in page
    assert "No likely duplicates found." not in page
    manager_client.get(url)  # a second visit joins the running scan
    job = BackgroundJob.objects.get(kind=SCAN_JOB_KIND)
    assert job.created_by == manager_user and "then=reload" in page

    assert duplicate_scan_run(job_id=job.pk, user_id=manager_user.pk, key=job.params["key"]) == 1
    assert (
        duplicate_scan_run(job_id=job.pk, user_id=manager_user.pk, key=job.params["key"]) == 0
    )  # redelivery
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.SUCCEEDED and job.result["pairs"] == 1
    page = manager_client.get(url).content.decode()
    assert pair in page and 'data-testid="duplicate-scan-running"' not in page

    # A change makes the list out of date: it stays on screen while a new scan runs.
    CustomerFactory(email="someone.else@example.com")
    page = manager_client.get(url).content.decode()
    assert pair in page and "Customers have changed since this list was made" in page
    assert BackgroundJob.objects.filter(kind=SCAN_JOB_KIND).count() == 2


def test_small_scopes_are_still_scanned_at_once(tenant, manager_client):
    first = CustomerFactory(email="same@example.com")
    second = CustomerFactory(email="same@example.com")
    page = manager_client.get(reverse("customers:duplicates")).content.decode()
    assert f'data-pair="{first.pk}-{second.pk}"' in page
    assert not BackgroundJob.objects.filter(kind=SCAN_JOB_KIND).exists()


@pytest.mark.celery_worker
def test_the_background_scan_runs_on_a_real_worker(
    celery_worker, committed_tenant, django_db_blocker, monkeypatch
):
    monkeypatch.setattr(dedupe_selectors, "INLINE_SCAN_LIMIT", 0)
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        first = CustomerFactory(email="twin@example.com")
        second = CustomerFactory(email="twin@example.com")
        manager = User.objects.get(email=f"manager@{tenant.slug}.test")
        asked = duplicate_scan_for_page(user=manager)  # autocommit: the task is sent at once
        assert asked.scan is None and asked.job is not None
        deadline = time.monotonic() + 60
        job = asked.job
        while time.monotonic() < deadline and job.is_active:
            time.sleep(0.2)
            job.refresh_from_db()
        assert job.status == BackgroundJob.Status.SUCCEEDED, celery_worker["log"].read_text()[-2000:]
        found = duplicate_scan_for_page(user=manager)
        assert found.job is None and not found.stale
        assert [(p.first_id, p.second_id) for p in found.scan] == [(first.pk, second.pk)]
    connection.set_schema_to_public()
