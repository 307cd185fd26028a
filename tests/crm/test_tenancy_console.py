"""The platform console's edit of a company, the first admin's invitation sent again, and usage over time."""

import re
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import Role, User
from crm.audit.models import AuditEvent
from crm.tenancy import editing, selectors, usage
from crm.tenancy.models import Tenant, TenantUsage
from crm.tenancy.tasks import tenant_usage_all_tenants, tenant_usage_task
from customers.models import Customer
from tests.conftest import PASSWORD
from tests.crm.platform_fixtures import english_ui, fresh_stats  # noqa: F401
from tests.factories import CustomerFactory, OrderFactory

CONSOLE = "/console/"

pytestmark = pytest.mark.usefixtures("english_ui", "fresh_stats")


def _events(tenant: Tenant, action: str) -> list[AuditEvent]:
    connection.set_schema_to_public()
    return list(
        AuditEvent.objects.filter(action=action, target_type="tenancy.tenant", target_id=str(tenant.pk))
    )


def _pending_admin(tenant: Tenant, email: str = "boss@{slug}.test") -> User:
    """Make `tenant`'s first admin someone who has not chosen a password yet (rolled back with the test)."""
    email = email.format(slug=tenant.slug)
    with schema_context(tenant.schema_name):
        user = User.objects.create_user(email=email, password=None, role=Role.ADMIN)
    connection.set_schema_to_public()
    Tenant.objects.filter(pk=tenant.pk).update(admin_email=email)
    tenant.refresh_from_db()
    return user


def _link_token(body: str) -> tuple[str, str]:
    uid, token = re.search(r"/accounts/password-reset/([^/]+)/([^/\s]+)/", body).groups()
    return uid, token


def _valid(tenant: Tenant, email: str, token: str) -> bool:
    with schema_context(tenant.schema_name):
        return default_token_generator.check_token(User.objects.get(email=email), token)


# --- Who may --------------------------------------------------------------------------------------


