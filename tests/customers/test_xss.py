"""Text written by users (a company admin's custom-field help text, label and choices; the cells of an
uploaded file) is shown as text on every page that shows it, never run as HTML."""

import pytest
from django.urls import reverse

from crm.accounts.models import User
from customers.models import CustomFieldDefinition
from customers.services import customer_create
from tests.customers.test_import_services import upload

SCRIPT = "<script>alert('xss-help')</script>"
IMG = '<img src=x onerror="alert(1)">'
PAYLOAD = f"Help {SCRIPT} {IMG}"
# What must never appear in a page: the raw tags.
RAW = ("<script>alert(", "<img src=x", 'onerror="alert')


@pytest.fixture(autouse=True)
def english(tenant):
    User.objects.update(language="en")


def assert_escaped(html: str, where: str) -> None:
    for raw in RAW:
        assert raw not in html, f"{where}: {raw!r} reached the page unescaped"
    assert "&lt;script&gt;alert(" in html, f"{where}: the help text is not shown at all"


@pytest.fixture
def hostile_field(admin_client):
    """A custom field defined through the admin page with script in its help text, label and choices."""
    response = admin_client.post(
        reverse("customers:custom_fields"),
        {
            "key": "hostile",
            "label": f"Label {IMG}",
            "field_type": "choice",
            "choices": f"A\n{IMG}",
            "help_text": PAYLOAD[:200],
            "position": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    definition = CustomFieldDefinition.objects.get(key="hostile")
    assert definition.help_text == PAYLOAD[:200]
    return definition


def test_custom_field_help_text_is_escaped_on_the_customer_form_pages(
    admin_client, admin_user, hostile_field
):
    customer = customer_create(actor=admin_user, name="Target")
    edit = reverse("customers:edit", args=[customer.pk])
    pages = {
        "new customer": admin_client.get(reverse("customers:create")),
        "edit customer": admin_client.get(edit),
        "in-place edit": admin_client.get(edit, HTTP_HX_REQUEST="true"),
        # a bad submission renders the form again, with the help text and the errors
        "in-place edit with errors": admin_client.post(
            edit, {"name": "", "kind": "person", "gender": "unknown"}, HTTP_HX_REQUEST="true"
        ),
    }
    for where, response in pages.items():
        assert response.status_code == 200, where
        assert_escaped(response.content.decode(), where)


def test_custom_field_texts_are_escaped_on_the_admin_and_detail_pages(
    admin_client, admin_user, hostile_field
):
    customer = customer_create(actor=admin_user, name="Target")
    pages = {
        "custom field list": admin_client.get(reverse("customers:custom_fields")),
        "custom field edit": admin_client.get(
            reverse("customers:custom_field_edit", args=[hostile_field.pk])
        ),
        "customer detail": admin_client.get(reverse("customers:detail", args=[customer.pk])),
        "customer detail with its timeline": admin_client.get(
            reverse("customers:detail", args=[customer.pk]), {"timeline": "1"}
        ),
        "customer timeline": admin_client.get(reverse("customers:timeline", args=[customer.pk])),
        "customer list filters": admin_client.get(reverse("customers:list")),
    }
    for where, response in pages.items():
        assert response.status_code == 200, where
        html = response.content.decode()
        for raw in RAW:
            assert raw not in html, f"{where}: {raw!r} reached the page unescaped"


def test_cells_of_an_uploaded_file_are_escaped_on_the_mapping_page(tenant, manager_client, manager_user):
    job = upload(manager_user, f"name,email\n{IMG},{SCRIPT}\n")
    html = manager_client.get(reverse("customers:import_mapping", args=[job.pk])).content.decode()
    for raw in RAW:
        assert raw not in html, f"mapping page: {raw!r} reached the page unescaped"
    assert "&lt;img src=x" in html
