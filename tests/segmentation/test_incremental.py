"""Incremental recompute (issue 18): after a change to a few customers' orders only they are re-read,
and the scores are the ones a full run computes on the same data with the same CLV model; the run falls
back to a full one when that would not hold; the order journal is written by the database itself and
belongs to its tenant."""

import re
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from customers.models import Customer, Order, OrderChange
from segmentation import recompute as recompute_module
from segmentation.analytics.simulate import simulate_transactions_frame
from segmentation.models import (
    ChurnAlert,
    CustomerFeatures,
    CustomerScore,
    LifecycleTransition,
    RecomputeRun,
    SegmentationSettings,
    SegmentSnapshot,
    SegmentTransition,
)
from segmentation.recompute import (
    REFIT_CHANGED_SHARE,
    Config,
    PopulationParameters,
    load_features,
    recompute,
    values_from_features,
)
from tests.factories import CustomerFactory, OrderFactory

SCORE_FIELDS = [f.name for f in CustomerScore._meta.fields if f.name not in ("computed_at",)]
FEATURE_FIELDS = [f.name for f in CustomerFeatures._meta.fields]


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
    full = recompute(
        as_of=as_of, with_holdout=False, incremental=False, refit=False, refresh_population=False
    )
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


def test_past_the_refit_share_the_run_is_made_in_full_with_a_fresh_fit_and_parameters(tenant):
    customers = _population()
    t1, t2 = _times()
    base = recompute(as_of=t1, with_holdout=False)
    changed = int(REFIT_CHANGED_SHARE * len(customers)) + 5
    for customer in customers[:changed]:
        _buy(customer, t1 + (t2 - t1) / 2, amount="400.00")
    run = recompute(as_of=t2, with_holdout=False)
    assert run.kind == RecomputeRun.Kind.FULL and run.changed_since_fit == 0
    assert run.model_report["bgnbd"]["log_likelihood"] != base.model_report["bgnbd"]["log_likelihood"]
    assert run.population["computed_by_run"] == run.pk
    assert run.population["rfm_cut_points"] != base.population["rfm_cut_points"]


def _full_because(run: RecomputeRun) -> str:
    return "" if run.kind == RecomputeRun.Kind.INCREMENTAL else run.population["full_because"]


def test_a_run_falls_back_to_a_full_one_when_an_incremental_one_would_not_be_exact(tenant, monkeypatch):
    customers = _population()
    yesterday = timezone.now() - timedelta(days=1)
    first = recompute(as_of=yesterday, with_holdout=False)
    assert _full_because(first) == "no earlier run stored its features"
    assert _full_because(recompute(with_holdout=False)) == "a new day"
    nothing = recompute(with_holdout=False)  # nothing changed: an incremental run that scores nobody
    assert (nothing.kind, nothing.changed_customers) == (RecomputeRun.Kind.INCREMENTAL, 0)
    assert _full_because(recompute(with_holdout=False, incremental=False)) == "asked for"

    SegmentationSettings.objects.update(rfm_window_days=180)
    assert _full_because(recompute(with_holdout=False)) == "the settings changed"

    # a run from before the population parameters were stored
    RecomputeRun.objects.filter(pk=recompute(with_holdout=False).pk).update(population={})
    assert _full_because(recompute(with_holdout=False)) == "the last run stored no population parameters"

    # the stored fit predicts nothing finite: found out while scoring, the run starts again in full
    last = recompute(with_holdout=False)
    assert last.kind == RecomputeRun.Kind.INCREMENTAL
    broken = {**last.model_report, "bgnbd": {**last.model_report["bgnbd"], "alpha": None}}
    RecomputeRun.objects.filter(pk=last.pk).update(model_report=broken)
    _buy(customers[0], timezone.now())
    assert _full_because(recompute(with_holdout=False)).startswith("the incremental run was not exact")

    # another run finished while this one was reading
    real_lock = recompute_module._lock_tenant

    def lock_after_another_run():
        monkeypatch.setattr(recompute_module, "_lock_tenant", real_lock)
        RecomputeRun.objects.create(
            as_of=timezone.now(), status=RecomputeRun.Status.SUCCEEDED, finished_at=timezone.now()
        )
        real_lock()

    monkeypatch.setattr(recompute_module, "_lock_tenant", lock_after_another_run)
    _buy(customers[1], timezone.now())
    moved = recompute(with_holdout=False)
    assert _full_because(moved) == "the incremental run was not exact: another run finished meanwhile"

    # past the refit share; past the incremental share
    for customer in customers[: int(REFIT_CHANGED_SHARE * len(customers)) + 1]:
        _buy(customer, timezone.now())
    assert _full_because(recompute(with_holdout=False)) == "the CLV model is due a refit"
    for customer in customers[:100]:  # a third of the customers
        _buy(customer, timezone.now())
    assert _full_because(recompute(with_holdout=False)) == "too many customers changed"


