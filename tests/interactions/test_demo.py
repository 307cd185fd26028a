import io
import random

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.utils import timezone

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


def _interactions() -> list[tuple]:
    return list(
        Interaction.objects.order_by("customer_id", "occurred_at", "subject").values_list(
            "customer_id", "channel", "direction", "occurred_at", "duration_minutes", "subject", "notes",
            "outcome_id", "author_id",
        )
    )  # fmt: skip


def test_the_demo_interactions_are_bulk_written_repeatably_with_the_rules_of_the_demo(
    tenant, sales_user, manager_user, monkeypatch
):
    """Written with COPY (in the bulk mode from its size on: indexes and foreign keys rebuilt as they
    were); the same seed gives the same interactions; each is by the customer's owner when the owner
    is a demo author; only calls and meetings have a duration; most have an outcome."""
    from tests.factories import CustomerFactory

    owned = [CustomerFactory(owner=sales_user) for _ in range(30)]
    unowned = [CustomerFactory() for _ in range(30)]
    CustomerFactory(deleted_at="2026-01-01T00:00:00Z")  # in the recycle bin: none

    def schema_objects():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = 'interactions_interaction'"
            )
            indexes = {row[0] for row in cursor.fetchall()}
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid = 'interactions_interaction'::regclass"
            )
            return indexes, set(cursor.fetchall())

    before = schema_objects()
    monkeypatch.setattr(demo, "BULK_MODE_MIN_CUSTOMERS", 1)
    # the same clock for both seeds (their times are counted back from now, to the second: on a busy
    # machine the second seed could start a second later)
    clock = timezone.now()
    monkeypatch.setattr(demo.timezone, "now", lambda: clock)
    users = [sales_user, manager_user]
    summary = demo.seed(users=users, customers=60, rng=random.Random(5), stdout=io.StringIO())
    assert schema_objects() == before
    first = _interactions()
    assert summary["interactions"] == len(first) and 120 <= len(first) <= 300
    assert {row[0] for row in first} == {c.pk for c in owned + unowned}
    assert {row[8] for row in first if row[0] in {c.pk for c in owned}} == {sales_user.pk}
    assert {row[8] for row in first} <= {sales_user.pk, manager_user.pk}
    timed = {Channel.PHONE, Channel.MEETING}
    assert all((row[4] is not None) == (row[1] in timed) for row in first)
    assert all(row[4] is None or 1 <= row[4] <= 45 for row in first)
    with_outcome = sum(row[7] is not None for row in first) / len(first)
    assert 0.6 < with_outcome < 0.95
    Interaction.objects.all().delete()
    demo.seed(users=users, customers=60, rng=random.Random(5), stdout=io.StringIO())
    assert _interactions() == first
