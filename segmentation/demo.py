"""`seed_demo` part of the segmentation app: scores, history and a few saved segments.

Runs the recompute synchronously twice: as the data stood 30 days ago, then now. The first run is the
baseline; the second records the stage and segment changes of the last month and raises the churn
alerts they call for, so every page (history, movement, alerts) has something to show.
"""

from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from .models import RecomputeRun, Segment
from .recompute import recompute

DEMO_SEGMENTS = (
    (
        gettext_noop("Champions and loyal in Shanghai"),
        gettext_noop("Best customers in one city: invite them to the store event."),
        {
            "op": "and",
            "rules": [
                {"field": "rfm_segment", "op": "in", "value": ["champions", "loyal"]},
                {"field": "city", "op": "eq", "value": "上海"},
            ],
        },
    ),
    (
        gettext_noop("High value slipping away"),
        gettext_noop("Valuable customers who are at risk or unlikely to be active: call them."),
        {
            "op": "and",
            "rules": [
                {"field": "predicted_clv", "op": "gte", "value": 500},
                {
                    "op": "or",
                    "rules": [
                        {"field": "lifecycle_stage", "op": "in", "value": ["at_risk", "churned"]},
                        {"field": "probability_alive", "op": "lt", "value": 0.5},
                    ],
                },
            ],
        },
    ),
    (
        gettext_noop("Women 25-40 with email consent"),
        gettext_noop("Audience for the spring newsletter."),
        {
            "op": "and",
            "rules": [
                {"field": "gender", "op": "in", "value": ["female"]},
                {"field": "age", "op": "between", "value": [25, 40]},
                {"field": "email_consent", "op": "is_true"},
            ],
        },
    ),
)


def seed(*, users, customers: int, rng, stdout, **_kwargs) -> dict:
    from .services import segment_create

    now = timezone.now()
    baseline = recompute(
        trigger=RecomputeRun.Trigger.DEMO, as_of=now - timedelta(days=30), with_holdout=False
    )
    latest = recompute(trigger=RecomputeRun.Trigger.DEMO)
    stdout.write(
        f"segmentation: {latest.customers_count} customers scored ({latest.clv_model}); "
        f"{latest.stage_changes} stage changes and {latest.alerts_created} alerts since the baseline "
        f"(runs {baseline.pk}, {latest.pk})."
    )
    author = next((u for u in users if getattr(u, "role", "") == "manager"), users[0] if users else None)
    created = 0
    for msgid, description, rules in DEMO_SEGMENTS:
        # In the company's language (seed_demo activates it).
        name, description = gettext(msgid), gettext(description)
        if not Segment.objects.filter(name=name).exists():
            segment_create(actor=author, name=name, description=description, rules=rules, is_shared=True)
            created += 1
    return {"runs": [baseline.pk, latest.pk], "segments": created}
