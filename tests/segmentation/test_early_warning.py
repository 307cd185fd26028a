"""Issue 13 through a real recompute: nobody who just bought is "at risk" or gets an alert, and small
or degenerate tenants are quick."""

from decimal import Decimal

import pytest
from django.db import connection

from segmentation.models import ChurnAlert, CustomerScore, RecomputeRun
from segmentation.recompute import recompute
from segmentation.services import settings_update
from tests.benchmarks.test_recompute_benchmark import generate
from tests.factories import CustomerFactory

from .conftest import buy, customer_with_orders

MODEL_PHASES = ("rfm", "clv", "stages", "holdout")


def model_seconds(run: RecomputeRun) -> float:
    return sum(run.timings.get(phase, 0.0) for phase in MODEL_PHASES)


def _monthly_regulars(count: int = 6):
    """Customers who buy every 30 days: the tenant's typical interval is 30 days."""
    return [customer_with_orders([150, 120, 90, 60, 30, 5]) for _ in range(count)]


def test_two_purchases_two_days_apart_six_days_ago_are_not_at_risk_and_raise_no_alert(tenant, sales_user):
    """The case of issue 13: bought on 11-25 and 11-27, checked on 12-03 (the old rule: at risk after
    1.5 x 2 = 3 days)."""
    _monthly_regulars()
    customer = CustomerFactory(owner=sales_user)
    recompute()  # baseline: a prospect
    buy(customer, 8)
    buy(customer, 6)
    run = recompute()
    score = CustomerScore.objects.get(customer=customer)
    assert score.lifecycle_stage not in ("at_risk", "churned")
    assert not ChurnAlert.objects.filter(customer=customer).exists()
    assert run.alerts_created == 0


def test_a_customer_who_bought_yesterday_gets_no_alert(tenant, admin_user, sales_user):
    """Even with a tenant setting that makes every short silence "overdue" (0.1 x the interval), a
    customer whose last purchase is more recent than the typical interval is never flagged."""
    settings_update(actor=admin_user, at_risk_multiplier=Decimal("0.1"), churn_multiplier=Decimal("0.1"))
    regulars = _monthly_regulars()
    customer = CustomerFactory(owner=sales_user)
    recompute()
    for days_ago in (3, 2, 1):
        buy(customer, days_ago)
    run = recompute()
    assert CustomerScore.objects.get(customer=customer).lifecycle_stage not in ("at_risk", "churned")
    assert not ChurnAlert.objects.filter(customer=customer).exists()
    assert run.status == RecomputeRun.Status.SUCCEEDED and run.alerts_created == 0
    # the rule itself is live: a customer silent for longer than the typical interval is at risk
    lapsing = CustomerFactory(owner=sales_user)
    buy(lapsing, 50)
    buy(lapsing, 40)
    recompute()
    assert CustomerScore.objects.get(customer=lapsing).lifecycle_stage == "at_risk"
    assert all(
        CustomerScore.objects.get(customer=c).lifecycle_stage not in ("at_risk", "churned") for c in regulars
    )


@pytest.mark.parametrize(
    "histories",
    [
        pytest.param([[200, 150, 100, 60, 30, 10]] * 5, id="five-identical-customers"),
        pytest.param([[d] for d in range(1, 300, 10)], id="one-purchase-each"),
        pytest.param([[40], [400], [5]], id="no-repeaters"),
    ],
)
def test_small_and_degenerate_tenants_take_the_fallback_at_once(tenant, histories):
    for days in histories:
        customer_with_orders(days)
    recompute()
    run = recompute()  # the nightly case, with yesterday's scores
    assert run.status == RecomputeRun.Status.SUCCEEDED
    assert run.clv_model == "historical" and run.model_report["fallback"] is True
    assert "skipped" in run.holdout
    assert model_seconds(run) < 1.0, str(run.timings)


def test_five_thousand_customers_recompute_in_under_a_second_of_model_time(tenant):
    customers, orders = generate(n_customers=5_000, n_orders=50_000, seed=3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_customer")
        assert cursor.fetchone()[0] == customers
    recompute()
    run = recompute()
    assert run.status == RecomputeRun.Status.SUCCEEDED and run.customers_count == customers
    assert model_seconds(run) < 1.0, str(run.timings)
