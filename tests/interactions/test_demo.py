import io
import random

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count

from customers.models import Customer
from interactions import demo
from interactions.labels import Channel
from interactions.models import Interaction

pytestmark = pytest.mark.django_db


def test_seed_demo_adds_several_interactions_per_customer_on_every_channel_in_both_languages(tenant):
    call_command("seed_demo", tenant="alpha", customers=40, seed=3, stdout=io.StringIO())
    connection.set_tenant(tenant)
    per_customer = Interaction.objects.values("customer").annotate(n=Count("pk"))
    assert per_customer.count() == Customer.objects.filter(deleted_at__isnull=True).count()
    assert min(row["n"] for row in per_customer) >= 2
    assert set(Interaction.objects.values_list("channel", flat=True)) == set(Channel.values)
    subjects = set(Interaction.objects.values_list("subject", flat=True))
    assert any(s.isascii() for s in subjects) and any(not s.isascii() for s in subjects)
    count = Interaction.objects.count()
    demo.seed(users=[], customers=0, rng=random.Random(1), stdout=io.StringIO())  # a second run adds nothing
    assert Interaction.objects.count() == count
