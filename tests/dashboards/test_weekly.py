"""The weekly report to managers: due once Monday 08:00 has passed in the tenant's time zone, once per
week per manager, in each manager's language, e-mailed to a real SMTP server; opted out by preference;
sales users get none."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from crm.accounts.models import User
from crm.notifications.mailing import email_deliveries_send
from crm.notifications.models import Notification, NotificationPreference
from dashboards.periods import Period
from dashboards.weekly import KIND, is_due, last_week, weekly_summary_send
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db


def test_last_week_and_when_it_is_due():
    assert last_week(dt.date(2026, 12, 7)) == Period(dt.date(2026, 11, 30), dt.date(2026, 12, 6))  # a Monday
    assert last_week(dt.date(2026, 12, 13)) == Period(dt.date(2026, 11, 30), dt.date(2026, 12, 6))  # Sunday
    zone = ZoneInfo("Asia/Shanghai")
    assert not is_due(dt.datetime(2026, 12, 7, 7, 59, tzinfo=zone))
    assert is_due(dt.datetime(2026, 12, 7, 8, 0, tzinfo=zone))
    assert is_due(dt.datetime(2026, 12, 8, 1, 0, tzinfo=zone))


def test_managers_get_last_weeks_figures_once_by_email(tenant, users, smtp_server):
    zone = ZoneInfo(tenant.time_zone)
    User.objects.filter(pk=users["manager"].pk).update(language="zh-hans")
    customer = CustomerFactory()
    OrderFactory(customer=customer, total=Decimal("300"), placed_at=dt.datetime(2026, 12, 2, 12, tzinfo=zone))
    OrderFactory(
        customer=customer, total=Decimal("200"), placed_at=dt.datetime(2026, 11, 25, 12, tzinfo=zone)
    )
    NotificationPreference.objects.create(user=users["admin"], kind=KIND, email=False)
    with timezone.override(zone):
        # Monday 7 December, 07:30 local: not yet; 08:30: sent; again at 09:30 and on Tuesday: nothing more.
        assert weekly_summary_send(now=dt.datetime(2026, 12, 7, 7, 30, tzinfo=zone)) == 0
        assert weekly_summary_send(now=dt.datetime(2026, 12, 7, 8, 30, tzinfo=zone)) == 2  # manager, admin
        assert weekly_summary_send(now=dt.datetime(2026, 12, 7, 9, 30, tzinfo=zone)) == 0
        assert weekly_summary_send(now=dt.datetime(2026, 12, 8, 9, 30, tzinfo=zone)) == 0
    notes = {n.recipient_id: n for n in Notification.objects.filter(kind=KIND)}
    assert set(notes) == {users["manager"].pk, users["admin"].pk}  # no sales user
    english = notes[users["admin"].pk]
    assert english.title == "Weekly report: 2026-11-30 to 2026-12-06"
    assert "Revenue: ¥300.00 (+50.0%)" in english.body
    assert "from=2026-11-30" in english.url
    chinese = notes[users["manager"].pk]
    assert chinese.title.startswith("每周报表") and "营收：¥300.00" in chinese.body
    email_deliveries_send()
    messages = smtp_server.wait_for(1)
    assert [m["To"] for m in messages] == [users["manager"].email]  # the admin switched e-mail off