def test_only_platform_operators_reach_the_new_pages(public_client, tenant_a, admin_client):
    connection.set_schema_to_public()
    paths = [f"{CONSOLE}{tenant_a.pk}/edit/", f"{CONSOLE}{tenant_a.pk}/resend-invitation/"]
    for path in paths:  # anonymous: to the sign-in page
        response = public_client.get(path) if path.endswith("edit/") else public_client.post(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    clerk = User.objects.create_user(email="clerk@platform.test", password=PASSWORD)
    public_client.force_login(clerk)  # a public user who is not a platform admin
    assert public_client.get(paths[0]).status_code == 403
    assert public_client.post(paths[0], {"name": "Hijacked"}).status_code == 403
    assert public_client.post(paths[1]).status_code == 403
    # A tenant admin's session means nothing on the public site.
    public = Client(HTTP_HOST=settings.BASE_DOMAIN)
    public.cookies[settings.SESSION_COOKIE_NAME] = admin_client.cookies[settings.SESSION_COOKIE_NAME].value
    assert public.post(paths[0], {"name": "Hijacked"}).status_code == 302
    connection.set_schema_to_public()
    assert Tenant.objects.get(pk=tenant_a.pk).name != "Hijacked"
    assert not _events(tenant_a, "tenant.updated")


def test_the_services_refuse_anyone_but_a_platform_admin(tenant_a, admin_user):
    """The second line behind the views: a tenant admin (not a platform superuser) is refused."""
    _pending_admin(tenant_a)
    mail.outbox.clear()
    with pytest.raises(PermissionDenied):
        editing.tenant_update(actor=admin_user, tenant=tenant_a, name="Hijacked")
    with pytest.raises(PermissionDenied):
        editing.tenant_admin_invitation_resend(actor=admin_user, tenant=tenant_a)
    tenant_a.refresh_from_db()
    assert tenant_a.name != "Hijacked" and mail.outbox == []


def test_unknown_and_public_tenants_are_404(platform_client):
    public = Tenant.objects.get(schema_name="public")
    for tenant_id in (999999, public.pk):
        assert platform_client.get(f"{CONSOLE}{tenant_id}/edit/").status_code == 404
        assert platform_client.post(f"{CONSOLE}{tenant_id}/resend-invitation/").status_code == 404


# --- Edit -----------------------------------------------------------------------------------------


def _edit_data(tenant: Tenant, **changes) -> dict:
    data = {
        "name": tenant.name,
        "time_zone": tenant.time_zone,
        "currency": tenant.currency,
        "default_language": tenant.default_language,
        "admin_email": tenant.admin_email,
    }
    return {**data, **changes}


def test_edit_changes_one_company_and_audits_before_and_after(
    platform_client, tenant_a, tenant_b, django_capture_on_commit_callbacks
):
    from crm.tenancy.worker_cache import settings_stamp

    beta_before = Tenant.objects.filter(pk=tenant_b.pk).values().get()
    stamps_before = settings_stamp(tenant_a.schema_name), settings_stamp(tenant_b.schema_name)
    response = platform_client.get(f"{CONSOLE}{tenant_a.pk}/edit/")
    assert response.status_code == 200 and response.context["form"].initial["name"] == tenant_a.name
    with django_capture_on_commit_callbacks(execute=True):
        response = platform_client.post(
            f"{CONSOLE}{tenant_a.pk}/edit/",
            _edit_data(tenant_a, name="  Alpha Renamed  ", time_zone="Europe/Berlin", currency="EUR"),
        )
    # Workers that cached the company's row (its time zone) fetch it again; the other company's stays.
    assert settings_stamp(tenant_a.schema_name) != stamps_before[0]
    assert settings_stamp(tenant_b.schema_name) == stamps_before[1]
    assert response.status_code == 302 and response["Location"] == f"{CONSOLE}{tenant_a.pk}/"
    tenant_a.refresh_from_db()
    assert (tenant_a.name, tenant_a.time_zone, tenant_a.currency) == ("Alpha Renamed", "Europe/Berlin", "EUR")
    [event] = _events(tenant_a, "tenant.updated")
    assert event.actor.email == "operator@platform.test"
    assert event.changes == {
        "currency": {"old": "CNY", "new": "EUR"},
        "name": {"old": "Alpha Trading 阿尔法", "new": "Alpha Renamed"},
        "time_zone": {"old": "Asia/Shanghai", "new": "Europe/Berlin"},
    }
    beta_after = Tenant.objects.filter(pk=tenant_b.pk).values().get()
    assert beta_after == beta_before
    detail = platform_client.get(f"{CONSOLE}{tenant_a.pk}/").content.decode()
    assert "Company settings changed" in detail


def test_saving_without_changes_records_nothing(platform_client, tenant_a):
    response = platform_client.post(f"{CONSOLE}{tenant_a.pk}/edit/", _edit_data(tenant_a))
    assert response.status_code == 302
    assert not _events(tenant_a, "tenant.updated")


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"name": "   "}, "name", "required"),
        ({"name": "x" * 201}, "name", "at most 200"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "Select a valid choice"),
        ({"currency": "XXX"}, "currency", "Select a valid choice"),
        ({"default_language": "fr"}, "default_language", "Select a valid choice"),
        ({"admin_email": "not-an-email"}, "admin_email", "valid email"),
    ],
)
def test_edit_with_bad_input_shows_the_error_and_writes_nothing(
    platform_client, tenant_a, changes, field, text
):
    if field == "admin_email":
        _pending_admin(tenant_a)  # an accepted admin's field is disabled (and ignored)
    before = Tenant.objects.filter(pk=tenant_a.pk).values().get()
    audit_before = AuditEvent.objects.count()
    response = platform_client.post(f"{CONSOLE}{tenant_a.pk}/edit/", _edit_data(tenant_a, **changes))
    assert response.status_code == 200
    assert text in " ".join(response.context["form"].errors[field])
    assert Tenant.objects.filter(pk=tenant_a.pk).values().get() == before
    assert AuditEvent.objects.count() == audit_before


