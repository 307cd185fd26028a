import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from interactions.labels import DEFAULT_OUTCOMES
from interactions.models import Interaction, InteractionOutcome
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_every_tenant_starts_with_the_default_outcomes(tenant):
    assert list(InteractionOutcome.objects.values_list("key", flat=True)) == list(DEFAULT_OUTCOMES)


def test_the_database_refuses_an_unknown_channel(tenant):
    customer = CustomerFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Interaction.objects.create(
            customer=customer, channel="fax", direction="in", occurred_at=timezone.now()
        )
    assert not Interaction.objects.exists()
