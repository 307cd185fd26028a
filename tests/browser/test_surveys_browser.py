"""Browser: a customer answers a survey from the e-mailed link on a phone (390 px), in English and in
Chinese (the invitation's language); the link then says it was answered. A manager reads the reports
(1280 px, English) and a sales rep on a phone in Chinese. Screenshots go to
test-artifacts/surveys_*.png."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from crm.accounts.models import User
from interactions.surveys import services
from interactions.surveys.models import SurveyInvitation, SurveyResponse, SurveyTemplate
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_service_browser import _fits
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.celery_worker]


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"surveys_{name}.png"), full_page=True)


def _invitation(tenant, *, kind: str, language: str, owner_email: str, key: str = "") -> tuple[int, str]:
    with schema_context(tenant.schema_name):
        owner = User.objects.get(email=owner_email)
        customer = CustomerFactory(
            owner=owner, email=f"{kind}-{language}{key}@survey.test", name="Lin Yue 林悦"
        )
        invitation = services._invite(
            template=SurveyTemplate.objects.get(kind=kind),
            customer=customer,
            source="bulk",
            source_key=f"bulk:browser:{kind}:{language}:{key}",
        )
        SurveyInvitation.objects.filter(pk=invitation.pk).update(language=language)
        return invitation.pk, services.invitation_token(invitation)


@pytest.mark.parametrize(
    ("language", "kind", "score", "question", "thanks", "answered"),
    [
        ("en", "nps", "3", "How likely are you to recommend us", "Thank you!", "Already answered"),
        ("zh-hans", "csat", "5", "您对我们处理您的请求的方式满意吗", "谢谢！", "已经回答过了"),
    ],
)
def test_a_customer_answers_a_survey_on_a_phone(
    browser,
    committed_tenant,
    tenant_url,
    django_db_blocker,
    language,
    kind,
    score,
    question,
    thanks,
    answered,
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        invitation_id, token = _invitation(
            tenant, kind=kind, language=language, owner_email=f"sales@{tenant.slug}.test"
        )
    connection.set_schema_to_public()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.set_default_timeout(15_000)
    try:
        small = phone.new_page()
        link = tenant_url(tenant, f"/surveys/answer/{token}/")
        small.goto(link)
        expect(small.locator("html")).to_have_attribute("lang", language)
        expect(small.locator("[data-testid=survey-question]")).to_contain_text(question)
        _fits(small, 390)
        _shot(small, f"answer_390_{language}")
        small.click("[data-testid=survey-submit]")  # no score chosen: a field error, nothing written
        expect(small.locator("[data-testid=score-error]")).to_be_visible()
        small.click(f"[data-testid=score-{score}]")
        small.fill("textarea[name=comment]", "<script>alert(1)</script> 送货太慢")
        small.click("[data-testid=survey-submit]")
        expect(small.locator("[data-testid=survey-thanks]")).to_contain_text(thanks)
        _fits(small, 390)
        _shot(small, f"thanks_390_{language}")
        small.goto(link)
        expect(small.locator("[data-testid=survey-answered]")).to_contain_text(answered)
        _shot(small, f"answered_390_{language}")
    finally:
        phone.close()
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        response = SurveyResponse.objects.get(invitation_id=invitation_id)
        assert (response.score, response.comment) == (int(score), "<script>alert(1)</script> 送货太慢")
    connection.set_schema_to_public()


def test_reports_on_a_desktop_in_english_and_a_phone_in_chinese(
    page, browser, committed_tenant, login, tenant_url, django_db_blocker
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        for i, (kind, score) in enumerate([("nps", 10), ("nps", 9), ("nps", 4), ("csat", 5), ("csat", 2)]):
            invitation_id, _token = _invitation(
                tenant, kind=kind, language="en", owner_email=f"sales@{tenant.slug}.test", key=str(i)
            )
            with schema_context(tenant.schema_name):
                invitation = SurveyInvitation.objects.get(pk=invitation_id)
                services.response_submit(invitation=invitation, score=score, comment=f"<i>comment</i> {i}")
    connection.set_schema_to_public()
    login(page, tenant, f"manager@{tenant.slug}.test")
    page.goto(tenant_url(tenant, "/surveys/"))
    expect(page.locator("[data-testid=nps-total]")).to_contain_text("33")  # (2 - 1) / 3
    expect(page.locator("[data-testid=comments]")).to_contain_text("<i>comment</i>")
    _shot(page, "reports_1280_en")
    page.click("[data-testid=detractors-link]")
    expect(page.locator("[data-testid=response-row]")).to_have_count(2)
    _shot(page, "detractors_1280_en")

    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        User.objects.filter(email=f"sales@{tenant.slug}.test").update(language="zh-hans")
    connection.set_schema_to_public()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    phone.set_default_timeout(15_000)
    try:
        small = phone.new_page()
        login(small, tenant, f"sales@{tenant.slug}.test")
        small.goto(tenant_url(tenant, "/surveys/"))
        expect(small.locator("html")).to_have_attribute("lang", "zh-hans")
        expect(small.locator("[data-testid=survey-figures]")).to_contain_text("回复率")
        _fits(small, 390)
        _shot(small, "reports_390_zh")
    finally:
        phone.close()
