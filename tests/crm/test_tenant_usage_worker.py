"""The daily usage through a real Celery worker: beat's dispatcher sends one task per active company,
each writes its company's row in the public schema from that company's own tables; a worker killed
while writing leaves no row, and the message run again writes exactly one."""

import os
import signal
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.tenancy.models import Tenant, TenantUsage
from crm.tenancy.tasks import tenant_usage_all_tenants, tenant_usage_task
from tests.factories import CustomerFactory, OrderFactory
from tests.worker_kill import raw_connection, wait_until, waiting_on_lock

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]


def test_daily_usage_through_a_worker_and_a_kill_mid_write(
    committed_tenant, celery_worker_factory, django_db_blocker
):
    busy, quiet = committed_tenant(name="Busy Co"), committed_tenant(name="Quiet Co")
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        first_id = (TenantUsage.objects.order_by("-pk").values_list("pk", flat=True).first()) or 0
        try:
            with schema_context(busy.schema_name):
                customers = CustomerFactory.create_batch(5)
                OrderFactory.create_batch(3, customer=customers[0])
            Tenant.objects.filter(pk=quiet.pk).update(status=Tenant.Status.SUSPENDED)
            connection.set_schema_to_public()

            # Beat's entry, run by the worker: one task per active company, each in the public schema.
            worker = celery_worker_factory()
            sent = tenant_usage_all_tenants.delay().get(timeout=120)
            assert sent >= 1
            row = wait_until(
                lambda: TenantUsage.objects.filter(tenant=busy).first(), celery_worker_factory.log
            )
            assert (row.customers, row.orders, row.day) == (5, 3, timezone.now().date())
            assert row.users >= 1 and row.database_bytes > 0
            assert not TenantUsage.objects.filter(tenant=quiet).exists()

            # Killed while writing: another transaction holds the day's row of `busy` for tomorrow, so
            # the worker's upsert waits on it and is killed there.
            tomorrow = (timezone.now().date() + timedelta(days=1)).isoformat()
            blocker = raw_connection()
            try:
                with blocker.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO public.tenancy_tenantusage (tenant_id, day, users, active_users,"
                        " customers, orders, database_bytes, files_bytes, created_at, updated_at)"
                        " VALUES (%s, %s, 0, 0, 0, 0, 0, 0, now(), now())",
                        [busy.pk, tomorrow],
                    )
                tenant_usage_task.delay(busy.pk, tomorrow)
                wait_until(
                    lambda: waiting_on_lock('INSERT INTO "tenancy_tenantusage"%'), celery_worker_factory.log
                )
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)
            finally:
                blocker.rollback()
                blocker.close()
            time.sleep(1)  # the killed worker's backend finds its client gone and rolls back
            assert not TenantUsage.objects.filter(tenant=busy, day=tomorrow).exists()

            # The message again (as its redelivery would bring it, acks_late), twice: one row.
            celery_worker_factory()
            assert tenant_usage_task.delay(busy.pk, tomorrow).get(timeout=120) is True
            assert tenant_usage_task.delay(busy.pk, tomorrow).get(timeout=120) is True
            rows = list(TenantUsage.objects.filter(tenant=busy).order_by("day"))
            assert [(r.day.isoformat(), r.customers) for r in rows][-1] == (tomorrow, 5)
            assert len(rows) == 2
        finally:
            connection.set_schema_to_public()
            # The dispatcher measured every active company of the test database: drop what it wrote.
            TenantUsage.objects.filter(pk__gt=first_id).delete()
