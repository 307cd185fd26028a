"""Browser: a manager works the alerts queue (most at stake first, tap-to-call, bulk acknowledge) and
reads on the lifecycle page how far to trust the alerts; at desktop width and 390 px, in English and
Chinese. Screenshots go to test-artifacts/alerts_*.png."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import User
from customers.models import Customer
from segmentation.evaluation import alert_evaluation_simulated
from segmentation.models import ChurnAlert, CustomerScore
from segmentation.services import alert_create
from tests.browser.conftest import ARTIFACTS
from tests.factories import CustomerFactory

pytestmark = pytest.mark.browser

WIDER_THAN_VIEWPORT = "document.documentElement.scrollWidth"


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"alerts_{name}.png"), full_page=True)


def _seed(tenant, django_db_blocker) -> dict[str, int]:
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        sales = User.objects.get(email=f"sales@{tenant.slug}.test")
        now = timezone.now()
        ids = {}
        for name, clv, days, stage in (
            ("王芳 Wang Fang", "1800.00", 75, "at_risk"),
            ("李娜 Li Na", "640.00", 120, "at_risk"),
            ("Chen Jie", "95.50", 400, "churned"),
        ):
            customer = CustomerFactory(name=name, owner=sales)
            Customer.objects.filter(pk=customer.pk).update(last_order_at=now - timedelta(days=days))
            CustomerScore.objects.create(
                customer=customer,
                predicted_clv=Decimal(clv),
                lifecycle_stage=stage,
                rfm_segment="at_risk",
                stage_since=now,
                computed_at=now,
            )
            ids[name] = alert_create(customer=customer, reason="entered_at_risk").pk
        alert_evaluation_simulated(seed=7, customers=2000)
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
    return ids


def test_manager_works_the_queue_and_reads_the_evaluation(
    browser, page, committed_tenant, login, tenant_url, django_db_blocker
):
    tenant = committed_tenant()
    ids = _seed(tenant, django_db_blocker)
    email = f"manager@{tenant.slug}.test"
    login(page, tenant, email)
    page.goto(tenant_url(tenant, "/segments/alerts/"))
    rows = page.locator("[data-testid=alert-list] tbody tr")
    assert rows.count() == 3
    order = rows.evaluate_all("rows => rows.map(r => Number(r.dataset.alertId))")
    assert order == [ids["王芳 Wang Fang"], ids["李娜 Li Na"], ids["Chen Jie"]]  # most at stake first
    assert page.locator("[data-testid=call]:visible").count() == 3  # tap to call
    _shot(page, "queue_desktop_en")

    page.check(f"#alert-{ids['李娜 Li Na']} input[name=alert]")
    page.check(f"#alert-{ids['Chen Jie']} input[name=alert]")
    page.click("[data-testid=bulk-acknowledge]")
    page.get_by_text("2 alerts acknowledged.").wait_for()
    assert page.locator("[data-testid=alert-list] tbody tr").count() == 1
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        assert ChurnAlert.objects.filter(status="acknowledged").count() == 2
    with django_db_blocker.unblock():
        connection.set_schema_to_public()

    page.goto(tenant_url(tenant, "/segments/lifecycle/"))
    evaluation = page.locator("[data-testid=alert-evaluation]")
    assert "did better than the simple rule" in evaluation.inner_text()
    _shot(page, "lifecycle_desktop_en")

    # Chinese, at 390 px (a phone)
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        User.objects.filter(email=email).update(language="zh-hans")
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    try:
        small = phone.new_page()
        login(small, tenant, email)
        small.goto(tenant_url(tenant, "/segments/alerts/?status=all"))
        assert small.locator("[data-testid=alert-list] tbody tr").count() == 3
        assert small.evaluate(WIDER_THAN_VIEWPORT) <= 390
        assert small.locator("[data-testid=call-small]:visible").count() == 3  # the number under the name
        _shot(small, "queue_390px_zh")
        small.goto(tenant_url(tenant, "/segments/lifecycle/"))
        assert "简单规则" in small.locator("[data-testid=alert-evaluation]").inner_text()
        assert small.evaluate(WIDER_THAN_VIEWPORT) <= 390
        _shot(small, "lifecycle_390px_zh")
    finally:
        phone.close()