def test_the_service_refuses_what_provisioning_refuses_and_writes_nothing(platform_admin, tenant_a):
    """The form's choices are not the only guard: the service applies provisioning's rules."""
    before = Tenant.objects.filter(pk=tenant_a.pk).values().get()
    with pytest.raises(editing.ValidationError) as error:
        editing.tenant_update(
            actor=platform_admin, tenant=tenant_a, name="", time_zone="Asia/Harbin", currency="XXX"
        )
    assert set(error.value.message_dict) == {"name", "time_zone", "currency"}
    # A deprecated zone is in the model's choices; provisioning's own validator refuses it.
    assert "not a time zone we offer" in error.value.message_dict["time_zone"][0]
    assert Tenant.objects.filter(pk=tenant_a.pk).values().get() == before
    assert not _events(tenant_a, "tenant.updated")


def test_the_pending_first_admins_email_can_be_corrected(platform_client, tenant_a):
    _pending_admin(tenant_a)
    response = platform_client.post(
        f"{CONSOLE}{tenant_a.pk}/edit/", _edit_data(tenant_a, admin_email="Chief@Alpha.test")
    )
    assert response.status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.admin_email == "chief@alpha.test"
    with schema_context("alpha"):
        assert User.objects.filter(email="chief@alpha.test", role=Role.ADMIN).exists()
        assert not User.objects.filter(email="boss@alpha.test").exists()
    with schema_context("beta"):
        assert not User.objects.filter(email="chief@alpha.test").exists()
    [event] = _events(tenant_a, "tenant.updated")
    assert event.changes == {"admin_email": {"old": "boss@alpha.test", "new": "chief@alpha.test"}}


def test_the_first_admins_email_waits_for_the_set_up_to_finish(platform_admin, tenant_a):
    Tenant.objects.filter(pk=tenant_a.pk).update(status=Tenant.Status.PROVISIONING)
    tenant_a.refresh_from_db()
    with pytest.raises(editing.ValidationError) as error:
        editing.tenant_update(actor=platform_admin, tenant=tenant_a, admin_email="new@alpha.test", name="X")
    assert "being set up" in error.value.message_dict["admin_email"][0]
    tenant_a.refresh_from_db()
    assert (tenant_a.admin_email, tenant_a.name) == ("admin@alpha.test", "Alpha Trading 阿尔法")


def test_an_accepted_first_admins_email_stays(platform_client, platform_admin, tenant_a):
    # alpha's first admin (admin@alpha.test) has a password: the field is disabled in the form ...
    response = platform_client.get(f"{CONSOLE}{tenant_a.pk}/edit/")
    assert response.context["form"].fields["admin_email"].disabled
    response = platform_client.post(
        f"{CONSOLE}{tenant_a.pk}/edit/", _edit_data(tenant_a, admin_email="other@alpha.test")
    )
    assert response.status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.admin_email == "admin@alpha.test"
    # ... and the service refuses it too.
    with pytest.raises(editing.ValidationError) as error:
        editing.tenant_update(actor=platform_admin, tenant=tenant_a, admin_email="other@alpha.test")
    assert "already signed in" in error.value.message_dict["admin_email"][0]
    tenant_a.refresh_from_db()
    assert tenant_a.admin_email == "admin@alpha.test"
    with schema_context("alpha"):
        assert User.objects.filter(email="admin@alpha.test").exists()


# --- Resend the first admin's invitation ---------------------------------------------------------


