"""The demo seeder gives every demo user a living My day: open follow-ups overdue, due today and
later; churn alerts become follow-ups through the demo rule; a second run adds nothing."""

import io
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from interactions.followups import demo
from interactions.followups.models import FollowUp
from segmentation.services import alert_create
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_demo_follow_ups_overdue_today_and_later(users):
    reps = list(users.values())
    for user in reps:
        CustomerFactory.create_batch(3, owner=user)
    alert = alert_create(customer=CustomerFactory(owner=users["sales"]), reason="entered_at_risk")
    result = demo.seed(users=reps, rng=random.Random(3), stdout=io.StringIO())
    assert result == {"followups": demo.PER_USER * len(reps), "from_alerts": 1}
    now = timezone.now()
    mine = FollowUp.objects.filter(assignee=users["sales"], status="open")
    assert mine.filter(due_at__lt=now - timedelta(hours=2)).exists()
    assert mine.filter(due_at__gt=now, due_at__lt=now + timedelta(hours=6)).exists()
    assert mine.filter(due_at__gt=now + timedelta(days=1)).exists()
    assert (
        FollowUp.objects.filter(source="churn_alert", source_key__endswith=f":alert:{alert.pk}").count() == 1
    )
    again = demo.seed(users=reps, rng=random.Random(3), stdout=io.StringIO())
    assert again == {"followups": 0, "from_alerts": 0}
