from django.db import connection
from django_tenants.utils import schema_context

from crm.accounts.models import User


def test_each_tenant_has_its_own_users(tenant_a, tenant_b):
    with schema_context(tenant_a.schema_name):
        alpha_emails = set(User.objects.values_list("email", flat=True))
    with schema_context(tenant_b.schema_name):
        beta_emails = set(User.objects.values_list("email", flat=True))
    assert "admin@alpha.test" in alpha_emails and "admin@alpha.test" not in beta_emails
    assert "admin@beta.test" in beta_emails and "admin@beta.test" not in alpha_emails


def test_signed_in_user_sees_the_navigation_of_their_role(sales_client, admin_client):
    sales_page = sales_client.get("/").content.decode()
    admin_page = admin_client.get("/").content.decode()
    assert 'data-nav="customers"' in sales_page
    assert 'data-nav="settings"' not in sales_page
    assert 'data-nav="settings"' in admin_page
    assert connection.schema_name == "alpha"
