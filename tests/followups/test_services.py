"""Follow-up services: what they write, what they refuse (writing nothing), and the audit trail."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.audit.models import AuditEvent
from interactions.followups import services
from interactions.followups.models import FollowUp
from tests.factories import CustomerFactory

from .conftest import make_followup

pytestmark = pytest.mark.django_db


def _tomorrow():
    return timezone.now() + timedelta(days=1)


def test_create_writes_the_row_and_an_audit_record(sales_user, own_customer):
    followup = services.followup_create(
        actor=sales_user,
        customer=own_customer,
        assignee=sales_user,
        due_at=_tomorrow(),
        title="  Call   back ",
    )
    followup.refresh_from_db()
    assert (followup.title, followup.status, followup.source) == ("Call back", "open", "manual")
    event = AuditEvent.objects.get(action="followup.created", target_id=str(followup.pk))
    assert event.actor_id == sales_user.pk and event.changes["title"]["new"] == "Call back"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"due_at": "tomorrow"}, "due_at"),
        ({"due_at_days": 731}, "due_at"),
        ({"due_at_days": -40}, "due_at"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"notes": "x" * 4001}, "notes"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(sales_user, own_customer, change, field):
    kwargs = {"actor": sales_user, "customer": own_customer, "assignee": sales_user, "due_at": _tomorrow()}
    kwargs["title"] = "Call"
    if "due_at_days" in change:
        kwargs["due_at"] = timezone.now() + timedelta(days=change.pop("due_at_days"))
    kwargs.update(change)
    with pytest.raises(ValidationError) as caught:
        services.followup_create(**kwargs)
    assert field in caught.value.message_dict
    assert (
        not FollowUp.objects.exists()
        and not AuditEvent.objects.filter(action__startswith="followup").exists()
    )


def test_inactive_or_foreign_assignee_is_refused(manager_user, own_customer, tenant_b):
    inactive = User.objects.create_user(
        email="gone@alpha.test", password="x" * 12, role="sales", is_active=False
    )
    with pytest.raises(ValidationError):
        services.followup_create(
            actor=manager_user, customer=own_customer, assignee=inactive, due_at=_tomorrow(), title="Call"
        )
    # A user object of the other tenant: the same id may exist here, but it is not that person.
    with schema_context(tenant_b.schema_name):
        foreign = User.objects.get(email="sales@beta.test")
    assert connection.schema_name == "alpha"
    with pytest.raises(ValidationError) as caught:
        services.followup_create(
            actor=manager_user, customer=own_customer, assignee=foreign, due_at=_tomorrow(), title="Call"
        )
    assert "assignee" in caught.value.message_dict
    assert not FollowUp.objects.exists()


def test_sales_assign_only_to_themselves_and_only_on_visible_customers(
    sales_user, sales_user2, own_customer, other_customer
):
    with pytest.raises(ValidationError):
        services.followup_create(
            actor=sales_user, customer=own_customer, assignee=sales_user2, due_at=_tomorrow(), title="Call"
        )
    with pytest.raises(PermissionDenied):
        services.followup_create(
            actor=sales_user, customer=other_customer, assignee=sales_user, due_at=_tomorrow(), title="Call"
        )
    assert not FollowUp.objects.exists()


def test_complete_cancel_and_closed_follow_ups(sales_user, own_customer):
    followup = make_followup(customer=own_customer, assignee=sales_user)
    done = services.followup_complete(actor=sales_user, followup=followup)
    assert (done.status, done.completed_by_id) == ("done", sales_user.pk) and done.completed_at
    with pytest.raises(ValidationError):
        services.followup_cancel(actor=sales_user, followup=followup)
    assert FollowUp.objects.get(pk=followup.pk).status == "done"
    assert AuditEvent.objects.filter(action="followup.completed", target_id=str(followup.pk)).count() == 1


def test_snooze_moves_the_due_time_counts_and_clears_the_reminder(sales_user, own_customer):
    followup = make_followup(customer=own_customer, assignee=sales_user, hours=-1, reminded_at=timezone.now())
    before = timezone.now()
    snoozed = services.followup_snooze(actor=sales_user, followup=followup, hours=24)
    snoozed.refresh_from_db()
    assert snoozed.snooze_count == 1 and snoozed.reminded_at is None
    assert before + timedelta(hours=24) <= snoozed.due_at <= timezone.now() + timedelta(hours=24)
    with pytest.raises(ValidationError):
        services.followup_snooze(actor=sales_user, followup=snoozed, hours=24 * 91)
    assert FollowUp.objects.get(pk=followup.pk).snooze_count == 1


def test_reschedule_refuses_a_due_time_years_away(sales_user, own_customer):
    followup = make_followup(customer=own_customer, assignee=sales_user)
    original = followup.due_at
    with pytest.raises(ValidationError):
        services.followup_reschedule(
            actor=sales_user, followup=followup, due_at=timezone.now() + timedelta(days=3650)
        )
    assert FollowUp.objects.get(pk=followup.pk).due_at == original
    moved = services.followup_reschedule(actor=sales_user, followup=followup, due_at=_tomorrow())
    assert moved.due_at > original


def test_sales_cannot_touch_another_reps_follow_up(sales_user, sales_user2, other_customer):
    followup = make_followup(customer=other_customer, assignee=sales_user2)
    for call in (services.followup_complete, services.followup_cancel):
        with pytest.raises(PermissionDenied):
            call(actor=sales_user, followup=followup)
    assert FollowUp.objects.get(pk=followup.pk).status == "open"


def test_reassign_is_for_managers(manager_user, sales_user, sales_user2, own_customer):
    followup = make_followup(customer=own_customer, assignee=sales_user)
    with pytest.raises(PermissionDenied):
        services.followup_reassign(actor=sales_user, followup=followup, assignee=sales_user2)
    moved = services.followup_reassign(actor=manager_user, followup=followup, assignee=sales_user2)
    assert FollowUp.objects.get(pk=moved.pk).assignee_id == sales_user2.pk
    event = AuditEvent.objects.get(action="followup.reassigned")
    assert event.changes["assignee"] == {
        "old": sales_user.get_full_name(),
        "new": sales_user2.get_full_name(),
    }


def test_bulk_create_only_for_visible_customers_and_owners(manager_user, sales_user, sales_user2):
    mine = CustomerFactory(owner=sales_user)
    theirs = CustomerFactory(owner=sales_user2)
    nobody = CustomerFactory(owner=None)
    created = services.followups_create_many(
        actor=manager_user,
        customer_ids=[mine.pk, theirs.pk, nobody.pk],
        due_at=_tomorrow(),
        title="Promo call",
    )
    assignees = {f.customer_id: f.assignee_id for f in created}
    assert assignees == {mine.pk: sales_user.pk, theirs.pk: sales_user2.pk, nobody.pk: manager_user.pk}
    # a sales rep selecting someone else's customer creates nothing for it
    created = services.followups_create_many(
        actor=sales_user, customer_ids=[mine.pk, theirs.pk], due_at=_tomorrow(), title="Mine"
    )
    assert [(f.customer_id, f.assignee_id) for f in created] == [(mine.pk, sales_user.pk)]
    assert AuditEvent.objects.filter(action="followup.created").count() == 4


def test_bulk_bad_due_date_writes_nothing(manager_user, sales_user):
    customers = [CustomerFactory(owner=sales_user) for _ in range(3)]
    with pytest.raises(ValidationError):
        services.followups_create_many(
            actor=manager_user,
            customer_ids=[c.pk for c in customers],
            due_at=timezone.now() + timedelta(days=5000),
            title="Far",
        )
    assert not FollowUp.objects.exists()


def test_merge_moves_follow_ups_and_undo_moves_exactly_those_back(sales_user):
    survivor, merged = CustomerFactory(owner=sales_user), CustomerFactory(owner=sales_user)
    moved = make_followup(customer=merged, assignee=sales_user)
    stays = make_followup(customer=survivor, assignee=sales_user)
    info = services.merge_move(survivor, merged)
    assert info == {"followups": [moved.pk]}
    assert set(FollowUp.objects.filter(customer=survivor).values_list("pk", flat=True)) == {
        moved.pk,
        stays.pk,
    }
    services.merge_undo(survivor, merged, info)
    assert FollowUp.objects.get(pk=moved.pk).customer_id == merged.pk
    assert FollowUp.objects.get(pk=stays.pk).customer_id == survivor.pk


def test_reminder_key_changes_with_the_due_time(sales_user, own_customer):
    followup = make_followup(customer=own_customer, assignee=sales_user)
    key = services.reminder_key(followup)
    assert key == f"followup:{followup.pk}:{followup.due_at.isoformat()}"
    snoozed = services.followup_snooze(actor=sales_user, followup=followup, hours=1)
    assert services.reminder_key(snoozed) != key


def test_a_rep_sees_follow_ups_of_own_and_shared_customers_and_those_assigned_to_them(
    sales_user, sales_user2, manager_user
):
    from interactions.followups.selectors import customer_open_followups, followup_visible

    own = CustomerFactory(owner=sales_user)
    shared = CustomerFactory(owner=sales_user2)
    shared.shared_with.add(sales_user)
    others = CustomerFactory(owner=sales_user2)
    binned = CustomerFactory(owner=sales_user, deleted_at=timezone.now())
    on_own = make_followup(customer=own, assignee=sales_user2)  # someone else's task on my customer
    on_shared = make_followup(customer=shared, assignee=sales_user2)
    assigned = make_followup(customer=others, assignee=sales_user)  # mine on another rep's customer
    hidden = make_followup(customer=others, assignee=sales_user2)
    make_followup(customer=binned, assignee=sales_user)
    seen = set(followup_visible(user=sales_user).values_list("pk", flat=True))
    assert seen == {on_own.pk, on_shared.pk, assigned.pk}
    assert set(followup_visible(user=manager_user).values_list("pk", flat=True)) >= seen | {hidden.pk}
    assert [f.pk for f in customer_open_followups(user=sales_user, customer=others)] == [assigned.pk]
    assert [f.pk for f in customer_open_followups(user=sales_user, customer=shared)] == [on_shared.pk]
    sales_user.is_active = False  # a deactivated rep sees nothing, not even what is assigned to them
    sales_user.save(update_fields=["is_active"])
    assert not followup_visible(user=sales_user).exists()
