"""E-mail delivery through a real SMTP server (aiosmtpd): one message per notification with its stable
Message-ID, in the recipient's language; a stale claim is taken again and counted as a resend."""

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.accounts.models import User
from crm.notifications import services
from crm.notifications.mailing import email_deliveries_claim, email_deliveries_send
from crm.notifications.models import EmailDelivery
from crm.notifications.registry import register_kind, unregister_kind

pytestmark = pytest.mark.django_db


@pytest.fixture
def kind():
    register_kind("test.due", "Test due")
    yield "test.due"
    unregister_kind("test.due")


def test_pending_emails_reach_the_smtp_server_once_with_their_message_id(tenant, users, kind, smtp_server):
    sales, manager = users["sales"], users["manager"]
    User.objects.filter(pk=manager.pk).update(language="zh-hans")
    a = services.notify(
        recipient=sales,
        kind=kind,
        key="a",
        title="Call Li Lei",
        body="He asked for a quote.",
        url="/customers/7/",
    )
    b = services.notify(recipient=manager, kind=kind, key="b", title="回访王芳")
    counts = email_deliveries_send()
    assert counts["sent"] == 2 and counts["resent"] == 0
    received = {m["Message-ID"]: m for m in smtp_server.wait_for(2)}
    assert set(received) == {EmailDelivery.objects.get(notification=n).message_id for n in (a, b)}
    english = received[EmailDelivery.objects.get(notification=a).message_id]
    assert english["To"] == sales.email and english["Subject"] == "Call Li Lei"
    text = english.get_body(("plain",)).get_content()
    assert "He asked for a quote." in text and "http://alpha.testserver.local/customers/7/" in text
    assert "Choose which notifications reach you by e-mail" in text
    chinese = (
        received[EmailDelivery.objects.get(notification=b).message_id].get_body(("plain",)).get_content()
    )
    assert "选择哪些通知通过电子邮件发送给您" in chinese
    assert set(EmailDelivery.objects.values_list("status", "attempts")) == {("sent", 1)}
    # A second run sends nothing more
    assert email_deliveries_send()["sent"] == 0
    assert len(smtp_server.messages) == 2


def test_a_claim_left_by_a_dead_worker_is_taken_again_after_the_timeout(
    tenant, sales_user, kind, smtp_server, settings
):
    settings.NOTIFICATION_EMAIL_CLAIM_SECONDS = 60
    n = services.notify(recipient=sales_user, kind=kind, key="crash", title="t")
    assert email_deliveries_claim(batch_size=10)  # claimed, then the "worker" dies before sending
    assert email_deliveries_send()["sent"] == 0  # a fresh claim is not taken by another worker
    EmailDelivery.objects.update(claimed_at=timezone.now() - timedelta(seconds=61))
    counts = email_deliveries_send()
    assert counts == {"sent": 1, "resent": 1, "skipped": 0, "failed": 0, "more": 0}
    delivery = EmailDelivery.objects.get(notification=n)
    assert delivery.status == "sent" and delivery.attempts == 2
    assert [m["Message-ID"] for m in smtp_server.wait_for(1)] == [delivery.message_id]


def test_a_deactivated_recipient_gets_no_email(tenant, sales_user, kind, smtp_server):
    services.notify(recipient=sales_user, kind=kind, key="gone", title="t")
    User.objects.filter(pk=sales_user.pk).update(is_active=False)
    assert email_deliveries_send()["skipped"] == 1
    assert EmailDelivery.objects.get().status == "skipped"
    assert smtp_server.messages == []


def test_a_refused_message_stays_pending_and_is_counted(tenant, sales_user, kind, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    services.notify(recipient=sales_user, kind=kind, key="later", title="t")
    assert email_deliveries_send()["failed"] == 1
    delivery = EmailDelivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.sent_at is None


def test_batches_reuse_the_open_smtp_sessions(tenant, sales_user, kind, smtp_server, settings):
    settings.NOTIFICATION_EMAIL_CONNECTIONS = 2
    for i in range(25):
        services.notify(recipient=sales_user, kind=kind, key=f"many-{i}", title=f"t{i}")
    counts = email_deliveries_send(batch_size=5)  # five batches, the next prepared while one is sent
    assert counts["sent"] == 25 and counts["failed"] == 0
    assert len(smtp_server.wait_for(25)) == 25
    assert len(smtp_server.sessions) == 2  # one session per connection for the whole run
    assert set(EmailDelivery.objects.values_list("status", "attempts")) == {("sent", 1)}


def test_a_server_refusing_everything_gets_no_more_and_the_next_claim_is_given_back(
    tenant, sales_user, kind, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    for i in range(12):
        services.notify(recipient=sales_user, kind=kind, key=f"later-{i}", title="t")
    counts = email_deliveries_send(batch_size=5)
    assert counts["failed"] == 5 and counts["sent"] == 0
    rows = list(EmailDelivery.objects.order_by("id").values_list("status", "attempts", "claimed_at"))
    assert [(status, attempts) for status, attempts, _ in rows[:5]] == [("pending", 1)] * 5
    # the batch claimed while the first was tried is claimable again at once, its attempt uncounted
    assert rows[5:] == [("pending", 0, None)] * 7


def test_a_batch_still_on_the_wire_is_not_claimed_again_by_its_own_run(tenant, sales_user, kind, settings):
    # The run claims the next batch while one is being sent; were that one slower than the claim
    # timeout, its stale claim must not come back to the same run as "the next batch" (sent twice).
    settings.NOTIFICATION_EMAIL_CLAIM_SECONDS = 60
    for i in range(3):
        services.notify(recipient=sales_user, kind=kind, key=f"wire-{i}", title="t")
    on_the_wire = email_deliveries_claim(batch_size=2)
    EmailDelivery.objects.update(claimed_at=timezone.now() - timedelta(seconds=61))
    assert email_deliveries_claim(batch_size=10, exclude=on_the_wire) == sorted(
        set(EmailDelivery.objects.values_list("id", flat=True)) - set(on_the_wire)
    )
