"""`seed_demo` part of follow-ups: open follow-ups for every demo user (some overdue, some due today,
some in the next days, a few done), one rule that turns churn alerts into follow-ups, and the
follow-ups for the churn alerts the segmentation seeder raised, so `make run` shows a living My day.

Idempotent enough: running it again adds nothing when the demo follow-ups exist (their source keys
name them), and the churn-alert rule follows each alert once.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from crm.accounts.permissions import ALL_ROLES, user_has_role
from customers.models import Customer

from .models import FollowUp, FollowUpRule
from .rules import on_churn_alerts

TITLES = (
    ("Call back about the quote", "回电确认报价"),
    ("Invite to the spring tasting", "邀请参加春季品鉴会"),
    ("Check the delivery arrived", "确认货物已送达"),
    ("Offer the loyalty upgrade", "推荐会员升级"),
    ("WeChat: send the new catalogue", "微信发送新品目录"),
    ("Ask for feedback on the last order", "回访上次订单的满意度"),
)
# Hours from now: overdue, due today, the next days.
OFFSETS = (-72, -26, -5, -1, 1, 3, 5, 26, 50, 98, 150)
PER_USER = 24


@transaction.atomic
def seed(*, users, customers: int = 0, rng, stdout, **_kwargs) -> dict:
    now = timezone.now()
    reps = [u for u in users if user_has_role(u, ALL_ROLES)]
    created = 0
    for user in reps:
        owned = list(
            Customer.objects.filter(owner=user, deleted_at__isnull=True)
            .order_by("pk")
            .values_list("pk", flat=True)[:500]
        )
        if not owned:
            owned = list(
                Customer.objects.filter(deleted_at__isnull=True)
                .order_by("pk")
                .values_list("pk", flat=True)[:500]
            )
        if not owned:
            continue
        rows = []
        for n in range(PER_USER):
            key = f"demo:{user.pk}:{n}"
            english, chinese = TITLES[n % len(TITLES)]
            hours = OFFSETS[n % len(OFFSETS)] + rng.random()
            done = n % 8 == 7
            rows.append(
                FollowUp(
                    customer_id=rng.choice(owned),
                    assignee=user,
                    due_at=now + timedelta(hours=hours),
                    title=chinese if n % 2 else english,
                    status=FollowUp.Status.DONE if done else FollowUp.Status.OPEN,
                    completed_at=now - timedelta(hours=1) if done else None,
                    completed_by=user if done else None,
                    snooze_count=1 if n % 5 == 0 else 0,
                    source_key=key,
                    created_by=user,
                )
            )
        existing = set(
            FollowUp.objects.filter(source_key__in=[r.source_key for r in rows]).values_list(
                "source_key", flat=True
            )
        )
        rows = [row for row in rows if row.source_key not in existing]
        created += len(FollowUp.objects.bulk_create(rows))
    rule = FollowUpRule.objects.filter(
        trigger=FollowUpRule.Trigger.CHURN_ALERT, name="Win back at-risk customers"
    ).first()
    if rule is None:
        author = next((u for u in users if getattr(u, "role", "") == "admin"), None)
        rule = FollowUpRule.objects.create(
            name="Win back at-risk customers",
            trigger=FollowUpRule.Trigger.CHURN_ALERT,
            delay_days=1,
            title="挽回流失风险客户 Win-back call",
            fallback_assignee=author,
            created_by=author,
        )
        FollowUpRule.objects.filter(pk=rule.pk).update(created_at=now - timedelta(days=60))
    from segmentation.selectors import alert_list

    admin = next((u for u in users if getattr(u, "role", "") == "admin"), None)
    alert_ids = list(alert_list(user=admin).values_list("pk", flat=True)[:300]) if admin else []
    from_alerts = on_churn_alerts(alert_ids=alert_ids)
    stdout.write(f"followups: {created} demo follow-ups, {from_alerts} from churn alerts.")
    return {"followups": created, "from_alerts": from_alerts}
