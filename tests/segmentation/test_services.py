from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from crm.jobs.models import BackgroundJob
from crm.tenancy.models import Tenant
from segmentation.analytics import lifecycle, rfm
from segmentation.labels import LifecycleStage, RfmSegment
from segmentation.models import ChurnAlert, CustomerScore, LifecycleTransition, Segment, SegmentationSettings
from segmentation.pgcopy import copy_in_arrays, copy_out_arrays
from segmentation.recompute import Config, detect_alerts, recompute
from segmentation.services import (
    RECOMPUTE_JOB_KIND,
    alert_acknowledge,
    alert_create,
    alert_dismiss,
    merge_move,
    merge_undo,
    recompute_request,
    segment_create,
    segment_delete,
    segment_update,
    settings_get,
    settings_update,
)
from segmentation.tasks import recompute_all_tenants
from tests.factories import CustomerFactory

from .conftest import customer_with_orders

RULES = {"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Shanghai"}]}


def test_every_analytics_key_has_a_translated_label():
    assert {info.key for info in rfm.SEGMENTS} == set(RfmSegment.values)
    assert {info.key for info in lifecycle.STAGES} == set(LifecycleStage.values)


# --- alerts ----------------------------------------------------------------------------------------


def _config(**changes) -> Config:
    return Config.from_settings(SegmentationSettings(**changes))


def test_detect_alerts_one_per_customer_with_the_main_reason_first():
    index = pd.Index([1, 2, 3, 4, 5], name="customer_id")
    frame = pd.DataFrame(
        {
            "rfm_segment": ["cannot_lose_them", "at_risk", "loyal", "cannot_lose_them", "lost"],
            "lifecycle_stage": ["at_risk", "at_risk", "repeat", "at_risk", "churned"],
            "probability_alive": [0.2, 0.9, 0.4, 0.1, 0.05],
        },
        index=index,
    )
    previous = pd.DataFrame(
        {
            "segment": ["loyal", "at_risk", "loyal", "cannot_lose_them"],
            "stage": ["repeat", "repeat", "repeat", "at_risk"],
            "stage_since": pd.to_datetime(["2026-01-01"] * 4, utc=True),
            "probability_alive": [0.8, 0.9, 0.6, 0.1],
        },
        index=pd.Index([1, 2, 3, 4], name="customer_id"),
    )  # customer 5 is new: the baseline raises nothing
    alerts = detect_alerts(frame, previous, _config(alert_alive_threshold=Decimal("0.5")))
    assert alerts["reason"].to_dict() == {
        1: "entered_cannot_lose",
        2: "entered_at_risk",
        3: "probability_alive_below",
    }
    assert alerts.loc[1, "reasons"] == ["entered_cannot_lose", "entered_at_risk", "probability_alive_below"]


def test_alert_create_is_once_per_open_reason_and_the_owner_handles_it(
    tenant, sales_user, sales_user2, manager_user
):
    customer = CustomerFactory(owner=sales_user)
    alert = alert_create(customer=customer, reason="entered_at_risk", details={"stage": "at_risk"})
    assert alert.owner == sales_user and alert.status == "open"
    assert alert_create(customer=customer, reason="entered_at_risk") is None
    assert alert_create(customer=customer, reason="entered_cannot_lose") is not None

    with pytest.raises(PermissionDenied):
        alert_dismiss(actor=sales_user2, alert=alert)
    alert_acknowledge(actor=sales_user, alert=alert)
    alert.refresh_from_db()
    assert (alert.status, alert.acted_by, alert.acted_at is not None) == ("acknowledged", sales_user, True)
    assert AuditEvent.objects.filter(
        action="segmentation.alert_acknowledged", target_id=str(customer.pk)
    ).exists()
    with pytest.raises(ValidationError):
        alert_dismiss(actor=manager_user, alert=alert)
    # handled: a new transition may raise a new one
    assert alert_create(customer=customer, reason="entered_at_risk") is not None
    assert ChurnAlert.objects.filter(customer=customer, reason="entered_at_risk").count() == 2


