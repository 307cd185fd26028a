"""What referrals contribute (registered from `ReferralsConfig.ready()`):
- the "Referrals" panel on the 360 page: the member's code and link, who referred them, how many
  they referred;
- timeline entries: referred by / referred someone;
- the merge hook: the merged member's referrals (made and received) follow to the survivor's
  membership when both customers were members; undo moves exactly those back;
- the bonus after every earning sweep (`loyalty.signals.points_swept`).
"""

from __future__ import annotations

from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from customers.registry import DetailPanel, MergeHook, TimelineEntry, registry
from loyalty.models import Member

from .models import Referral


def _panel_context(customer, user) -> dict | None:
    from .selectors import referral_panel_facts
    from .services import referral_code_for

    try:
        member = customer.loyalty_member
    except Member.DoesNotExist:
        return None
    facts = referral_panel_facts(member)
    code = facts.code or referral_code_for(member)  # made on first view, as everywhere else
    return {
        "member": member,
        "code": code,
        "link_path": reverse("referral_link:join", args=[code]),
        "referred_by_name": facts.referred_by_name,
        "count": facts.count,
    }


PANEL = DetailPanel(
    key="loyalty_referrals",
    title=_("Referrals"),
    template="loyalty/referrals/partials/_customer_panel.html",
    context=_panel_context,
    order=32,
)


def referrals_provider(*, customer, before=None, limit: int = 20, **_kwargs):
    qs = Referral.objects.filter(
        Q(referrer__customer=customer) | Q(referee__customer=customer)
    ).select_related("referrer__customer", "referee__customer")
    if before is not None:
        qs = qs.filter(created_at__lt=before)
    for referral in qs.order_by("-created_at", "-id")[:limit]:
        if referral.referee.customer_id == customer.pk:
            title = _t("Referred by %(name)s") % {"name": referral.referrer.customer.name}
            url = reverse("customers:detail", args=[referral.referrer.customer_id])
        else:
            title = _t("Referred %(name)s") % {"name": referral.referee.customer.name}
            url = reverse("customers:detail", args=[referral.referee.customer_id])
        yield TimelineEntry(
            when=referral.created_at,
            kind="referral",
            title=title,
            detail=referral.get_channel_display(),
            icon="people",
            url=url,
        )


def merge_move(survivor, merged) -> dict:
    members = {m.customer_id: m.pk for m in Member.objects.filter(customer__in=[survivor, merged])}
    kept, gone = members.get(survivor.pk), members.get(merged.pk)
    if kept is None or gone is None or kept == gone:
        return {}
    # Referrals between the two members themselves stay as they are (they would become self-referrals).
    made = list(
        Referral.objects.filter(referrer_id=gone).exclude(referee_id=kept).values_list("pk", flat=True)
    )
    Referral.objects.filter(pk__in=made).update(referrer_id=kept)
    received = []
    if not Referral.objects.filter(referee_id=kept).exists():
        received = list(
            Referral.objects.filter(referee_id=gone).exclude(referrer_id=kept).values_list("pk", flat=True)
        )
        Referral.objects.filter(pk__in=received).update(referee_id=kept)
    return {"made": made, "received": received, "from_member": gone, "to_member": kept}


def merge_undo(survivor, merged, info: dict) -> None:
    if not info:
        return
    Referral.objects.filter(pk__in=info.get("made", []), referrer_id=info["to_member"]).update(
        referrer_id=info["from_member"]
    )
    Referral.objects.filter(pk__in=info.get("received", []), referee_id=info["to_member"]).update(
        referee_id=info["from_member"]
    )


def register() -> None:
    from loyalty.signals import points_swept

    from .services import award_after_sweep

    registry.add_detail_panel(PANEL)
    registry.add_timeline_provider("loyalty.referrals", referrals_provider)
    registry.add_merge_hook(MergeHook(key="loyalty.referrals", move=merge_move, undo=merge_undo))
    points_swept.connect(award_after_sweep, dispatch_uid="loyalty.referrals.bonus")
