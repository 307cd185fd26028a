"""Incremental recompute (issue 18): after a change to a few customers' orders only they are re-read,
and the scores are the ones a full run computes on the same data with the same CLV model; the run falls
back to a full one when that would not hold; the order journal is written by the database itself and
belongs to its tenant."""

import re
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from customers.models import Customer, Order, OrderChange
from segmentation.analytics.simulate import simulate_transactions_frame
from segmentation.models import CustomerFeatures, CustomerScore, RecomputeRun, SegmentationSettings
from segmentation.recompute import REFIT_CHANGED_SHARE, recompute
from tests.factories import CustomerFactory, OrderFactory

SCORE_FIELDS = [f.name for f in CustomerScore._meta.fields if f.name not in ("computed_at",)]


def _population(n: int = 300) -> list[Customer]:
    """`n` customers whose purchases over the last year follow BG/NBD + Gamma-Gamma (enough repeat
    buyers for the CLV model to be fitted), the last purchases yesterday at the latest."""
    customers = [CustomerFactory(name=f"Customer {i}") for i in range(n)]
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=366)
    frame = simulate_transactions_frame(
        n, r=0.243, alpha=4.414, a=0.793, b=2.426, time_unit="W", start=start.date().isoformat(),
        acquisition_days=90, observation_days=365, seed=7,
    )  # fmt: skip
    hours = np.random.default_rng(7).integers(0, 24, size=len(frame))
    Order.objects.bulk_create(
        Order(
            customer=customers[int(row.customer_id)],
            number=f"SIM-{i}",
            placed_at=start + timedelta(days=(row.date - frame["date"].min()).days, hours=int(hour)),
            status=Order.Status.PAID,
            channel=Order.Channel.STORE,
            currency="CNY",
            total=Decimal(str(round(float(row.amount), 2))),
            refunded_total=Decimal("0"),
        )
        for i, (row, hour) in enumerate(zip(frame.itertuples(), hours, strict=True))
    )
    return customers


def _times():
    """Two instants of the same UTC day, the first a few minutes before now (the day's start at the
    earliest), for a full run and the incremental one after it."""
    now = timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return max(day_start, now - timedelta(minutes=5)), now


def _scores() -> dict[int, tuple]:
    return {row[0]: row for row in CustomerScore.objects.order_by("customer_id").values_list(*SCORE_FIELDS)}


def _buy(customer, at, amount="80.00"):
    return OrderFactory(customer=customer, placed_at=at, total=Decimal(amount))


def _same_as_a_full_run(as_of) -> None:
    """A full run on the same data, with the CLV model the last run used, changes nothing."""
    before = _scores()
    # (In a worker each run is its own transaction; here one test is one transaction, and the scores
    # the incremental run updated still have their foreign-key checks pending, which a table swap
    # must not find.)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    full = recompute(as_of=as_of, with_holdout=False, incremental=False, refit=False)
    assert full.kind == RecomputeRun.Kind.FULL
    assert (full.stage_changes, full.segment_changes, full.alerts_created) == (0, 0, 0)
    after = _scores()
    assert after.keys() == before.keys()
    differing = [pk for pk in after if after[pk] != before[pk]]
    assert differing == [], [(before[pk], after[pk]) for pk in differing[:3]]


def test_an_incremental_run_reads_only_the_changed_customers_and_scores_as_a_full_run(tenant):
    customers = _population()
    t1, t2 = _times()
    base = recompute(as_of=t1, with_holdout=False)
    assert base.kind == RecomputeRun.Kind.FULL and base.clv_model == "bgnbd_gg"
    assert CustomerFeatures.objects.count() == len(customers) and OrderChange.objects.count() == 0

    between = t1 + (t2 - t1) / 2
    for customer in customers[:3]:
        _buy(customer, between)
    # a refund written past the services (the journal is the database's: nothing can leave it out)
    refunded = Order.objects.filter(customer=customers[3]).first()
    Order.objects.filter(pk=refunded.pk).update(
        status=Order.Status.PARTIALLY_REFUNDED, refunded_total=refunded.total / 2
    )
    newcomer = CustomerFactory(name="Newcomer")
    _buy(newcomer, between)
    Customer.objects.filter(pk=customers[4].pk).update(deleted_at=t1)  # to the bin: no longer scored
    binned_score = CustomerScore.objects.get(customer=customers[4])

    run = recompute(as_of=t2, with_holdout=False)
    assert run.kind == RecomputeRun.Kind.INCREMENTAL
    assert run.changed_customers == 5  # three buyers, the refund, the newcomer
    assert run.changed_since_fit == 5
    assert run.model_report["bgnbd"] == base.model_report["bgnbd"]  # 5 of 300: the fit stands
    assert run.customers_count == len(customers)  # one new, one binned
    assert run.orders_count == base.orders_count + 4 - Order.objects.filter(customer=customers[4]).count()
    assert OrderChange.objects.count() == 0
    assert CustomerScore.objects.get(customer=newcomer).frequency == 1
    assert CustomerScore.objects.get(customer=customers[4]).computed_at == binned_score.computed_at
    _same_as_a_full_run(t2)


