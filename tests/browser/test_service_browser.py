"""Browser: a manager opens a ticket, replies, waits on the customer and resolves it (desktop, English);
a sales agent takes and resolves a ticket on a phone-sized page in Chinese; a visitor uses the public
contact form on a phone. Screenshots of each step go to test-artifacts/service_*.png."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from crm.accounts.models import User
from interactions.service import services
from interactions.service.models import ServiceSettings, SlaPolicy, Status, Ticket, TicketCategory
from tests.browser.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.celery_worker]

WIDER_THAN_VIEWPORT = """(width) => Array.from(document.querySelectorAll('body *'))
    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
    .slice(0, 5)
    .map((el) => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))"""


def _fits(page, width: int) -> None:
    wide = page.evaluate(WIDER_THAN_VIEWPORT, width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, wide


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"service_{name}.png"), full_page=True)


def _desk(tenant):
    with schema_context(tenant.schema_name):
        ServiceSettings.objects.update_or_create(
            pk=1,
            defaults={
                "working_hours": {str(d): [["00:00", "24:00"]] for d in range(7)},
                "holiday_country": "",
            },
        )
        SlaPolicy.objects.create(priority="normal", first_response_minutes=60, resolution_minutes=480)
        SlaPolicy.objects.create(priority="high", first_response_minutes=30, resolution_minutes=240)
        TicketCategory.objects.create(name="Delivery 物流")


def test_manager_works_a_ticket_to_resolution_desktop_english(
    page, committed_tenant, login, tenant_url, django_db_blocker, sent_emails
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        _desk(tenant)
    connection.set_schema_to_public()
    login(page, tenant, f"manager@{tenant.slug}.test")
    page.goto(tenant_url(tenant, "/service/"))
    page.click("text=New ticket")
    page.fill("input[name=subject]", "Parcel not arrived")
    page.fill("textarea[name=description]", "Ordered a week ago <b>still nothing</b>")
    page.fill("input[name=email]", "Buyer@Example.com")
    page.fill("input[name=name]", "Zhou Min")
    page.select_option("select[name=priority]", "high")
    _shot(page, "create_desktop_en")
    page.click("#ticket-form button[type=submit]")
    page.wait_for_url("**/service/tickets/*/")
    expect(page.locator("[data-testid=ticket-subject]")).to_contain_text("Parcel not arrived")
    expect(page.locator("[data-testid=ticket-description]")).to_contain_text("<b>still nothing</b>")
    expect(page.locator('[data-clock="first_response"]')).to_have_attribute("data-state", "running")
    page.fill("textarea[name=reply-body]", "Sorry! We are checking with the courier.")
    page.click("[data-testid=reply-form] button[type=submit]")
    expect(page.locator('[data-clock="first_response"]')).to_have_attribute("data-state", "met")
    page.click("button[value=waiting]")
    expect(page.locator("[data-testid=ticket-status]")).to_have_text("Waiting on customer")
    expect(page.locator('[data-clock="resolution"]')).to_have_attribute("data-state", "paused")
    _shot(page, "ticket_waiting_desktop_en")
    page.click("[data-testid=resolve]")
    expect(page.locator("[data-testid=ticket-status]")).to_have_text("Resolved")
    _shot(page, "ticket_resolved_desktop_en")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        ticket = Ticket.objects.get(subject="Parcel not arrived")
        assert ticket.status == Status.RESOLVED and ticket.customer.email == "buyer@example.com"
        assert ticket.first_response_at is not None and ticket.resolution_seconds is not None
    connection.set_schema_to_public()
    page.goto(tenant_url(tenant, "/service/figures/"))
    expect(page.locator("[data-testid=service-figures]")).to_be_visible()
    _shot(page, "figures_desktop_en")


def test_sales_agent_takes_and_resolves_a_ticket_at_390px_in_chinese(
    browser, committed_tenant, tenant_url, login, django_db_blocker
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        _desk(tenant)
        with schema_context(tenant.schema_name):
            manager = User.objects.get(email=f"manager@{tenant.slug}.test")
            sales = User.objects.get(email=f"sales@{tenant.slug}.test")
            User.objects.filter(pk=sales.pk).update(language="zh-hans")
            team = services.team_save(
                actor=User.objects.get(email=f"admin@{tenant.slug}.test"),
                name="客服部",
                manager=manager,
                members=[sales],
            )
            ticket = services.ticket_open(
                actor=manager, subject="尺码不对想换货", email="wang@example.cn", name="王芳", team=team
            )
    connection.set_schema_to_public()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    phone.set_default_timeout(15_000)
    try:
        small = phone.new_page()
        login(small, tenant, f"sales@{tenant.slug}.test")
        small.goto(tenant_url(tenant, "/service/?queue=team"))
        expect(small.locator("html")).to_have_attribute("lang", "zh-hans")
        expect(small.locator(f'tr[data-ticket="{ticket.pk}"]')).to_be_visible()
        _fits(small, 390)
        _shot(small, "queue_390_zh")
        small.click(f'tr[data-ticket="{ticket.pk}"] a')
        small.click("[data-testid=assign-form] button[type=submit]")  # 由我处理
        expect(small.locator(".alert-success")).to_be_visible()
        small.fill("textarea[name=reply-body]", "您好，我们已为您安排换货。")
        small.click("[data-testid=reply-form] button[type=submit]")
        expect(small.locator('[data-message-kind="reply"]')).to_have_count(1)
        _fits(small, 390)
        _shot(small, "ticket_390_zh")
        small.click("[data-testid=resolve]")
        expect(small.locator("[data-testid=ticket-status]")).to_have_text("已解决")
        _shot(small, "ticket_resolved_390_zh")
    finally:
        phone.close()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        ticket.refresh_from_db()
        assert (ticket.status, ticket.assignee_id) == (Status.RESOLVED, sales.pk)
    connection.set_schema_to_public()


def test_contact_form_on_a_phone_in_chinese(
    browser, committed_tenant, tenant_url, django_db_blocker, sent_emails
):
    tenant = committed_tenant()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    phone.set_default_timeout(15_000)
    try:
        # a visitor who chose Chinese (on a phone the switch sits in the collapsed menu)
        phone.add_cookies([{"name": "crm_language", "value": "zh-hans", "url": tenant_url(tenant, "/")}])
        small = phone.new_page()
        small.goto(tenant_url(tenant, "/service/contact/"))
        expect(small.locator("html")).to_have_attribute("lang", "zh-hans")
        box = small.locator("input[name=website]").bounding_box()  # the honeypot: off-screen for people
        assert box is None or box["x"] + box["width"] <= 0
        small.fill("input[name=name]", "<script>alert(1)</script>李雷")
        small.fill("input[name=email]", "lilei@example.cn")
        small.fill("input[name=subject]", "发票")
        small.fill("textarea[name=message]", "请开具发票")
        _fits(small, 390)
        _shot(small, "contact_390_zh")
        small.click("[data-testid=contact-form] button[type=submit]")
        expect(small.locator("[data-testid=contact-thanks]")).to_be_visible()
        _shot(small, "contact_thanks_390_zh")
    finally:
        phone.close()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        ticket = Ticket.objects.get(subject="发票")
        assert ticket.customer.name == "<script>alert(1)</script>李雷" and ticket.channel == "web"
    connection.set_schema_to_public()
