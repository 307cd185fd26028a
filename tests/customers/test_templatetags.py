from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone, translation

from crm.templatetags.crm_format import localdate, localdt, money, number
from customers.templatetags.customer_tags import cf_display, history_value, phone_display


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_money_uses_the_tenant_currency_and_groups_thousands(tenant, language):
    with translation.override(language):
        assert money(Decimal("1340978")) == "¥1,340,978.00"  # alpha's currency is CNY
        assert money("-12.5", "USD") == "-$12.50"
        assert money(1234, "JPY") == "¥1,234"
        assert money(None) == "" and money("abc") == "abc"
        assert number(1234567) == "1,234,567"


def test_localdt_renders_in_the_active_time_zone():
    moment = datetime(2026, 1, 1, 16, 30, tzinfo=UTC)
    with timezone.override(ZoneInfo("Asia/Shanghai")):
        assert localdt(moment) == "2026-01-02 00:30"
        assert localdate(moment) == "2026-01-02"
    assert localdt(date(2026, 3, 1)) == "2026-03-01" and localdt(None) == ""


def test_a_phone_is_shown_for_each_tenants_own_region(tenant_a, tenant_b):
    """The formatted numbers are kept per region: a London company sees its own numbers nationally and a
    Shanghai one's internationally, whichever tenant formatted the number first in this process."""
    from django.db import connection

    tenant_b.time_zone = "Europe/London"
    shown = {}
    for tenant in (tenant_a, tenant_b, tenant_a):
        connection.set_tenant(tenant)
        shown.setdefault(tenant.slug, []).append(
            (phone_display("+8613800138000"), phone_display("+442079460958"))
        )
    assert shown["alpha"] == [("138 0013 8000", "+44 20 7946 0958")] * 2
    assert shown["beta"] == [("+86 138 0013 8000", "020 7946 0958")]
    assert phone_display("+86" + "1" * 60) == "+86" + "1" * 60  # too long to be a stored number: as it is


def test_customer_display_filters(tenant):
    assert phone_display("+8613800138000") == "138 0013 8000"
    assert phone_display("+442079460958") == "+44 20 7946 0958"
    assert cf_display(["a", "b"]) == "a, b" and cf_display(True) == "Yes" and cf_display(None) == ""
    assert (
        history_value(None) == "—" and history_value(False) == "No" and history_value("x" * 200).endswith("…")
    )
