"""`seed_demo` part of the service desk: categories, a team, SLA policies and tickets across statuses,
some of them close to (or past) their SLA targets so the queues, clocks and figures have something to
show. Skips a tenant that already has tickets. Bulk writes; a few hundred tickets at most."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from crm.accounts.models import Role
from customers.models import Customer

from . import business_hours as bh
from .models import Priority, SlaPolicy, Status, Team, Ticket, TicketCategory, TicketMessage
from .services import calendar_get, settings_get, sla_recompute

# Seeded in the company's language (seed_demo activates it).
CATEGORIES = (
    gettext_noop("Delivery"),
    gettext_noop("Returns"),
    gettext_noop("Billing"),
    gettext_noop("Product question"),
)
TEAM_NAME = gettext_noop("Customer care")
POLICIES = {
    Priority.URGENT: (30, 240),
    Priority.HIGH: (60, 480),
    Priority.NORMAL: (240, 1440),
    Priority.LOW: (480, 2880),
}
SUBJECTS = (
    "Parcel not arrived 包裹未送达",
    "Wrong size, want to exchange 尺码不对想换货",
    "Charged twice 重复扣款",
    "How do I use the membership points? 积分怎么用",
    "Damaged on arrival 收到时已损坏",
    "Invoice needed 需要发票",
)


def _start_for_share(calendar: bh.BusinessCalendar, now, target_minutes: int, share: float):
    """An opening instant such that `share` of the target has passed by now (stepping back 15 min)."""
    wanted = int(target_minutes * 60 * share)
    start = now
    for _ in range(24 * 4 * 30):
        if bh.business_seconds(calendar, start, now) >= wanted:
            return start
        start -= timedelta(minutes=15)
    return start


@transaction.atomic
def seed(*, users, customers: int, rng, stdout, **_kwargs) -> dict:
    if Ticket.objects.exists():
        stdout.write("service: this tenant already has tickets; skipped.")
        return {"skipped": True}
    settings_get()
    categories = [TicketCategory.objects.get_or_create(name=gettext(name))[0] for name in CATEGORIES]
    for priority, (first, resolution) in POLICIES.items():
        SlaPolicy.objects.get_or_create(
            priority=priority,
            category=None,
            defaults={"first_response_minutes": first, "resolution_minutes": resolution},
        )
    sales = [u for u in users if u.role == Role.SALES]
    managers = [u for u in users if u.role == Role.MANAGER] or [u for u in users if u.role == Role.ADMIN]
    team, _created = Team.objects.get_or_create(
        name=gettext(TEAM_NAME), defaults={"manager": managers[0] if managers else None}
    )
    team.members.add(*sales)
    customer_ids = list(
        Customer.objects.filter(deleted_at__isnull=True).order_by("pk").values_list("pk", flat=True)[:400]
    )
    if not customer_ids:
        return {"tickets": 0}
    calendar = calendar_get()
    now = timezone.now().replace(microsecond=0)
    count = min(240, max(12, customers // 50))
    tickets = []
    plan = []
    for i in range(count):
        priority = rng.choice(list(POLICIES))
        first_target, resolution_target = POLICIES[priority]
        roll = rng.random()
        if roll < 0.15:
            kind, start = "near_breach", _start_for_share(calendar, now, first_target, 0.85)
        elif roll < 0.22:
            kind, start = "breached", _start_for_share(calendar, now, first_target, 1.3)
        else:
            kind, start = "history", now - timedelta(hours=rng.randint(1, 24 * 40))
        status = (
            Status.NEW
            if kind != "history"
            else rng.choice([Status.OPEN, Status.WAITING, Status.RESOLVED, Status.RESOLVED, Status.CLOSED])
        )
        assignee = rng.choice(sales) if sales and (status != Status.NEW or rng.random() < 0.5) else None
        ticket = Ticket(
            customer_id=rng.choice(customer_ids),
            subject=rng.choice(SUBJECTS),
            description="Demo ticket 演示工单",
            channel=rng.choice(["phone", "email", "wechat", "web", "store", "chat"]),
            category=rng.choice(categories),
            priority=priority,
            status=status,
            assignee=assignee,
            team=team if assignee else None,
            requester_email=f"demo{i}@example.com",
            first_response_target=first_target,
            resolution_target=resolution_target,
            created_at=start,
        )
        sla_recompute(ticket, calendar=calendar)
        if status in (Status.OPEN, Status.WAITING, Status.RESOLVED, Status.CLOSED):
            ticket.first_response_at = min(start + timedelta(minutes=rng.randint(5, first_target * 2)), now)
            ticket.first_response_seconds = bh.business_seconds(calendar, start, ticket.first_response_at)
        if status == Status.WAITING:
            ticket.paused_since = max(ticket.first_response_at, now - timedelta(hours=2))
        if status in (Status.RESOLVED, Status.CLOSED):
            ticket.resolved_at = min(start + timedelta(minutes=rng.randint(30, resolution_target * 2)), now)
            ticket.resolution_seconds = bh.business_seconds(calendar, start, ticket.resolved_at)
        if status == Status.CLOSED:
            ticket.closed_at = ticket.resolved_at
        tickets.append(ticket)
        plan.append(kind)
    Ticket.objects.bulk_create(tickets, batch_size=500)
    TicketMessage.objects.bulk_create(
        [
            TicketMessage(
                ticket=t,
                kind=TicketMessage.Kind.REPLY,
                author=t.assignee,
                body="Thank you, we are looking into it. 感谢您的耐心，我们正在处理。",
                sent_at=t.first_response_at,
            )
            for t in tickets
            if t.first_response_at is not None
        ]
    )
    TicketMessage.objects.filter(created_at__gte=now).update(created_at=now)
    stdout.write(f"service: {len(tickets)} tickets ({plan.count('near_breach')} close to their SLA target).")
    return {"tickets": len(tickets)}
