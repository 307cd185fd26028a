"""What loyalty holds about a person, for personal-data requests (customers.registry).

The membership, its ledger and its tier changes are exported in full. On erasure the points and
amounts stay (the liability and the books need them), attached to the then anonymous customer; what
could name the person goes: the free-text reasons staff typed on ledger rows (an adjustment's "called
about her birthday ..."), and a member number brought from another system (replaced by the neutral
number derived from the customer id)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from customers.registry import PersonalDataProvider, registry

from .models import Member, PointsEntry, TierChange

# Rows whose reason a person typed (staff adjustments, redemptions, imported balances); the
# programme's own rows (orders, rules, expiry, refunds) carry fixed words that name no one.
TYPED_SOURCES = (PointsEntry.Source.USER, PointsEntry.Source.REDEMPTION, PointsEntry.Source.IMPORT)


def export_loyalty(customer) -> dict:
    member = Member.objects.select_related("tier").filter(customer=customer).first()
    if member is None:
        return {"member": None, "entries": [], "tier_changes": []}
    return {
        "member": {
            "number": member.number,
            "status": member.status,
            "joined_at": member.joined_at,
            "balance": member.balance,
            "tier": member.tier.name if member.tier_id else None,
            "tier_since": member.tier_since,
        },
        "entries": list(
            PointsEntry.objects.filter(member=member)
            .order_by("occurred_at", "pk")
            .values(
                "kind",
                "points",
                "balance_after",
                "expires_on",
                "shortfall",
                "source",
                "amount",
                "reason",
                "occurred_at",
            )
        ),  # fmt: skip
        "tier_changes": [
            {
                "from": change.from_tier.name if change.from_tier_id else None,
                "to": change.to_tier.name if change.to_tier_id else None,
                "reason": change.reason,
                "at": change.at,
            }
            for change in TierChange.objects.filter(member=member)
            .select_related("from_tier", "to_tier")
            .order_by("at", "pk")
        ],
    }


def erase_loyalty(customer, actor) -> dict:
    """Blank the typed reasons of the member's ledger rows and reset an imported member number;
    points, balances, amounts and tier history stay with the anonymous customer."""
    from .services import member_number_for

    member = Member.objects.select_for_update().filter(customer=customer).first()
    if member is None:
        return {"member": False}
    reasons = (
        PointsEntry.objects.filter(member=member, source__in=TYPED_SOURCES)
        .exclude(reason="")
        .update(reason="")
    )
    neutral = member_number_for(customer.pk)
    number_reset = member.number != neutral
    if number_reset:
        Member.objects.filter(pk=member.pk).update(number=neutral)
    return {
        "member": True,
        "reasons_blanked": reasons,
        "number_reset": number_reset,
        "entries_kept": PointsEntry.objects.filter(member=member).count(),
    }


def register() -> None:
    registry.add_personal_data(
        PersonalDataProvider(
            key="loyalty",
            label=_("Loyalty membership, points ledger and tier changes"),
            export=export_loyalty,
            erase=erase_loyalty,
            order=50,
        )
    )