def test_after_a_run_with_the_historical_fallback_the_next_run_is_full(tenant):
    """The fallback predicts from a population mean: there is no fit to freeze."""
    customers = _population(30)
    base = recompute(with_holdout=False)
    assert base.clv_model == "historical"
    _buy(customers[0], timezone.now())
    assert _full_because(recompute(with_holdout=False)) == "the last run did not use the BG/NBD model"


def _journalled() -> list[int]:
    """The customers the journal names (not its "customers were added" and "the bin changed" rows,
    customers 0 and -1)."""
    return list(OrderChange.objects.filter(customer_id__gt=0).values_list("customer_id", flat=True))


def test_the_order_journal_belongs_to_its_tenant(tenant, tenant_b):
    OrderChange.objects.all().delete()
    customer = CustomerFactory()
    _buy(customer, timezone.now())
    assert _journalled() == [customer.pk]
    with schema_context(tenant_b.schema_name):
        OrderChange.objects.all().delete()
        other = CustomerFactory()
        _buy(other, timezone.now())
        assert _journalled() == [other.pk]
        assert OrderChange.objects.filter(customer_id=0).count() == 1, "its own customer added"
    connection.set_tenant(tenant)
    assert _journalled() == [customer.pk]
    assert OrderChange.objects.filter(customer_id=0).count() == 1


def test_customers_added_are_journalled_once_per_statement_and_restored_ones_by_id(tenant):
    OrderChange.objects.all().delete()
    Customer.objects.bulk_create([Customer(name=f"Bulk {i}") for i in range(3)])  # one statement
    CustomerFactory()
    assert list(OrderChange.objects.values_list("customer_id", flat=True)) == [0, 0]
    OrderChange.objects.all().delete()
    binned = CustomerFactory(deleted_at=timezone.now())
    OrderChange.objects.all().delete()
    Customer.objects.filter(pk=binned.pk).update(name="Still binned")  # not a restore
    Customer.objects.filter(pk=binned.pk).update(deleted_at=timezone.now())  # binned again
    assert OrderChange.objects.count() == 0
    Customer.objects.filter(pk=binned.pk).update(deleted_at=None)
    assert _journalled() == [binned.pk]


def _bin_changes() -> int:
    return OrderChange.objects.filter(customer_id=recompute_module.BIN_CHANGED).count()


def test_the_journal_says_when_the_bin_changed_and_only_then(tenant):
    live, other = CustomerFactory(), CustomerFactory()
    binned = CustomerFactory(deleted_at=timezone.now())
    OrderChange.objects.all().delete()
    Customer.objects.filter(pk__in=[live.pk, binned.pk]).update(name="Renamed", city="上海")
    Customer.objects.filter(pk=binned.pk).update(deleted_at=timezone.now())  # still in the bin
    Customer.objects.filter(pk=binned.pk).delete()  # purged from the bin
    live.name = "Saved by the ORM"
    live.save()  # every column written, the bin's unchanged
    assert _bin_changes() == 0
    Customer.objects.filter(pk=live.pk).update(deleted_at=timezone.now())  # to the bin
    assert _bin_changes() == 1
    Customer.objects.filter(pk=live.pk).update(deleted_at=None)  # restored
    assert _bin_changes() == 2 and _journalled() == [live.pk]
    Customer.objects.filter(pk=other.pk).delete()  # deleted outside the bin
    assert _bin_changes() == 3


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
    buyer, *_others = _population()  # enough customers for the CLV model an incremental run needs
    recompute(with_holdout=False, incremental=False)
    _buy(buyer, timezone.now())
    recompute(with_holdout=False)
    manager = users["manager"]
    type(manager).objects.filter(pk=manager.pk).update(language=language)
    page = client_for(manager).get(reverse("segmentation:history")).content.decode()
    kinds = re.findall(r'data-testid="run-kind">([^<]*)</td>', page)
    assert [" ".join(kind.split()) for kind in kinds] == [incremental, full]


