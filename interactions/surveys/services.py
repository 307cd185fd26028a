"""Writes of the surveys: templates, invitations (triggered and in bulk), their e-mails, answers and the
closed loop on detractors. Atomic, validated, audited.

Links: the token is `django.core.signing` over {"t": invitation token, "s": schema} with a salt that
names the tenant's schema, so a link of one tenant never verifies on another's site; the invitation's
own row says whether it expired or was answered (single use: one response per invitation, taken under
a row lock).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.http import Http404
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from crm.accounts.models import User
from crm.accounts.permissions import ADMINS, ALL_ROLES, MANAGERS, user_has_role
from crm.audit.services import audit_record
from crm.errors import ApplicationError
from crm.jobs.messages import JobMessage
from customers.models import Customer

from .models import (
    COMMENT_MAX,
    QUESTION_MAX,
    SCORE_RANGE,
    CustomerSurveyScore,
    SurveyInvitation,
    SurveyKind,
    SurveyResponse,
    SurveyTemplate,
    is_detractor,
)

logger = logging.getLogger(__name__)

BULK_MAX = 50_000  # customers per bulk send
BULK_CHUNK = 1_000
MAX_ATTEMPTS = 10
TOKEN_MAX = 400  # characters of a link's token read at all


def _languages() -> set[str]:
    return {code for code, _name in settings.LANGUAGES}


def tenant_language() -> str:
    language = getattr(getattr(connection, "tenant", None), "default_language", "") or "en"
    return language if language in _languages() else "en"


def customer_language(language: str, default: str | None = None) -> str:
    """The customer's own language when set (and known), else the company's."""
    return language if language in _languages() else (default or tenant_language())


# --- templates (tenant admins) ----------------------------------------------------------------------


def _template_snapshot(template: SurveyTemplate) -> dict[str, Any]:
    return {
        "name": template.name,
        "kind": template.kind,
        "question_en": template.question_en,
        "question_zh": template.question_zh,
        "ask_comment": template.ask_comment,
        "is_active": template.is_active,
        "on_ticket_resolved": template.on_ticket_resolved,
        "expires_days": template.expires_days,
        "after_outcomes": sorted(template.after_outcomes.values_list("pk", flat=True)) if template.pk else [],
    }


@transaction.atomic
def template_save(
    *,
    actor: User,
    template: SurveyTemplate | None = None,
    name: str,
    kind: str,
    question_en: str,
    question_zh: str,
    ask_comment: bool = True,
    is_active: bool = True,
    on_ticket_resolved: bool = False,
    expires_days: int = 14,
    after_outcomes=(),
) -> SurveyTemplate:
    if not user_has_role(actor, ADMINS):
        raise PermissionDenied(_("Only admins can change survey templates."))
    before = _template_snapshot(template) if template is not None else {}
    if template is not None and template.kind != kind and template.invitations.exists():
        raise ValidationError({"kind": _("This template has been sent already; its kind cannot change.")})
    template = template or SurveyTemplate()
    template.name = " ".join(str(name or "").split())[:100]
    template.kind = kind
    template.question_en = str(question_en or "").strip()[: QUESTION_MAX + 1]
    template.question_zh = str(question_zh or "").strip()[: QUESTION_MAX + 1]
    template.ask_comment = bool(ask_comment)
    template.is_active = bool(is_active)
    template.on_ticket_resolved = bool(on_ticket_resolved)
    template.expires_days = expires_days
    template.full_clean()
    template.save()
    template.after_outcomes.set(list(after_outcomes))
    after = _template_snapshot(template)
    changes = {k: {"old": before.get(k), "new": v} for k, v in after.items() if before.get(k) != v}
    audit_record(
        actor=actor,
        action="surveys.template_saved" if before else "surveys.template_created",
        target=template,
        changes=changes,
    )
    return template


# --- signed links ------------------------------------------------------------------------------------


def _salt(schema_name: str) -> str:
    return f"surveys.invitation:{schema_name}"


def invitation_token(invitation: SurveyInvitation) -> str:
    schema = connection.schema_name
    return signing.dumps({"t": invitation.token.hex, "s": schema}, salt=_salt(schema))


def invitation_link(invitation: SurveyInvitation, tenant=None) -> str:
    tenant = tenant or connection.tenant
    path = reverse(
        "surveys:answer", kwargs={"token": invitation_token(invitation)}, urlconf="crm.urls_tenant"
    )
    return tenant.url(path)


class LinkNotFound(Exception):
    """Unknown invitation, or a link of another tenant: answered like any missing page."""


class LinkTampered(Exception):
    """The signature does not match: the link was changed or cut."""


def invitation_from_token(token: str) -> SurveyInvitation:
    """The invitation a link names. Raises LinkTampered for a bad signature, LinkNotFound for another
    tenant's link or an invitation that does not exist here."""
    schema = connection.schema_name
    token = str(token or "")[:TOKEN_MAX]
    try:
        payload = signing.loads(token, salt=_salt(schema))
    except signing.BadSignature:
        if _names_another_schema(token, schema):
            raise LinkNotFound
        raise LinkTampered
    if not isinstance(payload, dict) or payload.get("s") != schema:
        raise LinkNotFound
    invitation = (
        SurveyInvitation.objects.select_related("template", "customer")
        .filter(token=_uuid_or_none(payload.get("t")))
        .first()
    )
    if invitation is None:
        raise LinkNotFound
    return invitation


