"""The operator commands, run for real: provision_tenant, setup_platform, seed_demo and the
makemessages override; and the profile form's save; and the beat dispatchers skipping tenants
that are not active."""

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django_tenants.utils import schema_context, schema_exists

from crm.accounts.models import User
from crm.audit.models import AuditEvent
from crm.tenancy.dispatch import enqueue_for_active_tenants
from crm.tenancy.models import Tenant
from customers.models import Customer, Order
from segmentation.models import CustomerScore

PASSWORD = "x-Long-pass-2026"


@pytest.fixture
def public(db):
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


def test_provision_tenant_builds_a_ready_company_and_if_missing_leaves_it(public):
    out = io.StringIO()
    call_command(
        "provision_tenant", "kappa", name="Kappa 卡帕", admin_email="boss@kappa.test",
        admin_password=PASSWORD, language="en", stdout=out,
    )  # fmt: skip
    tenant = Tenant.objects.get(slug="kappa")
    assert tenant.status == Tenant.Status.ACTIVE and "kappa is active" in out.getvalue()
    with schema_context("kappa"):
        admin = User.objects.get()
        assert (admin.email, admin.role, admin.check_password(PASSWORD)) == ("boss@kappa.test", "admin", True)
    again = io.StringIO()
    call_command(
        "provision_tenant", "kappa", name="X", admin_email="y@kappa.test", if_missing=True, stdout=again
    )
    assert again.getvalue().strip() == "Tenant kappa exists already."
    with pytest.raises(CommandError, match="slug"):
        call_command("provision_tenant", "kappa", name="X", admin_email="y@kappa.test")


def test_setup_platform_creates_the_admin_once_and_is_safe_to_rerun(public):
    for _ in range(2):
        call_command("setup_platform", admin_email="ops@platform.test", admin_password=PASSWORD, verbosity=0)
    admins = User.objects.filter(email="ops@platform.test")
    assert admins.count() == 1 and admins.get().is_superuser
    assert schema_exists("tenant_template")


def test_seed_demo_fills_a_tenant_with_customers_orders_and_their_scores(tenant):
    out = io.StringIO()
    call_command("seed_demo", tenant="alpha", customers=30, seed=7, stdout=out)
    connection.set_tenant(tenant)
    assert Customer.objects.count() == 30 and Order.objects.exists()
    # the customers' seeder ran before the one that scores them
    assert CustomerScore.objects.count() == 30
    assert User.objects.filter(email="sales@demo.example", role="sales").exists()
    with pytest.raises(CommandError, match="No tenant"):
        call_command("seed_demo", tenant="nowhere", customers=1)


def test_makemessages_also_extracts_the_immediate_gettext_alias(tmp_path):
    (tmp_path / "locale").mkdir()
    (tmp_path / "module.py").write_text(
        "from django.utils.translation import gettext as _t, gettext_lazy as _\n"
        "A = _t('Extracted through the alias')\nB = _('Extracted as usual')\n"
    )
    repo = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, str(repo / "manage.py"), "makemessages", "-l", "zh_Hans"],
        cwd=tmp_path, check=True, capture_output=True,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "crm.settings.test", "PYTHONPATH": str(repo)},
    )  # fmt: skip
    catalogue = (tmp_path / "locale/zh_Hans/LC_MESSAGES/django.po").read_text()
    assert 'msgid "Extracted through the alias"' in catalogue and 'msgid "Extracted as usual"' in catalogue


def test_the_profile_form_saves_name_language_and_time_zone(tenant, client_for, sales_user):
    client = client_for(sales_user)
    response = client.post(
        reverse("accounts:profile"),
        {"full_name": "Sam 山姆", "language": "zh-hans", "time_zone": "Europe/London"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("accounts:profile")
    sales_user.refresh_from_db()
    assert (sales_user.full_name, sales_user.language, sales_user.time_zone) == (
        "Sam 山姆", "zh-hans", "Europe/London",
    )  # fmt: skip
    assert AuditEvent.objects.filter(target_id=str(sales_user.pk)).exists()
    assert "保存" in client.get(reverse("accounts:profile")).content.decode()  # the page now in Chinese
    bad = client.post(
        reverse("accounts:profile"), {"full_name": "x", "language": "xx", "time_zone": "Mars/Base"}
    )
    assert bad.status_code == 200 and set(bad.context["form"].errors) == {"language", "time_zone"}
    sales_user.refresh_from_db()
    assert sales_user.language == "zh-hans"


class RecordingTask:
    """Stands in for a Celery task: records the schema each message would be stamped with."""

    name = "recording"

    def __init__(self):
        self.schemas = []

    def apply_async(self, kwargs):
        self.schemas.append(connection.schema_name)


def test_dispatchers_skip_suspended_failed_and_provisioning_tenants(public, tenant_a, tenant_b):
    Tenant.objects.filter(pk=tenant_b.pk).update(status=Tenant.Status.SUSPENDED)
    Tenant.objects.create(name="Broken", slug="broken", schema_name="broken", status=Tenant.Status.FAILED)
    Tenant.objects.create(name="Later", slug="later", schema_name="later", status=Tenant.Status.PROVISIONING)
    task = RecordingTask()
    sent = enqueue_for_active_tenants(task)
    assert "alpha" in task.schemas and sent == len(task.schemas)
    assert not {"beta", "broken", "later", "public"} & set(task.schemas)
