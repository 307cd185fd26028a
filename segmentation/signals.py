"""Signals segmentation sends so the apps beside it can follow what it found, without segmentation
calling them (the interactions app turns new churn alerts into follow-ups; loyalty or rules may follow
stage changes). Both are sent once the transaction that wrote the rows commits, never for a rollback.

    churn_alerts_raised.connect(receiver, dispatch_uid="interactions.churn_alerts")  # in ready()

    def receiver(sender, *, alert_ids: list[int], customer_ids: list[int], **kwargs): ...

    recompute_finished.connect(receiver, dispatch_uid="...")

    def receiver(sender, *, run_id: int, **kwargs): ...

`recompute_finished` follows a successful recompute (its `LifecycleTransition` and
`SegmentTransition` rows carry `run_id`). A receiver's error is logged and does not undo anything.
"""

import logging

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

churn_alerts_raised = Signal()
recompute_finished = Signal()


def _send_robust(signal: Signal, name: str, **kwargs) -> None:
    for receiver, result in signal.send_robust(sender="segmentation", **kwargs):
        if isinstance(result, Exception):
            logger.error("%s receiver %r failed", name, receiver, exc_info=result)


def churn_alerts_raised_on_commit(*, alert_ids: list[int], customer_ids: list[int]) -> None:
    if not alert_ids:
        return
    alert_ids, customer_ids = sorted(alert_ids), sorted(set(customer_ids))
    transaction.on_commit(
        lambda: _send_robust(
            churn_alerts_raised, "churn_alerts_raised", alert_ids=alert_ids, customer_ids=customer_ids
        )
    )


def recompute_finished_on_commit(*, run_id: int) -> None:
    transaction.on_commit(lambda: _send_robust(recompute_finished, "recompute_finished", run_id=run_id))