def test_resend_sends_one_mail_with_a_new_link_and_the_old_one_dies(platform_client, tenant_a, tenant_b):
    _pending_admin(tenant_a)
    _pending_admin(tenant_b)
    with schema_context("alpha"):
        old_token = default_token_generator.make_token(User.objects.get(email="boss@alpha.test"))
    with schema_context("beta"):
        beta_token = default_token_generator.make_token(User.objects.get(email="boss@beta.test"))
    assert _valid(tenant_a, "boss@alpha.test", old_token)
    mail.outbox.clear()

    response = platform_client.post(f"{CONSOLE}{tenant_a.pk}/resend-invitation/", follow=True)

    assert "A new invitation is on its way to boss@alpha.test" in response.content.decode()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["boss@alpha.test"]
    body = mail.outbox[0].body
    assert "http://alpha.testserver.local/accounts/password-reset/" in body
    _uid, new_token = _link_token(body)
    assert _valid(tenant_a, "boss@alpha.test", new_token)
    assert not _valid(tenant_a, "boss@alpha.test", old_token)
    assert _valid(tenant_b, "boss@beta.test", beta_token)  # the other company's link is untouched
    [event] = _events(tenant_a, editing.RESEND_EVENT)
    assert event.changes == {"admin_email": "boss@alpha.test"}
    assert not _events(tenant_b, editing.RESEND_EVENT)
    # The new link opens the set-password page and, once used, is dead.
    site = Client(HTTP_HOST="alpha.testserver.local")
    page = site.get(_link_url(body), follow=True)
    assert page.status_code == 200 and "new_password1" in page.content.decode()
    done = site.post(
        page.request["PATH_INFO"], {"new_password1": PASSWORD + "x", "new_password2": PASSWORD + "x"}
    )
    assert done.status_code == 302
    assert not _valid(tenant_a, "boss@alpha.test", new_token)
    connection.set_schema_to_public()
    assert editing.first_admin_state(tenant=tenant_a) == editing.FirstAdmin.ACCEPTED


def _link_url(body: str) -> str:
    return re.search(r"http://alpha\.testserver\.local(/accounts/password-reset/\S+)", body).group(1)


def test_resend_is_limited_to_once_a_minute(platform_client, tenant_a):
    _pending_admin(tenant_a)
    mail.outbox.clear()
    platform_client.post(f"{CONSOLE}{tenant_a.pk}/resend-invitation/")
    response = platform_client.post(f"{CONSOLE}{tenant_a.pk}/resend-invitation/", follow=True)
    assert "An invitation was sent less than a minute ago. Try again in" in response.content.decode()
    assert len(mail.outbox) == 1 and len(_events(tenant_a, editing.RESEND_EVENT)) == 1
    # The button says so too.
    assert 'data-testid="resend-invitation" disabled' in response.content.decode()
    assert "Sent a moment ago: again in" in response.content.decode()
    # A minute later it may be sent again.
    AuditEvent.objects.filter(action=editing.RESEND_EVENT).update(
        created_at=timezone.now() - timedelta(seconds=61)
    )
    platform_client.post(f"{CONSOLE}{tenant_a.pk}/resend-invitation/")
    assert len(mail.outbox) == 2 and len(_events(tenant_a, editing.RESEND_EVENT)) == 2


def test_resend_is_refused_once_accepted(platform_client, tenant_a):
    # alpha's first admin chose a password when the session tenant was built.
    mail.outbox.clear()
    response = platform_client.post(f"{CONSOLE}{tenant_a.pk}/resend-invitation/", follow=True)
    assert "admin@alpha.test has already accepted the invitation" in response.content.decode()
    assert mail.outbox == [] and not _events(tenant_a, editing.RESEND_EVENT)
    assert 'data-testid="resend-invitation"' not in response.content.decode()


def test_resend_is_refused_for_a_suspended_company(platform_client, tenant_a):
    _pending_admin(tenant_a)
    Tenant.objects.filter(pk=tenant_a.pk).update(status=Tenant.Status.SUSPENDED)
    mail.outbox.clear()
    response = platform_client.post(f"{CONSOLE}{tenant_a.pk}/resend-invitation/", follow=True)
    assert "Only an active company" in response.content.decode()
    assert mail.outbox == [] and not _events(tenant_a, editing.RESEND_EVENT)


def test_a_mail_failure_changes_nothing_and_the_old_link_still_works(platform_client, tenant_a):
    _pending_admin(tenant_a)
    with schema_context("alpha"):
        old_token = default_token_generator.make_token(User.objects.get(email="boss@alpha.test"))
    connection.set_schema_to_public()
    with mock.patch("crm.accounts.emails.send_mail", side_effect=ConnectionRefusedError("mail server down")):
        response = platform_client.post(f"{CONSOLE}{tenant_a.pk}/resend-invitation/", follow=True)
    assert "could not be sent (mail server down)" in response.content.decode()
    assert _valid(tenant_a, "boss@alpha.test", old_token)
    assert not _events(tenant_a, editing.RESEND_EVENT)