# --------------------------------------------------------------------------------------------------
# The incremental run against the full run with the same frozen population parameters
# --------------------------------------------------------------------------------------------------
def _immediate_constraints() -> None:
    """(One test is one transaction: rows written by the test still have their foreign-key checks
    pending, which a table swap of the score table must not find.)"""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _state(run: RecomputeRun) -> dict:
    """Everything a run leaves behind, comparable between two runs (ids of the run itself left out)."""
    live = set(Customer.objects.filter(deleted_at=None).values_list("id", flat=True))
    features = CustomerFeatures.objects.filter(customer_id__in=live).order_by("customer_id")
    return {
        "scores": _scores(),
        "features (customers not in the bin)": list(features.values_list(*FEATURE_FIELDS)),
        "stage transitions": sorted(
            LifecycleTransition.objects.filter(run=run).values_list(
                "customer_id", "from_stage", "to_stage", "at"
            )
        ),
        "segment transitions": sorted(
            SegmentTransition.objects.filter(run=run).values_list(
                "customer_id", "from_segment", "to_segment", "at"
            )
        ),
        "alerts": sorted(
            (alert.customer_id, alert.reason, sorted(alert.details.items()), alert.owner_id)
            for alert in ChurnAlert.objects.filter(run=run)
        ),
        "snapshot": sorted(
            SegmentSnapshot.objects.filter(run=run).values_list(
                "dimension", "key", "customers", "revenue", "revenue_share", "average_clv", "taken_at"
            )
        ),
        "counts": (
            run.customers_count,
            run.orders_count,
            run.scored_count,
            run.stage_changes,
            run.segment_changes,
            run.alerts_created,
            run.clv_model,
        ),
        "journal left": OrderChange.objects.count(),
        "population": {key: run.population[key] for key in ("rfm_cut_points", "typical_interval_days")},
        "model": run.model_report["bgnbd"],
    }


def _incremental_and_full(as_of) -> tuple[RecomputeRun, dict, dict]:
    """The incremental run from the current state, then (that undone) the full run with the same fit
    and population parameters from the same state: (incremental run, its state, the full run's)."""
    _immediate_constraints()
    savepoint = transaction.savepoint()
    incremental = recompute(as_of=as_of, with_holdout=False)
    assert incremental.kind == RecomputeRun.Kind.INCREMENTAL, incremental.population.get("full_because")
    incremental_state = _state(incremental)
    transaction.savepoint_rollback(savepoint)
    full = recompute(
        as_of=as_of, with_holdout=False, incremental=False, refit=False, refresh_population=False
    )
    assert full.kind == RecomputeRun.Kind.FULL
    return incremental, incremental_state, _state(full)


def _assert_same(incremental_state: dict, full_state: dict) -> None:
    for part, expected in full_state.items():
        got = incremental_state[part]
        if isinstance(expected, dict) and part == "scores":
            assert got.keys() == expected.keys()
            differing = [pk for pk in expected if got[pk] != expected[pk]]
            assert differing == [], [(got[pk], expected[pk]) for pk in differing[:3]]
        else:
            assert got == expected, part


def _with_stage(stages: tuple[str, ...], exclude: set[int]) -> list[int]:
    return list(
        CustomerScore.objects.filter(lifecycle_stage__in=stages)
        .exclude(customer_id__in=exclude)
        .order_by("customer_id")
        .values_list("customer_id", flat=True)
    )


