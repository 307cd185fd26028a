"""`seed_demo` part of the surveys: invitations after the demo's resolved tickets and an NPS round to
a few hundred customers, about 60% answered over the last months, with comments, so the reports, the
360 panel and the segment rules have something to show. Skips a tenant that already has invitations."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from customers.models import Customer
from interactions.service.models import Ticket

from .models import SurveyInvitation, SurveyKind, SurveyResponse, SurveyTemplate
from .services import scores_rebuild_all, tenant_language

COMMENTS = (
    "Very quick reply, thank you! 回复很快，谢谢！",
    "The parcel took too long. 包裹太慢了。",
    "Friendly staff. 服务态度很好。",
    "Still waiting for my refund. 退款还没到账。",
    "",
    "",
)


@transaction.atomic
def seed(*, users, customers: int, rng, stdout, **_kwargs) -> dict:
    if SurveyInvitation.objects.exists():
        stdout.write("surveys: this tenant already has survey invitations; skipped.")
        return {"skipped": True}
    csat = SurveyTemplate.objects.filter(kind=SurveyKind.CSAT).order_by("pk").first()
    nps = SurveyTemplate.objects.filter(kind=SurveyKind.NPS).order_by("pk").first()
    if csat is None or nps is None:
        return {"invitations": 0}
    now = timezone.now().replace(microsecond=0)
    language = tenant_language()
    invitations, answers = [], []
    tickets = Ticket.objects.filter(resolved_at__isnull=False, deleted_at__isnull=True).select_related(
        "customer"
    )
    for ticket in tickets.order_by("pk")[:200]:
        if not ticket.customer.email:
            continue
        invitations.append(
            (
                SurveyInvitation(
                    template=csat,
                    customer_id=ticket.customer_id,
                    ticket=ticket,
                    source=SurveyInvitation.Source.TICKET,
                    source_key=f"ticket:{ticket.pk}:t{csat.pk}",
                    language=language,
                    sent_at=ticket.resolved_at,
                    expires_at=ticket.resolved_at + timedelta(days=csat.expires_days),
                ),
                {
                    "agent_id": ticket.assignee_id,
                    "channel": ticket.channel,
                    "category_id": ticket.category_id,
                },
            )
        )
    ids = list(
        Customer.objects.filter(deleted_at__isnull=True, email_consent=True)
        .exclude(email="")
        .order_by("pk")
        .values_list("pk", flat=True)[: min(300, max(20, customers // 20))]
    )
    for customer_id in ids:
        sent = now - timedelta(days=rng.randint(1, 300))
        invitations.append(
            (
                SurveyInvitation(
                    template=nps,
                    customer_id=customer_id,
                    source=SurveyInvitation.Source.BULK,
                    source_key=f"bulk:demo:t{nps.pk}:c{customer_id}",
                    language=language,
                    sent_at=sent,
                    expires_at=sent + timedelta(days=nps.expires_days),
                ),
                {"agent_id": None, "channel": "", "category_id": None},
            )
        )
    made = SurveyInvitation.objects.bulk_create([inv for inv, _ in invitations], batch_size=500)
    for invitation, (_inv, context) in zip(made, invitations, strict=True):
        if rng.random() > 0.6 or invitation.sent_at is None:
            continue
        answered = min(invitation.sent_at + timedelta(hours=rng.randint(1, 72)), now)
        if invitation.template.kind == SurveyKind.CSAT:
            score = rng.choice([5, 5, 4, 4, 4, 3, 2, 1])
        else:
            score = rng.choice([10, 10, 9, 9, 8, 8, 7, 6, 5, 3, 9, 10])
        invitation.answered_at = answered
        answers.append(
            SurveyResponse(
                invitation=invitation,
                template=invitation.template,
                kind=invitation.template.kind,
                score=score,
                comment=rng.choice(COMMENTS),
                customer_id=invitation.customer_id,
                ticket_id=invitation.ticket_id,
                answered_at=answered,
                **context,
            )
        )
    SurveyInvitation.objects.bulk_update([r.invitation for r in answers], ["answered_at"], batch_size=500)
    SurveyResponse.objects.bulk_create(answers, batch_size=500)
    scores_rebuild_all()
    stdout.write(f"surveys: {len(made)} invitations, {len(answers)} answers.")
    return {"invitations": len(made), "responses": len(answers)}
