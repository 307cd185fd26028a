"""Follow-up rules: each trigger gives one follow-up per occurrence, however often it is delivered
(and when two workers race), for the customer's owner or the rule's fallback user."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm.accounts.models import User
from customers.services import customer_refresh_order_stats
from interactions.followups import rules
from interactions.followups.models import FollowUp, FollowUpRule
from segmentation.models import LifecycleTransition, RecomputeRun, Segment
from segmentation.services import alert_create
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db


def _rule(trigger, **extra) -> FollowUpRule:
    extra.setdefault("title", f"Follow up: {trigger}")
    rule = FollowUpRule.objects.create(
        name=trigger, trigger=trigger, delay_days=extra.pop("delay_days", 3), **extra
    )
    # rules only consider what happened after they existed
    FollowUpRule.objects.filter(pk=rule.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    rule.refresh_from_db()
    return rule


def test_new_customer_rule_once_per_customer(sales_user):
    rule = _rule("customer_created")
    customer = CustomerFactory(owner=sales_user)
    assert rules.on_customers_created(customer_ids=[customer.pk]) == 1
    assert rules.on_customers_created(customer_ids=[customer.pk]) == 0  # delivered twice
    followup = FollowUp.objects.get()
    assert (followup.customer_id, followup.assignee_id, followup.source) == (
        customer.pk,
        sales_user.pk,
        "new_customer",
    )
    assert followup.source_key == f"rule:{rule.pk}:created:{customer.pk}"
    assert timedelta(days=2, hours=23) < followup.due_at - timezone.now() <= timedelta(days=3)


def test_import_counts_customers_created_in_the_last_day(sales_user):
    _rule("customer_created")
    fresh = CustomerFactory(owner=sales_user)
    old = CustomerFactory(owner=sales_user)
    type(old).objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    assert rules.on_customers_created(customer_ids=None) == 1
    assert FollowUp.objects.get().customer_id == fresh.pk


def test_first_purchase_rule(sales_user):
    _rule("first_purchase")
    buyer = CustomerFactory(owner=sales_user)
    browser = CustomerFactory(owner=sales_user)
    OrderFactory(customer=buyer, placed_at=timezone.now())
    OrderFactory(customer=CustomerFactory(owner=sales_user), placed_at=timezone.now() - timedelta(days=400))
    customer_refresh_order_stats()
    assert rules.on_orders(customer_ids=None) == 1  # the 400-day-old purchase is history
    OrderFactory(customer=buyer, placed_at=timezone.now())  # a second purchase is not a first one
    customer_refresh_order_stats()
    assert rules.on_orders(customer_ids=[buyer.pk, browser.pk]) == 0
    assert FollowUp.objects.get().customer_id == buyer.pk


def test_churn_alert_rule_one_follow_up_per_alert_even_when_delivered_twice(sales_user):
    _rule("churn_alert", title="Win back")
    customer = CustomerFactory(owner=sales_user)
    alert = alert_create(customer=customer, reason="entered_at_risk")
    assert rules.on_churn_alerts(alert_ids=[alert.pk]) == 1
    assert rules.on_churn_alerts(alert_ids=[alert.pk]) == 0
    followup = FollowUp.objects.get()
    assert (followup.title, followup.source, followup.assignee_id) == (
        "Win back",
        "churn_alert",
        sales_user.pk,
    )


def test_owner_fallback_and_skip(admin_user, sales_user):
    inactive = User.objects.create_user(
        email="left@alpha.test", password="x" * 12, role="sales", is_active=False
    )
    rule = _rule("churn_alert")
    orphan = CustomerFactory(owner=inactive)
    alert = alert_create(customer=orphan, reason="entered_at_risk")
    assert rules.on_churn_alerts(alert_ids=[alert.pk]) == 0  # no active owner, no fallback: skipped
    FollowUpRule.objects.filter(pk=rule.pk).update(fallback_assignee=admin_user)
    assert rules.on_churn_alerts(alert_ids=[alert.pk]) == 1
    assert FollowUp.objects.get().assignee_id == admin_user.pk


def test_inactive_rules_do_nothing(sales_user):
    rule = _rule("churn_alert")
    FollowUpRule.objects.filter(pk=rule.pk).update(is_active=False)
    alert = alert_create(customer=CustomerFactory(owner=sales_user), reason="entered_at_risk")
    assert rules.on_churn_alerts(alert_ids=[alert.pk]) == 0
    assert not FollowUp.objects.exists()


def _run() -> RecomputeRun:
    return RecomputeRun.objects.create(as_of=timezone.now(), status="succeeded")


def test_lifecycle_stage_rule_follows_the_runs_transitions(sales_user):
    _rule("lifecycle_stage", stage="at_risk")
    slipping, new = CustomerFactory(owner=sales_user), CustomerFactory(owner=sales_user)
    run = _run()
    LifecycleTransition.objects.create(
        customer=slipping, from_stage="repeat", to_stage="at_risk", at=timezone.now(), run=run
    )
    LifecycleTransition.objects.create(
        customer=new, from_stage="", to_stage="new", at=timezone.now(), run=run
    )
    assert rules.on_recompute(run_id=run.pk) == 1
    assert rules.on_recompute(run_id=run.pk) == 0
    assert FollowUp.objects.get().customer_id == slipping.pk


def test_segment_rule_follows_entrants_only(sales_user, admin_user):
    segment = Segment.objects.create(
        name="Hangzhou",
        rules={"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Hangzhou"}]},
        created_by=admin_user,
    )
    _rule("segment", segment=segment)
    already = CustomerFactory(owner=sales_user, city="Hangzhou")
    assert rules.on_recompute(run_id=_run().pk) == 0  # the first evaluation records who is in
    entrant = CustomerFactory(owner=sales_user, city="Hangzhou")
    second = _run()
    assert rules.on_recompute(run_id=second.pk) == 1
    assert rules.on_recompute(run_id=second.pk) == 0  # the same run again
    assert FollowUp.objects.get().customer_id == entrant.pk
    # leaving and coming back is a new entry
    type(already).objects.filter(pk=already.pk).update(city="Ningbo")
    assert rules.on_recompute(run_id=_run().pk) == 0
    type(already).objects.filter(pk=already.pk).update(city="Hangzhou")
    assert rules.on_recompute(run_id=_run().pk) == 1
    assert sorted(FollowUp.objects.values_list("customer_id", flat=True)) == sorted([entrant.pk, already.pk])


def test_a_segment_rule_whose_follow_ups_are_refused_remembers_no_entrant(sales_user, admin_user):
    """Entrants are remembered and followed up together: when writing the follow-ups fails, nobody is
    remembered as entered, so the next evaluation follows them up."""
    from django.db import DatabaseError

    from interactions.followups.models import RuleSegmentMember

    segment = Segment.objects.create(
        name="Hangzhou",
        rules={"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Hangzhou"}]},
        created_by=admin_user,
    )
    _rule("segment", segment=segment)
    rules.on_recompute(run_id=_run().pk)  # the first evaluation: nobody in yet
    entrant = CustomerFactory(owner=sales_user, city="Hangzhou")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_followup() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'no follow-ups today'; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER refuse_followup BEFORE INSERT ON "{FollowUp._meta.db_table}" '
            "FOR EACH ROW EXECUTE FUNCTION refuse_followup()"
        )
    with pytest.raises(DatabaseError):
        rules.on_recompute(run_id=_run().pk)
    assert not RuleSegmentMember.objects.filter(customer_id=entrant.pk).exists()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TRIGGER refuse_followup ON "{FollowUp._meta.db_table}"')
    assert rules.on_recompute(run_id=_run().pk) == 1


def test_two_workers_racing_on_one_alert_make_one_follow_up(sales_user):
    """The race source_key guards against, made real: a trigger inserts the same follow-up (as a
    second worker handling the same signal would) just before our insert of it. The batch insert
    fails on the unique source_key; one by one, the raced follow-up is skipped and the other alert's
    is created, and the transaction stays usable."""
    _rule("churn_alert")
    raced = alert_create(customer=CustomerFactory(owner=sales_user), reason="entered_at_risk")
    calm = alert_create(customer=CustomerFactory(owner=sales_user), reason="entered_at_risk")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION another_worker_first() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF pg_trigger_depth() = 1 AND NEW.source_key LIKE '%:alert:{raced.pk}' THEN "
            "INSERT INTO followups_followup (customer_id, assignee_id, due_at, title, notes, status, "
            "snooze_count, source, source_key, rule_id, created_at, updated_at) VALUES (NEW.customer_id, "
            "NEW.assignee_id, NEW.due_at, NEW.title, NEW.notes, NEW.status, 0, NEW.source, NEW.source_key, "
            "NEW.rule_id, NEW.created_at, NEW.updated_at); END IF; RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER another_worker_first BEFORE INSERT ON followups_followup "
            "FOR EACH ROW EXECUTE FUNCTION another_worker_first()"
        )
    assert rules.on_churn_alerts(alert_ids=[raced.pk, calm.pk]) == 1  # ours: only the calm one
    # (the trigger's own row goes with the failed statement's savepoint, as in the alerts test)
    keys = list(FollowUp.objects.values_list("source_key", flat=True))
    assert len(keys) == 1 and keys[0].endswith(f":alert:{calm.pk}")
    assert rules.on_churn_alerts(alert_ids=[calm.pk]) == 0  # the transaction is still usable
