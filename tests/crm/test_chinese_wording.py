"""Chinese wording (issue 15): full-width brackets in the Chinese catalogue; time-zone pickers offer
common zones by city in the reader's language and refuse deprecated names; demo content is seeded in
the company's language."""

import re
import zoneinfo
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from crm.accounts.forms import ProfileForm
from crm.accounts.services import user_update_profile
from crm.tenancy.forms import TenantCreateForm
from crm.timezones import COMMON_ZONES, is_deprecated, time_zone_choices, validate_time_zone
from tests.crm.test_i18n import parse_po

PO = Path(__file__).resolve().parents[2] / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
CJK = re.compile(r"[\u3400-\u9fff]")
PLACEHOLDER = re.compile(r"%\(\w+\)[-+ #0]*\d*(?:\.\d+)?[sdfr]|%[sd]|\{\w*\}")


def test_chinese_text_uses_full_width_brackets():
    halfwidth = []
    for entry in parse_po(PO.read_text(encoding="utf-8")):
        for text in entry["msgstr"].values():
            if CJK.search(text) and re.search(r"[()]", PLACEHOLDER.sub("", text)):
                halfwidth.append(text)
    assert halfwidth == []


def test_common_zones_are_current_iana_names():
    assert 60 <= len(COMMON_ZONES) <= 100
    for zone in COMMON_ZONES:
        assert zone in zoneinfo.available_timezones() and not is_deprecated(zone), zone


@pytest.mark.parametrize(
    "name", ["US/Eastern", "Asia/Calcutta", "Asia/Chongqing", "PRC", "Etc/GMT+8", "Mars/Base"]
)
def test_deprecated_or_unknown_zones_are_refused(name):
    with pytest.raises(ValidationError):
        validate_time_zone(name)


def test_the_picker_lists_cities_in_the_readers_language_with_offsets():
    with translation.override("zh-hans"):
        labels = dict(time_zone_choices())
        assert labels["Asia/Shanghai"] == "(UTC+08:00) 北京、上海、深圳、重庆"
    with translation.override("en"):
        labels = dict(time_zone_choices())
        assert labels["Asia/Shanghai"] == "(UTC+08:00) Beijing, Shanghai, Shenzhen, Chongqing"
    assert len(labels) == len(COMMON_ZONES)
    assert "Asia/Chongqing" not in labels and "US/Eastern" not in labels
    # A saved, valid but uncommon zone stays on offer.
    assert "Europe/Vilnius" in dict(time_zone_choices(current="Europe/Vilnius"))


def test_profile_and_console_forms_offer_the_curated_list(tenant, sales_user):
    form = ProfileForm(initial={"time_zone": ""})
    values = [value for value, _label in form.fields["time_zone"].choices]
    assert values[0] == "" and "Asia/Shanghai" in values and "US/Eastern" not in values
    assert form.fields["time_zone"].widget.attrs["data-searchable"] == "true"
    assert not ProfileForm({"time_zone": "Asia/Chongqing", "language": ""}).is_valid()
    assert "US/Eastern" not in dict(TenantCreateForm().fields["time_zone"].choices)


def test_services_refuse_a_deprecated_zone(tenant, sales_user):
    with pytest.raises(ValidationError) as error:
        user_update_profile(actor=sales_user, user=sales_user, full_name="x", language="", time_zone="PRC")
    assert "time_zone" in error.value.message_dict
    sales_user.refresh_from_db()
    assert sales_user.time_zone != "PRC" and sales_user.full_name != "x"


@pytest.mark.parametrize(
    "language, tag, field, segment",
    [
        ("en", "Wholesale", "Preferred store", "High value slipping away"),
        ("zh-hans", "批发", "常去门店", "正在流失的高价值客户"),
    ],
)
def test_demo_names_are_seeded_in_the_company_language(tenant, language, tag, field, segment):
    from django.utils.translation import gettext

    from customers.demo import _ensure_custom_fields, _ensure_tags
    from customers.models import CustomFieldDefinition, Tag
    from interactions.service.demo import CATEGORIES as SERVICE_CATEGORIES
    from loyalty.demo import DEMO_TIERS as LOYALTY_TIERS
    from segmentation.demo import DEMO_SEGMENTS

    with translation.override(language):
        _ensure_tags()
        _ensure_custom_fields()
        names = [gettext(name) for name, _description, _rules in DEMO_SEGMENTS]
        tier = gettext(LOYALTY_TIERS[2][0])
        category = gettext(SERVICE_CATEGORIES[0])
    assert Tag.objects.filter(name=tag).exists()
    assert CustomFieldDefinition.objects.filter(label=field).exists()
    assert segment in names
    assert (tier, category) == {"en": ("Gold", "Delivery"), "zh-hans": ("金卡", "物流")}[language]


@pytest.mark.parametrize("language, name", [("en", "United States"), ("zh-hans", "美国")])
def test_countries_show_by_name(client_for, sales_user, language, name):
    from customers.forms import CustomerForm
    from tests.factories import CustomerFactory

    customer = CustomerFactory(owner=sales_user, country="US", city="Boston")
    sales_user.language = language
    sales_user.save(update_fields=["language"])
    page = client_for(sales_user).get(f"/customers/{customer.pk}/").content.decode()
    assert f" · {name}</dd>" in page and " · US</dd>" not in page
    with translation.override(language):
        choices = dict(CustomerForm(user=sales_user, customer=customer).fields["country"].choices)
    assert choices["US"] == name
