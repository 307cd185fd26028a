"""Browser: a sales rep completes a follow-up on My day in place (htmx), at desktop width and at 390 px,
in English and in Chinese; the page fits the phone's width. Screenshots go to test-artifacts/."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import User
from interactions.followups.models import FollowUp
from tests.browser.conftest import ARTIFACTS
from tests.factories import CustomerFactory

pytestmark = pytest.mark.browser

WIDER_THAN_VIEWPORT = """(width) => Array.from(document.querySelectorAll('body *'))
    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
    .slice(0, 5)
    .map((el) => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))"""


@pytest.mark.parametrize(
    "width, language",
    [(1280, "en"), (390, "en"), (1280, "zh-hans"), (390, "zh-hans")],
)
def test_complete_a_follow_up_on_my_day(
    browser, committed_tenant, tenant_url, login, django_db_blocker, width, language
):
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        sales = User.objects.get(email=f"sales@{tenant.slug}.test")
        User.objects.filter(pk=sales.pk).update(language=language)
        customer = CustomerFactory(owner=sales, name="王芳 Wang Fang")
        now = timezone.now()
        overdue = FollowUp.objects.create(
            customer=customer,
            assignee=sales,
            due_at=now - timedelta(hours=30),
            title="回电确认报价 Call back",
        )
        FollowUp.objects.create(
            customer=CustomerFactory(owner=sales, name="Li Lei 李雷"),
            assignee=sales,
            due_at=now + timedelta(minutes=30),
            title="Invite to the spring tasting",
        )
    with django_db_blocker.unblock():
        connection.set_schema_to_public()

    context = browser.new_context(
        viewport={"width": width, "height": 900}, locale="en-US", is_mobile=width < 500
    )
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        login(page, tenant, sales.email)
        page.goto(tenant_url(tenant, "/my-day/"))
        row = page.locator(f"#followup-{overdue.pk}")
        row.wait_for()
        heading = "今日待办" if language == "zh-hans" else "My day"
        assert page.locator("h1").first.inner_text().startswith(heading)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, page.evaluate(
            WIDER_THAN_VIEWPORT, width
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"my_day_{language}_{width}.png"), full_page=True)

        row.locator('[data-testid="complete"]').click()
        page.locator(f'#followup-{overdue.pk}[data-status="done"]').wait_for()
        assert page.locator(f'#followup-{overdue.pk} [data-testid="complete"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / f"my_day_done_{language}_{width}.png"), full_page=True)
    finally:
        context.close()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        done = FollowUp.objects.get(pk=overdue.pk)
        assert (done.status, done.completed_by_id) == ("done", sales.pk)
    with django_db_blocker.unblock():
        connection.set_schema_to_public()


SAVE = {"en": "Save", "zh-hans": "保存"}


@pytest.mark.parametrize("width, language", [(1280, "en"), (390, "zh-hans")])
def test_log_the_call_from_my_day_completes_the_follow_up(
    browser, committed_tenant, tenant_url, login, django_db_blocker, width, language
):
    """ "Log the call" opens the interaction dialog in place; saving it with "mark the follow-up done"
    (ticked by default) logs the call and swaps the row to done, without leaving My day."""
    from interactions.models import Interaction

    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        sales = User.objects.get(email=f"sales@{tenant.slug}.test")
        User.objects.filter(pk=sales.pk).update(language=language)
        customer = CustomerFactory(owner=sales, name="张伟 Zhang Wei")
        followup = FollowUp.objects.create(
            customer=customer,
            assignee=sales,
            due_at=timezone.now() - timedelta(hours=3),
            title="回访 Call back",
        )
    with django_db_blocker.unblock():
        connection.set_schema_to_public()

    context = browser.new_context(
        viewport={"width": width, "height": 900}, locale="en-US", is_mobile=width < 500
    )
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        login(page, tenant, sales.email)
        page.goto(tenant_url(tenant, "/my-day/"))
        row = page.locator(f"#followup-{followup.pk}")
        row.locator('[data-testid="log-call"]').click()
        dialog = page.locator("#app-dialog")
        dialog.locator("#interaction-log-form").wait_for()
        assert page.url.endswith("/my-day/")  # still on My day: the dialog opened in place
        assert dialog.locator('[data-testid="complete-followup"] input[type="checkbox"]').is_checked()
        dialog.locator('input[name="subject"]').fill("确认报价 Quote confirmed")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"my_day_log_call_{language}_{width}.png"), full_page=True)
        dialog.get_by_role("button", name=SAVE[language]).click()
        page.locator(f'#followup-{followup.pk}[data-status="done"]').wait_for()
        page.locator("#app-dialog.show").wait_for(state="detached")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(ARTIFACTS / f"my_day_logged_{language}_{width}.png"), full_page=True)
    finally:
        context.close()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        assert FollowUp.objects.get(pk=followup.pk).status == "done"
        call = Interaction.objects.get(customer=customer)
        assert (call.subject, call.author_id) == ("确认报价 Quote confirmed", sales.pk)
    with django_db_blocker.unblock():
        connection.set_schema_to_public()


def test_snooze_in_place(browser, committed_tenant, tenant_url, login, django_db_blocker):
    """Snooze, a button of the row's first form, posts the hours chosen in the same form (htmx) and
    swaps the row in place."""
    tenant = committed_tenant()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        sales = User.objects.get(email=f"sales@{tenant.slug}.test")
        followup = FollowUp.objects.create(
            customer=CustomerFactory(owner=sales, name="Snooze Me"),
            assignee=sales,
            due_at=timezone.now() - timedelta(hours=1),
            title="Snooze this",
        )
        before = followup.due_at
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        login(page, tenant, sales.email)
        page.goto(tenant_url(tenant, "/my-day/"))
        row = page.locator(f"#followup-{followup.pk}")
        row.locator("select[name=hours]").select_option("24")
        row.locator('[data-testid="snooze"]').click()
        page.locator(f"#followup-{followup.pk}", has_text="snoozed 1 time").wait_for()
        assert page.url.endswith("/my-day/")
    finally:
        context.close()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        snoozed = FollowUp.objects.get(pk=followup.pk)
        assert snoozed.snooze_count == 1 and snoozed.status == "open" and snoozed.due_at > before
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
