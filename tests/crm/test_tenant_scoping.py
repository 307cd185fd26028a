"""Cached values and stored files belong to one tenant: the same cache key or file name in another
tenant never reaches them (two tenants, each with its own data under the same key / name)."""

from django.core.files.base import ContentFile
from django.db import connection
from django.urls import reverse
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.jobs.models import BackgroundJob
from crm.jobs.services import job_create
from tests.factories import CustomerFactory, OrderFactory


def _manager(tenant) -> User:
    with schema_context(tenant.schema_name):
        return User.objects.get(email=f"manager@{tenant.slug}.test")


def test_a_cached_dashboard_series_is_not_served_to_another_tenant(tenant, tenant_b, client_for):
    OrderFactory(customer=CustomerFactory())
    alpha = client_for(_manager(tenant), tenant).get(reverse("home")).context["monthly"]
    assert sum(month["orders"] for month in alpha) == 1  # now cached under "all managers" for alpha
    beta = client_for(_manager(tenant_b), tenant_b).get(reverse("home")).context["monthly"]
    assert beta == []
    connection.set_tenant(tenant)


def test_a_stored_file_is_not_served_to_another_tenant_under_the_same_name(
    tenant, tenant_b, client_for, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    jobs = {}
    for current, content in ((tenant, b"alpha secret\n"), (tenant_b, b"beta list\n")):
        with schema_context(current.schema_name):
            manager = User.objects.get(email=f"manager@{current.slug}.test")
            job = job_create(kind="customers.export", created_by=manager)
            job.output_file.save("export.csv", ContentFile(content), save=False)
            BackgroundJob.objects.filter(pk=job.pk).update(output_file=job.output_file.name)
            jobs[current.slug] = (manager, job.pk, job.output_file.name)
    for current, expected in ((tenant, b"alpha secret\n"), (tenant_b, b"beta list\n")):
        manager, job_id, _name = jobs[current.slug]
        response = client_for(manager, current).get(reverse("jobs:download", args=[job_id]))
        assert b"".join(response.streaming_content) == expected
    assert sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("export*.csv")) == [
        "alpha",
        "beta",
    ]
    connection.set_tenant(tenant)
