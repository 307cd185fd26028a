"""What rewards contribute to the customer pages (registered from `RewardsConfig.ready()`):
- the "Rewards" panel on the 360 page: rewards the member may take (one click to the confirm page)
  and their latest vouchers;
- timeline entries: voucher issued, used, cancelled;
- the merge hook: the merged customer's vouchers follow their points to the survivor's membership;
  undo moves exactly those vouchers back.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from customers.registry import DetailPanel, MergeHook, TimelineEntry, registry
from loyalty.models import Member

from .models import Voucher

PANEL_REWARDS = 5


def _panel_context(customer, user) -> dict | None:
    from .selectors import member_vouchers, rewards_for_member

    try:
        member = customer.loyalty_member
    except Member.DoesNotExist:
        return None
    return {
        "member": member,
        "rewards": rewards_for_member(member=member, limit=PANEL_REWARDS),
        "vouchers": member_vouchers(member=member, limit=5),
    }


PANEL = DetailPanel(
    key="loyalty_rewards",
    title=_("Rewards"),
    template="loyalty/rewards/partials/_customer_panel.html",
    context=_panel_context,
    order=31,
)


def vouchers_provider(*, customer, before=None, limit: int = 20, **_kwargs):
    """Issued, used and cancelled events of the customer's vouchers, newest first, older than
    `before`: one query (a voucher has at most three events)."""
    qs = Voucher.objects.filter(member__customer=customer).select_related(
        "reward", "issued_by", "used_by", "cancelled_by"
    )
    if before is not None:
        qs = qs.filter(issued_at__lt=before)
    events = []
    for voucher in qs.order_by("-issued_at", "-id")[:limit]:
        url = reverse("loyalty:rewards:voucher", args=[voucher.pk])
        name = voucher.reward.name
        events.append(
            TimelineEntry(
                when=voucher.issued_at,
                kind="voucher",
                title=_t("Voucher issued: %(reward)s (%(points)s points)")
                % {"reward": name, "points": voucher.points},
                detail=voucher.display_code,
                icon="ticket-perforated",
                url=url,
                actor=voucher.issued_by.get_full_name() if voucher.issued_by else "",
            )
        )
        if voucher.used_at and (before is None or voucher.used_at < before):
            events.append(
                TimelineEntry(
                    when=voucher.used_at,
                    kind="voucher",
                    title=_t("Voucher used: %(reward)s") % {"reward": name},
                    detail=voucher.display_code,
                    icon="bag-check",
                    url=url,
                    actor=voucher.used_by.get_full_name() if voucher.used_by else "",
                )
            )
        if voucher.cancelled_at and (before is None or voucher.cancelled_at < before):
            events.append(
                TimelineEntry(
                    when=voucher.cancelled_at,
                    kind="voucher",
                    title=_t("Voucher cancelled: %(reward)s (%(points)s points returned)")
                    % {"reward": name, "points": voucher.points},
                    detail=voucher.display_code,
                    icon="x-circle",
                    url=url,
                    actor=voucher.cancelled_by.get_full_name() if voucher.cancelled_by else "",
                )
            )
    events.sort(key=lambda entry: entry.when, reverse=True)
    return events[:limit]


def merge_move(survivor, merged) -> dict:
    """Runs inside the merge transaction, before or after loyalty's own hook: when both customers
    have a membership, the merged member's vouchers move to the survivor's."""
    members = {m.customer_id: m.pk for m in Member.objects.filter(customer__in=[survivor, merged])}
    kept, gone = members.get(survivor.pk), members.get(merged.pk)
    if kept is None or gone is None or kept == gone:
        return {}
    ids = list(Voucher.objects.filter(member_id=gone).values_list("pk", flat=True))
    Voucher.objects.filter(pk__in=ids).update(member_id=kept)
    return {"vouchers": ids, "from_member": gone, "to_member": kept}


def merge_undo(survivor, merged, info: dict) -> None:
    if info.get("vouchers"):
        Voucher.objects.filter(pk__in=info["vouchers"], member_id=info["to_member"]).update(
            member_id=info["from_member"]
        )


def register() -> None:
    registry.add_detail_panel(PANEL)
    registry.add_timeline_provider("loyalty.vouchers", vouchers_provider)
    registry.add_merge_hook(MergeHook(key="loyalty.vouchers", move=merge_move, undo=merge_undo))
