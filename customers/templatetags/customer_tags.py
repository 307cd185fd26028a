"""Small display helpers for customer pages.

{% load customer_tags %}
{{ customer.phone|phone_display }}       -> 138 0013 8000 (national for the tenant's region)
{{ customer.phone|phone_link }}          -> the same as a tap-to-call tel: link (every phone shown on a page)
{{ value|cf_display }}                   -> a custom field value as text (lists joined, yes/no)
{% column_value customer column %}       -> the cell of a column registered by another app
{% customer_row customer columns actions %} -> one row of the customer list (its cells and row actions)
{{ value|history_value }}                -> an audit old/new value as short text
"""

from datetime import date
from decimal import Decimal

from django import template
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext

from crm.audit.labels import display_value
from crm.templatetags.crm_format import localdate, money, number
from customers import custom_fields as cf
from customers.countries import country_name
from customers.phone import format_phone

register = template.Library()


@register.filter
def country_display(code: str) -> str:
    """A country code as its name in the reader's language ("CN" -> "China" / "中国")."""
    return country_name(code)


@register.filter
def phone_display(value: str) -> str:
    return format_phone(value or "")


def phone_link_html(value: str) -> str:
    """A phone number as a tap-to-call link: the href keeps only + and digits (E.164 as stored, or
    what a requester typed), the text is the number formatted for reading, never broken across lines."""
    if not value:
        return ""
    dial = "".join(ch for ch in str(value) if ch.isdigit() or ch == "+")
    if not dial.strip("+"):
        return format_html("{}", value)
    shown = format_phone(str(value))
    return format_html('<a href="tel:{}" class="text-nowrap" data-phone>{}</a>', dial, shown)


@register.filter
def phone_link(value: str) -> str:
    return phone_link_html(value)


@register.filter
def cf_display(value) -> str:
    return cf.display_value(None, value)


@register.simple_tag
def column_value(customer, column):
    """Value of a registered ListColumn for one row; an error shows as an empty cell, not a 500."""
    registered = column.get("registered") if isinstance(column, dict) else column
    if registered is None:
        return ""
    try:
        value = registered.value(customer)
    except Exception:  # noqa: BLE001 - another app's column must not break the list
        return ""
    return "" if value is None else value


@register.filter
def history_value(value) -> str:
    """A History value as the audit log writes it (Yes/No, lists, dates in the viewer's zone)."""
    text = display_value(value)
    return text if len(text) <= 120 else text[:119] + "…"


@register.filter
def get_item(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None


def _cell(customer, column) -> str:
    key = column["key"]
    if key == "email":
        return format_html('<td class="small">{}</td>', customer.email)
    if key == "phone":
        return format_html('<td class="small text-nowrap">{}</td>', phone_link_html(customer.phone))
    if key == "city":
        return format_html('<td class="small">{}</td>', customer.city)
    if key == "owner":
        if customer.owner_id:
            return format_html('<td class="small text-nowrap">{}</td>', customer.owner.get_full_name())
        return mark_safe('<td class="small"><span class="text-body-secondary">—</span></td>')  # noqa: S308
    if key == "tags":
        badges = format_html_join(
            "",
            '<span class="badge text-bg-{} me-1">{}</span>',
            ((tag.color or "secondary", tag.name) for tag in customer.tags.all()),
        )
        return format_html('<td class="cell-wide">{}</td>', badges)
    if key == "source":
        return format_html('<td class="small">{}</td>', customer.get_source_display())
    if key == "orders":
        return format_html('<td class="text-end">{}</td>', number(customer.orders_count))
    if key == "total_spent":
        return format_html('<td class="text-end text-nowrap">{}</td>', money(customer.total_spent))
    if key == "last_order":
        return format_html('<td class="small text-nowrap">{}</td>', localdate(customer.last_order_at))
    if key == "created":
        return format_html('<td class="small text-nowrap">{}</td>', localdate(customer.created_at))
    value = column_value(customer, column)
    # Another app's column: a day or a time is formatted like every date of the list and never wraps
    # ("2026-09-" / "16"); a count is grouped and right-aligned like Orders.
    if isinstance(value, date):
        return format_html('<td class="small text-nowrap">{}</td>', localdate(value))
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return format_html('<td class="text-end text-nowrap">{}</td>', number(value))
    return format_html('<td class="small">{}</td>', value)


def customer_cells(customer, columns):
    """The optional cells of one list row, built in Python: a template if/elif chain per cell costs
    more than the database does for the whole page. Every value is escaped by format_html."""
    return mark_safe("".join(_cell(customer, column) for column in columns))  # noqa: S308 - parts escaped


@register.simple_tag
def customer_row(customer, columns, actions):
    """One row of the customer list: the checkbox, the name linked to the 360 page, the optional cells
    and the row actions. Built in Python like the cells: the template's nodes per row cost more than
    the page's queries."""
    company = (
        format_html(' <i class="bi bi-building text-body-secondary" title="{}"></i>', gettext("Company"))
        if customer.kind == "company"
        else ""
    )
    return format_html(
        '<tr data-customer="{}"><td><input class="form-check-input" type="checkbox" name="ids" '
        'value="{}" form="bulk-form" aria-label="{} {}"></td>'
        '<td><a href="{}" class="fw-semibold">{}</a>{}</td>{}{}</tr>',
        customer.pk,
        customer.pk,
        gettext("Select"),
        customer.name,
        reverse("customers:detail", args=[customer.pk]),
        customer.name,
        company,
        customer_cells(customer, columns),
        row_actions_cell(customer, actions) if actions else "",
    )


def row_actions_cell(customer, actions):
    """The registered row actions (customers.registry.RowAction) of one list row, as one cell. A
    dialog action loads its page into the shared htmx dialog; its href is the page without JS."""
    links = []
    for action in actions:
        try:
            url = action.url(customer)
        except Exception:  # noqa: BLE001 - another app's action must not break the list
            continue
        label = f"{action.label}: {customer.name}"
        if action.dialog:
            links.append(
                format_html(
                    '<a class="btn btn-sm btn-outline-secondary py-0" href="{}" hx-get="{}" '
                    'hx-target="#app-dialog-content" data-row-action="{}" title="{}" aria-label="{}">'
                    '<i class="bi bi-{}"></i></a>',
                    url,
                    url,
                    action.key,
                    action.label,
                    label,
                    action.icon,
                )
            )
        else:
            links.append(
                format_html(
                    '<a class="btn btn-sm btn-outline-secondary py-0" href="{}" data-row-action="{}" '
                    'title="{}" aria-label="{}"><i class="bi bi-{}"></i></a>',
                    url,
                    action.key,
                    action.label,
                    label,
                    action.icon,
                )
            )
    return format_html(
        '<td class="text-end text-nowrap">{}</td>', format_html_join(" ", "{}", ((link,) for link in links))
    )
