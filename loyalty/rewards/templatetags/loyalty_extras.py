"""Cards the rewards and referrals sub-apps add to the loyalty member page, so that page's view
needs no change: `{% load loyalty_extras %}{% member_rewards_card member %}` (and the referrals
card)."""

from django import template

register = template.Library()


@register.inclusion_tag("loyalty/rewards/partials/_member_card.html", takes_context=True)
def member_rewards_card(context, member):
    from loyalty.rewards.selectors import member_vouchers, rewards_for_member

    return {
        "request": context.get("request"),
        "member": member,
        "member_rewards": rewards_for_member(member=member),
        "member_vouchers": member_vouchers(member=member),
    }


@register.inclusion_tag("loyalty/referrals/partials/_member_card.html", takes_context=True)
def member_referrals_card(context, member):
    from django.urls import reverse

    from loyalty.referrals.selectors import referral_of
    from loyalty.referrals.services import referral_code_for

    code = referral_code_for(member)
    return {
        "request": context.get("request"),
        "csrf_token": context.get("csrf_token"),
        "member": member,
        "referral": {
            "code": code,
            "link_path": reverse("referral_link:join", args=[code]),
            "referred_by": referral_of(member),
        },
    }
