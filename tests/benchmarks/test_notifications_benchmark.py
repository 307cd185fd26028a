"""Notification e-mail and digest throughput against a real local SMTP server (aiosmtpd).

- 10,000 due notifications created with one notify_many() and e-mailed by a real Celery worker
  (target: all delivered in under 60 s); resends (deliveries with attempts > 1) reported.
- The daily digest for 200 users, each with a section that reads the database (target: under 30 s).

Run with `make bench ARGS="-k notifications"`; results go to bench-results.json.
"""

import datetime as dt
import time

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from crm.notifications.digest import DigestItem, register_section, unregister_section
from crm.notifications.mailing import digest_send_due
from crm.notifications.models import DigestRun, EmailDelivery, Notification
from crm.notifications.services import NotificationSpec, notify_many

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]


def _make_users(count: int) -> list[User]:
    User.objects.bulk_create(
        [User(email=f"bench{i}@bench.test", full_name=f"Bench {i}", role="sales") for i in range(count)],
        ignore_conflicts=True,
    )
    return list(User.objects.filter(email__endswith="@bench.test").order_by("pk"))


def test_10000_due_notifications_emailed(
    committed_tenant, celery_worker_factory, smtp_server, django_db_blocker, record_benchmark
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        celery_worker_factory(extra_env=smtp_server.worker_env)
        with tenant_context(tenant):
            users = _make_users(200)
            items = [
                NotificationSpec(users[i % len(users)], f"due:{i}", f"Follow-up {i} is due")
                for i in range(10_000)
            ]
            started = time.monotonic()
            created = notify_many(kind="bench.due", items=items)  # queues delivery on commit
            notify_seconds = time.monotonic() - started
            assert len(created) == 10_000
            deadline = started + 180
            while time.monotonic() < deadline:
                if not EmailDelivery.objects.exclude(status="sent").exists():
                    break
                time.sleep(0.25)
            total_seconds = time.monotonic() - started
            sent = EmailDelivery.objects.filter(status="sent").count()
            resends = EmailDelivery.objects.filter(attempts__gt=1).count()
            assert Notification.objects.count() == 10_000
        connection.set_schema_to_public()
    received = len(smtp_server.wait_for(10_000, seconds=10))
    figures = record_benchmark(
        "notifications_10000_emails",
        notify_many_seconds=round(notify_seconds, 2),
        delivered_seconds=round(total_seconds, 2),
        sent=sent,
        received_by_smtp=received,
        resends=resends,
    )
    print(figures)
    assert sent == 10_000 and received == 10_000
    assert total_seconds < 60


def test_digest_for_200_users(tenant, smtp_server, record_benchmark, settings):
    users = _make_users(200)
    User.objects.filter(pk__in=[u.pk for u in users]).update(time_zone="Asia/Shanghai")

    def provider(user, day):
        # a real query per user, as an app's section would make
        count = Notification.objects.filter(recipient=user).count()
        return [DigestItem(text=f"{user.full_name}: {count} notifications", url="/notifications/")] * 5

    register_section("bench.section", "Bench", provider)
    try:
        started = time.monotonic()
        counts = digest_send_due(now=dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.UTC))
        seconds = time.monotonic() - started
    finally:
        unregister_section("bench.section")
    received = len(smtp_server.wait_for(counts["sent"], seconds=10))
    figures = record_benchmark(
        "notifications_digest_200_users",
        seconds=round(seconds, 2),
        sent=counts["sent"],
        received_by_smtp=received,
    )
    print(figures)
    assert counts["sent"] >= 200 and received == counts["sent"]
    assert DigestRun.objects.filter(status="sent").count() == counts["sent"]
    assert seconds < 30