def test_a_customer_moving_into_cannot_lose_them_raises_one_alert(tenant, sales_user):
    """Four customers with the same history, then one stops buying: R drops, F/M stay top."""
    regulars = [customer_with_orders([200, 150, 100, 60, 30, 10], amount="100.00") for _ in range(4)]
    big = customer_with_orders([200, 150, 100, 60, 30, 10], amount="900.00", owner=sales_user)
    recompute()
    assert CustomerScore.objects.get(customer=big).rfm_segment != "cannot_lose_them"
    from customers.models import Order

    big_orders = list(Order.objects.filter(customer=big).order_by("placed_at"))
    for order, days in zip(big_orders, [330, 320, 310, 300, 290, 280], strict=True):
        Order.objects.filter(pk=order.pk).update(placed_at=order.placed_at - pd.Timedelta(days=days - 200))
    run = recompute()
    score = CustomerScore.objects.get(customer=big)
    assert score.rfm_segment == "cannot_lose_them"
    alert = ChurnAlert.objects.get(customer=big)
    assert alert.reason == "entered_cannot_lose" and alert.owner == sales_user and alert.run == run
    assert recompute().alerts_created == 0
    assert all(not ChurnAlert.objects.filter(customer=c).exists() for c in regulars)


# --- settings ----------------------------------------------------------------------------------------


def test_settings_are_created_with_defaults_and_validated(tenant, admin_user):
    row = settings_get()
    assert row.pk == 1 and row.rfm_window_days == 365 and row.margin == Decimal("0.30")
    with pytest.raises(ValidationError) as caught:
        settings_update(actor=admin_user, at_risk_multiplier=Decimal("4"), churn_multiplier=Decimal("2"))
    assert "churn_multiplier" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        settings_update(
            actor=admin_user, scoring_method="thresholds", score_thresholds={"recency": [90, 30, 10, 5]}
        )
    assert "ascending" in " ".join(caught.value.message_dict["scoring_method"])
    settings_update(
        actor=admin_user, scoring_method="thresholds", score_thresholds={"frequency": [1, 2, 4, 8]}
    )
    assert settings_get().score_thresholds == {"frequency": [1, 2, 4, 8]}
    assert AuditEvent.objects.filter(action="segmentation.settings_update").count() == 1


def test_fixed_thresholds_are_used_by_the_recompute(tenant, admin_user):
    settings_update(
        actor=admin_user,
        scoring_method="thresholds",
        score_thresholds={
            "recency": [7, 30, 90, 180],
            "frequency": [1, 2, 4, 8],
            "monetary": [100, 300, 1000, 3000],
        },
    )
    customer = customer_with_orders([60, 40, 20], amount="200.00")
    recompute()
    score = CustomerScore.objects.get(customer=customer)
    # 20 days -> R4; 3 purchase days -> F3; 600 -> M3
    assert (score.r_score, score.f_score, score.m_score) == (4, 3, 3)


# --- saved segments ---------------------------------------------------------------------------------


def test_segment_create_update_delete_with_validation_and_audit(
    tenant, sales_user, sales_user2, manager_user
):
    segment = segment_create(actor=sales_user, name="Shanghai", rules=RULES, is_shared=False)
    assert segment.rules == RULES and segment.created_by == sales_user
    with pytest.raises(ValidationError) as caught:
        segment_create(actor=sales_user, name=" shanghai ", rules=RULES)
    assert "name" in caught.value.message_dict
    segment_create(actor=sales_user2, name="Shanghai", rules=RULES)  # another person may reuse the name
    with pytest.raises(ValidationError) as caught:
        segment_create(actor=sales_user, name="Empty", rules={"op": "and", "rules": []})
    assert caught.value.message_dict["rules"] == ["Add at least one condition."]
    with pytest.raises(ValidationError) as caught:
        segment_create(
            actor=sales_user, name="Bad", rules={"op": "and", "rules": [{"field": "nope", "op": "eq"}]}
        )
    assert "unknown field" in caught.value.message_dict["rules"][0]

    with pytest.raises(PermissionDenied):
        segment_update(actor=sales_user2, segment=segment, name="Mine now", rules=RULES)
    segment_update(actor=manager_user, segment=segment, name="Shanghai buyers", rules=RULES, is_shared=True)
    segment.refresh_from_db()
    assert segment.name == "Shanghai buyers" and segment.is_shared
    with pytest.raises(PermissionDenied):
        segment_delete(actor=sales_user2, segment=segment)
    segment_delete(actor=sales_user, segment=segment)
    assert not Segment.objects.filter(pk=segment.pk).exists()
    actions = set(
        AuditEvent.objects.filter(target_type="segmentation.segment").values_list("action", flat=True)
    )
    assert actions == {
        "segmentation.segment_create",
        "segmentation.segment_update",
        "segmentation.segment_delete",
    }