def _uuid_or_none(value: Any):
    import uuid

    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None


def _names_another_schema(token: str, schema: str) -> bool:
    """A well-formed link whose (unverified) payload names another tenant: not found here, whoever made
    it. Only this question is asked of an unverified payload."""
    try:
        payload = json.loads(signing.b64_decode(token.split(":", 1)[0].encode()).decode())
    except (ValueError, UnicodeDecodeError, TypeError):
        return False
    return isinstance(payload, dict) and isinstance(payload.get("s"), str) and payload["s"] != schema


# --- invitations -------------------------------------------------------------------------------------


def _can_invite(customer: Customer) -> bool:
    return customer.deleted_at is None and bool(customer.email)


def _invite(
    *,
    template: SurveyTemplate,
    customer: Customer,
    source: str,
    source_key: str,
    ticket_id: int | None = None,
    interaction_id: int | None = None,
    now: datetime | None = None,
) -> SurveyInvitation | None:
    """One invitation per source_key: None when it exists already (a repeated trigger)."""
    now = now or timezone.now()
    invitation = SurveyInvitation(
        template=template,
        customer=customer,
        source=source,
        source_key=source_key,
        ticket_id=ticket_id,
        interaction_id=interaction_id,
        language=customer_language(customer.language),
        expires_at=now + timedelta(days=template.expires_days),
    )
    try:
        with transaction.atomic():
            invitation.save()
    except IntegrityError:
        return None
    return invitation


def _queue_sending() -> None:
    from .tasks import invitations_send_task

    transaction.on_commit(lambda: invitations_send_task.delay())


@transaction.atomic
def invitations_for_ticket(*, ticket_id: int) -> list[SurveyInvitation]:
    """The `ticket_resolved` trigger: one invitation per active template that asks for it, at most
    once per ticket and template (a ticket resolved again invites nobody again)."""
    from interactions.service.selectors import ticket_for_survey

    ticket = ticket_for_survey(ticket_id=ticket_id)
    if ticket is None or not _can_invite(ticket.customer):
        return []
    made = []
    for template in SurveyTemplate.objects.filter(is_active=True, on_ticket_resolved=True).order_by("pk"):
        invitation = _invite(
            template=template,
            customer=ticket.customer,
            source=SurveyInvitation.Source.TICKET,
            source_key=f"ticket:{ticket.pk}:t{template.pk}",
            ticket_id=ticket.pk,
        )
        if invitation is not None:
            made.append(invitation)
    if made:
        _queue_sending()
    return made


