"""The follow-ups' sections of the daily digest: overdue and today's follow-ups, new churn alerts,
birthdays this week; each user sees their own; empty sections are empty lists."""

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.notifications.digest import registered_sections, section_items
from segmentation.services import alert_create
from tests.factories import CustomerFactory

from .conftest import make_followup

pytestmark = pytest.mark.django_db


def _items(key, user, day):
    section = next(s for s in registered_sections() if s.key == key)
    return section_items(section, user, day)


def test_sections_are_registered_in_order():
    keys = [s.key for s in registered_sections() if s.key.startswith("followups.")]
    assert keys == ["followups.due", "followups.churn_alerts", "followups.birthdays"]


def test_due_section_lists_overdue_and_today_only_mine(sales_user, sales_user2, own_customer, other_customer):
    today = timezone.localdate()
    make_followup(customer=own_customer, assignee=sales_user, hours=-30, title="Late call")
    make_followup(customer=own_customer, assignee=sales_user, hours=24 * 3, title="Later call")
    make_followup(customer=other_customer, assignee=sales_user2, hours=-30, title="Not mine")
    texts = [item.text for item in _items("followups.due", sales_user, today)]
    assert len(texts) == 1 and "Late call" in texts[0] and "overdue since" in texts[0]
    assert _items("followups.due", sales_user, today)[0].url == f"/customers/{own_customer.pk}/"


def test_churn_alerts_and_birthdays(sales_user, manager_user, own_customer, other_customer):
    today = timezone.localdate()
    alert_create(customer=own_customer, reason="entered_at_risk")
    alert_create(customer=other_customer, reason="entered_at_risk")
    mine = [item.text for item in _items("followups.churn_alerts", sales_user, today)]
    assert mine == [f"{own_customer.name} · Moved into At risk"]
    assert len(_items("followups.churn_alerts", manager_user, today)) == 2
    soon = today + timedelta(days=2)
    CustomerFactory(owner=sales_user, name="Birthday Soon", birthday=soon.replace(year=1985))
    CustomerFactory(
        owner=sales_user, name="Birthday Later", birthday=(today + timedelta(days=20)).replace(year=1985)
    )
    texts = [item.text for item in _items("followups.birthdays", sales_user, today)]
    assert texts == [f"Birthday Soon · {soon:%m-%d}"]
    assert _items("followups.due", sales_user, today) == []


def test_a_reps_birthdays_are_of_their_own_customers_a_managers_of_the_team(
    sales_user, sales_user2, manager_user
):
    today = timezone.localdate()
    soon = (today + timedelta(days=1)).replace(year=1990)
    CustomerFactory(owner=sales_user, name="Mine Soon", birthday=soon)
    CustomerFactory(owner=sales_user2, name="Shared Soon", birthday=soon, shared_with=[sales_user])
    mine = [item.text.split(" · ")[0] for item in _items("followups.birthdays", sales_user, today)]
    team = [item.text.split(" · ")[0] for item in _items("followups.birthdays", manager_user, today)]
    assert mine == ["Mine Soon"]  # a customer shared with the rep is their colleague's to greet
    assert sorted(team) == ["Mine Soon", "Shared Soon"]