def test_past_the_refit_share_the_model_is_fitted_again_and_the_scores_still_agree(tenant):
    customers = _population()
    t1, t2 = _times()
    base = recompute(as_of=t1, with_holdout=False)
    changed = int(REFIT_CHANGED_SHARE * len(customers)) + 5
    for customer in customers[:changed]:
        _buy(customer, t1 + (t2 - t1) / 2, amount="400.00")
    run = recompute(as_of=t2, with_holdout=False)
    assert run.kind == RecomputeRun.Kind.INCREMENTAL and run.changed_customers == changed
    assert run.changed_since_fit == 0
    assert run.model_report["bgnbd"]["log_likelihood"] != base.model_report["bgnbd"]["log_likelihood"]
    _same_as_a_full_run(t2)


def test_a_run_falls_back_to_a_full_one_when_an_incremental_one_would_not_be_exact(tenant):
    customers = _population(60)
    yesterday = timezone.now() - timedelta(days=1)
    recompute(as_of=yesterday, with_holdout=False)
    assert recompute(with_holdout=False).kind == RecomputeRun.Kind.FULL  # a new day
    assert recompute(with_holdout=False).kind == RecomputeRun.Kind.INCREMENTAL
    SegmentationSettings.objects.update(rfm_window_days=180)
    assert recompute(with_holdout=False).kind == RecomputeRun.Kind.FULL  # the settings changed
    for customer in customers[:20]:  # a third of the customers
        _buy(customer, timezone.now())
    assert recompute(with_holdout=False).kind == RecomputeRun.Kind.FULL
    assert recompute(with_holdout=False, incremental=False).kind == RecomputeRun.Kind.FULL


def test_the_order_journal_belongs_to_its_tenant(tenant, tenant_b):
    customer = CustomerFactory()
    _buy(customer, timezone.now())
    assert list(OrderChange.objects.values_list("customer_id", flat=True)) == [customer.pk]
    with schema_context(tenant_b.schema_name):
        assert OrderChange.objects.count() == 0
        other = CustomerFactory()
        _buy(other, timezone.now())
        assert list(OrderChange.objects.values_list("customer_id", flat=True)) == [other.pk]
    connection.set_tenant(tenant)
    assert list(OrderChange.objects.values_list("customer_id", flat=True)) == [customer.pk]


@pytest.mark.parametrize("change", ["update", "delete"])
def test_every_way_of_changing_an_order_is_journalled(tenant, change):
    first, second = CustomerFactory(), CustomerFactory()
    order = _buy(first, timezone.now())
    OrderChange.objects.all().delete()
    if change == "update":  # moved to another customer: both are journalled
        Order.objects.filter(pk=order.pk).update(customer=second)
        assert set(OrderChange.objects.values_list("customer_id", flat=True)) == {first.pk, second.pk}
    else:
        Order.objects.filter(pk=order.pk).delete()
        assert list(OrderChange.objects.values_list("customer_id", flat=True)) == [first.pk]


@pytest.mark.parametrize(
    "language, incremental, full",
    [("en", "Incremental · 1 customer re-read", "Full"), ("zh-hans", "增量 · 重读 1 位客户", "全量")],
)
def test_the_history_page_tells_an_incremental_run_from_a_full_one(
    tenant, users, client_for, language, incremental, full
):
    buyer, *_others = customers = [CustomerFactory() for _ in range(5)]
    for customer in customers:
        _buy(customer, timezone.now() - timedelta(days=30))
    recompute(with_holdout=False, incremental=False)
    _buy(buyer, timezone.now())
    recompute(with_holdout=False)
    manager = users["manager"]
    type(manager).objects.filter(pk=manager.pk).update(language=language)
    page = client_for(manager).get(reverse("segmentation:history")).content.decode()
    kinds = re.findall(r'data-testid="run-kind">([^<]*)</td>', page)
    assert [" ".join(kind.split()) for kind in kinds] == [incremental, full]
