"""Browser: Settings (issue 15) -- the settings page built from the apps' entries, the company profile
with a logo that shows in the navigation bar, and tag management (rename, merge, recycle bin and
restore), at desktop (1280 px) and phone (390 px) width in English and Chinese. Every page is checked
for page-level horizontal overflow and kept as a screenshot under test-artifacts/screens/."""

import io

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from PIL import Image

from crm.accounts.models import User
from crm.tenancy.models import Tenant
from customers.models import Customer, Tag
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_forms_flows_screens import _no_page_overflow
from tests.factories import CustomerFactory

pytestmark = pytest.mark.browser

SCREENS = ARTIFACTS / "screens"
WIDTHS = {"desktop": 1280, "phone": 390}
LANGUAGES = ("en", "zh-hans")


def _shoot(page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"settings-{name}.png"), full_page=True)


def _set_language(tenant, email, language, django_db_blocker):
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        User.objects.filter(email=email).update(language=language)
    connection.set_schema_to_public()


def _logo_file(tmp_path):
    out = io.BytesIO()
    image = Image.new("RGB", (600, 300), "#0b5394")
    for x in range(150, 450):
        for y in range(100, 200):
            image.putpixel((x, y), (255, 200, 0))
    image.save(out, format="JPEG")
    path = tmp_path / "logo.jpg"
    path.write_bytes(out.getvalue())
    return path


def _tags_world(tenant, django_db_blocker):
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        names = ("VIP", "Wholesale", "茶友", "Lapsed", "V.I.P.", "长期合作伙伴（华东区重点客户）")
        tags = {
            name: Tag.objects.create(name=name, color=color)
            for name, color in zip(
                names, ("warning", "primary", "success", "secondary", "danger", "info"), strict=True
            )
        }
        for index in range(8):
            customer = CustomerFactory(name=f"Tagged {index}")
            customer.tags.add(tags["VIP"] if index % 2 else tags["V.I.P."], tags["茶友"])
        CustomerFactory(name="Both").tags.add(tags["VIP"], tags["V.I.P."])
        CustomerFactory(name="Lapsed one").tags.add(tags["Lapsed"])
    connection.set_schema_to_public()
    return tags


def test_admin_sets_the_company_profile_and_logo_and_sees_it_in_the_navbar(
    page, committed_tenant, login, tenant_url, django_db_blocker, tmp_path
):
    tenant = committed_tenant()
    email = f"admin@{tenant.slug}.test"
    _set_language(tenant, email, "en", django_db_blocker)
    login(page, tenant, email)
    page.goto(tenant_url(tenant, "/accounts/settings/"))
    entries = page.locator(".settings-index a").evaluate_all("els => els.map(e => e.dataset.testid)")
    assert entries == [
        "settings-company",
        "settings-users",
        "settings-security",
        "settings-custom-fields",
        "settings-tags",
        "settings-interaction-outcomes",
        "settings-followup-rules",
        "settings-audit",
    ]
    page.click("[data-testid=settings-company]")
    page.fill("#id_name", "Harbour Tea House")
    page.select_option("#id_currency", "HKD")
    page.set_input_files("#id_logo", str(_logo_file(tmp_path)))
    page.click("[data-testid=company-profile-form] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator(".alert-success").count() == 1
    logo = page.locator(".navbar .brand-logo")
    assert logo.count() == 1
    assert logo.evaluate("img => img.complete && img.naturalWidth") == 512  # re-encoded at most 512 px
    assert "Harbour Tea House" in page.locator(".navbar .brand-name").get_attribute("title")
    with django_db_blocker.unblock():
        saved = Tenant.objects.get(pk=tenant.pk)
    assert (saved.name, saved.currency) == ("Harbour Tea House", "HKD") and saved.logo

    # a refused file: the error at the field, nothing changed
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"GIF89a" + b"\0" * 200)
    page.fill("#id_name", "Should not be saved")
    page.set_input_files("#id_logo", str(bad))
    page.click("[data-testid=company-profile-form] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert (
        "PNG, JPEG or WebP"
        in page.locator("#id_logo ~ .invalid-feedback, .invalid-feedback").first.inner_text()
    )
    with django_db_blocker.unblock():
        assert Tenant.objects.get(pk=tenant.pk).name == "Harbour Tea House"

    for language in LANGUAGES:
        _set_language(tenant, email, language, django_db_blocker)
        for width_name, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            for name, path in (("index", "/accounts/settings/"), ("company", "/accounts/settings/company/")):
                page.goto(tenant_url(tenant, path))
                page.wait_for_load_state("networkidle")
                _no_page_overflow(page)
                if width_name == "phone":  # the logo and the name leave the menu button on the same line
                    brand = page.locator("nav.navbar .navbar-brand").bounding_box()
                    toggler = page.locator("nav.navbar .navbar-toggler").bounding_box()
                    assert toggler["y"] < brand["y"] + brand["height"], (brand, toggler)
                _shoot(page, f"{name}-{width_name}-{language}")


