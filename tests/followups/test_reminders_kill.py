"""Issue 11's crash test, end to end: 200 follow-ups fall due, a real Celery worker turns them into
reminders and starts e-mailing them, and is killed with SIGKILL in the middle; a new worker and beat's
dispatchers finish the job. Exactly 200 in-app notifications (one per follow-up, none twice), every
e-mail at the SMTP server, and any message the server got twice carries the same Message-ID and is
counted as a resend (`attempts` > 1)."""

import os
import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from crm.notifications.models import EmailDelivery, Notification
from crm.notifications.tasks import notification_emails_all_tenants
from interactions.followups import services
from interactions.followups.models import FollowUp
from interactions.followups.tasks import followup_reminders_all_tenants, followup_reminders_task
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]
DUE = 200


def _deliveries(tenant) -> dict[str, tuple[str, int]]:
    with tenant_context(tenant):
        return {
            m: (s, a) for m, s, a in EmailDelivery.objects.values_list("message_id", "status", "attempts")
        }


def test_a_worker_killed_among_200_due_reminders_loses_and_duplicates_nothing(
    committed_tenant, celery_worker_factory, smtp_server, django_db_blocker
):
    tenant = committed_tenant()
    smtp_server.delay = 0.05  # the worker spends most of each message waiting for "250 OK"
    worker_env = {**smtp_server.worker_env, "NOTIFICATION_EMAIL_CLAIM_SECONDS": "2"}
    with django_db_blocker.unblock():
        with tenant_context(tenant):
            users = list(User.objects.filter(is_active=True).order_by("pk"))
            customers = [CustomerFactory(owner=users[i % len(users)]) for i in range(20)]
            now = timezone.now()
            due = FollowUp.objects.bulk_create(
                [
                    FollowUp(
                        customer=customers[i % len(customers)],
                        assignee=users[i % len(users)],
                        due_at=now - timedelta(minutes=i + 1),
                        title=f"Call back {i}",
                    )
                    for i in range(DUE)
                ]
            )
            worker = celery_worker_factory(extra_env=worker_env)
            assert followup_reminders_task.apply_async().get(timeout=120) == DUE
        deadline = time.monotonic() + 60
        while len(smtp_server.raw) < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        at_kill = len(smtp_server.raw)
        assert 30 <= at_kill < DUE, "the worker must die in the middle of delivery"
        assert Counter(status for status, _ in _deliveries(tenant).values())["pending"] > 0

        celery_worker_factory(extra_env=worker_env)
        # Beat's minute dispatchers, run as often as needed: reminders again (nothing new may come of
        # them) and e-mails (the stale claims are taken again after NOTIFICATION_EMAIL_CLAIM_SECONDS).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            connection.set_schema_to_public()
            followup_reminders_all_tenants.delay().get(timeout=30)
            notification_emails_all_tenants.delay().get(timeout=30)
            time.sleep(2.5)
            if all(status == "sent" for status, _ in _deliveries(tenant).values()):
                break
        smtp_server.wait_for(DUE, seconds=10)

        deliveries = _deliveries(tenant)
        with tenant_context(tenant):
            keys = list(Notification.objects.filter(kind="followups.due").values_list("key", flat=True))
            assert sorted(keys) == sorted(services.reminder_key(f) for f in due)  # 200, none twice
            assert not FollowUp.objects.filter(reminded_at__isnull=True).exists()
        connection.set_schema_to_public()

    assert len(deliveries) == DUE
    assert {status for status, _ in deliveries.values()} == {"sent"}
    received = Counter(message["Message-ID"] for message in smtp_server.messages)
    assert set(received) == set(deliveries), "every e-mail reached the SMTP server"
    duplicated = {message_id for message_id, times in received.items() if times > 1}
    resent = {message_id for message_id, (_, attempts) in deliveries.items() if attempts > 1}
    assert duplicated <= resent, "a message the server got twice is counted as a resend"
    assert resent, "the rows claimed by the killed worker were claimed again"
    print(
        f"\nkilled after {at_kill} of {DUE} messages; {len(resent)} re-claimed, "
        f"{len(duplicated)} duplicated at SMTP"
    )
