"""Browser: the pages of issue 15's "forms and flows" at desktop (1280 px) and phone (390 px) width, in
English and Chinese. Each page is checked for page-level horizontal overflow and a screenshot is kept
under test-artifacts/screens/ (looked at by a person; the test checks what a machine can).

Also a real flow: a manager merges a three-way duplicate in one step, keeping the other e-mail
addresses as secondary contacts, and undoes the whole group."""

from decimal import Decimal

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from crm.accounts.models import User
from customers.models import Customer, Order, SecondaryContact
from customers.services import customer_refresh_order_stats
from tests.browser.conftest import ARTIFACTS
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.browser

SCREENS = ARTIFACTS / "screens"
WIDTHS = {"desktop": 1280, "phone": 390}
LANGUAGES = ("en", "zh-hans")


def _trio(tenant, django_db_blocker):
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        customers = [
            CustomerFactory(
                name="欧阳思远",
                email=f"siyuan{i}@example.com",
                phone=f"+861380000000{i}",
                city="北京",
            )
            for i in range(3)
        ]
        for index, customer in enumerate(customers):
            for _ in range(index + 1):
                OrderFactory(customer=customer, total=Decimal("10.00"))
        customer_refresh_order_stats(customer_ids=[c.pk for c in customers])
    connection.set_schema_to_public()
    return customers


def _no_page_overflow(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url}: the page scrolls sideways by {overflow} px"


def _shoot(page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


def _set_language(tenant, email, language, django_db_blocker):
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        User.objects.filter(email=email).update(language=language)
    connection.set_schema_to_public()


def test_merge_pages_at_both_widths_in_both_languages(
    page, committed_tenant, login, tenant_url, django_db_blocker
):
    tenant = committed_tenant()
    trio = _trio(tenant, django_db_blocker)
    ids = ",".join(str(c.pk) for c in sorted(trio, key=lambda c: c.pk))
    email = f"manager@{tenant.slug}.test"
    login(page, tenant, email)
    pages = {
        "duplicates": "/customers/duplicates/",
        "merge": f"/customers/duplicates/merge/{trio[0].pk}/{trio[1].pk}/",
        "merge-group": f"/customers/duplicates/merge-group/?ids={ids}",
    }
    for language in LANGUAGES:
        _set_language(tenant, email, language, django_db_blocker)
        for width_name, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            for name, path in pages.items():
                page.goto(tenant_url(tenant, path))
                page.wait_for_load_state("networkidle")
                _no_page_overflow(page)
                _shoot(page, f"{name}-{width_name}-{language}")


def test_manager_merges_three_duplicates_in_one_step_and_undoes_the_group(
    page, committed_tenant, login, tenant_url, django_db_blocker
):
    tenant = committed_tenant()
    trio = _trio(tenant, django_db_blocker)
    _set_language(tenant, f"manager@{tenant.slug}.test", "en", django_db_blocker)
    login(page, tenant, f"manager@{tenant.slug}.test")
    page.goto(tenant_url(tenant, "/customers/duplicates/"))
    group = page.locator("#duplicate-groups [data-group]")
    assert group.count() == 1
    group.locator("a.btn").click()
    page.locator("#merge-group-table").wait_for()
    # the one with most orders is offered to stay
    assert page.locator(f'input[name="survivor"][value="{trio[2].pk}"]').is_checked()
    page.click("#merge-group-submit")
    page.wait_for_url(f"**/merge-group/{trio[2].pk}/undo/")
    assert page.locator("#merge-group-merged li").count() == 2
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        assert Order.objects.filter(customer_id=trio[2].pk).count() == 6
        assert set(SecondaryContact.objects.values_list("value", flat=True)) == {
            "siyuan0@example.com",
            "siyuan1@example.com",
            "+8613800000000",
            "+8613800000001",
        }
    connection.set_schema_to_public()

    page.click("#merge-group-undo")
    page.wait_for_url(f"**/customers/{trio[2].pk}/")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        assert [Order.objects.filter(customer_id=c.pk).count() for c in trio] == [1, 2, 3]
        assert not Customer.objects.filter(deleted_at__isnull=False).exists()
        assert not SecondaryContact.objects.exists()
    connection.set_schema_to_public()