@transaction.atomic
def invitations_for_interaction(*, interaction_id: int, outcome_id: int | None) -> list[SurveyInvitation]:
    """The `interaction_logged` trigger: templates that chose the interaction's outcome."""
    if outcome_id is None:
        return []
    templates = list(
        SurveyTemplate.objects.filter(is_active=True, after_outcomes__pk=outcome_id).order_by("pk").distinct()
    )
    if not templates:
        return []
    from interactions.selectors import interaction_for_survey

    interaction = interaction_for_survey(interaction_id=interaction_id)
    if interaction is None or not _can_invite(interaction.customer):
        return []
    made = []
    for template in templates:
        invitation = _invite(
            template=template,
            customer=interaction.customer,
            source=SurveyInvitation.Source.INTERACTION,
            source_key=f"interaction:{interaction.pk}:t{template.pk}",
            interaction_id=interaction.pk,
        )
        if invitation is not None:
            made.append(invitation)
    if made:
        _queue_sending()
    return made


# --- bulk send to a saved segment (a background job) ---------------------------------------------------

BULK_KIND = "surveys.bulk_send"


def bulk_audience(*, actor: User, segment) -> Any:
    """The segment's customers the actor may see who can be invited in bulk: an e-mail address and
    marketing (e-mail) consent."""
    from segmentation.selectors import segment_customers

    return segment_customers(user=actor, rules=segment.rules).filter(email_consent=True).exclude(email="")


@transaction.atomic
def bulk_send_start(*, actor: User, template: SurveyTemplate, segment):
    """Start a bulk send of `template` to a saved segment; returns the job (progress on its page)."""
    from crm.jobs.services import job_create, job_enqueue

    if not user_has_role(actor, MANAGERS):
        raise PermissionDenied(_("Only managers and admins can send surveys in bulk."))
    if not template.is_active:
        raise ValidationError({"template": _("This template is not active.")})
    count = bulk_audience(actor=actor, segment=segment).count()
    if count == 0:
        raise ValidationError(
            {"segment": _("Nobody in this segment has an e-mail address and marketing consent.")}
        )
    if count > BULK_MAX:
        raise ValidationError(
            {
                "segment": _("This segment has %(count)d customers to invite; at most %(max)d at a time.")
                % {"count": count, "max": BULK_MAX}
            }
        )
    job = job_create(
        kind=BULK_KIND,
        created_by=actor,
        params={
            "template_id": template.pk,
            "segment_id": segment.pk,
            "language": translation.get_language() or "en",
        },
    )
    audit_record(
        actor=actor,
        action="surveys.bulk_send_started",
        target=template,
        changes={"segment": {"old": None, "new": segment.name}, "customers": {"old": None, "new": count}},
    )
    from .tasks import survey_bulk_send_task

    job_enqueue(job=job, task=survey_bulk_send_task)
    return job


