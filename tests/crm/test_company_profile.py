"""Issue 15: the company profile (name, time zone, currency, language, logo) on the tenant's settings."""

import io
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context
from PIL import Image

from crm.audit.models import AuditEvent
from crm.tenancy.models import Tenant
from crm.tenancy.profile import LOGO_MAX_BYTES, tenant_update_profile
from tests.conftest import ROLE_EMAILS

URL = "/accounts/settings/company/"


@pytest.fixture(autouse=True)
def clean_logo_folders():
    """Logo files are written to MEDIA_ROOT/<schema>/company/, outside the rolled-back transaction."""
    yield
    for schema in ("alpha", "beta"):
        shutil.rmtree(Path(settings.MEDIA_ROOT) / schema / "company", ignore_errors=True)


def _logo_files(schema: str = "alpha") -> list[str]:
    folder = Path(settings.MEDIA_ROOT) / schema / "company"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (800, 400), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "#2a6f97").save(out, format=fmt)
    return out.getvalue()


def upload(data: bytes, name: str = "logo.png", content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def profile_data(tenant: Tenant, **changes) -> dict:
    return {
        "name": tenant.name,
        "time_zone": tenant.time_zone,
        "currency": tenant.currency,
        "default_language": tenant.default_language,
        **changes,
    }


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height: what a decompression bomb looks like before decoding."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _fresh(tenant: Tenant) -> Tenant:
    return Tenant.objects.get(pk=tenant.pk)


# --- access ---------------------------------------------------------------------------------------


def test_only_the_tenant_admin_opens_the_company_profile(
    anon_client, admin_client, manager_client, sales_client
):
    response = anon_client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert sales_client.get(URL).status_code == 403
    assert manager_client.get(URL).status_code == 403
    assert sales_client.post(URL, {"name": "Taken over"}).status_code == 403
    assert manager_client.post(URL, {"name": "Taken over"}).status_code == 403
    assert _fresh(Tenant.objects.get(slug="alpha")).name != "Taken over"
    page = admin_client.get(URL)
    assert page.status_code == 200 and 'name="time_zone"' in page.content.decode()


# --- saving ---------------------------------------------------------------------------------------


def test_saving_changes_the_company_and_records_before_and_after(admin_client, admin_user, tenant, tenant_b):
    before_b = (tenant_b.name, tenant_b.time_zone, tenant_b.currency)
    response = admin_client.post(
        URL,
        profile_data(
            tenant,
            name="  Alpha   Trading  ",
            time_zone="Europe/London",
            currency="GBP",
            default_language="zh-hans",
        ),
    )
    assert response.status_code == 302
    changed = _fresh(tenant)
    assert (changed.name, changed.time_zone, changed.currency, changed.default_language) == (
        "Alpha Trading",
        "Europe/London",
        "GBP",
        "zh-hans",
    )
    event = AuditEvent.objects.get(action="tenant.profile_updated")
    assert event.actor == admin_user and event.target_id == str(tenant.pk)
    assert event.changes["time_zone"] == {"old": tenant.time_zone, "new": "Europe/London"}
    assert event.changes["currency"] == {"old": "CNY", "new": "GBP"}
    assert event.changes["name"]["new"] == "Alpha Trading"
    # the other company is untouched, and its own log knows nothing of it
    assert (_fresh(tenant_b).name, _fresh(tenant_b).time_zone, _fresh(tenant_b).currency) == before_b
    with schema_context(tenant_b.schema_name):
        assert not AuditEvent.objects.filter(action="tenant.profile_updated").exists()


def test_the_new_time_zone_applies_from_the_next_request(admin_client, tenant):
    admin_client.post(URL, profile_data(tenant, time_zone="America/New_York"))
    admin_client.get(reverse("accounts:settings"))
    # UserPreferencesMiddleware activated the company's zone for that request (the admin has none)
    assert timezone.get_current_timezone_name() == "America/New_York"


def test_saving_nothing_new_records_nothing(admin_client, tenant):
    assert admin_client.post(URL, profile_data(tenant)).status_code == 302
    assert not AuditEvent.objects.filter(action="tenant.profile_updated").exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "US/Pacific"}, "time_zone"),  # a deprecated alias is not offered either
        ({"currency": "XXX"}, "currency"),
        ({"default_language": "fr"}, "default_language"),
    ],
)
def test_bad_values_get_a_field_error_and_write_nothing(admin_client, tenant, changes, field):
    response = admin_client.post(URL, profile_data(tenant, **changes))
    assert response.status_code == 200
    assert response.context["form"].errors.get(field), response.context["form"].errors
    assert _fresh(tenant).name == tenant.name and _fresh(tenant).time_zone == tenant.time_zone
    assert not AuditEvent.objects.filter(action="tenant.profile_updated").exists()


