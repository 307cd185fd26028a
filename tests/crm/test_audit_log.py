"""The audit log speaks the reader's language (issue 15): translated event names, the forms' field
labels, formatted values in the viewer's time zone, and filters by user, customer, event and days."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone, translation

from crm.audit.labels import display_value, event_codes, event_name, field_label
from crm.audit.models import AuditEvent
from crm.audit.services import audit_record
from customers.forms import CustomerForm
from customers.services import customer_update
from tests.factories import CustomerFactory

AUDIT = "/accounts/settings/audit/"
REPO = Path(__file__).resolve().parents[2]


def _page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_every_event_the_code_records_has_a_translated_name():
    """A new `audit_record(action="x.y")` without a name in its app's audit_names.py fails here."""
    literal = re.compile(
        r'(?:action\s*=\s*|_ACTION\s*=\s*|else\s+|if\s+\w+\s+else\s+)"([a-z_]+\.[a-z_]+)"'
        r'|"([a-z_]+\.[a-z_]+)"\s+if\s'
    )
    found = set()
    for path in REPO.rglob("*.py"):
        parts = path.relative_to(REPO).parts
        if parts[0] in {".venv", "tests", "static"} or "migrations" in parts:
            continue
        for match in literal.finditer(path.read_text(encoding="utf-8")):
            found.add(match[1] or match[2])
    found -= {"store_true"}
    assert len(found) > 90
    missing = sorted(found - set(event_codes()))
    assert missing == []
    # Codes made from a status: every status has its name.
    from interactions.service.models import Status
    from segmentation.models import ChurnAlert

    assert {f"ticket.{s}" for s in Status.values} <= set(event_codes())
    assert {f"segmentation.alert_{s}" for s in ChurnAlert.Status.values} <= set(event_codes())


@pytest.mark.parametrize(
    "language, merged, ack",
    [("en", "Customers merged", "Churn alert acknowledged"), ("zh-hans", "客户已合并", "已确认流失预警")],
)
def test_event_names_are_translated(language, merged, ack):
    with translation.override(language):
        assert event_name("customer.merged") == merged
        assert event_name("segmentation.alert_acknowledged") == ack
        assert event_name("something.old_event") == "Something: old event"  # never the bare code


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_field_labels_are_the_forms_labels(tenant, sales_user, language):
    with translation.override(language):
        form = CustomerForm(user=sales_user)
        for name in ("occupation", "phone", "tags", "birthday", "email_consent"):
            assert field_label("customers.customer", name) == str(form.fields[name].label), name
        assert (
            field_label("customers.customer", "occupation")
            == {"en": "Occupation", "zh-hans": "职业"}[language]
        )
        assert (
            field_label("customers.customer", "deleted_at")
            == {"en": "Deleted", "zh-hans": "删除时间"}[language]
        )


@pytest.mark.parametrize(
    "language, yes, listed, dicted",
    [
        ("en", "Yes", "a, b", "Survivor before: Yes; Count: 1,200"),
        ("zh-hans", "是", "a, b", "Survivor before: 是; 数量: 1,200"),
    ],
)
def test_values_are_formatted_not_python(language, yes, listed, dicted):
    with translation.override(language), timezone.override(timezone.get_fixed_timezone(480)):
        assert display_value(True) == yes
        assert display_value(None) == "—"
        assert display_value(["a", "b"]) == listed
        assert display_value({"survivor_before": True, "count": 1200}) == dicted
        assert display_value("2026-12-03T19:10:00+00:00") == "2026-12-04 03:10"  # viewer's zone, not UTC
        assert display_value("1980-08-10") == "1980-08-10"
        assert display_value(200000) == "200,000"


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_audit_page_shows_names_labels_and_values(admin_client, admin_user, language):
    customer = CustomerFactory(name="Zhou Occupied")
    customer_update(
        actor=admin_user, customer=customer, data={"occupation": "Teacher", "email_consent": True}
    )
    audit_record(actor=admin_user, action="segmentation.alert_acknowledged", target=customer, changes={})
    admin_user.language = language
    admin_user.save(update_fields=["language"])
    page = _page(admin_client.get(AUDIT))
    expected = {
        "en": ["Customer edited", "Occupation", "Churn alert acknowledged", "Email consent", "No → Yes"],
        "zh-hans": ["客户已编辑", "职业", "已确认流失预警", "否 → 是"],
    }[language]
    for words in expected:
        assert words in page, words
    assert "True" not in page and "occupation</span>" not in page