def bulk_send_run(run) -> None:
    """Job body: an invitation per customer (unique per batch, template and customer, so a re-run
    after a crash adds only the missing ones), in chunks with progress; the e-mails follow."""
    from segmentation.selectors import segment_get_for_user

    params = run.params
    actor = User.objects.filter(pk=run.job.created_by_id).first()
    template = SurveyTemplate.objects.filter(pk=params.get("template_id"), is_active=True).first()
    if actor is None or template is None:
        raise ApplicationError(
            JobMessage(gettext_noop("The survey template or its sender no longer exists."))
        )
    try:
        segment = segment_get_for_user(user=actor, segment_id=params.get("segment_id"))
    except Http404:
        raise ApplicationError(JobMessage(gettext_noop("The segment no longer exists.")))
    ids = list(
        bulk_audience(actor=actor, segment=segment)
        .order_by("pk")
        .values_list("pk", flat=True)[: BULK_MAX + 1]
    )
    if len(ids) > BULK_MAX:
        raise ApplicationError(
            JobMessage(gettext_noop("The segment has grown over %(max)d customers."), max=BULK_MAX)
        )
    now = timezone.now()
    expires = now + timedelta(days=template.expires_days)
    language = tenant_language()
    prefix = f"bulk:{run.job_id}:t{template.pk}:c"
    created = 0
    for start in range(0, len(ids), BULK_CHUNK):
        chunk = ids[start : start + BULK_CHUNK]
        languages = dict(Customer.objects.filter(pk__in=chunk).values_list("pk", "language"))
        with transaction.atomic():
            rows = SurveyInvitation.objects.bulk_create(
                [
                    SurveyInvitation(
                        template=template,
                        customer_id=customer_id,
                        source=SurveyInvitation.Source.BULK,
                        source_key=f"{prefix}{customer_id}",
                        language=customer_language(languages.get(customer_id, ""), language),
                        expires_at=expires,
                    )
                    for customer_id in chunk
                ],
                ignore_conflicts=True,
            )
        created += len(rows)
        run.progress(
            int(90 * (start + len(chunk)) / len(ids)),
            JobMessage(
                gettext_noop("%(n)d of %(total)d invitations made"), n=start + len(chunk), total=len(ids)
            ),
        )
    invited = SurveyInvitation.objects.filter(source_key__startswith=prefix).count()
    from .tasks import invitations_send_task

    invitations_send_task.delay()
    run.succeed(
        result={"invited": invited, "template": template.pk, "segment": segment.pk},
        message=JobMessage(gettext_noop("%(n)d invitations queued for sending."), n=invited),
    )


# --- sending -----------------------------------------------------------------------------------------


def _claimable(now: datetime):
    stale = now - timedelta(seconds=getattr(settings, "NOTIFICATION_EMAIL_CLAIM_SECONDS", 300))
    return SurveyInvitation.objects.filter(sent_at=None, failed_at=None).filter(
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale)
    )


