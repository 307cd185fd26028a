"""Follow-ups are all or nothing, as tests/test_audit_fault.py shows for the older apps: when the audit
row cannot be written (a trigger on the audit table refuses it), the follow-up, rule or member rows
the service changed before it are back as they were. One case per service, called by its public name
with real arguments. The reminder run writes no audit row: there the follow-up's update, its last
write, is refused, and its notifications go back with it."""

import io
import random
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connection
from django.urls import reverse
from django.utils import timezone

from crm.accounts.models import User
from crm.notifications.models import Notification
from interactions.followups import demo, rules, services
from interactions.followups.models import FollowUp, FollowUpRule, RuleSegmentMember
from segmentation.models import ChurnAlert, Segment
from segmentation.services import alert_create
from tests.factories import CustomerFactory
from tests.test_audit_fault import _refuse_audit_rows, _state
from tests.test_service_roles import _deactivated

from .conftest import make_followup

MODELS = (FollowUp, FollowUpRule, RuleSegmentMember, Notification, ChurnAlert)
HANGZHOU = {"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Hangzhou"}]}
NINGBO = {"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Ningbo"}]}


@pytest.fixture
def f(tenant, users):
    customer = CustomerFactory(owner=users["sales"], city="Hangzhou")
    other = CustomerFactory(owner=users["sales2"], city="Hangzhou")
    hangzhou = Segment.objects.create(name="Hangzhou", rules=HANGZHOU, created_by=users["admin"])
    ningbo = Segment.objects.create(name="Ningbo", rules=NINGBO, created_by=users["admin"])
    # a saved-segment rule past its first evaluation: `other` is remembered, `customer` is an entrant
    segment_rule = FollowUpRule.objects.create(
        name="Entered Hangzhou",
        trigger="segment",
        segment=hangzhou,
        title="Welcome to Hangzhou",
        members_since=timezone.now() - timedelta(days=1),
    )
    RuleSegmentMember.objects.create(rule=segment_rule, customer=other, since=timezone.now())
    return {
        **users,
        "tenant": tenant,
        "customer": customer,
        "other": other,
        "followup": make_followup(customer=customer, assignee=users["sales"], hours=2),
        "rule": FollowUpRule.objects.create(name="Win back", trigger="churn_alert", title="Win back"),
        "segment_rule": segment_rule,
        "ningbo": ningbo,
    }


def _soon():
    return timezone.now() + timedelta(days=1)