def test_audit_filters_by_event_user_customer_and_days(admin_client, admin_user, manager_user):
    alice = CustomerFactory(name="Alice Filterable")
    bob = CustomerFactory(name="Bob Other")
    audit_record(
        actor=admin_user, action="customer.tagged", target=alice, changes={"tags": {"old": [], "new": ["x"]}}
    )
    audit_record(actor=manager_user, action="customer.untagged", target=bob, changes={})
    old = audit_record(actor=manager_user, action="customer.tagged", target=bob, changes={})
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    def shown(query):
        response = admin_client.get(AUDIT + query)
        assert response.status_code == 200
        return [
            (e.action, e.target_label)
            for e in response.context["events"]
            if e.target_type == "customers.customer"
        ]

    assert shown("?event=customer.tagged") == [
        ("customer.tagged", "Bob Other"),
        ("customer.tagged", "Alice Filterable"),
    ]
    assert shown(f"?user={manager_user.pk}") == [
        ("customer.tagged", "Bob Other"),
        ("customer.untagged", "Bob Other"),
    ]
    assert shown("?customer=alice") == [("customer.tagged", "Alice Filterable")]
    today = timezone.localdate()
    assert shown(f"?date_from={today - timedelta(days=7)}&date_to={today}&customer=bob") == [
        ("customer.untagged", "Bob Other")
    ]
    # The event filter offers translated names, not codes.
    page = admin_client.get(AUDIT).content.decode()
    assert '<option value="customer.merged">Customers merged</option>' in page


@pytest.mark.parametrize(
    "query, message",
    [
        ("?date_from=2026-05-01&date_to=2026-04-01", "The end date is before the start date."),
        ("?date_from=2020-01-01&date_to=2026-01-01", "Choose at most a year at a time."),
        ("?date_from=1000-01-01", "Enter a date between 2000 and 2100."),
        ("?event=no.such_event", "Select a valid choice."),
        ("?customer=" + "x" * 101, "Ensure this value has at most 100 characters"),
        ("?user=99999999999999999999999", "Select a valid choice."),
    ],
)
def test_bad_filters_get_a_message_and_no_events(admin_client, admin_user, query, message):
    audit_record(actor=admin_user, action="user.profile_updated", target=admin_user, changes={})
    response = admin_client.get(AUDIT + query)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert response.context["events"] == []


def test_audit_log_shows_only_this_companys_events(client_for, tenant_b, admin_user):
    from django_tenants.utils import schema_context

    from crm.accounts.models import User

    audit_record(
        actor=admin_user, action="user.profile_updated", target=admin_user, label="alpha-only-marker"
    )
    with schema_context(tenant_b.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
        audit_record(
            actor=beta_admin, action="user.profile_updated", target=beta_admin, label="beta-only-marker"
        )
    alpha = client_for(admin_user).get(AUDIT).content.decode()
    assert "alpha-only-marker" in alpha and "beta-only-marker" not in alpha
    with schema_context(tenant_b.schema_name):
        beta_client = client_for(beta_admin, tenant_b)
        beta = beta_client.get(AUDIT).content.decode()
    assert "beta-only-marker" in beta and "alpha-only-marker" not in beta
    connection.set_tenant(tenant_b)  # leave as found by fixtures


def test_audit_dates_in_viewer_zone(admin_client, admin_user):
    event = audit_record(actor=admin_user, action="user.profile_updated", target=admin_user, changes={})
    AuditEvent.objects.filter(pk=event.pk).update(created_at=datetime(2026, 12, 3, 19, 10, tzinfo=UTC))
    admin_user.time_zone = "Asia/Shanghai"
    admin_user.save(update_fields=["time_zone"])
    page = admin_client.get(AUDIT + "?date_from=2026-12-04&date_to=2026-12-04").content.decode()
    assert "2026-12-04 03:10" in page


@pytest.mark.parametrize(
    "language, label, name",
    [("en", "Occupation", "Churn alert acknowledged"), ("zh-hans", "职业", "已确认流失预警")],
)
def test_customer_history_uses_the_form_labels_and_event_names(admin_user, language, label, name):
    from customers.selectors import customer_history

    customer = CustomerFactory(name="History Person")
    customer_update(actor=admin_user, customer=customer, data={"occupation": "Chef", "language": "zh-hans"})
    audit_record(actor=admin_user, action="segmentation.alert_acknowledged", target=customer, changes={})
    with translation.override(language):
        entries = customer_history(customer=customer)
        labels = [change.label for entry in entries for change in entry.changes]
        titles = [entry.action_label for entry in entries]
        values = [change.new for entry in entries for change in entry.changes]
    assert label in labels and "occupation" not in labels
    assert name in titles and "segmentation.alert_acknowledged" not in titles
    assert {"en": "Simplified Chinese", "zh-hans": "简体中文"}[language] in values and "zh-hans" not in values


def test_history_tab_reloads_and_speaks_plain_chinese(client_for, sales_user):
    customer = CustomerFactory(owner=sales_user, name="Reloaded")
    customer_update(actor=sales_user, customer=customer, data={"occupation": "Chef"})
    sales_user.language = "zh-hans"
    sales_user.save(update_fields=["language"])
    client = client_for(sales_user)
    detail = client.get(f"/customers/{customer.pk}/").content.decode()
    panel = detail.split('id="history-panel"', 1)[1][:300]
    assert 'hx-trigger="intersect once, customer-updated from:body"' in panel
    page = client.get(f"/customers/{customer.pk}/history/").content.decode()
    assert "职业" in page and "Chef" in page
    assert "新值" in page and "旧值" in page and "新客户" not in page  # not the lifecycle stage "New"
