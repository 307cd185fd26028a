"""A recompute is all or nothing: a failure after the new scores were swapped in (the last write of
the run) leaves the previous scores, no transitions, snapshots or alerts of the failed run, and a run
marked failed with its error; the next run works."""

import pytest

from segmentation.models import (
    ChurnAlert,
    CustomerScore,
    LifecycleTransition,
    RecomputeRun,
    SegmentSnapshot,
    SegmentTransition,
)
from segmentation.recompute import recompute

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