def test_an_incremental_run_equals_the_full_run_with_the_same_population_parameters(tenant):
    """Every kind of affected customer at once; every column of every customer, every transition,
    alert and snapshot row compared with the full run that uses the base run's fit, cut points and
    typical interval."""
    customers = _population(400)  # 17 affected stay under the refit share
    t1, t2 = _times()
    between = t1 + (t2 - t1) / 2
    came_due = customers[10]
    _buy(came_due, between, amount="55.00")  # placed for later: written before the base run
    restored = customers[11]
    Customer.objects.filter(pk=restored.pk).update(deleted_at=t1 - timedelta(days=2))
    CustomerFactory(name="Prospect")  # never bought
    base = recompute(as_of=t1, with_holdout=False)
    assert base.kind == RecomputeRun.Kind.FULL and base.clv_model == "bgnbd_gg"
    assert base.population["computed_by_run"] == base.pk
    assert not CustomerFeatures.objects.filter(customer_id=restored.pk).exists()

    buyers = customers[:3]
    for customer in buyers:
        _buy(customer, between)
    # A refund of the least likely to be alive (no recent buyer), whose stored P(alive) we raise so
    # that the run raises the "P(alive) fell" alert.
    special = {c.pk for c in customers[:12]}
    quiet = (
        CustomerScore.objects.exclude(customer_id__in=special)
        .filter(probability_alive__isnull=False, recency_days__gt=200)
        .order_by("probability_alive")
        .first()
    )
    refunded = Order.objects.filter(customer_id=quiet.customer_id).order_by("placed_at").first()
    Order.objects.filter(pk=refunded.pk).update(
        status=Order.Status.PARTIALLY_REFUNDED, refunded_total=refunded.total / 4
    )
    CustomerScore.objects.filter(customer_id=quiet.customer_id).update(probability_alive=1)
    special.add(quiet.customer_id)
    newcomer = CustomerFactory(name="Newcomer")
    _buy(newcomer, between)
    newcomer_without_purchases = CustomerFactory(name="Newcomer without purchases")
    Customer.objects.filter(pk=restored.pk).update(deleted_at=None)
    binned = customers[4]
    Customer.objects.filter(pk=binned.pk).update(deleted_at=t1)
    # A twin of the customer whose window spend set a monetary cut point: a tie at the cut.
    population = PopulationParameters.from_dict(base.population)
    cut = population.rfm_cut_points["monetary"][2]
    source = CustomerFeatures.objects.exclude(customer_id__in=special).filter(w_total=cut).first()
    twin = CustomerFactory(name="Twin")
    for order in Order.objects.filter(customer_id=source.customer_id, status=Order.Status.PAID):
        _buy(twin, order.placed_at, amount=str(order.total))
    # Reactivated customers (planted on active ones): one whose keep window ends between the two
    # runs (a change by the clock alone), one whose window is still open (no change).
    new_days = SegmentationSettings.objects.get().new_days
    ending, lasting = _with_stage(("repeat", "loyal"), special | {source.customer_id})[:2]
    CustomerScore.objects.filter(customer_id=ending).update(
        lifecycle_stage="reactivated", stage_since=between - timedelta(days=new_days)
    )
    CustomerScore.objects.filter(customer_id=lasting).update(
        lifecycle_stage="reactivated", stage_since=t2 - timedelta(days=new_days) + timedelta(hours=1)
    )

    # Newcomers who bought on five days in a row six weeks ago: the model thinks them gone, but the
    # population's typical interval (about two months) keeps them out of "at risk"; among the affected
    # customers alone they would be the typical buyers (an interval of a day).
    hasty = [CustomerFactory(name=f"Hasty {i}") for i in range(7)]
    for customer in hasty:
        for days_ago in range(45, 50):
            _buy(customer, t1 - timedelta(days=days_ago))

    run, incremental, full = _incremental_and_full(t2)
    _assert_same(incremental, full)

    assert population.typical_interval_days > 45
    affected = {c.pk for c in buyers + hasty} | {
        quiet.customer_id,
        newcomer.pk,
        newcomer_without_purchases.pk,
    }
    affected |= {twin.pk, restored.pk, came_due.pk, ending}
    assert run.changed_customers == len(affected)
    assert run.population["affected_by"] == {
        "journal": 14,  # the restored customer too, journalled when restored
        "no_features": 11,
        "came_due": 5,
        "reactivation_ended": 1,
    }
    assert run.population["computed_by_run"] == base.pk
    scores = incremental["scores"]
    by_field = {name: i for i, name in enumerate(SCORE_FIELDS)}
    # the cases were what they meant to be
    assert CustomerFeatures.objects.get(customer_id=twin.pk).w_total == cut
    assert scores[twin.pk][by_field["m_score"]] == scores[source.customer_id][by_field["m_score"]]
    assert scores[ending][by_field["lifecycle_stage"]] in ("repeat", "loyal")
    assert scores[ending][by_field["stage_since"]] == t2  # a new stage starts now
    assert scores[lasting][by_field["stage_since"]] < t1  # an unchanged one keeps its start
    assert scores[lasting][by_field["lifecycle_stage"]] == "reactivated"
    assert scores[newcomer_without_purchases.pk][by_field["lifecycle_stage"]] == "prospect"
    assert scores[came_due.pk][by_field["recency_days"]] == 0
    assert {scores[c.pk][by_field["lifecycle_stage"]] for c in hasty} == {"loyal"}
    assert all(scores[c.pk][by_field["probability_alive"]] < 0.3 for c in hasty)
    assert binned.pk in scores and binned.pk not in {
        row[0] for row in incremental["features (customers not in the bin)"]
    }
    assert any(alert[:2] == (quiet.customer_id, "probability_alive_below") for alert in incremental["alerts"])
    assert (ending, "reactivated", scores[ending][by_field["lifecycle_stage"]], t2) in incremental[
        "stage transitions"
    ]
    assert incremental["segment transitions"]