# --- Usage ----------------------------------------------------------------------------------------


def _measure_day(tenant: Tenant, day=None) -> TenantUsage:
    connection.set_schema_to_public()
    return usage.tenant_usage_record(tenant_id=tenant.pk, day=day)


def test_usage_counts_each_company_in_its_own_schema(tenant_a, tenant_b, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    with schema_context("alpha"):
        customers = CustomerFactory.create_batch(3)
        OrderFactory.create_batch(2, customer=customers[0])
        CustomerFactory(deleted_at=timezone.now())  # in the bin: not counted
        User.objects.filter(email="manager@alpha.test").update(last_login=timezone.now())
        User.objects.filter(email="sales@alpha.test").update(last_login=timezone.now() - timedelta(days=45))
        users = User.objects.filter(is_active=True).count()
    (tmp_path / "alpha" / "imports").mkdir(parents=True)
    (tmp_path / "alpha" / "imports" / "a.csv").write_bytes(b"x" * 1500)
    (tmp_path / "beta").mkdir()
    (tmp_path / "beta" / "b.csv").write_bytes(b"y" * 99)

    alpha, beta = _measure_day(tenant_a), _measure_day(tenant_b)

    assert (alpha.users, alpha.customers, alpha.orders, alpha.files_bytes) == (users, 3, 2, 1500)
    assert alpha.active_users >= 1 and alpha.active_users < users
    assert alpha.database_bytes > 1_000_000 and alpha.storage_bytes == alpha.database_bytes + 1500
    assert alpha.last_activity_at is not None
    assert (beta.customers, beta.orders, beta.files_bytes) == (0, 0, 99)
    with schema_context("beta"):
        assert beta.users == User.objects.filter(is_active=True).count()
        assert beta.active_users == User.objects.filter(last_login__isnull=False).count()
    assert alpha.day == beta.day == timezone.now().date()


def test_usage_is_one_row_per_company_and_day(tenant_a):
    first = _measure_day(tenant_a)
    with schema_context("alpha"):
        CustomerFactory.create_batch(2)
    again = _measure_day(tenant_a)  # a re-run (or a redelivered task) the same day
    assert again.pk == first.pk and again.customers == first.customers + 2
    assert TenantUsage.objects.filter(tenant=tenant_a).count() == 1
    _measure_day(tenant_a, day=timezone.now().date() - timedelta(days=1))
    assert TenantUsage.objects.filter(tenant=tenant_a).count() == 2


def test_usage_skips_companies_that_are_not_active(tenant_a):
    Tenant.objects.filter(pk=tenant_a.pk).update(status=Tenant.Status.SUSPENDED)
    assert _measure_day(tenant_a) is None
    assert not TenantUsage.objects.filter(tenant=tenant_a).exists()


def test_big_tables_are_estimated_not_counted(tenant_a, monkeypatch):
    """Above EXACT_COUNT_BELOW rows the count is the planner's estimate of the table minus the binned
    rows, counted exactly. Rows deleted since the last ANALYZE still count in the estimate, which
    shows which path was taken."""
    with schema_context("alpha"):
        live = CustomerFactory.create_batch(6)
        CustomerFactory(deleted_at=timezone.now())
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE customers_customer")
        Customer.objects.filter(pk__in=[live[0].pk, live[1].pk]).delete()  # 4 live, 1 binned now
    connection.set_schema_to_public()

    def count() -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {selectors.row_count_sql('alpha', 'customers')}")
            return cursor.fetchone()[0]

    assert count() == 4  # small: exact
    monkeypatch.setattr(selectors, "EXACT_COUNT_BELOW", 1)
    assert count() == 6  # "big": 7 rows by the statistics, minus the 1 binned


def test_usage_task_is_an_upsert_that_acks_late(tenant_a):
    assert tenant_usage_task.acks_late and tenant_usage_all_tenants.acks_late
    connection.set_schema_to_public()
    day = timezone.now().date().isoformat()
    assert tenant_usage_task.apply(args=(tenant_a.pk, day)).get() is True
    assert tenant_usage_task.apply(args=(tenant_a.pk, day)).get() is True
    assert TenantUsage.objects.filter(tenant=tenant_a).count() == 1


def test_dispatcher_sends_one_task_per_active_company_and_drops_old_rows(tenant_a, tenant_b):
    Tenant.objects.filter(pk=tenant_b.pk).update(status=Tenant.Status.SUSPENDED)
    old = TenantUsage.objects.create(tenant=tenant_a, day=timezone.now().date() - timedelta(days=800))
    with mock.patch.object(tenant_usage_task, "delay") as delay:
        sent = tenant_usage_all_tenants()
    sent_ids = {call.args[0] for call in delay.call_args_list}
    assert tenant_a.pk in sent_ids and tenant_b.pk not in sent_ids and sent == len(sent_ids)
    assert not TenantUsage.objects.filter(pk=old.pk).exists()


def test_detail_page_shows_latest_figures_and_90_days_of_charts(platform_client, tenant_a, tenant_b):
    today = timezone.now().date()
    for back in (100, 30, 1):  # the first is outside the 90 days
        TenantUsage.objects.create(
            tenant=tenant_a, day=today - timedelta(days=back), users=4, customers=1000 - back, orders=5
        )
    TenantUsage.objects.create(
        tenant=tenant_a, day=today, users=4, customers=123456, database_bytes=5_000_000
    )
    TenantUsage.objects.create(tenant=tenant_b, day=today, users=9, customers=777)
    response = platform_client.get(f"{CONSOLE}{tenant_a.pk}/")
    html = response.content.decode()
    assert response.context["usage_latest"].customers == 123456
    assert 'data-figure="customers">123,456<' in html and "777" not in html
    chart = response.context["usage_chart"]
    assert chart["customers"] == [970, 999, 123456] and len(chart["times"]) == 3
    assert chart["times"][1] - chart["times"][0] == 29 * 86_400_000  # a real time axis
    assert 'id="tenant-usage-data"' in html and "js/charts.js" in html


def test_detail_page_without_usage_says_so(platform_client, tenant_b):
    html = platform_client.get(f"{CONSOLE}{tenant_b.pk}/").content.decode()
    assert 'data-testid="usage-empty"' in html and "js/charts.js" not in html


def test_list_shows_storage_and_a_summary_line(platform_client, tenant_a, tenant_b):
    today = timezone.now().date()
    TenantUsage.objects.create(tenant=tenant_a, day=today - timedelta(days=1), database_bytes=1, customers=1)
    TenantUsage.objects.create(
        tenant=tenant_a, day=today, database_bytes=3_000_000, files_bytes=145_728, customers=1200
    )
    TenantUsage.objects.create(tenant=tenant_b, day=today, database_bytes=2_000_000, customers=34)
    Tenant.objects.filter(pk=tenant_b.pk).update(status=Tenant.Status.SUSPENDED)
    response = platform_client.get(CONSOLE)
    rows = {row["tenant"].slug: row["tenant"] for row in response.context["rows"]}
    assert rows["alpha"].usage_storage_bytes == 3_145_728 and rows["beta"].usage_storage_bytes == 2_000_000
    html = response.content.decode()
    assert re.search(r'data-col="storage">\s*<span[^>]*>3\.0\xa0MB<', html)
    summary = response.context["summary"]
    assert (summary.active, summary.storage_bytes, summary.customers) == (
        summary.tenants - 1,
        5_145_728,
        1234,
    )
    assert "1,234 customers at the latest daily count" in html
    filtered = platform_client.get(CONSOLE + "?status=suspended").context["summary"]
    assert (filtered.tenants, filtered.active, filtered.storage_bytes) == (1, 0, 2_000_000)