def invitations_claim(*, batch_size: int) -> list[int]:
    """Claim up to `batch_size` unsent invitations (committed before anything is sent)."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            _claimable(now)
            .select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("id", flat=True)[:batch_size]
        )
        if ids:
            SurveyInvitation.objects.filter(id__in=ids).update(claimed_at=now, attempts=F("attempts") + 1)
    return ids


def invitation_email(*, invitation: SurveyInvitation, tenant) -> EmailMultiAlternatives:
    language = invitation.language if invitation.language in _languages() else "en"
    with translation.override(language):
        context = {
            "invitation": invitation,
            "customer_name": invitation.customer.name,
            "question": invitation.template.question(language),
            "link": invitation_link(invitation, tenant),
            "company": getattr(tenant, "name", ""),
            "expires_at": invitation.expires_at,
        }
        subject = _("A quick question from %(company)s") % {"company": context["company"]}
        body = render_to_string("surveys/email/invitation.txt", context)
    return EmailMultiAlternatives(
        subject=" ".join(subject.split())[:200],
        body=body,
        to=[invitation.customer.email],
        headers={"Message-ID": invitation.message_id},
    )


def invitations_send(*, batch_size: int = 100, max_seconds: float = 50.0) -> dict[str, int]:
    """Send this tenant's unsent invitations for up to `max_seconds`. Crash-safe like the notification
    e-mails: a batch is claimed and committed, sent over NOTIFICATION_EMAIL_CONNECTIONS connections
    (crm.notifications.mailing.send_in_parallel), then marked sent in one statement; a worker that dies
    in between leaves a claim that goes stale and the batch is sent again with the same Message-IDs.
    Invitations that expired unsent, or whose customer lost the address, are marked failed."""
    from crm.notifications.mailing import email_connections, send_in_parallel

    tenant = connection.tenant
    started = time.monotonic()
    counts = {"sent": 0, "failed": 0, "skipped": 0, "more": 0}
    parallel = email_connections()
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="survey-mail") as pool:
        while True:
            ids = invitations_claim(batch_size=batch_size)
            if not ids:
                break
            now = timezone.now()
            outgoing, dropped = [], []
            for invitation in (
                SurveyInvitation.objects.filter(id__in=ids)
                .select_related("template", "customer")
                .order_by("id")
            ):
                if invitation.expires_at <= now or not _can_invite(invitation.customer):
                    dropped.append(invitation.pk)
                else:
                    outgoing.append((invitation, invitation_email(invitation=invitation, tenant=tenant)))
            if dropped:
                SurveyInvitation.objects.filter(id__in=dropped, sent_at=None).update(
                    failed_at=now, last_error="expired or no address"
                )
                counts["skipped"] += len(dropped)
            results = send_in_parallel(pool, outgoing, parallel)
            sent = [invitation.pk for invitation, error in results if error is None]
            SurveyInvitation.objects.filter(id__in=sent, sent_at=None).update(
                sent_at=timezone.now(), last_error=""
            )
            counts["sent"] += len(sent)
            for invitation, error in results:
                if error is not None:
                    counts["failed"] += 1
                    logger.warning("survey invitation %s failed: %s", invitation.pk, error)
                    SurveyInvitation.objects.filter(pk=invitation.pk, sent_at=None).update(
                        last_error=str(error)[:500],
                        failed_at=timezone.now()
                        if invitation.attempts >= MAX_ATTEMPTS
                        else None,  # counted at claim
                    )
            if outgoing and not sent:
                break  # the mail server refuses everything: the next run tries again
            if time.monotonic() - started > max_seconds:
                counts["more"] = int(_claimable(timezone.now()).exists())
                break
    return counts


# --- answers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkState:
    ok: bool
    reason: str = ""  # "expired" | "answered"


def invitation_state(invitation: SurveyInvitation, *, now: datetime | None = None) -> LinkState:
    now = now or timezone.now()
    if invitation.answered_at is not None:
        return LinkState(False, "answered")
    if invitation.expires_at <= now:
        return LinkState(False, "expired")
    return LinkState(True)


class LinkRefused(ApplicationError):
    """An answer to a link that was answered already or has expired (nothing is written)."""


def _agent_and_context(invitation: SurveyInvitation) -> dict[str, Any]:
    if invitation.ticket_id:
        from interactions.service.selectors import ticket_for_survey

        ticket = ticket_for_survey(ticket_id=invitation.ticket_id)
        if ticket is not None:
            return {
                "agent_id": ticket.assignee_id,
                "channel": ticket.channel,
                "category_id": ticket.category_id,
            }
    if invitation.interaction_id:
        from interactions.selectors import interaction_for_survey

        interaction = interaction_for_survey(interaction_id=invitation.interaction_id)
        if interaction is not None:
            return {"agent_id": interaction.author_id, "channel": interaction.channel, "category_id": None}
    return {"agent_id": None, "channel": "", "category_id": None}


def clean_answer(*, kind: str, score: Any, comment: Any) -> tuple[int, str]:
    """Bounded before parsing: the score is one or two digits in the kind's range, the comment at most
    COMMENT_MAX characters."""
    low, high = SCORE_RANGE[kind]
    errors: dict[str, list] = {}
    raw = str(score if score is not None else "").strip()
    value = None
    if len(raw) > 2 or not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        errors["score"] = [
            ValidationError(
                _("Choose a score from %(low)d to %(high)d.") % {"low": low, "high": high}, code="range"
            )
        ]
    else:
        value = int(raw)
    text = str(comment or "")
    if len(text) > COMMENT_MAX:
        errors["comment"] = [
            ValidationError(
                _("Keep the comment under %(n)d characters.") % {"n": COMMENT_MAX}, code="max_length"
            )
        ]
    if errors:
        raise ValidationError(errors)
    return value, text.strip()


@transaction.atomic
def response_submit(
    *, invitation: SurveyInvitation, score: Any, comment: Any = "", now: datetime | None = None
) -> SurveyResponse:
    """Record the answer to an invitation, once. The invitation row is locked, so two submissions at
    once give one response; an answered or expired link raises LinkRefused and writes nothing. A
    detractor raises the owner's follow-up and a notification in the same transaction."""
    now = now or timezone.now()
    invitation = (
        SurveyInvitation.objects.select_for_update(of=("self",))
        .select_related("template", "customer", "customer__owner")
        .get(pk=invitation.pk)
    )
    state = invitation_state(invitation, now=now)
    if not state.ok:
        raise LinkRefused(
            _("This survey was answered already.")
            if state.reason == "answered"
            else _("This survey link has expired."),
            code=state.reason,
        )
    template = invitation.template
    value, text = clean_answer(
        kind=template.kind, score=score, comment=comment if template.ask_comment else ""
    )
    response = SurveyResponse(
        invitation=invitation,
        template=template,
        kind=template.kind,
        score=value,
        comment=text,
        customer=invitation.customer,
        ticket_id=invitation.ticket_id,
        interaction_id=invitation.interaction_id,
        answered_at=now,
        **_agent_and_context(invitation),
    )
    response.full_clean(
        exclude=["invitation", "template", "customer", "ticket", "interaction", "agent", "category"]
    )
    response.save()
    invitation.answered_at = now
    invitation.save(update_fields=["answered_at"])
    _score_update(customer_id=invitation.customer_id, kind=template.kind, score=value, at=now)
    audit_record(
        actor=None,
        action="surveys.answered",
        target=response,
        changes={"score": {"old": None, "new": value}, "kind": {"old": None, "new": template.kind}},
    )
    if is_detractor(template.kind, value):
        detractor_follow_up(response=response)
    return response


