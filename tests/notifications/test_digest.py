"""The daily digest: 08:00 in each user's time zone, once per local day, skipped when empty, sections
switched off by preference; sent to a real SMTP server."""

import datetime as dt

import pytest

from crm.accounts.models import User
from crm.notifications.digest import DigestItem, register_section, unregister_section
from crm.notifications.mailing import digest_send_due
from crm.notifications.models import DigestRun, NotificationPreference

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@pytest.fixture
def only_two_users(tenant, users):
    """sales in Shanghai (UTC+8), sales2 in New York (UTC-5 in December); everyone else inactive."""
    User.objects.exclude(pk__in=[users["sales"].pk, users["sales2"].pk]).update(is_active=False)
    User.objects.filter(pk=users["sales"].pk).update(time_zone="Asia/Shanghai", language="en")
    User.objects.filter(pk=users["sales2"].pk).update(time_zone="America/New_York", language="zh-hans")
    return users["sales"], users["sales2"]


@pytest.fixture
def section():
    calls = []

    def provider(user, day):
        calls.append((user.email, day))
        return [DigestItem(text=f"Call back customer of {user.email}", url="/customers/1/"), "Birthday: 王芳"]

    register_section("test.section", "Things to do", provider, order=1)
    yield calls
    unregister_section("test.section")


def test_each_user_gets_one_digest_at_local_eight(only_two_users, section, smtp_server):
    shanghai, new_york = only_two_users
    # 23:30 UTC on Dec 2 = 07:30 Dec 3 in Shanghai, 18:30 Dec 2 in New York: New York's 08:00 of Dec 2 passed
    counts = digest_send_due(now=dt.datetime(2026, 12, 2, 23, 30, tzinfo=UTC))
    assert counts == {"sent": 1, "skipped": 0}
    assert set(DigestRun.objects.values_list("user__email", "day")) == {
        (new_york.email, dt.date(2026, 12, 2))
    }
    # 00:05 UTC Dec 3 = 08:05 in Shanghai: its digest for Dec 3; New York already has Dec 2
    assert digest_send_due(now=dt.datetime(2026, 12, 3, 0, 5, tzinfo=UTC))["sent"] == 1
    # Later the same day, a second and third run send nothing
    assert digest_send_due(now=dt.datetime(2026, 12, 3, 0, 20, tzinfo=UTC))["sent"] == 0
    assert digest_send_due(now=dt.datetime(2026, 12, 3, 3, 0, tzinfo=UTC))["sent"] == 0
    # 13:00 UTC Dec 3 = 08:00 in New York: its Dec 3 digest
    assert digest_send_due(now=dt.datetime(2026, 12, 3, 13, 0, tzinfo=UTC))["sent"] == 1
    messages = smtp_server.wait_for(3)
    assert [m["To"] for m in messages] == [new_york.email, shanghai.email, new_york.email]
    assert len({m["Message-ID"] for m in messages}) == 3
    english = messages[1]
    assert english.get_body(("html",)) is not None
    assert "Things to do" in english.get_body(("plain",)).get_content()
    assert f"Call back customer of {shanghai.email}" in english.get_body(("plain",)).get_content()
    assert (
        '<a href="http://alpha.testserver.local/customers/1/">' in english.get_body(("html",)).get_content()
    )
    assert "Birthday: 王芳" in english.get_body(("html",)).get_content()
    assert "早上好" in messages[0].get_body(("plain",)).get_content()  # New York's user reads Chinese
    assert (new_york.email, dt.date(2026, 12, 2)) in section  # the provider got the local date
    assert set(DigestRun.objects.values_list("status", flat=True)) == {"sent"}


def test_user_time_zone_else_the_tenants(only_two_users, section, smtp_server, tenant):
    shanghai, _ = only_two_users
    User.objects.filter(pk=shanghai.pk).update(time_zone="")
    tenant.time_zone = "Europe/London"  # the tenant's zone applies to a user without one
    # 07:59 UTC: 15:59 in Shanghai but 07:59 in London -> not yet
    digest_send_due(now=dt.datetime(2026, 12, 3, 7, 59, tzinfo=UTC))
    assert not DigestRun.objects.filter(user=shanghai).exists()
    digest_send_due(now=dt.datetime(2026, 12, 3, 8, 0, tzinfo=UTC))
    assert DigestRun.objects.get(user=shanghai).day == dt.date(2026, 12, 3)


def test_an_empty_digest_is_skipped_and_not_retried(only_two_users, smtp_server):
    register_section("test.empty", "Nothing", lambda user, day: [])
    try:
        assert digest_send_due(now=dt.datetime(2026, 12, 3, 13, 0, tzinfo=UTC)) == {"sent": 0, "skipped": 2}
        assert digest_send_due(now=dt.datetime(2026, 12, 3, 14, 0, tzinfo=UTC)) == {"sent": 0, "skipped": 0}
    finally:
        unregister_section("test.empty")
    assert smtp_server.messages == []
    assert set(DigestRun.objects.values_list("status", flat=True)) == {"skipped"}


def test_a_section_switched_off_is_left_out(only_two_users, section, smtp_server):
    shanghai, new_york = only_two_users
    NotificationPreference.objects.create(user=shanghai, kind="test.section", digest=False)
    assert digest_send_due(now=dt.datetime(2026, 12, 3, 13, 0, tzinfo=UTC)) == {"sent": 1, "skipped": 1}
    assert [m["To"] for m in smtp_server.wait_for(1)] == [new_york.email]


def test_a_failing_section_does_not_stop_the_others(only_two_users, section, smtp_server):
    def broken(user, day):
        raise RuntimeError("boom")

    register_section("test.broken", "Broken", broken, order=0)
    try:
        assert digest_send_due(now=dt.datetime(2026, 12, 3, 13, 0, tzinfo=UTC))["sent"] == 2
    finally:
        unregister_section("test.broken")
