from datetime import timedelta

import pytest
from django.utils import timezone

from customers.models import Order
from segmentation.models import (
    ChurnAlert,
    CustomerScore,
    LifecycleTransition,
    RecomputeRun,
    SegmentTransition,
)
from segmentation.recompute import recompute
from tests.factories import CustomerFactory

from .conftest import buy, customer_with_orders


def scores() -> dict[int, CustomerScore]:
    return {s.customer_id: s for s in CustomerScore.objects.all()}


def test_empty_tenant_records_a_successful_run_with_nothing_to_score(tenant):
    run = recompute()
    assert run.status == RecomputeRun.Status.SUCCEEDED
    assert run.customers_count == 0 and run.orders_count == 0
    assert CustomerScore.objects.count() == 0
    assert set(run.timings) >= {"read", "rfm", "clv", "write", "stages", "history"}


def test_one_customer_gets_middle_scores_and_a_historical_estimate(tenant):
    customer = customer_with_orders([10], amount="250.00")
    run = recompute()
    score = CustomerScore.objects.get(customer=customer)
    # n = 1: every quintile score is 3 (no evidence either way) -> R3 / FM3 -> Need Attention
    assert (score.r_score, score.f_score, score.m_score) == (3, 3, 3)
    assert score.rfm_segment == "need_attention"
    assert score.lifecycle_stage == "new"
    assert score.recency_days == 10 and score.frequency == 1
    assert str(score.monetary) == "250.00" and str(score.window_revenue) == "250.00"
    assert score.clv_model == "historical" and score.probability_alive is None
    assert run.clv_model == "historical" and run.model_report["fallback"] is True


def test_four_customers_get_the_expected_segments_and_stages(tenant):
    prospect = CustomerFactory()
    new = customer_with_orders([5])
    repeat = customer_with_orders([100, 70, 40, 10])
    churned = customer_with_orders([800, 700])
    # orders that are not purchases are ignored
    buy(prospect, 3, status=Order.Status.CANCELLED)
    buy(new, 2, status=Order.Status.REFUNDED)
    recompute()
    result = scores()
    assert {
        c: (result[c.pk].rfm_segment, result[c.pk].lifecycle_stage) for c in (prospect, new, repeat, churned)
    } == {
        prospect: ("", "prospect"),
        new: ("potential_loyalist", "new"),
        repeat: ("at_risk", "repeat"),
        churned: ("", "churned"),
    }
    assert (result[new.pk].r_score, result[new.pk].f_score, result[new.pk].m_score) == (4, 2, 2)
    assert (result[repeat.pk].r_score, result[repeat.pk].f_score, result[repeat.pk].m_score) == (2, 4, 4)
    # outside the RFM window: no scores, but recency still says how long ago the last purchase was
    assert result[churned.pk].r_score is None and result[churned.pk].recency_days == 700
    assert result[prospect.pk].recency_days is None and result[prospect.pk].predicted_clv is None


def test_running_twice_on_the_same_data_changes_nothing(tenant):
    customer_with_orders([5])
    customer_with_orders([100, 70, 40, 10])
    customer_with_orders([800, 700])
    CustomerFactory()
    first = recompute()
    # the first scores are the baseline: no transition, no alert
    assert (first.stage_changes, first.segment_changes) == (0, 0)
    assert first.alerts_created == 0  # the baseline raises no alert
    before = {
        s.customer_id: (s.rfm_segment, s.lifecycle_stage, s.stage_since) for s in CustomerScore.objects.all()
    }

    second = recompute()
    assert (second.stage_changes, second.segment_changes, second.alerts_created) == (0, 0, 0)
    assert LifecycleTransition.objects.count() == 0 and SegmentTransition.objects.count() == 0
    after = {
        s.customer_id: (s.rfm_segment, s.lifecycle_stage, s.stage_since) for s in CustomerScore.objects.all()
    }
    assert after == before


