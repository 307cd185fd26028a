"""A real Celery worker killed with SIGKILL in the middle of delivering 200 notification e-mails, then
started again: 200 notifications (none twice), every e-mail at the SMTP server, and any message the
server got twice carries the same Message-ID and is counted as a resend (`attempts` > 1)."""

import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from crm.notifications.models import EmailDelivery, Notification
from crm.notifications.services import NotificationSpec, notify_many
from crm.notifications.tasks import notification_emails_all_tenants

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]


def _deliveries(tenant) -> dict[str, tuple[str, int]]:
    with tenant_context(tenant):
        return {
            m: (s, a) for m, s, a in EmailDelivery.objects.values_list("message_id", "status", "attempts")
        }


def test_a_worker_killed_mid_delivery_loses_and_duplicates_nothing(
    committed_tenant, celery_worker_factory, smtp_server, django_db_blocker
):
    tenant = committed_tenant()
    smtp_server.delay = 0.05  # the worker spends most of each message waiting for "250 OK"
    worker_env = {**smtp_server.worker_env, "NOTIFICATION_EMAIL_CLAIM_SECONDS": "2"}
    with django_db_blocker.unblock():
        with tenant_context(tenant):
            users = list(User.objects.filter(is_active=True).order_by("pk"))
            items = [
                NotificationSpec(users[i % len(users)], f"reminder:{i}", f"Reminder {i}") for i in range(200)
            ]
            # Committed: notify_many queues the delivery task on commit, onto this test's queue.
            assert len(notify_many(kind="test.reminder", items=items)) == 200
        worker = celery_worker_factory(extra_env=worker_env)
        deadline = time.monotonic() + 60
        while len(smtp_server.messages) < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        at_kill = len(smtp_server.messages)
        assert 30 <= at_kill < 200, "the worker must die in the middle of delivery"
        statuses = Counter(status for status, _ in _deliveries(tenant).values())
        assert statuses["pending"] > 0  # some claimed and never marked, some never claimed

        celery_worker_factory(extra_env=worker_env)
        # Beat's minute dispatcher, run as often as needed (the killed task's message waits for
        # the broker's visibility timeout; the stale claims for NOTIFICATION_EMAIL_CLAIM_SECONDS).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            connection.set_schema_to_public()
            notification_emails_all_tenants.delay().get(timeout=30)
            time.sleep(2.5)
            if all(status == "sent" for status, _ in _deliveries(tenant).values()):
                break
        smtp_server.wait_for(200, seconds=10)

        deliveries = _deliveries(tenant)
        with tenant_context(tenant):
            assert Notification.objects.count() == 200
            # a second notify_many of the same reminders changes nothing
            assert notify_many(kind="test.reminder", items=items) == []
            assert Notification.objects.count() == 200
        connection.set_schema_to_public()

    assert len(deliveries) == 200
    assert {status for status, _ in deliveries.values()} == {"sent"}
    received = Counter(message["Message-ID"] for message in smtp_server.messages)
    assert set(received) == set(deliveries), "every e-mail reached the SMTP server"
    duplicated = {message_id for message_id, times in received.items() if times > 1}
    resent = {message_id for message_id, (_, attempts) in deliveries.items() if attempts > 1}
    assert duplicated <= resent, "a message the server got twice is counted as a resend"
    assert resent, "the rows claimed by the killed worker were claimed again"
    print(
        f"\nkilled after {at_kill} messages; {len(resent)} re-claimed, {len(duplicated)} duplicated at SMTP"
    )


def _zone_past_eight() -> str:
    """A time zone whose local time is now between 08:00 and 22:00 (the digest is due there today)."""
    now = datetime.now(UTC)
    for zone in (
        "Asia/Shanghai",
        "Europe/London",
        "America/New_York",
        "Pacific/Honolulu",
        "Pacific/Kiritimati",
    ):
        if 8 <= now.astimezone(ZoneInfo(zone)).hour < 22:
            return zone
    raise AssertionError("some zone is always between 08:00 and 22:00")


def test_the_digest_dispatcher_runs_once_per_local_day_through_a_real_worker(
    committed_tenant, celery_worker_factory, smtp_server, django_db_blocker
):
    """Beat's digest dispatcher, twice, through a real worker: each active user of the tenant gets one
    run for their local date (skipped: no app in the worker process registers a section, so every
    digest is empty and nothing is mailed), and the second round adds nothing."""
    from crm.notifications.models import DigestRun
    from crm.notifications.tasks import notification_digest_all_tenants

    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with tenant_context(tenant):
            User.objects.update(time_zone=_zone_past_eight())
            active = User.objects.filter(is_active=True).count()
        celery_worker_factory(extra_env=smtp_server.worker_env)
        for _ in range(2):
            connection.set_schema_to_public()
            notification_digest_all_tenants.delay().get(timeout=30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with tenant_context(tenant):
                    if DigestRun.objects.count() >= active:
                        break
                time.sleep(0.3)
        time.sleep(2)  # let the second round finish
        with tenant_context(tenant):
            runs = list(DigestRun.objects.values_list("user_id", "status"))
        connection.set_schema_to_public()
    assert len(runs) == len({user for user, _ in runs}) == active
    assert {status for _, status in runs} == {"skipped"}
    assert smtp_server.messages == []


def test_a_claim_left_by_a_dead_worker_is_sent_again_outside_a_test_transaction(
    committed_tenant, django_db_blocker, smtp_server
):
    """As in a worker (autocommit, no surrounding transaction): a digest claimed by a worker that died
    long ago is taken again, its attempt counted, and sent."""
    import datetime as dt

    from crm.notifications.digest import DigestItem, register_section, unregister_section
    from crm.notifications.mailing import claim_seconds, digest_send_due
    from crm.notifications.models import DigestRun

    UTC = dt.UTC

    tenant = committed_tenant()
    now = dt.datetime(2026, 12, 3, 13, 0, tzinfo=UTC)  # 21:00 in Shanghai
    with django_db_blocker.unblock():
        with tenant_context(tenant):
            user = User.objects.filter(is_active=True).order_by("pk").first()
            User.objects.exclude(pk=user.pk).update(is_active=False)
            User.objects.filter(pk=user.pk).update(time_zone="Asia/Shanghai")
            run = DigestRun.objects.create(
                user=user,
                day=dt.date(2026, 12, 3),
                status=DigestRun.Status.CLAIMED,
                claimed_at=now - dt.timedelta(seconds=claim_seconds() + 60),
            )
            register_section("test.stale", "Things", lambda user, day: [DigestItem(text="Call Li", url="/")])
            try:
                counts = digest_send_due(now=now)
            finally:
                unregister_section("test.stale")
            run.refresh_from_db()
        connection.set_schema_to_public()
    assert counts["sent"] == 1 and run.status == DigestRun.Status.SENT and run.attempts == 2
    assert [message["To"] for message in smtp_server.messages] == [user.email]
