"""The nightly expiry through a real Celery worker killed with SIGKILL in the middle of the run, then
run again by a fresh worker: every due lot expires exactly once, the batches committed before the
kill stay, the one being written is rolled back, and every balance equals its ledger and its lots.

The run is held in the middle deterministically: 12,000 members with a due lot are three batches of
`EXPIRY_BATCH` (5,000); another transaction holds the row lock of the last member, so the worker
commits the first two batches and waits on the third, where it is killed."""

import os
import signal
import time

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from loyalty.models import Member, PointsEntry, Programme
from loyalty.services import EXPIRY_BATCH, member_balances_check, programme_get
from loyalty.tasks import points_nightly_task
from tests.benchmarks.test_recompute_benchmark import generate
from tests.worker_kill import raw_connection, wait_until, waiting_on_lock

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]

MEMBERS = 12_000  # three batches


def _members_with_due_lots() -> None:
    """A member per generated customer, each with a lot that expired yesterday (100 + id % 50
    points) and one that expires next year (40 points); balances are the ledger sums."""
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO loyalty_member (customer_id, number, status, joined_at, balance, tier_id,
                   tier_since, below_tier_since, created_at, updated_at)
               SELECT id, 'M' || lpad(id::text, 8, '0'), 'active', now() - interval '800 days', 0, NULL,
                      NULL, NULL, now(), now()
               FROM customers_customer ORDER BY id"""
        )
        cursor.execute(
            """INSERT INTO loyalty_pointsentry (member_id, kind, points, balance_after, remaining,
                   expires_on, shortfall, source, source_key, reason, occurred_at, created_at)
               SELECT m.id, 'earn', lot.points, 0, lot.points, lot.expires_on, 0, 'order', '', '',
                      now() - interval '400 days', now()
               FROM loyalty_member AS m
               CROSS JOIN LATERAL (VALUES (100 + (m.id % 50)::int, current_date - 1),
                                          (40, current_date + 365)) AS lot(points, expires_on)"""
        )
        cursor.execute(
            """UPDATE loyalty_member AS m SET balance = s.total FROM (
                   SELECT member_id, SUM(points) AS total FROM loyalty_pointsentry GROUP BY member_id) AS s
               WHERE m.id = s.member_id"""
        )


def test_a_worker_killed_mid_expiry_and_rerun_expires_each_lot_once(
    committed_tenant, celery_worker_factory, django_db_blocker
):
    assert MEMBERS > 2 * EXPIRY_BATCH
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with schema_context(tenant.schema_name):
            Programme.objects.filter(pk=programme_get().pk).update(expiry_mode="months", expiry_months=12)
            generate(n_customers=MEMBERS, n_orders=MEMBERS)
            _members_with_due_lots()
            members = Member.objects.count()
            due_points = sum(
                PointsEntry.objects.filter(expires_on__lt=timezone.localdate()).values_list(
                    "points", flat=True
                )
            )
            last = Member.objects.order_by("-id").values_list("pk", flat=True)[0]
        assert members >= MEMBERS

        blocker = raw_connection()
        try:
            # Another transaction holds the last member's row: the third batch waits on it.
            with blocker.cursor() as cursor:
                cursor.execute(f'SET search_path TO "{tenant.schema_name}", public')
                cursor.execute("SELECT id FROM loyalty_member WHERE id = %s FOR UPDATE", [last])
            worker = celery_worker_factory()
            with tenant_context(tenant):
                points_nightly_task.delay()
            wait_until(
                # the statement text is cut at track_activity_query_size: match its start
                lambda: waiting_on_lock('SELECT id FROM "loyalty_member" WHERE id = ANY%'),
                celery_worker_factory.log,
            )
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        finally:
            blocker.rollback()
            blocker.close()

        with schema_context(tenant.schema_name):
            time.sleep(1)  # the killed worker's backend finds its client gone and rolls back
            expired_at_kill = PointsEntry.objects.filter(kind="expire").count()
            # Two batches were committed before the kill; the third was rolled back whole.
            assert expired_at_kill == 2 * EXPIRY_BATCH, expired_at_kill
            assert member_balances_check() == []

        # The next night's run (or the redelivered message) on a fresh worker, twice.
        celery_worker_factory()
        with tenant_context(tenant):
            first = points_nightly_task.delay().get(timeout=180)
            again = points_nightly_task.delay().get(timeout=180)
        connection.set_schema_to_public()
        with schema_context(tenant.schema_name):
            expires = list(PointsEntry.objects.filter(kind="expire").values_list("source_key", "points"))
            open_due = PointsEntry.objects.filter(
                remaining__gt=0, expires_on__lt=timezone.localdate()
            ).count()
            differences = member_balances_check()
            balances = sum(Member.objects.values_list("balance", flat=True))
        connection.set_schema_to_public()

    # The killed message may have been redelivered to the new worker: either way, once per lot.
    assert first["expired"]["entries"] + expired_at_kill <= members
    assert again["expired"]["entries"] == 0
    assert len(expires) == len({key for key, _points in expires}) == members
    assert -sum(points for _key, points in expires) == due_points
    assert open_due == 0
    assert differences == []
    assert balances == 40 * members
