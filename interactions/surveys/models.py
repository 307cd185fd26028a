"""Satisfaction surveys (满意度调查): NPS (0-10) and CSAT (1-5) by a signed, single-use link.

- `SurveyTemplate`: what is asked (in English and Chinese), and when it is sent by itself (a ticket
  resolved, an interaction logged with one of the chosen outcomes).
- `SurveyInvitation`: one link sent to one customer. `source_key` names what caused it (a ticket and
  template, an interaction and template, or a bulk batch, template and customer), so a trigger that
  arrives twice never invites twice. It is also the row its e-mail is delivered from: claimed in
  batches (SKIP LOCKED), sent with a stable Message-ID, marked sent (crash-safe like the notification
  e-mails of crm.notifications.mailing, whose SMTP sending it reuses).
- `SurveyResponse`: the answer (one per invitation: the one-to-one key is the single use), tied to the
  customer, the ticket or interaction, the agent who handled it, the channel and the ticket category.
- `CustomerSurveyScore`: each customer's last NPS and CSAT, kept on every answer, so segment rules and
  list filters are an indexed join.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

COMMENT_MAX = 2000
QUESTION_MAX = 300


class SurveyKind(models.TextChoices):
    NPS = "nps", _("NPS (0-10)")
    CSAT = "csat", _("CSAT (1-5)")


SCORE_RANGE = {SurveyKind.NPS: (0, 10), SurveyKind.CSAT: (1, 5)}


def is_detractor(kind: str, score: int) -> bool:
    """NPS 0-6 and CSAT 1-2 are detractors (the closed loop)."""
    return score <= 6 if kind == SurveyKind.NPS else score <= 2


class SurveyTemplate(models.Model):
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=4, choices=SurveyKind.choices)
    question_en = models.CharField(_("question (English)"), max_length=QUESTION_MAX)
    question_zh = models.CharField(_("question (Chinese)"), max_length=QUESTION_MAX)
    ask_comment = models.BooleanField(_("ask for a comment"), default=True)
    is_active = models.BooleanField(_("active"), default=True)
    on_ticket_resolved = models.BooleanField(_("send when a ticket is resolved"), default=False)
    after_outcomes = models.ManyToManyField(
        "interactions.InteractionOutcome",
        verbose_name=_("send after interactions with these outcomes"),
        blank=True,
        related_name="+",
    )
    expires_days = models.PositiveSmallIntegerField(_("link valid for (days)"), default=14)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name", "id"]
        verbose_name = _("survey template")
        verbose_name_plural = _("survey templates")
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_days__gte=1, expires_days__lte=90), name="survey_template_expiry_range"
            ),
            models.CheckConstraint(condition=Q(kind__in=["nps", "csat"]), name="survey_template_kind_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    def question(self, language: str | None = None) -> str:
        language = language or get_language() or "en"
        return self.question_zh if language.startswith("zh") and self.question_zh else self.question_en

    @property
    def score_range(self) -> tuple[int, int]:
        return SCORE_RANGE[self.kind]


class SurveyInvitation(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")

    class Source(models.TextChoices):
        TICKET = "ticket", _("Ticket resolved")
        INTERACTION = "interaction", _("Interaction")
        BULK = "bulk", _("Bulk send")

    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"

    template = models.ForeignKey(SurveyTemplate, on_delete=models.PROTECT, related_name="invitations")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="survey_invitations", db_index=False
    )
    ticket = models.ForeignKey(
        "service.Ticket", on_delete=models.SET_NULL, null=True, blank=True, related_name="survey_invitations"
    )
    interaction = models.ForeignKey(
        "interactions.Interaction",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="survey_invitations",
    )
    source = models.CharField(max_length=12, choices=Source.choices)
    # e.g. "ticket:12:t3", "interaction:40:t1", "bulk:<job id>:t2:c981": one invitation per cause
    source_key = models.CharField(max_length=120, unique=True)
    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    language = models.CharField(max_length=10, default="en")
    expires_at = models.DateTimeField()
    # delivery (claimed in batches, like crm.notifications' EmailDelivery)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("survey invitation")
        verbose_name_plural = _("survey invitations")
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="survey_inv_customer_idx"),
            models.Index(
                fields=["id"], name="survey_inv_unsent_idx", condition=Q(sent_at=None, failed_at=None)
            ),
            models.Index(fields=["template", "-created_at"], name="survey_inv_template_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.template_id}:{self.customer_id}"

    @property
    def message_id(self) -> str:
        from django.db import connection

        return f"<survey-{connection.schema_name}-{self.pk}@{settings.BASE_DOMAIN}>"


class SurveyResponse(models.Model):
    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"

    invitation = models.OneToOneField(SurveyInvitation, on_delete=models.CASCADE, related_name="response")
    template = models.ForeignKey(SurveyTemplate, on_delete=models.PROTECT, related_name="responses")
    kind = models.CharField(max_length=4, choices=SurveyKind.choices)
    score = models.PositiveSmallIntegerField(_("score"))
    comment = models.TextField(_("comment"), max_length=COMMENT_MAX, blank=True)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="survey_responses", db_index=False
    )
    ticket = models.ForeignKey(
        "service.Ticket", on_delete=models.SET_NULL, null=True, blank=True, related_name="survey_responses"
    )
    interaction = models.ForeignKey(
        "interactions.Interaction",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="survey_responses",
    )
    # the ticket's assignee or the interaction's author when the invitation was answered
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # the channel of the ticket or interaction rated ("" for a bulk survey)
    channel = models.CharField(_("channel"), max_length=20, blank=True)
    category = models.ForeignKey(
        "service.TicketCategory", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    answered_at = models.DateTimeField(_("answered"))

    class Meta:
        ordering = ["-answered_at", "-id"]
        verbose_name = _("survey response")
        verbose_name_plural = _("survey responses")
        indexes = [
            models.Index(fields=["kind", "-answered_at", "-id"], name="survey_resp_kind_time_idx"),
            models.Index(fields=["customer", "kind", "-answered_at"], name="survey_resp_customer_idx"),
            models.Index(fields=["agent", "kind", "answered_at"], name="survey_resp_agent_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="nps", score__gte=0, score__lte=10) | Q(kind="csat", score__gte=1, score__lte=5)
                ),
                name="survey_response_score_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.score} ({self.customer_id})"

    @property
    def is_detractor(self) -> bool:
        return is_detractor(self.kind, self.score)


class CustomerSurveyScore(models.Model):
    """The customer's last NPS and CSAT answers (for segment rules, list filters and the 360 page)."""

    customer = models.OneToOneField(
        "customers.Customer", on_delete=models.CASCADE, primary_key=True, related_name="survey_score"
    )
    last_nps = models.PositiveSmallIntegerField(_("last NPS score"), null=True, blank=True)
    last_nps_at = models.DateTimeField(null=True, blank=True)
    last_csat = models.PositiveSmallIntegerField(_("last CSAT"), null=True, blank=True)
    last_csat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("survey score")
        verbose_name_plural = _("survey scores")
        indexes = [
            models.Index(fields=["last_nps"], name="survey_score_nps_idx"),
            models.Index(fields=["last_csat"], name="survey_score_csat_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: NPS {self.last_nps} CSAT {self.last_csat}"
