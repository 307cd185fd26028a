"""The customers app's own timeline providers: orders, refunds and the customer's history (edits,
deletions, restores, merges). Other apps register theirs the same way in their AppConfig.ready().

Provider contract (see customers.registry): called as
`provider(customer=customer, before=datetime | None, limit=int)` and returns at most `limit`
TimelineEntry objects OLDER than `before` (all when None), newest first, in one or two queries.
"""

from django.urls import reverse
from django.utils.translation import gettext as _

from crm.audit.models import AuditEvent
from crm.templatetags.crm_format import money

from .labels import action_title, custom_field_definitions, field_label
from .models import Customer, Order, Refund
from .registry import TimelineEntry


def _money(amount, currency: str) -> str:
    return money(amount, currency)


def orders_provider(*, customer: Customer, before=None, limit: int = 20):
    qs = Order.objects.filter(customer=customer)
    if before is not None:
        qs = qs.filter(placed_at__lt=before)
    url = reverse("customers:detail", args=[customer.pk])
    for order in qs.order_by("-placed_at", "-id")[:limit]:
        yield TimelineEntry(
            when=order.placed_at,
            kind="order",
            title=_("Order %(number)s") % {"number": order.number},
            detail=" · ".join(
                [_money(order.total, order.currency), order.get_status_display(), order.get_channel_display()]
            ),
            icon="bag",
            url=f"{url}#order-{order.pk}",
        )


def refunds_provider(*, customer: Customer, before=None, limit: int = 20):
    qs = Refund.objects.filter(order__customer=customer).select_related("order", "created_by")
    if before is not None:
        qs = qs.filter(refunded_at__lt=before)
    for refund in qs.order_by("-refunded_at", "-id")[:limit]:
        detail = _money(refund.amount, refund.order.currency)
        if refund.reason:
            detail = f"{detail} · {refund.reason}"
        yield TimelineEntry(
            when=refund.refunded_at,
            kind="refund",
            title=_("Refund on order %(number)s") % {"number": refund.order.number},
            detail=detail,
            icon="arrow-return-left",
            actor=refund.created_by.get_full_name() if refund.created_by else "",
        )


def _short(value) -> str:
    if value in (None, "", []):
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def history_provider(*, customer: Customer, before=None, limit: int = 20):
    qs = AuditEvent.objects.filter(target_type=Customer._meta.label_lower, target_id=str(customer.pk))
    if before is not None:
        qs = qs.filter(created_at__lt=before)
    definitions = None
    for event in qs.order_by("-created_at", "-id")[:limit]:
        title, icon = action_title(event.action)
        detail = ""
        if event.action in ("customer.updated", "customer.tagged", "customer.untagged", "customer.shared"):
            if definitions is None:
                definitions = custom_field_definitions()
            parts = []
            for name, change in sorted((event.changes or {}).items()):
                if isinstance(change, dict):
                    label = field_label(name, definitions)
                    parts.append(f"{label}: {_short(change.get('old'))} → {_short(change.get('new'))}")
            detail = "; ".join(parts[:6]) + ("; …" if len(parts) > 6 else "")
        yield TimelineEntry(
            when=event.created_at,
            kind="edit" if event.action == "customer.updated" else event.action.split(".")[-1],
            title=str(title),
            detail=detail,
            icon=icon,
            actor=event.actor_label,
        )
