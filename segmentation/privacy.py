"""What segmentation holds about a person, for personal-data requests (customers.registry).

Scores, stage and segment changes and churn alerts are numbers and labels keyed by the customer id:
exported in full; on erasure they stay, attached to the then anonymous customer: they identify
nobody (a provider that keeps free text about the person must blank it in its `erase`)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from customers.registry import PersonalDataProvider, registry

from .models import ChurnAlert, CustomerScore, LifecycleTransition, SegmentTransition


def export_segmentation(customer) -> dict:
    return {
        "score": CustomerScore.objects.filter(customer=customer).values().first(),
        "lifecycle_transitions": list(
            LifecycleTransition.objects.filter(customer=customer).order_by("pk").values()
        ),
        "segment_transitions": list(
            SegmentTransition.objects.filter(customer=customer).order_by("pk").values()
        ),
        "churn_alerts": list(ChurnAlert.objects.filter(customer=customer).order_by("pk").values()),
    }


def erase_segmentation(customer, actor) -> dict:
    """Nothing here names the person: the rows stay with the anonymous customer."""
    return {
        "scores_kept": CustomerScore.objects.filter(customer=customer).count(),
        "alerts_kept": ChurnAlert.objects.filter(customer=customer).count(),
    }


def register() -> None:
    registry.add_personal_data(
        PersonalDataProvider(
            key="segmentation",
            label=_("Scores, lifecycle stages and churn alerts"),
            export=export_segmentation,
            erase=erase_segmentation,
            order=40,
        )
    )
