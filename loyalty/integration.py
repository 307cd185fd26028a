"""What loyalty contributes to the customer pages and to segment rules.

Registered from `LoyaltyConfig.ready()`:
- list filters: tier, points balance range, member since (joins on the indexed member table);
- list columns: tier, points balance, member since (`prepare` adds select_related: no N+1);
- the "Loyalty" panel on the customer page (balance, tier, progress, expiring soon, last entries);
- timeline entries: points entries and tier changes;
- the merge hook (ledgers join, tier re-evaluated; undo moves exactly those rows back);
- segment rule fields: tier, points balance (`segmentation.rules.register_rule_field`);
- following customer changes: a new or refunded order, an import or a merge queues the earning sweep.
"""

from __future__ import annotations

from django import forms
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from crm.numbers import BoundedIntegerField
from customers.registry import DetailPanel, ListColumn, ListFilter, MergeHook, TimelineEntry, registry

from .models import Member, PointsEntry, Tier


def _member(customer) -> Member | None:
    try:
        return customer.loyalty_member
    except Member.DoesNotExist:
        return None


# --------------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------------
class TierChoiceField(forms.ChoiceField):
    """The tenant's tiers, read when the form is built; "none" finds customers who are not members."""

    def __init__(self, **kwargs):
        super().__init__(choices=self._choices, **kwargs)

    @staticmethod
    def _choices():
        return [("", _t("Any tier")), ("none", _t("Not a member"))] + [
            (str(pk), name) for pk, name in Tier.objects.order_by("rank").values_list("pk", "name")
        ]


def _apply_tier(qs, value, user):
    if value == "none":
        return qs.filter(loyalty_member__isnull=True)
    return qs.filter(loyalty_member__tier_id=int(value))


def _points_field(label):
    return lambda: BoundedIntegerField(label=label, min_value=0, max_value=2_000_000_000, required=False)


FILTERS = [
    ListFilter(
        key="tier",
        label=_("Tier"),
        form_field=lambda: TierChoiceField(label=_("Tier"), required=False),
        apply=_apply_tier,
        order=70,
    ),
    ListFilter(
        key="points_min",
        label=_("Points from"),
        form_field=_points_field(_("Points from")),
        apply=lambda qs, value, user: qs.filter(loyalty_member__balance__gte=value),
        order=71,
    ),
    ListFilter(
        key="points_max",
        label=_("Points up to"),
        form_field=_points_field(_("Points up to")),
        apply=lambda qs, value, user: qs.filter(loyalty_member__balance__lte=value),
        order=72,
    ),
    ListFilter(
        key="member_since",
        label=_("Member since"),
        form_field=lambda: forms.DateField(
            label=_("Member since"), required=False, widget=forms.DateInput(attrs={"type": "date"})
        ),
        apply=lambda qs, value, user: qs.filter(loyalty_member__joined_at__date__gte=value),
        order=73,
    ),
]


# --------------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------------
def _with_member(qs):
    return qs.select_related("loyalty_member__tier")


def _tier_cell(customer):
    member = _member(customer)
    return member.tier.name if member and member.tier_id else None


def _points_cell(customer):
    member = _member(customer)
    return member.balance if member else None


def _member_since_cell(customer):
    member = _member(customer)
    return timezone.localdate(member.joined_at) if member else None


COLUMNS = [
    ListColumn("tier", _("Tier"), _with_member, _tier_cell, "loyalty_member__tier__rank", False, 70),
    ListColumn("points", _("Points"), _with_member, _points_cell, "loyalty_member__balance", False, 71),
    ListColumn(
        "member_since",
        _("Member since"),
        _with_member,
        _member_since_cell,
        "loyalty_member__joined_at",
        False,
        72,
    ),
]


# --------------------------------------------------------------------------------------------------
# Panel
# --------------------------------------------------------------------------------------------------
def _panel_context(customer, user, page) -> dict:
    from .selectors import member_statement, member_summary, programme_or_none

    programme = page.once("loyalty.programme", programme_or_none)
    member = _member(customer)  # cached on the customer: the rewards and referrals panels reuse it
    if member is None:
        return {
            "member": None,
            "customer": customer,
            "programme_active": bool(programme and programme.is_active),
        }
    return {
        "member": member,
        "summary": member_summary(member=member, programme=programme),
        "entries": member_statement(member=member, limit=5).entries,
        "customer": customer,
    }


