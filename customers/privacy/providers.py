"""What the customers app itself holds about a person: the customer record, tags, custom fields,
consents, orders with their lines and refunds, and behaviour events."""

from __future__ import annotations

from django.db.models import Model
from django.utils.translation import gettext_lazy as _

from crm.audit.models import AuditEvent
from customers.models import BehaviourEvent, Customer, Order, OrderLine, Refund, SecondaryContact
from customers.registry import PersonalDataProvider, registry

PROFILE_FIELDS = (
    "kind", "name", "email", "phone", "country", "province", "city", "street", "postcode", "birthday",
    "gender", "income_band", "occupation", "source", "email_consent", "email_consent_at", "sms_consent",
    "sms_consent_at", "external_id", "custom_fields", "created_at", "updated_at", "deleted_at",
)  # fmt: skip
# What an erased customer keeps: a neutral name; every other personal field is blanked.
ERASED_VALUES = {
    "email": "", "phone": "", "country": "", "province": "", "city": "", "street": "", "postcode": "",
    "birthday": None, "gender": Customer.Gender.UNKNOWN, "income_band": "", "occupation": "",
    "external_id": "", "custom_fields": {}, "search_text": "", "search_han_grams": [], "search_inner_han": [],
    "email_consent": False,
    "email_consent_at": None, "sms_consent": False, "sms_consent_at": None,
}  # fmt: skip


def _json(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Model):
        return value.pk
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)


def _row(obj, fields) -> dict:
    return {field: _json(getattr(obj, field)) for field in fields}


IDENTITY_FIELDS = ("name", "email", "phone", "street", "external_id", "postcode", "occupation")


def _earlier_values(customer: Customer) -> list[str]:
    """Values the person had before (an old e-mail, a former address), from the customer's history."""
    values: list[str] = []
    events = AuditEvent.objects.filter(target_type=Customer._meta.label_lower, target_id=str(customer.pk))
    for changes in events.values_list("changes", flat=True):
        for field, change in (changes or {}).items():
            if field in IDENTITY_FIELDS or field.startswith("custom_fields"):
                olds = change.values() if isinstance(change, dict) else [change]
                values += [value for value in olds if isinstance(value, str)]
    return values


def personal_values(customer: Customer) -> list[str]:
    """The strings that identify the person, now and before: searched for and replaced in the audit
    log and job records."""
    values = [getattr(customer, field) for field in IDENTITY_FIELDS]
    values += [str(v) for v in (customer.custom_fields or {}).values() if isinstance(v, str)]
    values += _earlier_values(customer)
    values += list(SecondaryContact.objects.filter(customer=customer).values_list("value", flat=True))
    if customer.phone.startswith("+86"):
        values.append(customer.phone[3:])  # also as typed without the country code
    return [value for value in dict.fromkeys(v.strip() for v in values if v) if len(value) >= 3]


def export_customer(customer: Customer) -> dict:
    orders = list(Order.objects.filter(customer=customer).order_by("placed_at", "pk"))
    order_ids = [order.pk for order in orders]
    lines: dict[int, list] = {}
    for line in OrderLine.objects.filter(order_id__in=order_ids).order_by("pk"):
        lines.setdefault(line.order_id, []).append(
            {"product": line.product_name, **_row(line, [f.name for f in OrderLine._meta.concrete_fields
                                                         if f.name not in ("id", "order", "product_name")])}
        )  # fmt: skip
    refunds: dict[int, list] = {}
    for refund in Refund.objects.filter(order_id__in=order_ids).order_by("refunded_at", "pk"):
        refunds.setdefault(refund.order_id, []).append(_row(refund, ("amount", "reason", "refunded_at")))
    return {
        "profile": {"id": customer.pk, **_row(customer, PROFILE_FIELDS)},
        "owner": customer.owner.get_full_name() if customer.owner_id else None,
        "tags": sorted(customer.tags.values_list("name", flat=True)),
        "secondary_contacts": [
            _row(contact, ("kind", "value", "created_at")) for contact in customer.secondary_contacts.all()
        ],
        "orders": [
            {
                **_row(
                    order, ("number", "placed_at", "status", "channel", "currency", "total", "refunded_total")
                ),
                "lines": lines.get(order.pk, []),
                "refunds": refunds.get(order.pk, []),
            }
            for order in orders
        ],
        "events": [
            _row(event, ("event_type", "occurred_at", "properties"))
            for event in BehaviourEvent.objects.filter(customer=customer).order_by("occurred_at", "pk")
        ],
    }


def erase_customer_activity(customer: Customer, actor) -> dict:
    """Behaviour events go (they describe the person, not a sale); refund reasons are blanked (free
    text); orders, their lines and amounts stay for the books, attached to the anonymous customer."""
    events, _details = BehaviourEvent.objects.filter(customer=customer).delete()
    reasons = Refund.objects.filter(order__customer=customer).exclude(reason="").update(reason="")
    contacts, _details = SecondaryContact.objects.filter(customer=customer).delete()
    return {
        "events_deleted": events,
        "secondary_contacts_deleted": contacts,
        "refund_reasons_blanked": reasons,
        "orders_kept": customer.orders.count(),
    }


def register() -> None:
    registry.add_personal_data(
        PersonalDataProvider(
            key="customers",
            label=_("Customer record, orders and activity"),
            export=export_customer,
            erase=erase_customer_activity,
            order=10,
        )
    )
