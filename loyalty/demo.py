"""`seed_demo` part of the loyalty app: a programme with four tiers (Classic/Silver/Gold/Diamond, in the
company's language) and a year of
ledger history: every demo order earns (members enrol on their first paid order), some members
redeem and some get adjustments, points past their expiry day expire, tiers are evaluated."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from customers.demo import BULK_MODE_MIN_CUSTOMERS, bulk_load_mode

from .models import Member, PointsEntry, Programme, Tier, TierChange

# Seeded in the company's language (seed_demo activates it): gettext at seed time.
DEMO_PROGRAMME_NAME = gettext_noop("Members' club")
DEMO_TIERS = (
    (gettext_noop("Classic"), 0, "0", "1", gettext_noop("Welcome gift on sign-up.")),
    (gettext_noop("Silver"), 1, "2000", "1.2", gettext_noop("1.2× points; birthday coupon.")),
    (
        gettext_noop("Gold"),
        2,
        "8000",
        "1.5",
        gettext_noop("1.5× points; free delivery; priority service line."),
    ),
    (
        gettext_noop("Diamond"),
        3,
        "30000",
        "2",
        gettext_noop("2× points; personal adviser; invitations to private sales."),
    ),
)


def seed(*, users, customers: int, rng, stdout, **_kwargs) -> dict:
    from .services import (
        points_adjust,
        points_earn_for_orders,
        points_expire,
        points_redeem,
        programme_get,
        tiers_evaluate,
    )

    programme = programme_get()
    Programme.objects.filter(pk=programme.pk).update(
        name=gettext(DEMO_PROGRAMME_NAME),
        auto_enrol=True,
        points_per_unit=Decimal("1"),
        signup_bonus=100,
        first_purchase_bonus=50,
        birthday_multiplier=Decimal("2"),
        redemption_points=100,
        redemption_value=Decimal("1"),
        minimum_redeem_balance=100,
        expiry_mode=Programme.ExpiryMode.MONTHS,
        expiry_months=12,
        tier_grace_days=30,
        adjust_limit=500,
    )
    for name, rank, threshold, multiplier, benefits in DEMO_TIERS:
        Tier.objects.update_or_create(
            rank=rank,
            defaults={
                "name": gettext(name),
                "threshold": Decimal(threshold),
                "multiplier": Decimal(multiplier),
                "benefits": gettext(benefits),
            },
        )
    # From the demo's bulk size on, the ledger's foreign keys are checked once when put back (one
    # join each) instead of row by row at every batch's commit: a tenth of the earning at 10,000.
    with (
        transaction.atomic(),
        bulk_load_mode(
            [Member, PointsEntry, TierChange],
            enabled=customers >= BULK_MODE_MIN_CUSTOMERS,
            indexes=False,
        ),
    ):
        earned = points_earn_for_orders()
    # The ledger and the members were just written in bulk: statistics now, so the expiry and the tier
    # evaluation below are planned for their real size (autovacuum would analyse them minutes later).
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Member._meta.db_table}")
        cursor.execute(f"ANALYZE {PointsEntry._meta.db_table}")
    manager = next((u for u in users if getattr(u, "role", "") == "manager"), None)
    rich = list(Member.objects.filter(balance__gte=500).order_by("?").values_list("pk", "balance")[:300])
    redeemed = 0
    for pk, balance in rich:
        points = int(rng.choice([100, 200, 300, 500]))
        if points <= balance:
            try:
                points_redeem(
                    actor=manager,
                    member=Member(pk=pk),
                    points=points,
                    source_key=f"demo:{pk}:{timezone.now():%Y%m%d}",
                    reason="兑换 / demo redemption",
                )
            except ValidationError:
                continue  # points that fell due expired first: this member no longer has enough
            redeemed += 1
    adjusted = 0
    for pk in Member.objects.order_by("?").values_list("pk", flat=True)[:30]:
        points_adjust(
            actor=manager, member=Member.objects.get(pk=pk), points=200, reason="客诉补偿 / goodwill"
        )
        adjusted += 1
    expired = points_expire()
    tiers = tiers_evaluate()
    stdout.write(
        f"loyalty: {earned.enrolled} members enrolled, {earned.orders} orders earned {earned.points} points; "
        f"{redeemed} redemptions, {adjusted} adjustments, {expired['entries']} lots expired; tiers {tiers}."
    )
    return {"members": earned.enrolled, "orders": earned.orders, "redeemed": redeemed}
