from datetime import timedelta

import pytest
from django.utils import timezone

from interactions.followups.models import FollowUp
from tests.factories import CustomerFactory


def make_followup(*, customer, assignee, hours: float = 2, **extra) -> FollowUp:
    """A follow-up row as a fixture (what the service would write), due `hours` from now."""
    return FollowUp.objects.create(
        customer=customer,
        assignee=assignee,
        due_at=timezone.now() + timedelta(hours=hours),
        title=extra.pop("title", "Call back"),
        **extra,
    )


@pytest.fixture
def own_customer(sales_user):
    return CustomerFactory(owner=sales_user, name="Own Customer 自己的")


@pytest.fixture
def other_customer(sales_user2):
    return CustomerFactory(owner=sales_user2, name="Other Customer")