def _score_update(*, customer_id: int, kind: str, score: int, at: datetime) -> None:
    """Keep the customer's last score of this kind (a later answer wins; an older one changes nothing)."""
    field, field_at = ("last_nps", "last_nps_at") if kind == SurveyKind.NPS else ("last_csat", "last_csat_at")
    row, created = CustomerSurveyScore.objects.select_for_update().get_or_create(
        customer_id=customer_id, defaults={field: score, field_at: at}
    )
    if not created and (getattr(row, field_at) is None or getattr(row, field_at) <= at):
        setattr(row, field, score)
        setattr(row, field_at, at)
        row.save(update_fields=[field, field_at])


def scores_recompute(*, customer_ids: list[int]) -> None:
    """Rebuild the last scores of these customers from their responses (after a merge or its undo)."""
    CustomerSurveyScore.objects.filter(customer_id__in=customer_ids).delete()
    for customer_id in customer_ids:
        for kind in (SurveyKind.NPS, SurveyKind.CSAT):
            last = (
                SurveyResponse.objects.filter(customer_id=customer_id, kind=kind)
                .order_by("-answered_at", "-id")
                .values_list("score", "answered_at")
                .first()
            )
            if last is not None:
                _score_update(customer_id=customer_id, kind=kind, score=last[0], at=last[1])


def _follow_up_assignee(response: SurveyResponse) -> User | None:
    owner = response.customer.owner if response.customer.owner_id else None
    if owner is not None and user_has_role(owner, ALL_ROLES):
        return owner
    if response.agent_id:
        agent = User.objects.filter(pk=response.agent_id).first()
        if agent is not None and user_has_role(agent, ALL_ROLES):
            return agent
    return None


def detractor_follow_up(*, response: SurveyResponse):
    """The closed loop: a follow-up due now for the customer's owner (else the agent), source_key
    "survey:<response id>" (one per response), and a notification to them."""
    from crm.notifications.services import notify
    from interactions.followups.services import followup_create_for_source

    assignee = _follow_up_assignee(response)
    if assignee is None:
        logger.info("survey response %s: detractor without an owner or agent to follow up", response.pk)
        return None
    language = assignee.language or tenant_language()
    with translation.override(language):
        label = "NPS" if response.kind == SurveyKind.NPS else "CSAT"
        title = _("Unhappy customer: %(kind)s %(score)d") % {"kind": label, "score": response.score}
        # no name or comment here: follow-ups and notifications keep no personal text of the surveys
        notes = _("The customer answered a survey with %(kind)s %(score)d. Call them back.") % {
            "kind": label,
            "score": response.score,
        }
    followup = followup_create_for_source(
        customer=response.customer,
        assignee=assignee,
        source_key=f"survey:{response.pk}",
        due_at=response.answered_at,
        title=title,
        notes=notes,
    )
    with translation.override(language):
        notify(
            recipient=assignee,
            kind="surveys.detractor",
            key=f"surveys.detractor:{response.pk}",
            title=title,
            body=notes,
            url=reverse("customers:detail", args=[response.customer_id]),
        )
    return followup


