"""Reminders: each follow-up that falls due is handed to the notifications service once (key: id and
due time), a snoozed one again at its new time, never twice for a retry; with a real Celery worker,
two deliveries of the task for the same due follow-ups make exactly one notification each."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from crm.accounts.models import User
from crm.notifications.models import Notification
from interactions.followups import services
from interactions.followups.models import FollowUp
from interactions.followups.tasks import followup_reminders_all_tenants, followup_reminders_task
from tests.factories import CustomerFactory

from .conftest import make_followup


@pytest.mark.django_db
def test_due_follow_ups_become_one_notification_each(sales_user, sales_user2, own_customer):
    due = make_followup(customer=own_customer, assignee=sales_user, hours=-1, title="Call Wang")
    due2 = make_followup(customer=own_customer, assignee=sales_user2, hours=-0.1)
    make_followup(customer=own_customer, assignee=sales_user, hours=2)  # not due yet
    make_followup(
        customer=own_customer, assignee=sales_user, hours=-3, status="done", completed_at=timezone.now()
    )
    binned = CustomerFactory(owner=sales_user, deleted_at=timezone.now())
    make_followup(customer=binned, assignee=sales_user, hours=-3)  # customer in the bin

    assert services.followup_reminders_send() == 2
    notes = {n.key: n for n in Notification.objects.all()}
    assert set(notes) == {services.reminder_key(due), services.reminder_key(due2)}
    note = notes[services.reminder_key(due)]
    assert (note.recipient_id, note.kind, note.url) == (
        sales_user.pk,
        "followups.due",
        f"/customers/{own_customer.pk}/",
    )
    assert "Call Wang" in note.title
    assert FollowUp.objects.filter(pk__in=[due.pk, due2.pk], reminded_at__isnull=False).count() == 2
    assert services.followup_reminders_send() == 0  # nothing left: no second notification
    assert Notification.objects.count() == 2

    # A crash after the notification but before reminded_at was written: the retry creates nothing.
    FollowUp.objects.filter(pk=due.pk).update(reminded_at=None)
    assert services.followup_reminders_send() == 1
    assert Notification.objects.count() == 2

    # Snoozed: it reminds again at the new time, under a new key.
    snoozed = services.followup_snooze(actor=sales_user, followup=FollowUp.objects.get(pk=due.pk), hours=1)
    assert services.followup_reminders_send() == 0
    assert services.followup_reminders_send(now=snoozed.due_at + timedelta(seconds=1)) == 1
    assert Notification.objects.filter(recipient=sales_user).count() == 2
    assert Notification.objects.filter(key=services.reminder_key(snoozed)).exists()


@pytest.mark.django_db
def test_reminder_in_the_assignees_language(sales_user, own_customer):
    User.objects.filter(pk=sales_user.pk).update(language="zh-hans")
    make_followup(customer=own_customer, assignee=sales_user, hours=-1, title="回电")
    services.followup_reminders_send()
    assert Notification.objects.get().title == "跟进任务到期：回电"


@pytest.mark.celery_worker
@pytest.mark.slow
def test_a_real_worker_reminds_each_due_follow_up_exactly_once(
    celery_worker, committed_tenant, django_db_blocker
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        with tenant_context(tenant):
            users = list(User.objects.filter(is_active=True).order_by("pk"))
            customers = [CustomerFactory(owner=users[i % len(users)]) for i in range(10)]
            now = timezone.now()
            due = FollowUp.objects.bulk_create(
                [
                    FollowUp(
                        customer=customers[i % 10],
                        assignee=users[i % len(users)],
                        due_at=now - timedelta(minutes=i),
                        title=f"Due {i}",
                    )
                    for i in range(60)
                ]
                + [
                    FollowUp(
                        customer=customers[0],
                        assignee=users[0],
                        due_at=now + timedelta(hours=1),
                        title="Later",
                    )
                ]
            )
            # Two deliveries of the task (a redelivered message, or beat firing while one still runs).
            results = [followup_reminders_task.apply_async() for _ in range(2)]
        sent = [result.get(timeout=120) for result in results]
        connection.set_schema_to_public()
        assert followup_reminders_all_tenants.delay().get(timeout=60) >= 1  # beat's dispatcher: nothing new
        with tenant_context(tenant):
            keys = list(Notification.objects.filter(kind="followups.due").values_list("key", flat=True))
            assert sorted(keys) == sorted(services.reminder_key(f) for f in due[:60])
            assert FollowUp.objects.filter(reminded_at__isnull=True).count() == 1  # only "Later"
        connection.set_schema_to_public()
    assert sum(sent) == 60
