"""`seed_demo` part of the interaction log: a few interactions per customer on every channel, in
English and Chinese, generated with numpy (from the run's seed) and written with COPY, 50,000
customers at a time (1,000,000 customers: about 3,500,000 rows in a minute, memory bounded by the
chunk). Skipped when the tenant already has interactions, so a second run adds nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from customers.demo import BULK_MODE_MIN_CUSTOMERS, bulk_load_mode
from customers.models import Customer

from .labels import Channel, Direction
from .models import Interaction, InteractionOutcome

CUSTOMERS_PER_COPY = 50_000  # customers per COPY: about 175,000 rows, some 40 MB of CSV
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
    outcomes = np.array(
        list(InteractionOutcome.objects.filter(is_active=True).values_list("pk", flat=True)), dtype=np.int64
    )
    authors = [u for u in users if getattr(u, "role", "") in ("sales", "manager")] or list(users)
    author_ids = np.array(sorted({u.pk for u in authors}), dtype=np.int64)
    np_rng = np.random.default_rng(rng.getrandbits(64))
    now = timezone.now().replace(microsecond=0)
    live = Customer.objects.filter(deleted_at__isnull=True).order_by("pk").values_list("pk", "owner_id")
    written = 0
    chunk: list[tuple[int, int | None]] = []
    # From the demo's bulk size on, the table's indexes and foreign keys are rebuilt once afterwards
    # instead of maintained and checked row by row (inside this transaction: all or nothing).
    with (
        transaction.atomic(),
        bulk_load_mode([Interaction], enabled=customers >= BULK_MODE_MIN_CUSTOMERS),
    ):
        for row in live.iterator(chunk_size=CUSTOMERS_PER_COPY):
            chunk.append(row)
            if len(chunk) == CUSTOMERS_PER_COPY:
                written += _copy_interactions(chunk, np_rng, now, outcomes, author_ids)
                chunk = []
        if chunk:
            written += _copy_interactions(chunk, np_rng, now, outcomes, author_ids)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Interaction._meta.db_table}")
    stdout.write(f"interactions: {written} interactions on every channel.")
    return {"interactions": written}


def _copy_interactions(
    customers: list[tuple[int, int | None]],
    rng: np.random.Generator,
    now,
    outcomes: np.ndarray,
    author_ids: np.ndarray,
) -> int:
    """2 to 5 interactions for each of these (customer id, owner id), generated with numpy and
    written with one COPY: each by the customer's owner when the owner is a demo author, else by a
    demo author at random; 80 % with an outcome; a duration for calls and meetings."""
    ids = np.array([pk for pk, _owner in customers], dtype=np.int64)
    owners = np.array([owner or 0 for _pk, owner in customers], dtype=np.int64)
    per_customer = rng.integers(2, 6, size=len(ids))
    customer_id = np.repeat(ids, per_customer)
    owner = np.repeat(owners, per_customer)
    n = len(customer_id)
    subject = rng.integers(0, len(SUBJECTS), size=n)
    channels = np.array([str(c) for c, _s, _n in SUBJECTS], dtype=object)[subject]
    timed = np.isin(channels, [str(Channel.PHONE), str(Channel.MEETING)])
    duration = rng.integers(1, 46, size=n)
    minutes_ago = rng.integers(30, 60 * 24 * 365 + 1, size=n)
    occurred = pd.Timestamp(now) - pd.to_timedelta(minutes_ago, unit="m")
    own = np.isin(owner, author_ids)
    author = np.where(own, owner, author_ids[rng.integers(0, len(author_ids), size=n)])
    outcome = np.zeros(n, dtype=np.int64)
    if len(outcomes):
        outcome = np.where(rng.random(n) < 0.8, outcomes[rng.integers(0, len(outcomes), size=n)], 0)
    stamp = occurred.strftime("%Y-%m-%d %H:%M:%S+00")
    frame = pd.DataFrame(
        {
            "customer_id": customer_id,
            "channel": channels,
            "direction": np.where(rng.random(n) < 0.5, str(Direction.INBOUND), str(Direction.OUTBOUND)),
            "occurred_at": stamp,
            "duration_minutes": np.where(timed, duration, None),
            "subject": np.array([s for _c, s, _n in SUBJECTS], dtype=object)[subject],
            "notes": np.array([notes for _c, _s, notes in SUBJECTS], dtype=object)[subject],
            "outcome_id": np.where(outcome > 0, outcome, None),
            "author_id": author,
            "created_at": stamp,
            "updated_at": stamp,
        }
    )
    columns = ", ".join(frame.columns)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY {Interaction._meta.db_table} ({columns}) FROM STDIN "
            "WITH (FORMAT csv, FORCE_NOT_NULL (subject, notes))"
        ) as copy,
    ):
        copy.write(frame.to_csv(header=False, index=False))
    return n
