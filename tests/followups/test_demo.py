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


def test_a_deactivated_user_gets_no_demo_follow_ups(users):
    users["sales2"].is_active = False
    users["sales2"].save(update_fields=["is_active"])
    CustomerFactory.create_batch(3, owner=users["sales"])
    demo.seed(users=list(users.values()), rng=random.Random(3), stdout=io.StringIO())
    assert FollowUp.objects.filter(assignee=users["sales"]).count() == demo.PER_USER
    assert not FollowUp.objects.filter(assignee=users["sales2"]).exists()


def test_demo_follow_ups_that_fail_part_way_write_nothing(users):
    """The demo rule is written after every user's follow-ups: refusing it leaves no follow-up."""
    from django.db import DatabaseError, connection

    from interactions.followups.models import FollowUpRule

    CustomerFactory.create_batch(3, owner=users["sales"])
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_rule() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'no rules today'; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER refuse_rule BEFORE INSERT ON "{FollowUpRule._meta.db_table}" '
            "FOR EACH ROW EXECUTE FUNCTION refuse_rule()"
        )
    with pytest.raises(DatabaseError):
        demo.seed(users=list(users.values()), rng=random.Random(3), stdout=io.StringIO())
    assert not FollowUp.objects.exists()
