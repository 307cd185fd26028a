"""Which language a page speaks (issue 15): anonymous pages follow the browser, signed-in pages the
user's choice, users without one the company's default; the pages the tenant middleware answers by
itself speak the company's language; provisioning does not pin the first admin to Chinese."""

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from crm.tenancy.forms import TenantCreateForm
from crm.tenancy.models import Tenant
from tests.conftest import tenant_host

ENGLISH_BROWSER = "en-GB,en;q=0.9"
CHINESE_BROWSER = "zh-CN,zh;q=0.9"


def _lang(response) -> str:
    return response.content.decode().split('<html lang="', 1)[1].split('"', 1)[0]


@pytest.fixture
def chinese_company(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(default_language="zh-hans")  # rolled back
    tenant.default_language = "zh-hans"
    return tenant


def test_anonymous_login_follows_the_browser_not_the_company(chinese_company):
    english = Client(HTTP_HOST=tenant_host(chinese_company), HTTP_ACCEPT_LANGUAGE=ENGLISH_BROWSER)
    assert _lang(english.get("/accounts/login/")) == "en"
    assert _lang(english.get("/accounts/password-reset/")) == "en"
    chinese = Client(HTTP_HOST=tenant_host(chinese_company), HTTP_ACCEPT_LANGUAGE=CHINESE_BROWSER)
    assert _lang(chinese.get("/accounts/login/")) == "zh-hans"


def test_anonymous_without_a_browser_language_gets_the_company_default(chinese_company):
    client = Client(HTTP_HOST=tenant_host(chinese_company))
    assert _lang(client.get("/accounts/login/")) == "zh-hans"


def test_the_switcher_cookie_beats_the_browser(chinese_company):
    client = Client(HTTP_HOST=tenant_host(chinese_company), HTTP_ACCEPT_LANGUAGE=ENGLISH_BROWSER)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    assert _lang(client.get("/accounts/login/")) == "zh-hans"


def test_signed_in_user_sees_their_choice_else_the_company_default(chinese_company, client_for, sales_user):
    sales_user.language = ""
    sales_user.save(update_fields=["language"])
    client = client_for(sales_user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = ENGLISH_BROWSER
    assert _lang(client.get("/")) == "zh-hans"  # a new user: the company's language
    sales_user.language = "en"
    sales_user.save(update_fields=["language"])
    assert _lang(client.get("/")) == "en"
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = CHINESE_BROWSER
    assert _lang(client.get("/")) == "en"  # the user's choice beats the browser


def test_console_login_follows_the_browser(db):
    public = Tenant.objects.get(schema_name="public")
    assert public.default_language == "zh-hans"  # what made the console Chinese for everybody
    connection.set_schema_to_public()
    client = Client(HTTP_HOST=settings.BASE_DOMAIN, HTTP_ACCEPT_LANGUAGE=ENGLISH_BROWSER)
    assert _lang(client.get("/accounts/login/")) == "en"
    client = Client(HTTP_HOST=settings.BASE_DOMAIN, HTTP_ACCEPT_LANGUAGE=CHINESE_BROWSER)
    assert _lang(client.get("/accounts/login/")) == "zh-hans"


@pytest.mark.parametrize("language, words", [("zh-hans", "已停用"), ("en", "is suspended")])
def test_suspended_page_speaks_the_company_language(tenant_b, language, words):
    Tenant.objects.filter(pk=tenant_b.pk).update(status=Tenant.Status.SUSPENDED, default_language=language)
    other = "en" if language == "zh-hans" else "zh-hans"
    client = Client(HTTP_HOST=tenant_host(tenant_b), HTTP_ACCEPT_LANGUAGE=other)
    response = client.get("/")
    assert response.status_code == 403
    assert _lang(response) == language
    assert words in response.content.decode()


def test_console_form_offers_the_operators_language(db):
    from django.utils import translation

    with translation.override("en"):
        assert TenantCreateForm().fields["default_language"].initial == "en"
    with translation.override("zh-hans"):
        assert TenantCreateForm().fields["default_language"].initial == "zh-hans"
