"""A recompute is all or nothing: a failure after the new scores were swapped in (the last write of
the run), or part-way through an incremental run's writes, leaves the previous scores, no transitions,
snapshots or alerts of the failed run, and a run marked failed with its error; the next run works."""

import pytest

from customers.models import OrderChange
from segmentation import recompute as recompute_module
from segmentation.models import (
    ChurnAlert,
    CustomerFeatures,
    CustomerScore,
    LifecycleTransition,
    RecomputeRun,
    SegmentSnapshot,
    SegmentTransition,
)
from segmentation.recompute import recompute

from . import test_incremental as incremental
from .conftest import buy, customer_with_orders


def _written():
    return (
        sorted(
            CustomerScore.objects.values_list("customer_id", "frequency", "rfm_segment", "lifecycle_stage")
        ),
        LifecycleTransition.objects.count(),
        SegmentTransition.objects.count(),
        SegmentSnapshot.objects.count(),
        ChurnAlert.objects.count(),
    )


def test_a_failure_after_the_score_swap_leaves_the_previous_scores(tenant, monkeypatch):
    regular = customer_with_orders([400, 300, 200])
    customer_with_orders([5])
    first = recompute(with_holdout=False)
    assert first.status == RecomputeRun.Status.SUCCEEDED
    for days in (3, 2, 1):  # enough to change the regular's segment and stage
        buy(regular, days)
    before = _written()

    real_save = RecomputeRun.save

    def save_then_fail(self, *args, **kwargs):
        if self.status == RecomputeRun.Status.SUCCEEDED and self.pk != first.pk:
            raise RuntimeError("the database went away at the last write")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(RecomputeRun, "save", save_then_fail)
    with pytest.raises(RuntimeError):
        recompute(with_holdout=False)
    assert _written() == before
    failed = RecomputeRun.objects.exclude(pk=first.pk).get()
    assert failed.status == RecomputeRun.Status.FAILED and "went away" in failed.error

    monkeypatch.setattr(RecomputeRun, "save", real_save)
    assert recompute(with_holdout=False).status == RecomputeRun.Status.SUCCEEDED
    after = _written()
    assert after != before and after[1] + after[2] > 0  # the regular's new purchases count now


def test_alerts_raised_while_another_writer_opens_the_same_one_skip_it_and_keep_the_rest(tenant, sales_user):
    """The race alert_create_many guards against, made real: a trigger opens the same alert for the
    first customer just before each insert of it (as another recompute would). The batch insert
    fails on the unique open-alert rule; one by one, that alert is skipped and the others are
    created, and the surrounding transaction stays usable."""
    from django.db import connection

    from segmentation.services import alert_create_many
    from tests.factories import CustomerFactory

    raced, calm = CustomerFactory(owner=sales_user), CustomerFactory(owner=sales_user)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION open_the_same_alert_first() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF pg_trigger_depth() = 1 AND NEW.customer_id = {raced.pk} THEN "
            "INSERT INTO segmentation_churnalert "
            "(customer_id, owner_id, reason, details, status, created_at) VALUES "
            "(NEW.customer_id, NEW.owner_id, NEW.reason, NEW.details, NEW.status, NEW.created_at); "
            "END IF; RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER open_the_same_alert_first BEFORE INSERT ON segmentation_churnalert "
            "FOR EACH ROW EXECUTE FUNCTION open_the_same_alert_first()"
        )
    created = alert_create_many(items=[(raced, "entered_at_risk", {}), (calm, "entered_at_risk", {})])
    assert [alert.customer_id for alert in created] == [calm.pk]
    assert list(ChurnAlert.objects.values_list("customer_id", flat=True)) == [calm.pk]


def test_an_incremental_run_that_fails_part_way_through_its_writes_leaves_everything_as_it_was(
    tenant, monkeypatch
):
    # The incremental run updates scores in place, then writes transitions, features, the journal,
    # alerts and a snapshot: one transaction, so a failure at the alerts undoes the rest and the
    # changed customers are still in the journal for the next run.
    customers = incremental._population()
    t1, t2 = incremental._times()
    recompute(as_of=t1, with_holdout=False)
    between = t1 + (t2 - t1) / 2
    for customer in customers[:3]:
        incremental._buy(customer, between, amount="900.00")
    scores, features = (
        incremental._scores(),
        sorted(CustomerFeatures.objects.values_list(*incremental.FEATURE_FIELDS)),
    )
    journal = OrderChange.objects.count()
    snapshots, transitions = SegmentSnapshot.objects.count(), LifecycleTransition.objects.count()

    def fail(*args, **kwargs):
        raise RuntimeError("the worker lost the database while raising alerts")

    monkeypatch.setattr(recompute_module, "_raise_alerts", fail)
    with pytest.raises(RuntimeError):
        recompute(as_of=t2, with_holdout=False)
    failed = RecomputeRun.objects.order_by("-pk").first()
    assert failed.status == RecomputeRun.Status.FAILED and "raising alerts" in failed.error
    assert failed.changed_customers == 0  # recorded with the scores, which were not written
    assert incremental._scores() == scores
    assert sorted(CustomerFeatures.objects.values_list(*incremental.FEATURE_FIELDS)) == features
    assert OrderChange.objects.count() == journal > 0
    assert (SegmentSnapshot.objects.count(), LifecycleTransition.objects.count()) == (snapshots, transitions)

    monkeypatch.undo()
    run = recompute(as_of=t2, with_holdout=False)
    assert run.kind == RecomputeRun.Kind.INCREMENTAL and run.changed_customers == 3
    assert OrderChange.objects.count() == 0 and incremental._scores() != scores


def _features():
    return sorted(CustomerFeatures.objects.values_list("customer_id", "day_count", "total", "order_count"))


def test_a_fit_that_fails_while_the_features_are_written_leaves_the_stored_features(tenant, monkeypatch):
    """A full run stores the features in a thread while it fits the models (crm.overlap),
    inside the run's transaction: a failed fit leaves the last run's features and scores."""
    regular = customer_with_orders([400, 300, 200])
    customer_with_orders([5])
    assert recompute(with_holdout=False, incremental=False).status == RecomputeRun.Status.SUCCEEDED
    buy(regular, 1)
    features_before, written_before = _features(), _written()

    real_fit = recompute_module.values_from_features

    def fit_then_fail(*args, **kwargs):
        real_fit(*args, **kwargs)
        raise ArithmeticError("the fit diverged")

    monkeypatch.setattr(recompute_module, "values_from_features", fit_then_fail)
    with pytest.raises(ArithmeticError):
        recompute(with_holdout=False, incremental=False)
    assert _features() == features_before
    assert _written() == written_before

    monkeypatch.setattr(recompute_module, "values_from_features", real_fit)
    assert recompute(with_holdout=False, incremental=False).status == RecomputeRun.Status.SUCCEEDED
    assert _features() != features_before  # the new purchase is counted now