def test_manager_renames_merges_bins_and_restores_tags(
    page, committed_tenant, login, tenant_url, django_db_blocker
):
    tenant = committed_tenant()
    tags = _tags_world(tenant, django_db_blocker)
    email = f"manager@{tenant.slug}.test"
    _set_language(tenant, email, "en", django_db_blocker)
    login(page, tenant, email)
    page.goto(tenant_url(tenant, "/accounts/settings/"))
    assert page.locator(".settings-index a").evaluate_all("els => els.map(e => e.dataset.testid)") == [
        "settings-tags"
    ]
    page.click("[data-testid=settings-tags]")
    row = page.locator(f'tr[data-tag="{tags["茶友"].pk}"]')
    assert row.locator("[data-testid=tag-count]").inner_text() == "8"

    # merge "V.I.P." into "VIP": 5 customers had it, one of them had both
    page.goto(tenant_url(tenant, f"/customers/tags/{tags['V.I.P.'].pk}/"))
    page.select_option("#id_target", str(tags["VIP"].pk))
    page.click("[data-testid=tag-merge-form] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "4 customers moved, 1 already had it" in page.locator(".alert-success").inner_text()
    assert page.locator(f'tr[data-tag="{tags["VIP"].pk}"] [data-testid=tag-count]').inner_text() == "9"

    # a rename that clashes (any case) is refused at the field
    page.goto(tenant_url(tenant, f"/customers/tags/{tags['Wholesale'].pk}/"))
    page.fill("#id_name", "  vip ")
    page.click("[data-testid=tag-edit-form] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "already exists" in page.locator(".invalid-feedback").first.inner_text()

    # the bin: the tag leaves the list and comes back with its customer
    page.goto(tenant_url(tenant, f"/customers/tags/{tags['Lapsed'].pk}/"))
    page.click("[data-testid=tag-delete-form] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator(f'tr[data-tag="{tags["Lapsed"].pk}"]').count() == 0
    page.goto(tenant_url(tenant, "/customers/bin/"))
    binned = page.locator(f'#bin-tags-table tr[data-tag="{tags["Lapsed"].pk}"]')
    assert binned.count() == 1
    for language in LANGUAGES:
        _set_language(tenant, email, language, django_db_blocker)
        for width_name, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            for name, path in (
                ("tags", "/customers/tags/"),
                ("tag-edit", f"/customers/tags/{tags['长期合作伙伴（华东区重点客户）'].pk}/"),
                ("bin", "/customers/bin/"),
            ):
                page.goto(tenant_url(tenant, path))
                page.wait_for_load_state("networkidle")
                _no_page_overflow(page)
                _shoot(page, f"{name}-{width_name}-{language}")
    _set_language(tenant, email, "en", django_db_blocker)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(tenant_url(tenant, "/customers/bin/"))
    page.locator(f'#bin-tags-table tr[data-tag="{tags["Lapsed"].pk}"] button[type=submit]').click()
    page.wait_for_load_state("networkidle")
    assert page.locator(f'tr[data-tag="{tags["Lapsed"].pk}"]').count() == 1
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        assert Customer.objects.get(name="Lapsed one").tags.filter(name="Lapsed").exists()
    connection.set_schema_to_public()