# --- recompute requests -----------------------------------------------------------------------------


def test_a_second_request_joins_the_waiting_recompute(tenant, manager_user, admin_user):
    first = recompute_request(user=manager_user)
    second = recompute_request(user=admin_user, trigger="import")
    assert first.pk == second.pk and first.kind == RECOMPUTE_JOB_KIND
    assert BackgroundJob.objects.filter(kind=RECOMPUTE_JOB_KIND).count() == 1
    BackgroundJob.objects.filter(pk=first.pk).update(status=BackgroundJob.Status.SUCCEEDED)
    assert recompute_request(user=manager_user).pk != first.pk


def test_the_nightly_dispatcher_queues_one_job_per_active_tenant_and_joins(tenant):
    connection.set_schema_to_public()
    assert recompute_all_tenants.apply().get() >= 2
    recompute_all_tenants.apply().get()  # a second night while the first still waits: joined
    for slug in ("alpha", "beta"):
        with schema_context(Tenant.objects.get(slug=slug).schema_name):
            jobs = BackgroundJob.objects.filter(kind=RECOMPUTE_JOB_KIND)
            assert jobs.count() == 1 and jobs.get().params == {"trigger": "nightly"}
    connection.set_tenant(tenant)


# --- merge hook -------------------------------------------------------------------------------------


def test_merge_moves_history_and_alerts_and_undo_moves_them_back(tenant, sales_user):
    survivor, merged = CustomerFactory(owner=sales_user), CustomerFactory(owner=sales_user)
    for customer, stage in ((survivor, "new"), (merged, "repeat")):
        CustomerScore.objects.create(
            customer=customer,
            lifecycle_stage=stage,
            stage_since=pd.Timestamp.now(tz="UTC"),
            computed_at=pd.Timestamp.now(tz="UTC"),
        )
    moved_transition = LifecycleTransition.objects.create(
        customer=merged, from_stage="new", to_stage="repeat", at=pd.Timestamp.now(tz="UTC")
    )
    clash = alert_create(customer=merged, reason="entered_at_risk")
    alert_create(customer=survivor, reason="entered_at_risk")
    moved_alert = alert_create(customer=merged, reason="probability_alive_below")

    info = merge_move(survivor, merged)
    assert info == {
        "stage_transitions": [moved_transition.pk],
        "segment_transitions": [],
        "alerts": [moved_alert.pk],
    }
    assert LifecycleTransition.objects.get(pk=moved_transition.pk).customer == survivor
    assert ChurnAlert.objects.get(pk=moved_alert.pk).customer == survivor
    assert ChurnAlert.objects.get(pk=clash.pk).customer == merged  # the survivor already had one open
    assert not CustomerScore.objects.filter(customer=merged).exists()
    assert CustomerScore.objects.filter(customer=survivor).exists()

    merge_undo(survivor, merged, info)
    assert LifecycleTransition.objects.get(pk=moved_transition.pk).customer == merged
    assert ChurnAlert.objects.get(pk=moved_alert.pk).customer == merged


# --- binary COPY ------------------------------------------------------------------------------------