def test_orders_changed_in_the_bin_are_read_again_when_the_customer_is_restored(tenant):
    customers = _population()
    t1, t2 = _times()
    recompute(as_of=t1, with_holdout=False)
    binned = customers[5]
    Customer.objects.filter(pk=binned.pk).update(deleted_at=t1)
    _buy(customers[0], t1 + (t2 - t1) / 3)
    paid = Order.objects.filter(customer=binned).order_by("placed_at").first()
    Order.objects.filter(pk=paid.pk).update(
        status=Order.Status.PARTIALLY_REFUNDED, refunded_total=paid.total / 2
    )
    _immediate_constraints()
    first = recompute(as_of=t1 + (t2 - t1) / 2, with_holdout=False)  # the refund is journalled, unseen
    assert first.kind == RecomputeRun.Kind.INCREMENTAL
    assert not CustomerFeatures.objects.filter(customer_id=binned.pk).exists()
    Customer.objects.filter(pk=binned.pk).update(deleted_at=None)
    run, incremental, full = _incremental_and_full(t2)
    # journalled when restored (no customer was added: the anti-join with the features is not made)
    assert (run.population["affected_by"]["journal"], run.population["affected_by"]["no_features"]) == (1, 0)
    _assert_same(incremental, full)


def test_the_cut_points_a_run_stores_reproduce_its_own_quintile_scores(tenant):
    """Read back from the database (JSON and all), the cut points score every customer of the run that
    computed them as its quintiles did."""
    customers = _population()
    for customer in customers[:30]:  # ties: the same purchase day and amount
        _buy(customer, timezone.now() - timedelta(days=3), amount="100.00")
    run = recompute(with_holdout=False)
    population = PopulationParameters.from_dict(RecomputeRun.objects.get(pk=run.pk).population)
    assert set(population.rfm_cut_points) == {"recency", "frequency", "monetary"}
    features = load_features()
    cfg = Config.from_settings(SegmentationSettings.objects.get())
    frozen, _report, _timings, _cuts = values_from_features(
        features, cfg, as_of=run.as_of, cut_points=population.rfm_cut_points
    )
    stored = {
        pk: (r, f, m)
        for pk, r, f, m in CustomerScore.objects.values_list("customer_id", "r_score", "f_score", "m_score")
    }
    columns = frozen[["r_score", "f_score", "m_score"]].itertuples(index=False)
    got = {
        pk: tuple(None if pd.isna(v) else int(v) for v in row)
        for pk, row in zip(frozen.index, columns, strict=True)
    }
    assert got == stored
    assert sum(score is None for score, _f, _m in stored.values()) > 0  # customers without window purchases
    assert population.typical_interval_days == recompute_module.typical_interval(frozen)


def _snapshot_values(rows) -> list[tuple]:
    def number(value):
        return None if value is None else float(value)

    return sorted(
        (
            row.dimension,
            row.key,
            row.customers,
            number(row.revenue),
            row.revenue_share,
            number(row.average_clv),
        )
        for row in rows
    )