PANEL = DetailPanel(
    key="loyalty",
    title=_("Loyalty"),
    template="loyalty/partials/_customer_panel.html",
    context=_panel_context,
    order=30,
    takes_page=True,
)


# --------------------------------------------------------------------------------------------------
# Timeline
# --------------------------------------------------------------------------------------------------
ENTRY_ICONS = {
    PointsEntry.Kind.EARN: "plus-circle",
    PointsEntry.Kind.BONUS: "gift",
    PointsEntry.Kind.REDEEM: "bag-check",
    PointsEntry.Kind.EXPIRE: "hourglass-bottom",
    PointsEntry.Kind.ADJUST: "pencil-square",
    PointsEntry.Kind.REVERSE: "arrow-counterclockwise",
}


def points_provider(*, customer, before=None, limit: int = 20, **_kwargs):
    from .selectors import member_entries_for_timeline

    entries = member_entries_for_timeline(customer=customer, before=before, limit=limit)
    if not entries:
        return
    url = reverse("loyalty:member", args=[entries[0].member_id])
    for entry in entries:
        title = _t("Points %(kind)s: %(points)+d") % {
            "kind": entry.get_kind_display(),
            "points": entry.points,
        }
        detail = entry.reason
        if entry.shortfall:
            detail = _t("%(detail)s (not recovered: %(shortfall)d already spent)") % {
                "detail": detail,
                "shortfall": entry.shortfall,
            }
        yield TimelineEntry(
            when=entry.created_at,
            kind="points",
            title=title,
            detail=detail.strip(),
            icon=ENTRY_ICONS.get(entry.kind, "star"),
            url=url,
            actor=entry.actor.get_full_name() if entry.actor_id and entry.actor else "",
        )


def tier_changes_provider(*, customer, before=None, limit: int = 20, **_kwargs):
    from .selectors import tier_changes_for_timeline

    for change in tier_changes_for_timeline(customer=customer, before=before, limit=limit):
        to_name = change.to_tier.name if change.to_tier_id and change.to_tier else _t("no tier")
        if change.from_tier_id and change.from_tier:
            title = _t("Tier: %(from)s → %(to)s") % {"from": change.from_tier.name, "to": to_name}
        else:
            title = _t("Tier: %(to)s") % {"to": to_name}
        yield TimelineEntry(
            when=change.at, kind="tier_change", title=title, detail=change.get_reason_display(), icon="award"
        )


# --------------------------------------------------------------------------------------------------
# Segment rule fields
# --------------------------------------------------------------------------------------------------
def _tier_rule_choices():
    return [(pk, name) for pk, name in Tier.objects.order_by("rank").values_list("pk", "name")]


def register_rule_fields() -> None:
    from segmentation.rules import RuleField, register_rule_field

    group = _("Loyalty")
    register_rule_field(
        RuleField(
            "loyalty_tier", _("Loyalty tier"), "choice", "loyalty_member__tier_id", group, _tier_rule_choices
        )
    )
    register_rule_field(
        RuleField(
            "loyalty_points",
            _("Points balance"),
            "number",
            "loyalty_member__balance",
            group,
            minimum=0,
            integer=True,
        )
    )


# --------------------------------------------------------------------------------------------------
# Registration and customer changes
# --------------------------------------------------------------------------------------------------
def register() -> None:
    from .services import merge_move, merge_undo

    for item in FILTERS:
        registry.add_list_filter(item)
    for column in COLUMNS:
        registry.add_list_column(column)
    registry.add_detail_panel(PANEL)
    registry.add_timeline_provider("loyalty.points", points_provider)
    registry.add_timeline_provider("loyalty.tiers", tier_changes_provider)
    registry.add_merge_hook(MergeHook(key="loyalty", move=merge_move, undo=merge_undo))
    register_rule_fields()


EARN_ON = {"orders", "import", "merge", "merge_undone"}


def earn_when_customers_change(sender, *, reason: str, customer_ids=None, **kwargs) -> None:
    """customers.signals.customers_changed receiver (sent on commit): queue the earning sweep for the
    customers the change names (an import names the customers it wrote; None, for everyone, only
    when it wrote too many to list) in this tenant."""
    if reason not in EARN_ON:
        return
    from .tasks import points_earn_task

    points_earn_task.delay(customer_ids=customer_ids)