def test_binary_copy_round_trip(tenant):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE t_copy (a int2, b int4, c int8, d float8, e timestamptz)")
    stamp = pd.Timestamp("2026-03-01 12:34:56.789012", tz="UTC")
    us = np.array([stamp.value // 1000, 0], dtype=np.int64)
    written = copy_in_arrays(
        "t_copy",
        [
            ("a", "int2", np.array([-3, 7])),
            ("b", "int4", np.array([70000, -1])),
            ("c", "int8", np.array([2**40, 5])),
            ("d", "float8", np.array([1.5, np.nan])),
            ("e", "timestamptz", us),
        ],
    )
    assert written == 2
    a, b, c, d, e = copy_out_arrays(
        "SELECT a, b, c, d, e FROM t_copy ORDER BY c DESC",
        None,
        ["int2", "int4", "int8", "float8", "timestamptz"],
    )
    assert a.tolist() == [-3, 7] and b.tolist() == [70000, -1] and c.tolist() == [2**40, 5]
    assert d[0] == 1.5 and np.isnan(d[1]) and e.tolist() == us.tolist()
    with connection.cursor() as cursor:
        cursor.execute("SELECT e FROM t_copy WHERE a = -3")
        assert cursor.fetchone()[0] == stamp.to_pydatetime()
    with pytest.raises(ValueError, match="NULL"):
        copy_out_arrays("SELECT NULL::int8", None, ["int8"])
    assert copy_out_arrays("SELECT 1::int8 WHERE false", None, ["int8"])[0].size == 0


def test_demo_seeder_builds_history_and_saved_segments(tenant, users):
    import io
    import random

    from segmentation.demo import seed
    from segmentation.models import RecomputeRun

    customer_with_orders([100, 60, 40, 20], owner=users["sales"])
    customer_with_orders([5], owner=users["sales"])
    out = io.StringIO()
    result = seed(users=list(users.values()), customers=2, rng=random.Random(1), stdout=out)
    runs = list(RecomputeRun.objects.order_by("started_at"))
    assert [r.trigger for r in runs] == ["demo", "demo"] and runs[0].as_of < runs[1].as_of
    assert result["segments"] == 3 and Segment.objects.count() == 3
    assert "2 customers scored" in out.getvalue()
    assert seed(users=list(users.values()), customers=2, rng=random.Random(1), stdout=out)["segments"] == 0


def test_alert_create_many_skips_open_ones_and_duplicates_and_checks_reasons(tenant, sales_user):
    from segmentation.services import alert_create_many

    first, second = CustomerFactory(owner=sales_user), CustomerFactory()
    alert_create(customer=first, reason="entered_at_risk")
    created = alert_create_many(
        items=[
            (first, "entered_at_risk", {}),  # already open
            (first, "entered_cannot_lose", {"n": 1}),
            (second, "entered_cannot_lose", {}),
            (second, "entered_cannot_lose", {}),  # twice in one batch
        ]
    )
    assert [(a.customer_id, a.reason) for a in created] == [
        (first.pk, "entered_cannot_lose"),
        (second.pk, "entered_cannot_lose"),
    ]
    assert all(a.pk for a in created) and created[0].owner == sales_user and created[1].owner is None
    assert ChurnAlert.objects.count() == 3
    with pytest.raises(ValidationError):
        alert_create_many(items=[(first, "felt_like_it", {})])


def test_new_alerts_are_announced_once_they_commit_and_repeats_are_not(
    tenant, sales_user, django_capture_on_commit_callbacks
):
    from segmentation.services import alert_create_many
    from segmentation.signals import churn_alerts_raised

    received = []

    def receiver(sender, *, alert_ids, customer_ids, **kwargs):
        received.append((alert_ids, customer_ids))

    churn_alerts_raised.connect(receiver, dispatch_uid="test.churn_alerts_raised")
    try:
        first, second = CustomerFactory(owner=sales_user), CustomerFactory()
        with django_capture_on_commit_callbacks(execute=False) as pending:
            created = alert_create_many(
                items=[(first, "entered_at_risk", {}), (second, "entered_cannot_lose", {})]
            )
        assert received == []  # nothing before the commit
        for callback in pending:
            callback()
        assert received == [(sorted(a.pk for a in created), sorted([first.pk, second.pk]))]
        with django_capture_on_commit_callbacks(execute=True):
            assert alert_create_many(items=[(first, "entered_at_risk", {})]) == []
        assert len(received) == 1  # an alert that is already open is not announced again
    finally:
        churn_alerts_raised.disconnect(dispatch_uid="test.churn_alerts_raised")