def test_the_service_checks_the_rules_itself(admin_user, tenant):
    """The console will call the same service without this form: the rules are the service's."""
    with pytest.raises(ValidationError) as caught:
        tenant_update_profile(
            actor=admin_user,
            tenant=tenant,
            name="",
            time_zone="Nowhere",
            currency="XXX",
            default_language="xx",
        )
    assert set(caught.value.message_dict) == {"name", "time_zone", "currency", "default_language"}
    assert _fresh(tenant).name == tenant.name


# --- the logo ---------------------------------------------------------------------------------------


def test_a_logo_is_reencoded_stored_in_the_company_folder_and_served_as_png(
    admin_client, sales_client, anon_client, tenant, tenant_b, client_for
):
    jpeg = image_bytes("JPEG", (1600, 800))
    response = admin_client.post(
        URL, {**profile_data(tenant), "logo": upload(jpeg, "logo.jpg", "image/jpeg")}
    )
    assert response.status_code == 302
    stored = _fresh(tenant).logo
    assert stored.startswith("alpha/company/logo-") and stored.endswith(".png")
    assert _logo_files("alpha") == [stored.split("/")[-1]] and _logo_files("beta") == []
    event = AuditEvent.objects.get(action="tenant.profile_updated")
    assert event.changes["logo"] == {"old": None, "new": stored.split("/")[-1]}

    url = _fresh(tenant).logo_url
    served = sales_client.get(url)
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(b"".join(served.streaming_content)))
    assert image.format == "PNG" and max(image.size) == 512 and image.size == (512, 256)
    assert anon_client.get(url).status_code == 200  # the sign-in page shows it too
    # shown in the navigation bar's brand
    assert f'class="brand-logo" src="{url}"' in sales_client.get("/").content.decode()
    # another company's site does not serve it under the same address
    with schema_context(tenant_b.schema_name):
        from crm.accounts.models import User

        beta_admin = User.objects.get(email=ROLE_EMAILS["admin"].format(slug="beta"))
    assert client_for(beta_admin, tenant_b).get(url).status_code == 404
    connection.set_tenant(tenant)


def test_removing_the_logo(admin_user, tenant):
    tenant_update_profile(
        actor=admin_user, tenant=tenant, **_service_values(tenant), logo=upload(image_bytes())
    )
    assert tenant.logo
    tenant_update_profile(actor=admin_user, tenant=tenant, **_service_values(tenant), remove_logo=True)
    assert _fresh(tenant).logo == "" and tenant.logo_url == ""


def _service_values(tenant: Tenant) -> dict:
    return {
        "name": tenant.name,
        "time_zone": tenant.time_zone,
        "currency": tenant.currency,
        "default_language": tenant.default_language,
    }


