"""What the access matrix cannot see from a status alone: actions that answer 302 whatever they did,
and jobs of other users listed on pages."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from crm.jobs.models import BackgroundJob
from crm.jobs.services import job_create
from customers.models import Customer
from tests.factories import CustomerFactory


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _job_with_file(user, kind="customers.export"):
    job = job_create(kind=kind, created_by=user)
    job.output_file.save("x.csv", ContentFile(b"name\nsecret\n"), save=False)
    BackgroundJob.objects.filter(pk=job.pk).update(
        output_file=job.output_file.name, status=BackgroundJob.Status.SUCCEEDED
    )
    return job


def test_a_bulk_action_on_another_reps_customers_changes_nothing(tenant, users, client_for):
    theirs = CustomerFactory(owner=users["sales2"])
    mine = CustomerFactory(owner=users["sales"])
    sales = client_for(users["sales"])
    response = sales.post(
        reverse("customers:bulk"), {"action": "tag_add", "tag": "grabbed", "ids": [theirs.pk, mine.pk]}
    )
    assert response.status_code == 302
    assert list(theirs.tags.values_list("name", flat=True)) == []
    assert list(mine.tags.values_list("name", flat=True)) == ["grabbed"]
    client_for(users["manager"]).post(
        reverse("customers:bulk"), {"action": "delete", "ids": [theirs.pk, mine.pk]}
    )
    assert Customer.objects.filter(deleted_at__isnull=False).count() == 2  # managers may


def test_a_sales_user_never_reaches_another_users_job_or_file(tenant, users, client_for):
    sales = client_for(users["sales"])
    for owner, kind in ((users["sales2"], "customers.export"), (users["manager"], "customers.export_all")):
        job = _job_with_file(owner, kind)
        for name in ("jobs:status", "jobs:download", "customers:export_job"):
            assert sales.get(reverse(name, args=[job.pk])).status_code == 404, (name, owner)
        assert client_for(users["admin"]).get(reverse("jobs:download", args=[job.pk])).status_code == 200
    own = _job_with_file(users["sales"])
    download = sales.get(reverse("jobs:download", args=[own.pk]))
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"name\nsecret\n"


def test_the_export_page_lists_only_the_users_own_recent_exports(tenant, users, client_for):
    _job_with_file(users["manager"])
    mine = _job_with_file(users["sales"])
    page = client_for(users["sales"]).get(reverse("customers:export"))
    assert [job.pk for job in page.context["recent"]] == [mine.pk]
    assert len(client_for(users["manager"]).get(reverse("customers:export")).context["recent"]) == 2


def test_a_job_of_another_tenant_is_not_reachable_by_its_id(tenant, tenant_b, users, client_for):
    """Both tenants have a job with the same id; beta's admin reaches beta's, never alpha's file."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from crm.accounts.models import User

    alpha_job = _job_with_file(users["admin"])
    with schema_context(tenant_b.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
        beta_job = job_create(kind="customers.export", created_by=beta_admin)
        BackgroundJob.objects.filter(pk=beta_job.pk).update(id=alpha_job.pk)
    beta = client_for(beta_admin, tenant_b)
    response = beta.get(reverse("jobs:download", args=[alpha_job.pk]))
    assert response.status_code == 404  # beta's job with this id has no file; alpha's is not served
    connection.set_tenant(tenant)
