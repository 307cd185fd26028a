"""Follow-ups (跟进任务): a promised call-back or visit with a due time, and the tenant's rules that
create them when something happens to a customer.

A follow-up is also the row its due reminder is delivered from (Zulip's scheduled-message shape): the
periodic reminder task claims open follow-ups whose `due_at` has passed and `reminded_at` is empty,
hands each to the notifications service under a key made of its id and due time, then stamps
`reminded_at`. Snoozing or rescheduling clears `reminded_at`, so the new time reminds again.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

TITLE_MAX = 200
NOTES_MAX = 4000


class FollowUp(models.Model):
    # crm.accounts.permissions.visible_to: a follow-up is seen with its customer (a rep also sees the
    # ones assigned to them: interactions.followups.selectors.followup_visible).
    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")

    class Source(models.TextChoices):
        MANUAL = "manual", _("Manual")
        CHURN_ALERT = "churn_alert", _("Churn alert")
        NEW_CUSTOMER = "new_customer", _("New customer")
        FIRST_PURCHASE = "first_purchase", _("First purchase")
        LIFECYCLE_STAGE = "lifecycle_stage", _("Lifecycle stage")
        SEGMENT = "segment", _("Saved segment")
        RULE = "rule", _("Rule")

    customer = models.ForeignKey(
        "customers.Customer", verbose_name=_("customer"), on_delete=models.CASCADE, related_name="followups"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assignee"),
        on_delete=models.PROTECT,
        related_name="followups",
    )
    due_at = models.DateTimeField(_("due"))
    title = models.CharField(_("title"), max_length=TITLE_MAX)
    notes = models.TextField(_("notes"), blank=True, max_length=NOTES_MAX)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.OPEN)
    snooze_count = models.PositiveSmallIntegerField(_("snoozed"), default=0)
    source = models.CharField(_("source"), max_length=20, choices=Source.choices, default=Source.MANUAL)
    # What created it, e.g. "rule:3:alert:812": one trigger occurrence gives one follow-up, however often
    # the signal is delivered or however many workers race. Empty (NULL) for manual follow-ups.
    source_key = models.CharField(max_length=120, unique=True, null=True, blank=True)
    rule = models.ForeignKey(
        "followups.FollowUpRule", on_delete=models.SET_NULL, null=True, blank=True, related_name="followups"
    )
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # When its due reminder was handed to the notifications service (None: not yet, or due again).
    reminded_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = _("follow-up")
        verbose_name_plural = _("follow-ups")
        indexes = [
            # "My open follow-ups by due time" (My day, the digest).
            models.Index(
                fields=["assignee", "due_at", "id"], condition=Q(status="open"), name="followup_open_mine_idx"
            ),
            # "Customers with an open follow-up" (list filter, 360 panel) and a manager's team view.
            models.Index(fields=["customer"], condition=Q(status="open"), name="followup_open_customer_idx"),
            models.Index(fields=["due_at", "id"], condition=Q(status="open"), name="followup_open_due_idx"),
            # The reminder task's scan: open, due, not yet handed over.
            models.Index(
                fields=["due_at"],
                condition=Q(status="open", reminded_at__isnull=True),
                name="followup_to_remind_idx",
            ),
            # Timeline of one customer.
            models.Index(fields=["customer", "-created_at"], name="followup_customer_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="open") | Q(completed_at__isnull=False), name="followup_closed_has_time"
            ),
            models.CheckConstraint(condition=~Q(title=""), name="followup_title_not_empty"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class FollowUpRule(models.Model):
    """When something happens to a customer, a follow-up for its owner (or `fallback_assignee`) after
    `delay_days` days."""

    class Trigger(models.TextChoices):
        CUSTOMER_CREATED = "customer_created", _("A customer is created")
        FIRST_PURCHASE = "first_purchase", _("A customer makes a first purchase")
        LIFECYCLE_STAGE = "lifecycle_stage", _("A customer enters a lifecycle stage")
        SEGMENT = "segment", _("A customer enters a saved segment")
        CHURN_ALERT = "churn_alert", _("A churn alert is raised")

    name = models.CharField(_("name"), max_length=120)
    trigger = models.CharField(_("when"), max_length=30, choices=Trigger.choices)
    # Lifecycle stage key (segmentation.labels.LifecycleStage) for LIFECYCLE_STAGE rules.
    stage = models.CharField(_("lifecycle stage"), max_length=20, blank=True)
    segment = models.ForeignKey(
        "segmentation.Segment",
        verbose_name=_("saved segment"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    delay_days = models.PositiveSmallIntegerField(_("after (days)"), default=0)
    title = models.CharField(_("follow-up title"), max_length=TITLE_MAX)
    fallback_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assignee when the customer has no active owner"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    is_active = models.BooleanField(_("active"), default=True)
    # Saved-segment rules: when the members were first recorded (the baseline gets no follow-ups).
    members_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("follow-up rule")
        verbose_name_plural = _("follow-up rules")
        indexes = [models.Index(fields=["trigger"], condition=Q(is_active=True), name="fu_rule_active_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def stage_label(self) -> str:
        from segmentation.labels import stage_label

        return str(stage_label(self.stage)) if self.stage else ""


class RuleSegmentMember(models.Model):
    """Who was in a saved-segment rule's segment after the last evaluation (so only entrants get a
    follow-up, and someone who leaves and comes back is an entrant again)."""

    rule = models.ForeignKey(FollowUpRule, on_delete=models.CASCADE, related_name="members")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    since = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "customer"], name="fu_rule_member_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.customer_id}"