CASES = {
    "followup_create": lambda f: services.followup_create(
        actor=f["sales"], customer=f["customer"], assignee=f["sales"], due_at=_soon(), title="Call back"
    ),
    # two customers' follow-ups in one statement, then their audit rows in one more
    "followups_create_many": lambda f: services.followups_create_many(
        actor=f["manager"], customer_ids=[f["customer"].pk, f["other"].pk], due_at=_soon(), title="Call"
    ),
    "followups_create_from_rule": lambda f: services.followups_create_from_rule(
        rule=f["rule"],
        occurrences=[
            services.RuleOccurrence(f["customer"].pk, "alert:1"),
            services.RuleOccurrence(f["other"].pk, "alert:2"),
        ],
    ),
    "followup_create_for_source": lambda f: services.followup_create_for_source(
        customer=f["customer"], assignee=f["sales"], source_key="survey:7", due_at=_soon(), title="Detractor"
    ),
    "followup_complete": lambda f: services.followup_complete(actor=f["sales"], followup=f["followup"]),
    "followup_cancel": lambda f: services.followup_cancel(actor=f["sales"], followup=f["followup"]),
    "followup_snooze": lambda f: services.followup_snooze(actor=f["sales"], followup=f["followup"], hours=24),
    "followup_reschedule": lambda f: services.followup_reschedule(
        actor=f["sales"], followup=f["followup"], due_at=_soon() + timedelta(days=2)
    ),
    "followup_reassign": lambda f: services.followup_reassign(
        actor=f["manager"], followup=f["followup"], assignee=f["sales2"]
    ),
    "rule_create": lambda f: services.rule_create(
        actor=f["admin"], name="Welcome", trigger="customer_created", title="Say hello", delay_days=1
    ),
    # another segment: the remembered members are deleted, the rule saved, then the audit row
    "rule_update": lambda f: services.rule_update(
        actor=f["admin"], rule=f["segment_rule"], segment=f["ningbo"], name="Entered Ningbo"
    ),
    # the entrant remembered, the leaver forgotten, then the entrant's follow-up and its audit row
    "segment_rule_evaluate": lambda f: rules.segment_rule_evaluate(rule_id=f["segment_rule"].pk, run_id=1),
    # the demo follow-ups, the demo rule, then the churn alert's follow-up and its audit row
    "seed": lambda f: demo.seed(
        users=[f[key] for key in ("admin", "manager", "sales", "sales2")],
        rng=random.Random(1),
        stdout=io.StringIO(),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_refused_audit_row_undoes_the_followup_change(case, f):
    CustomerFactory(owner=f["sales2"], city="Suzhou")  # `other` leaves the segment...
    type(f["other"]).objects.filter(pk=f["other"].pk).update(city="Suzhou")
    alert_create(customer=f["customer"], reason="entered_at_risk")  # ...and seed() follows this up
    before = _state(MODELS)
    _refuse_audit_rows()
    with pytest.raises(DatabaseError):
        CASES[case](f)
    connection.set_tenant(f["tenant"])
    assert _state(MODELS) == before


def test_followup_reminders_send_undoes_the_notifications_when_the_follow_ups_cannot_be_marked(f):
    """A batch's notifications and its `reminded_at` go together: when marking the follow-ups is
    refused, the notifications are gone too, so the next run reminds them (once)."""
    FollowUp.objects.filter(pk=f["followup"].pk).update(due_at=timezone.now() - timedelta(hours=1))
    make_followup(customer=f["other"], assignee=f["sales2"], hours=-2)
    before = _state(MODELS)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_marking() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'the follow-up may not be changed'; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER refuse_marking BEFORE UPDATE ON "{FollowUp._meta.db_table}" '
            "FOR EACH ROW EXECUTE FUNCTION refuse_marking()"
        )
    with pytest.raises(DatabaseError):
        services.followup_reminders_send()
    assert _state(MODELS) == before
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TRIGGER refuse_marking ON "{FollowUp._meta.db_table}"')
    assert services.followup_reminders_send() == 2
    assert Notification.objects.filter(kind=services.REMINDER_KIND).count() == 2


def test_followup_create_for_source_asked_twice_makes_one_and_leaves_the_transaction_usable(f):
    """The second request for the same source key is refused by the unique key: it answers None, and
    the caller's transaction (a survey response being saved) goes on."""
    first = services.followup_create_for_source(
        customer=f["customer"], assignee=f["sales"], source_key="survey:7", due_at=_soon(), title="Detractor"
    )
    again = services.followup_create_for_source(
        customer=f["customer"], assignee=f["sales"], source_key="survey:7", due_at=_soon(), title="Detractor"
    )
    assert first is not None and again is None
    assert list(FollowUp.objects.filter(source_key="survey:7").values_list("pk", flat=True)) == [first.pk]


# --- who gets the bulk follow-ups: the form's answer -------------------------------------------------


def _bulk_form(user, assignee):
    from interactions.followups.forms import BulkFollowUpForm

    due = (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    form = BulkFollowUpForm({"title": "Spring promo", "due_at": due, "assignee": assignee}, user=user)
    assert form.is_valid(), form.errors
    return form.assignee()


def test_the_bulk_form_gives_a_reps_follow_ups_to_the_rep_whatever_is_posted(f):
    """A rep has no assignee to choose: the form answers the rep, even when an assignee is posted
    (the service then checks it); a manager's blank choice means each customer's owner (None)."""
    assert _bulk_form(f["sales"], f["sales2"].pk) == f["sales"]
    assert _bulk_form(f["sales"], "") == f["sales"]
    assert _bulk_form(f["manager"], "") is None
    assert _bulk_form(f["manager"], f["sales2"].pk) == f["sales2"]


# --- the services' own role checks: a deactivated user is nobody -------------------------------------


def test_followups_create_many_refuses_a_deactivated_actor(f):
    before = _state(MODELS)
    with pytest.raises(PermissionDenied):
        services.followups_create_many(
            actor=_deactivated(f["sales"]), customer_ids=[f["customer"].pk], due_at=_soon(), title="Call"
        )
    assert _state(MODELS) == before


def test_followups_create_many_gives_a_reps_follow_ups_to_the_rep_on_a_shared_customer_too(f):
    """A rep's bulk follow-ups are the rep's own work: a customer shared with them by its owner does
    not hand the owner a task."""
    f["other"].shared_with.add(f["sales"])
    created = services.followups_create_many(
        actor=f["sales"], customer_ids=[f["customer"].pk, f["other"].pk], due_at=_soon(), title="Call"
    )
    assert sorted((row.customer_id, row.assignee_id) for row in created) == sorted(
        [(f["customer"].pk, f["sales"].pk), (f["other"].pk, f["sales"].pk)]
    )


def test_followups_create_many_passes_over_a_deactivated_owner_to_the_manager(f):
    User.objects.filter(pk=f["sales2"].pk).update(is_active=False)
    created = services.followups_create_many(
        actor=f["manager"], customer_ids=[f["customer"].pk, f["other"].pk], due_at=_soon(), title="Call"
    )
    assert sorted((row.customer_id, row.assignee_id) for row in created) == sorted(
        [(f["customer"].pk, f["sales"].pk), (f["other"].pk, f["manager"].pk)]
    )


def test_followups_create_from_rule_skips_a_customer_with_no_owner_and_a_deactivated_fallback(f):
    User.objects.filter(pk=f["sales2"].pk).update(is_active=False)
    FollowUpRule.objects.filter(pk=f["rule"].pk).update(fallback_assignee=f["sales2"])
    rule = FollowUpRule.objects.select_related("fallback_assignee").get(pk=f["rule"].pk)
    orphan = CustomerFactory(owner=None)
    occurrences = [services.RuleOccurrence(orphan.pk, "alert:9")]
    assert services.followups_create_from_rule(rule=rule, occurrences=occurrences) == []
    assert not FollowUp.objects.filter(customer=orphan).exists()


def test_followup_create_for_source_gives_nothing_to_a_deactivated_assignee(f):
    User.objects.filter(pk=f["sales2"].pk).update(is_active=False)
    f["sales2"].refresh_from_db()
    made = services.followup_create_for_source(
        customer=f["other"], assignee=f["sales2"], source_key="survey:8", due_at=_soon(), title="Detractor"
    )
    assert made is None and not FollowUp.objects.filter(source_key="survey:8").exists()


@pytest.mark.parametrize("role", ["manager", "sales"])
def test_rule_create_and_rule_update_are_for_admins(f, role):
    before = _state(MODELS)
    with pytest.raises(PermissionDenied):
        services.rule_create(actor=f[role], name="Welcome", trigger="customer_created", title="Hello")
    with pytest.raises(PermissionDenied):
        services.rule_update(actor=f[role], rule=f["rule"], name="Renamed")
    assert _state(MODELS) == before


def test_rule_create_refuses_a_fallback_user_held_as_deactivated(f):
    """The fallback user is checked as given (a form or task holding the account after it was
    deactivated) as well as in the database."""
    with pytest.raises(ValidationError) as caught:
        services.rule_create(
            actor=f["admin"],
            name="Welcome",
            trigger="customer_created",
            title="Hello",
            fallback_assignee=_deactivated(f["sales2"]),
        )
    assert "fallback_assignee" in caught.value.message_dict
    assert not FollowUpRule.objects.filter(name="Welcome").exists()


def test_my_day_of_a_rep_is_their_own_list_with_no_team_picker(f, client_for):
    """A rep's My day lists what is assigned to them, not a colleague's task on the rep's customer,
    and offers no rep picker."""
    make_followup(customer=f["customer"], assignee=f["sales"], hours=1, title="Mine to do")
    make_followup(customer=f["customer"], assignee=f["sales2"], hours=1, title="Colleague's task")
    page = client_for(f["sales"]).get(reverse("followups:my_day")).content.decode()
    assert "Mine to do" in page and "Colleague's task" not in page
    assert 'data-testid="rep-picker"' not in page