def test_a_genuine_transition_raises_exactly_one_alert(tenant, sales_user):
    customer_with_orders([5])
    slipping = customer_with_orders([100, 70, 40, 10], owner=sales_user)
    recompute()
    assert ChurnAlert.objects.count() == 0

    # Time passes for this customer: their purchases move 50 days into the past (last one 60 days
    # ago, usual interval 30 days -> overdue after 45 days).
    Order.objects.filter(customer=slipping).update(placed_at=timezone.now() - timedelta(days=1))
    for days, order in zip(
        [150, 120, 90, 60], Order.objects.filter(customer=slipping).order_by("pk"), strict=True
    ):
        Order.objects.filter(pk=order.pk).update(placed_at=timezone.now() - timedelta(days=days))
    run = recompute()
    assert CustomerScore.objects.get(customer=slipping).lifecycle_stage == "at_risk"
    alert = ChurnAlert.objects.get()
    assert alert.customer == slipping and alert.owner == sales_user and alert.status == "open"
    assert alert.reason == "entered_at_risk" and alert.run == run
    assert alert.details["previous_stage"] == "repeat" and alert.details["stage"] == "at_risk"
    assert (
        LifecycleTransition.objects.filter(customer=slipping, from_stage="repeat", to_stage="at_risk").count()
        == 1
    )

    again = recompute()
    assert again.alerts_created == 0 and ChurnAlert.objects.count() == 1
    assert LifecycleTransition.objects.filter(customer=slipping).count() == 1


def test_a_lapsed_customer_who_buys_again_is_reactivated_and_stays_so(tenant):
    customer = customer_with_orders([150, 120, 90, 60])
    customer_with_orders([5])
    recompute()
    assert CustomerScore.objects.get(customer=customer).lifecycle_stage == "at_risk"
    buy(customer, 0)
    recompute()
    assert CustomerScore.objects.get(customer=customer).lifecycle_stage == "reactivated"
    recompute()  # the next night: still reactivated (for new_days), and no new transition
    assert CustomerScore.objects.get(customer=customer).lifecycle_stage == "reactivated"
    assert list(
        LifecycleTransition.objects.filter(customer=customer)
        .order_by("at", "pk")
        .values_list("from_stage", "to_stage")
    ) == [("at_risk", "reactivated")]


def test_customers_in_the_recycle_bin_are_not_scored(tenant):
    kept = customer_with_orders([5])
    binned = customer_with_orders([5], deleted_at=timezone.now())
    recompute()
    assert set(scores()) == {kept.pk}
    assert binned.pk not in scores()


@pytest.mark.parametrize("mode", ["total", "average"])
def test_monetary_mode_is_applied(tenant, mode):
    from segmentation.services import settings_update

    settings_update(actor=None, monetary_mode=mode)
    customer = customer_with_orders([30, 20, 10], amount="50.00")
    recompute()
    score = CustomerScore.objects.get(customer=customer)
    assert str(score.monetary) == ("150.00" if mode == "total" else "50.00")
    assert str(score.window_revenue) == "150.00"


def test_a_run_left_running_by_a_lost_worker_is_closed_by_the_redelivery(tenant):
    from crm.jobs.models import BackgroundJob

    job = BackgroundJob.objects.create(kind="segmentation.recompute", status="running")
    lost = RecomputeRun.objects.create(as_of=timezone.now(), job=job)
    other = RecomputeRun.objects.create(as_of=timezone.now())  # someone else's, still going
    run = recompute(job_id=job.pk)
    lost.refresh_from_db()
    other.refresh_from_db()
    assert lost.status == "failed" and "Interrupted" in lost.error
    assert other.status == "running" and run.status == "succeeded"


def test_the_next_run_starts_its_fit_from_the_last_successful_parameters(tenant):
    from segmentation.recompute import warm_start_parameters

    assert warm_start_parameters() == (None, None)
    run = RecomputeRun.objects.create(
        status=RecomputeRun.Status.SUCCEEDED,
        as_of=timezone.now(),
        finished_at=timezone.now(),
        model_report={
            "bgnbd": {"r": 0.3, "alpha": 4.0, "a": 0.7, "b": 2.1},
            "gamma_gamma": {"p": 6.0, "q": 3.5, "gamma": None},  # an unusable section is not used
        },
    )
    assert warm_start_parameters() == ([0.3, 4.0, 0.7, 2.1], None)
    RecomputeRun.objects.filter(pk=run.pk).update(status=RecomputeRun.Status.FAILED)
    assert warm_start_parameters() == (None, None)
