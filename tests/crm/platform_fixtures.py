"""Fixtures shared by the platform tests (import them into a test module to use them)."""

import pytest
from django.core.cache import cache
from django.db import connection
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.tenancy.models import Tenant


@pytest.fixture
def english_ui(db):
    """Serve the test tenants (and the public site) in English for the test, so assertions can read
    English text: their default language is Simplified Chinese, and so is the language of each
    tenant's first admin. Rolled back with the test."""
    previous = connection.schema_name
    connection.set_schema_to_public()
    Tenant.objects.filter(slug__in=["alpha", "beta", "public"]).update(default_language="en")
    User.objects.update(language="")
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            User.objects.update(language="")
    if previous != "public":
        connection.set_tenant(Tenant.objects.get(schema_name=previous))
    yield


@pytest.fixture
def fresh_stats(db):
    """The console's per-tenant stats are cached for a minute in Redis, which outlives each test's
    rolled-back transaction: start each test without them."""
    connection.set_schema_to_public()
    cache.delete_many(
        [f"tenancy:stats:{name}" for name in Tenant.objects.values_list("schema_name", flat=True)]
    )
    yield
    connection.set_schema_to_public()
