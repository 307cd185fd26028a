"""`seed_demo` part of the interaction log: a few interactions per customer on every channel, in
English and Chinese, written in bulk (fast at 100,000 customers). Skipped when the tenant already
has interactions, so a second run adds nothing."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from customers.models import Customer

from .labels import Channel, Direction
from .models import Interaction, InteractionOutcome

BATCH = 5_000
# (channel, subject, notes) in both languages; the demo picks one per interaction.
SUBJECTS = (
    (
        Channel.PHONE,
        "Follow-up call about the last order",
        "Happy with the delivery; asked about the autumn range.",
    ),
    (Channel.PHONE, "回访电话", "客户对上次购买很满意，想了解会员积分。"),
    (Channel.EMAIL, "Sent the new catalogue", "Asked to be told about the next sale."),
    (Channel.EMAIL, "发送新品目录", "客户希望下次促销时通知她。"),
    (Channel.SMS, "Birthday greeting", ""),
    (Channel.SMS, "生日祝福短信", ""),
    (Channel.WECHAT, "WeChat chat about sizes", "Sent the size chart; will order this week."),
    (Channel.WECHAT, "微信咨询尺码", "已发送尺码表，客户说本周下单。"),
    (Channel.CHAT, "Website chat: delivery time", "Explained delivery times to Chengdu."),
    (Channel.CHAT, "在线客服：退货流程", "已说明退货流程，客户表示理解。"),
    (Channel.SOCIAL, "Comment on our Weibo post", "Asked about the store opening hours."),
    (Channel.SOCIAL, "小红书私信", "咨询新品上市时间。"),
    (Channel.MEETING, "Meeting about a company order", "Wants a quote for 40 gift boxes."),
    (Channel.MEETING, "企业团购洽谈", "需要 40 份礼盒的报价。"),
    (Channel.STORE_VISIT, "Visited the Jing'an store", "Tried the new range; bought a scarf."),
    (Channel.STORE_VISIT, "到店试穿", "试穿了新款，买了一条围巾。"),
    (Channel.OTHER, "Met at the trade fair", ""),
    (Channel.OTHER, "展会上认识", ""),
)


def seed(*, users, customers: int, rng, stdout, **_kwargs) -> dict:
    if Interaction.objects.exists():
        stdout.write("interactions: this tenant already has interactions; skipped.")
        return {"interactions": 0}
    outcomes = list(InteractionOutcome.objects.filter(is_active=True).values_list("pk", flat=True))
    authors = [u for u in users if getattr(u, "role", "") in ("sales", "manager")] or list(users)
    author_ids = {u.pk for u in authors}
    now = timezone.now()
    rows: list[Interaction] = []
    written = 0
    live = Customer.objects.filter(deleted_at__isnull=True).values_list("pk", "owner_id").order_by("pk")
    for customer_id, owner_id in live.iterator(chunk_size=BATCH):
        for _ in range(rng.randint(2, 5)):
            channel, subject, notes = rng.choice(SUBJECTS)
            author_id = owner_id if owner_id in author_ids else rng.choice(authors).pk
            rows.append(
                Interaction(
                    customer_id=customer_id,
                    channel=channel,
                    direction=rng.choice((Direction.INBOUND, Direction.OUTBOUND)),
                    occurred_at=now - timedelta(minutes=rng.randint(30, 60 * 24 * 365)),
                    duration_minutes=rng.randint(1, 45)
                    if channel in (Channel.PHONE, Channel.MEETING)
                    else None,
                    subject=subject,
                    notes=notes,
                    outcome_id=rng.choice(outcomes) if outcomes and rng.random() < 0.8 else None,
                    author_id=author_id,
                )
            )
        if len(rows) >= BATCH:
            Interaction.objects.bulk_create(rows, batch_size=BATCH)
            written += len(rows)
            rows = []
    if rows:
        Interaction.objects.bulk_create(rows, batch_size=BATCH)
        written += len(rows)
    stdout.write(f"interactions: {written} interactions on every channel.")
    return {"interactions": written}