def _gif() -> bytes:
    return image_bytes("GIF", (40, 40), "P")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG" + b"\0" * (LOGO_MAX_BYTES + 10), "at most 1 MB"),  # too big
        (_gif(), "PNG, JPEG or WebP"),  # a GIF renamed logo.png
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "PNG, JPEG or WebP"),
        (png_header_only(5000, 300), "at most 4096 × 4096 pixels"),  # refused before decoding pixels
        (png_header_only(60000, 60000), "at most 4096 × 4096 pixels"),  # a decompression bomb's header
        (image_bytes("PNG")[:120], "could not be read"),  # a valid header, then truncated
    ],
    ids=["too-big", "gif-named-png", "svg-named-png", "wide", "bomb", "truncated"],
)
def test_refused_logos_get_a_clear_field_error_and_write_nothing(admin_client, tenant, data, message):
    response = admin_client.post(
        URL, {**profile_data(tenant, name="Renamed with a bad logo"), "logo": upload(data, "logo.png")}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in " ".join(errors.get("logo", [])), errors
    assert _fresh(tenant).name == tenant.name and _fresh(tenant).logo == ""
    assert _logo_files("alpha") == []
    assert not AuditEvent.objects.filter(action="tenant.profile_updated").exists()


def test_a_failure_after_the_file_was_written_removes_it_again(admin_user, tenant, monkeypatch):
    import crm.tenancy.profile as profile

    def broken_audit(**kwargs):
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(profile, "audit_record", broken_audit)
    with pytest.raises(RuntimeError):
        tenant_update_profile(
            actor=admin_user, tenant=tenant, **_service_values(tenant), logo=upload(image_bytes())
        )
    assert _logo_files("alpha") == [] and _fresh(tenant).logo == ""


# --- caches that depend on the time zone ------------------------------------------------------------


def test_report_figures_cached_in_one_time_zone_are_not_served_in_another(tenant, manager_user, monkeypatch):
    from dashboards.caching import Report, cached
    from dashboards.reports import REPORTS

    computed = []

    def compute(user, params):
        computed.append(timezone.get_current_timezone_name())
        return len(computed)

    monkeypatch.setitem(REPORTS, "probe", Report(compute))
    with timezone.override("Asia/Shanghai"):
        assert cached("probe", manager_user, {}).value == 1
        assert cached("probe", manager_user, {}).value == 1
    with timezone.override("Europe/London"):
        assert cached("probe", manager_user, {}).value == 2
    assert computed == ["Asia/Shanghai", "Europe/London"]


def test_the_monthly_revenue_series_is_cached_per_time_zone(tenant, manager_user):
    from customers.selectors import monthly_revenue
    from tests.factories import OrderFactory

    # placed at 20:00 UTC on the last day of a month: the next month in Shanghai, this month in London
    placed = timezone.now().replace(day=1, hour=20, minute=0, second=0, microsecond=0) - timezone.timedelta(
        days=1
    )
    OrderFactory(placed_at=placed)
    with timezone.override("Asia/Shanghai"):
        shanghai = monthly_revenue(user=manager_user)
    with timezone.override("Europe/London"):
        london = monthly_revenue(user=manager_user)
    assert [row["month"] for row in shanghai] != [row["month"] for row in london]


def test_a_worker_reads_the_changed_profile_on_its_next_task(
    tenant, admin_user, django_capture_on_commit_callbacks
):
    """Workers cache tenant rows (CELERY_TASK_TENANT_CACHE_SECONDS); a profile change must not wait."""
    from crm.celery import app

    task = app.Task
    assert task.get_tenant_for_schema("alpha").time_zone == tenant.time_zone  # cached in this process
    with django_capture_on_commit_callbacks(execute=True):
        tenant_update_profile(
            actor=admin_user, tenant=tenant, **{**_service_values(tenant), "time_zone": "Europe/Paris"}
        )
    assert task.get_tenant_for_schema("alpha").time_zone == "Europe/Paris"
    assert task.get_tenant_for_schema("beta").schema_name == "beta"


def test_the_settings_page_lists_what_each_role_may_open(client_for, sales_user, manager_user, admin_user):
    """The settings registry offers an entry only to the roles it names: a manager sees Tags and
    nothing of the admin's (users, security, company profile); an admin sees all of them."""
    from crm.settings_registry import entries_for

    keys = {user.role: {entry["key"] for entry in entries_for(user)} for user in (manager_user, admin_user)}
    assert keys["manager"] == {"tags"}
    assert {"tags", "custom-fields"} < keys["admin"] and len(keys["admin"]) > len(keys["manager"]) + 2
    assert entries_for(sales_user) == []
    page = client_for(manager_user).get("/accounts/settings/").content.decode()
    assert "/customers/tags/" in page and URL not in page
