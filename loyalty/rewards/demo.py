"""`seed_demo` part of rewards and referrals (after loyalty's): a small catalogue, vouchers issued
to members who can afford them (some used, some cancelled), referrals between members (the bonuses
come with the next earning sweep, so referees who already bought get them at once)."""

from __future__ import annotations

from django.utils import timezone

from loyalty.models import Member, Tier

DEMO_REWARDS = (
    # name, points, stock, minimum tier rank (None: every tier)
    ("星巴克咖啡券 Coffee voucher", 300, None, None),
    ("帆布袋 Canvas tote bag", 800, 200, None),
    ("¥50 代金券 ¥50 off", 5000, None, None),
    ("保温杯 Thermos flask", 1500, 50, 1),
    ("VIP 下午茶 Afternoon tea for two", 4000, 20, 2),
)


def seed(*, users, customers: int, rng, stdout, **_kwargs) -> dict:
    from crm.errors import SERVICE_ERRORS
    from loyalty.referrals.models import Referral
    from loyalty.referrals.services import referral_bonuses_award, referral_code_for
    from loyalty.rewards.models import Reward, Voucher
    from loyalty.rewards.services import voucher_cancel, voucher_issue, voucher_use

    manager = next((u for u in users if getattr(u, "role", "") == "manager"), None)
    today = timezone.localdate()
    rewards = []
    for name, points, stock, min_rank in DEMO_REWARDS:
        reward, created = Reward.objects.get_or_create(
            name=name,
            defaults={
                "points_cost": points,
                "stock": stock,
                "voucher_days": 60,
                "valid_from": today.replace(day=1),
            },
        )
        if created and min_rank is not None:
            reward.tiers.set(Tier.objects.filter(rank__gte=min_rank))
        rewards.append(reward)
    issued = used = cancelled = 0
    if not Voucher.objects.exists():
        rich = list(Member.objects.filter(status="active", balance__gte=300).order_by("?")[:60])
        for index, member in enumerate(rich):
            reward = rewards[rng.randrange(3)]
            try:
                voucher = voucher_issue(actor=manager, member=member, reward=reward)
            except SERVICE_ERRORS:
                continue
            issued += 1
            if index % 3 == 0:
                voucher_use(actor=manager, code=voucher.code)
                used += 1
            elif index % 7 == 0:
                voucher_cancel(actor=manager, voucher=voucher)
                cancelled += 1
    referrals = 0
    if not Referral.objects.exists():
        members = list(Member.objects.filter(status="active").order_by("?")[:120])
        ambassadors, newcomers = members[:8], members[8:]
        for index, newcomer in enumerate(newcomers):
            ambassador = ambassadors[index % len(ambassadors)] if ambassadors else None
            if ambassador is None or index % 2:  # about half of them were referred
                continue
            # Demo history: the referees' orders predate today, so the referral is written as staff
            # would have recorded it before those orders (the service refuses customers who bought).
            Referral.objects.create(referrer=ambassador, referee=newcomer, channel="staff")
            referral_code_for(ambassador)
            referrals += 1
        referral_bonuses_award()
    stdout.write(
        f"rewards: {len(rewards)} rewards, {issued} vouchers ({used} used, {cancelled} cancelled); "
        f"{referrals} referrals."
    )
    return {"rewards": len(rewards), "vouchers": issued, "referrals": referrals}
