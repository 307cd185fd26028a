"""Follow-up pages: My day (sections, scope, team view, bounded query count), actions in place with
htmx, the 360 panel, the customer list's bulk action, the rules page, and two tenants."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.audit.models import AuditEvent
from interactions.followups.models import FollowUp, FollowUpRule
from segmentation.services import alert_create
from tests.factories import CustomerFactory

from .conftest import make_followup

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _page(client, **params):
    response = client.get(reverse("followups:my_day"), params)
    assert response.status_code == 200
    return response.content.decode()


def test_my_day_shows_overdue_today_upcoming_alerts_and_birthdays(
    tenant, sales_client, sales_user, own_customer
):
    make_followup(customer=own_customer, assignee=sales_user, hours=-48, title="Overdue call")
    zone = ZoneInfo(sales_user.time_zone or tenant.time_zone or "UTC")  # the zone the page uses
    end_of_today = timezone.localtime(timezone=zone).replace(hour=23, minute=59, second=0)
    FollowUp.objects.create(
        customer=own_customer, assignee=sales_user, due_at=end_of_today, title="Today call"
    )
    make_followup(customer=own_customer, assignee=sales_user, hours=24 * 3, title="Later call")
    make_followup(customer=own_customer, assignee=sales_user, hours=24 * 30, title="Far call")
    alert_create(customer=own_customer, reason="entered_at_risk")
    today = timezone.localdate(timezone=zone)
    CustomerFactory(owner=sales_user, name="Birthday Person", birthday=today.replace(year=1990))
    html = _page(sales_client)
    overdue, rest = html.split('data-testid="section-today"')
    today_part, upcoming = rest.split('data-testid="section-upcoming"')
    assert "Overdue call" in overdue and "Today call" in today_part and "Later call" in upcoming
    assert "Far call" not in html
    assert "Moved into At risk" in html and "Birthday Person" in html


def test_sales_see_only_their_own_follow_ups(sales_client, sales_user2, other_customer):
    make_followup(customer=other_customer, assignee=sales_user2, hours=1, title="Not yours")
    assert "Not yours" not in _page(sales_client)


def test_manager_sees_the_team_and_picks_a_rep(
    manager_client, sales_user, sales_user2, own_customer, other_customer
):
    make_followup(customer=own_customer, assignee=sales_user, hours=1, title="Sam call")
    make_followup(customer=other_customer, assignee=sales_user2, hours=1, title="Second call")
    team = _page(manager_client)
    assert "Sam call" in team and "Second call" in team and 'data-testid="rep-picker"' in team
    picked = _page(manager_client, rep=sales_user2.pk)
    assert "Second call" in picked and "Sam call" not in picked


def test_recently_assigned_customers(manager_client, client_for, manager_user, sales_user):
    customer = CustomerFactory(owner=None, name="Handed Over")
    manager_client.post(
        reverse("customers:bulk"), {"action": "assign", "owner": sales_user.pk, "ids": [customer.pk]}
    )
    assert AuditEvent.objects.filter(action="customer.updated", target_id=str(customer.pk)).exists()
    html = _page(client_for(sales_user))
    section = html.split('data-testid="section-assigned"')[1]
    assert "Handed Over" in section


# My day's queries, pinned exactly (issue 11): tenant lookup with its two search paths, session, user,
# then the page: overdue, today, next 7 days, churn alerts, birthdays, recently assigned (audit trail)
# and, for a manager, the rep picker's users instead of the recently assigned customers.
MY_DAY_QUERIES = {"sales": 11, "manager": 11}


def _sql(queries) -> str:
    return "\n".join(q["sql"][:160] for q in queries.captured_queries)


@pytest.mark.parametrize("role", ["sales", "manager"])
def test_my_day_query_count_is_pinned_and_does_not_grow(
    role, tenant, client_for, sales_user, manager_user, own_customer
):
    viewer = sales_user if role == "sales" else manager_user
    # One follow-up per customer in each section, placed by the page's own day (its time zone), so
    # the sections fill alike at any time of day (hours from now put them all in "upcoming" near
    # midnight, and a section shows 25 at most).
    zone = ZoneInfo(viewer.time_zone or tenant.time_zone or "UTC")
    start = timezone.localtime(timezone=zone).replace(hour=0, minute=0, second=0, microsecond=0)

    def at(moment):
        return (moment - timezone.now()).total_seconds() / 3600

    def grow(n):
        for i in range(n):
            customer = CustomerFactory(owner=sales_user, birthday=timezone.localdate().replace(year=1990))
            overdue, today = start - timedelta(minutes=1 + i), start + timedelta(minutes=1 + i)
            make_followup(customer=customer, assignee=sales_user, hours=at(overdue), notes="n")
            make_followup(customer=customer, assignee=sales_user, hours=at(today), snooze_count=1)
            make_followup(
                customer=customer, assignee=sales_user, hours=at(start + timedelta(days=1, hours=1 + i))
            )
            alert_create(customer=customer, reason="entered_at_risk")
            if i % 2:
                customer.owner = None
                customer.save(update_fields=["owner"])
                CustomerFactory(owner=manager_user)

    client = client_for(viewer)
    grow(2)
    _page(client)  # warm the session and caches
    with CaptureQueriesContext(connection) as few:
        _page(client)
    assert len(few) == MY_DAY_QUERIES[role], _sql(few)
    grow(20)
    with CaptureQueriesContext(connection) as many:
        html = _page(client)
    assert html.count('data-testid="followup-row"') >= 60
    assert len(many) == MY_DAY_QUERIES[role], _sql(many)


def test_complete_in_place_with_htmx(sales_client, sales_user, own_customer):
    followup = make_followup(customer=own_customer, assignee=sales_user)
    response = sales_client.post(reverse("followups:complete", args=[followup.pk]), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and 'data-status="done"' in html and "<html" not in html
    assert FollowUp.objects.get(pk=followup.pk).status == "done"
    again = sales_client.post(reverse("followups:complete", args=[followup.pk]), **HTMX).content.decode()
    assert "no longer open" in again


def test_snooze_and_reschedule_in_place(sales_client, sales_user, own_customer):
    followup = make_followup(customer=own_customer, assignee=sales_user)
    sales_client.post(reverse("followups:snooze", args=[followup.pk]), {"hours": "24"}, **HTMX)
    assert FollowUp.objects.get(pk=followup.pk).snooze_count == 1
    response = sales_client.post(
        reverse("followups:reschedule", args=[followup.pk]), {"due_at": "2099-01-01T10:00"}, **HTMX
    )
    assert "at most 730 days ahead" in response.content.decode()
    before = FollowUp.objects.get(pk=followup.pk).due_at
    response = sales_client.post(reverse("followups:snooze", args=[followup.pk]), {"hours": "99999"}, **HTMX)
    assert 'data-testid="row-error"' in response.content.decode()
    assert FollowUp.objects.get(pk=followup.pk).due_at == before


def test_another_reps_follow_up_is_not_found(sales_client, sales_user2, other_customer):
    followup = make_followup(customer=other_customer, assignee=sales_user2)
    assert sales_client.post(reverse("followups:complete", args=[followup.pk]), **HTMX).status_code == 404
    assert FollowUp.objects.get(pk=followup.pk).status == "open"


def _log_url(followup, **extra):
    query = "&".join([f"followup={followup.pk}", *[f"{k}={v}" for k, v in extra.items()]])
    return f"{reverse('interactions:log', args=[followup.customer_id])}?{query}"


LOG_POST = {"channel": "phone", "direction": "out", "subject": "Called back"}


def test_log_the_call_from_my_day_opens_the_dialog_and_completes_the_follow_up(
    sales_client, sales_user, own_customer
):
    from interactions.models import Interaction

    followup = make_followup(customer=own_customer, assignee=sales_user, hours=-2)
    page = _page(sales_client)
    assert f'hx-get="{_log_url(followup)}&amp;team=0"' in page  # the row opens the dialog in place
    dialog = sales_client.get(_log_url(followup, team=0), **HTMX).content.decode()
    assert 'data-testid="complete-followup"' in dialog and "checked" in dialog and "<html" not in dialog
    when = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    response = sales_client.post(
        _log_url(followup, team=0), {**LOG_POST, "occurred_at": when, "complete_followup": "on"}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200 and 'id="interaction-logged"' in html
    # the row on My day is replaced out of band, now done
    assert f'id="followup-{followup.pk}"' in html and 'hx-swap-oob="outerHTML"' in html
    assert 'data-status="done"' in html
    assert FollowUp.objects.get(pk=followup.pk).status == "done"
    assert Interaction.objects.get(customer=own_customer).subject == "Called back"


def test_log_the_call_without_completing_keeps_the_follow_up_open(sales_client, sales_user, own_customer):
    followup = make_followup(customer=own_customer, assignee=sales_user, hours=-2)
    when = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    html = sales_client.post(_log_url(followup), {**LOG_POST, "occurred_at": when}, **HTMX).content.decode()
    assert 'data-status="open"' in html
    assert FollowUp.objects.get(pk=followup.pk).status == "open"


def test_log_the_call_for_a_follow_up_not_visible_or_of_another_customer(
    sales_client, sales_user, sales_user2, own_customer, other_customer
):
    hidden = make_followup(customer=other_customer, assignee=sales_user2)
    url = f"{reverse('interactions:log', args=[own_customer.pk])}?followup={hidden.pk}"
    assert sales_client.get(url, **HTMX).status_code == 404
    mine_elsewhere = make_followup(customer=CustomerFactory(owner=sales_user), assignee=sales_user)
    url = f"{reverse('interactions:log', args=[own_customer.pk])}?followup={mine_elsewhere.pk}"
    assert 'data-testid="complete-followup"' not in sales_client.get(url, **HTMX).content.decode()


def test_a_refused_completion_writes_no_interaction(sales_user, own_customer):
    from django.core.exceptions import ValidationError

    from interactions.models import Interaction
    from interactions.services import interaction_log_with_follow_up

    followup = make_followup(customer=own_customer, assignee=sales_user)
    FollowUp.objects.filter(pk=followup.pk).update(status="done", completed_at=timezone.now())
    audit = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        interaction_log_with_follow_up(
            actor=sales_user,
            customer=own_customer,
            follow_up_in_days=None,
            complete_followup=followup,
            channel="phone",
            direction="out",
            occurred_at=timezone.now(),
        )
    assert "complete_followup" in refused.value.error_dict
    assert not Interaction.objects.filter(customer=own_customer).exists()
    assert AuditEvent.objects.count() == audit


def test_panel_on_the_360_page_adds_a_follow_up(sales_client, sales_user, own_customer):
    detail = sales_client.get(reverse("customers:detail", args=[own_customer.pk])).content.decode()
    assert 'data-testid="followup-panel"' in detail
    due = (timezone.localtime() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = sales_client.post(
        reverse("followups:create", args=[own_customer.pk]),
        {"title": "Send the catalogue", "due_at": due},
        **HTMX,
    )
    assert "Send the catalogue" in response.content.decode()
    followup = FollowUp.objects.get()
    assert (followup.assignee_id, followup.customer_id) == (sales_user.pk, own_customer.pk)
    bad = sales_client.post(
        reverse("followups:create", args=[own_customer.pk]), {"title": "", "due_at": due}, **HTMX
    )
    assert "This field is required" in bad.content.decode() and FollowUp.objects.count() == 1


def test_bulk_action_from_the_customer_list(manager_client, sales_user, sales_user2):
    customers = [CustomerFactory(owner=sales_user), CustomerFactory(owner=sales_user2)]
    listing = manager_client.get(reverse("customers:list")).content.decode()
    assert 'data-testid="bulk-followup"' in listing and reverse("followups:bulk_new") in listing
    ids = [c.pk for c in customers]
    step1 = manager_client.post(reverse("followups:bulk_new"), {"ids": ids, "action": "tag_add"})
    assert step1.status_code == 200 and "Add to 2 customers" in step1.content.decode()
    due = (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    done = manager_client.post(
        reverse("followups:bulk_new"),
        {
            "ids": ids,
            "confirm": "1",
            "title": "Spring promo",
            "due_at": due,
            "next": reverse("customers:list"),
        },
    )
    assert done.status_code == 302
    assert sorted(FollowUp.objects.values_list("assignee_id", flat=True)) == sorted(
        [sales_user.pk, sales_user2.pk]
    )


def test_only_managers_choose_who_gets_bulk_follow_ups(manager_client, sales_client, sales_user):
    ids = [CustomerFactory(owner=sales_user).pk]
    asked = {"ids": ids, "action": "tag_add"}
    assert 'name="assignee"' in manager_client.post(reverse("followups:bulk_new"), asked).content.decode()
    page = sales_client.post(reverse("followups:bulk_new"), asked)
    assert page.status_code == 200 and 'name="title"' in page.content.decode()
    assert 'name="assignee"' not in page.content.decode()


def test_rules_page_saves_and_refuses_bad_input(admin_client):
    response = admin_client.post(
        reverse("followups:rules"),
        {"name": "Stage", "trigger": "lifecycle_stage", "stage": "", "delay_days": "2", "title": "Call"},
    )
    assert response.status_code == 200 and "Choose the lifecycle stage." in response.content.decode()
    response = admin_client.post(
        reverse("followups:rules"),
        {"name": "Late", "trigger": "churn_alert", "delay_days": "99999", "title": "Call"},
    )
    assert response.status_code == 200 and not FollowUpRule.objects.exists()
    response = admin_client.post(
        reverse("followups:rules"),
        {"name": "Win back", "trigger": "churn_alert", "delay_days": "1", "title": "Call", "is_active": "on"},
    )
    assert response.status_code == 302
    rule = FollowUpRule.objects.get()
    assert (rule.trigger, rule.delay_days, rule.is_active) == ("churn_alert", 1, True)
    assert AuditEvent.objects.filter(action="followup_rule.created", target_id=str(rule.pk)).exists()


def test_list_filter_has_open_follow_up(sales_client, sales_user):
    with_one = CustomerFactory(owner=sales_user, name="Has One")
    CustomerFactory(owner=sales_user, name="Has None")
    make_followup(customer=with_one, assignee=sales_user)
    html = sales_client.get(reverse("customers:list"), {"open_followup": "yes"}).content.decode()
    assert "Has One" in html and "Has None" not in html


def test_two_tenants_never_see_each_others_follow_ups(client_for, sales_user, own_customer, tenant_b):
    mine = make_followup(customer=own_customer, assignee=sales_user, title="Alpha secret call")
    with schema_context(tenant_b.schema_name):
        beta_sales = User.objects.get(email="sales@beta.test")
        beta_customer = CustomerFactory(owner=beta_sales)
        theirs = make_followup(customer=beta_customer, assignee=beta_sales, title="Beta secret call")
    beta = client_for(beta_sales, tenant_b)
    html = _page(beta)
    assert "Beta secret call" in html and "Alpha secret call" not in html
    if mine.pk != theirs.pk:
        assert beta.post(reverse("followups:complete", args=[mine.pk])).status_code == 404
    connection.set_tenant(tenant_b)
    assert FollowUp.objects.get(pk=theirs.pk).status == "open"