def test_the_aggregate_of_the_stored_scores_equals_what_the_full_run_records(tenant):
    customers = _population()
    CustomerFactory(name="Prospect")
    Customer.objects.filter(pk=customers[7].pk).update(deleted_at=timezone.now())  # in the bin: not scored
    run = recompute(with_holdout=False)
    aggregate = recompute_module._scores_aggregate()
    recorded = _snapshot_values(SegmentSnapshot.objects.filter(run=run))
    assert _snapshot_values(recompute_module._snapshot_rows(run, aggregate.groups, run.as_of)) == recorded
    counts = (aggregate.customers, aggregate.scored, aggregate.orders)
    assert counts == (run.customers_count, run.scored_count, run.orders_count)
    assert {row[0] for row in recorded} == {"rfm", "stage"} and any(row[1] == "" for row in recorded)
    # a customer sent to the bin after the run is left out of the aggregate (its score row stays)
    Customer.objects.filter(pk=customers[8].pk).update(deleted_at=timezone.now())
    assert recompute_module._scores_aggregate().customers == run.customers_count - 1


def test_purged_customers_leave_the_runs_counts_as_a_full_run_gives(tenant):
    """The run's purchases are summed on the features alone: the features of a customer deleted for
    good (orders and all) are forgotten by the run that sees the purge, so the counts are the full
    run's; and a customer added without purchases counts as one more customer, no purchase."""
    customers = _population()
    t1, t2 = _times()
    recompute(as_of=t1, with_holdout=False)
    purged = next(c for c in customers if Order.objects.filter(customer=c).exists())
    Order.objects.filter(customer=purged).delete()  # the purge: its orders first (journalled), then it
    Customer.objects.filter(pk=purged.pk).delete()
    CustomerFactory(name="Added since")  # journalled as "customers added"
    run, incremental, full = _incremental_and_full(t2)
    assert run.population["affected_by"]["no_features"] == 1
    _assert_same(incremental, full)
    assert not CustomerFeatures.objects.filter(customer_id=purged.pk).exists()


def test_without_a_change_to_the_bin_the_counts_are_the_last_runs_changed_by_the_affected(tenant):
    """The counts and snapshot of incremental runs that add their customers' changes to the last
    run's (no customer entered or left the bin): the full run's, twice in a row."""
    customers = _population()
    prospect = CustomerFactory(name="Prospect who buys")  # not scored by the base run, then scored
    t1, t2 = _times()
    base = recompute(as_of=t1, with_holdout=False)
    assert base.totals["customers"] == len(customers) + 1
    assert base.totals["scored"] == base.scored_count < base.customers_count
    between = t1 + (t2 - t1) / 2
    _buy(prospect, between)
    for customer in customers[:4]:
        _buy(customer, between, amount="1234.56")
    refunded = Order.objects.filter(customer=customers[5]).first()
    Order.objects.filter(pk=refunded.pk).update(status=Order.Status.REFUNDED, refunded_total=refunded.total)
    newcomer = CustomerFactory(name="Newcomer")
    _buy(newcomer, between)
    CustomerFactory(name="Prospect")
    _immediate_constraints()
    first = recompute(as_of=between + (t2 - between) / 2, with_holdout=False)
    assert first.kind == RecomputeRun.Kind.INCREMENTAL
    assert first.population["counts"] == "the last run's, changed"
    # the next one builds on the first one's counts
    _buy(customers[6], between)
    run, incremental, full = _incremental_and_full(t2)
    assert run.population["counts"] == "the last run's, changed"
    _assert_same(incremental, full)
    assert incremental["counts"][:2] == (len(customers) + 3, base.orders_count + 7 - 1)
    assert CustomerScore.objects.get(customer=prospect).r_score is not None
    assert run.totals == recompute_module._scores_aggregate().to_dict()


@pytest.mark.parametrize("change", ["binned", "restored", "deleted"])
def test_after_a_change_to_the_bin_the_counts_are_aggregated_from_the_stored_scores(tenant, change):
    customers = _population()
    t1, t2 = _times()
    if change == "restored":
        Customer.objects.filter(pk=customers[9].pk).update(deleted_at=t1)
    recompute(as_of=t1, with_holdout=False)
    _buy(customers[0], t1 + (t2 - t1) / 2)
    if change == "binned":
        Customer.objects.filter(pk=customers[9].pk).update(deleted_at=t1)
    elif change == "restored":
        Customer.objects.filter(pk=customers[9].pk).update(deleted_at=None)
    else:  # deleted outside the bin, orders and all
        Order.objects.filter(customer=customers[9]).delete()
        Customer.objects.filter(pk=customers[9].pk).delete()
    run, incremental, full = _incremental_and_full(t2)
    assert run.population["counts"] == "aggregated"
    _assert_same(incremental, full)
    assert incremental["counts"][0] == len(customers) - (change != "restored")