# --- merge and personal data ---------------------------------------------------------------------------


@transaction.atomic
def surveys_move_customer(
    *, from_customer_id: int, to_customer_id: int, invitation_ids: list[int] | None = None
) -> list[int]:
    """Move invitations (and their responses) from one customer to another; returns the invitation ids
    moved. With `invitation_ids` only those (a merge undo moves back exactly what the merge moved)."""
    invitations = SurveyInvitation.objects.filter(customer_id=from_customer_id)
    if invitation_ids is not None:
        invitations = invitations.filter(pk__in=invitation_ids)
    ids = list(invitations.values_list("pk", flat=True))
    if ids:
        SurveyInvitation.objects.filter(pk__in=ids).update(customer_id=to_customer_id)
        SurveyResponse.objects.filter(invitation_id__in=ids).update(customer_id=to_customer_id)
    scores_recompute(customer_ids=[from_customer_id, to_customer_id])
    return ids


def personal_data_export(customer: Customer) -> dict[str, Any]:
    responses = (
        SurveyResponse.objects.filter(customer=customer).select_related("template").order_by("answered_at")
    )
    invitations = SurveyInvitation.objects.filter(customer=customer).order_by("created_at")
    return {
        "invitations": [
            {
                "template": inv.template_id,
                "source": inv.source,
                "sent_at": inv.sent_at.isoformat() if inv.sent_at else None,
                "answered_at": inv.answered_at.isoformat() if inv.answered_at else None,
            }
            for inv in invitations
        ],
        "responses": [
            {
                "survey": r.template.name,
                "kind": r.kind,
                "score": r.score,
                "comment": r.comment,
                "answered_at": r.answered_at.isoformat(),
            }
            for r in responses
        ],
    }


def personal_data_erase(customer: Customer, actor) -> dict[str, int]:
    """Blank the comments (the only free text held); scores stay for the statistics."""
    blanked = SurveyResponse.objects.filter(customer=customer).exclude(comment="").update(comment="")
    return {"comments_blanked": blanked}


FAILURE_MESSAGE = gettext_noop("The bulk send failed. Please try again.")


_SCORES_REBUILD_SQL = """
INSERT INTO surveys_customersurveyscore (customer_id, last_nps, last_nps_at, last_csat, last_csat_at)
SELECT c.customer_id, n.score, n.answered_at, s.score, s.answered_at
FROM (SELECT DISTINCT customer_id FROM surveys_surveyresponse) c
LEFT JOIN LATERAL (
    SELECT score, answered_at FROM surveys_surveyresponse r
    WHERE r.customer_id = c.customer_id AND r.kind = 'nps' ORDER BY answered_at DESC, id DESC LIMIT 1
) n ON TRUE
LEFT JOIN LATERAL (
    SELECT score, answered_at FROM surveys_surveyresponse r
    WHERE r.customer_id = c.customer_id AND r.kind = 'csat' ORDER BY answered_at DESC, id DESC LIMIT 1
) s ON TRUE
ON CONFLICT (customer_id) DO UPDATE SET last_nps = EXCLUDED.last_nps, last_nps_at = EXCLUDED.last_nps_at,
    last_csat = EXCLUDED.last_csat, last_csat_at = EXCLUDED.last_csat_at
"""


@transaction.atomic
def scores_rebuild_all() -> int:
    """Every customer's last scores from their responses, in one statement (the demo seeder, repairs)."""
    with connection.cursor() as cursor:
        cursor.execute(_SCORES_REBUILD_SQL)
        return cursor.rowcount
