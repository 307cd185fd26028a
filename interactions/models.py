"""The interaction log (客户互动): every touch with a customer on every channel, with its outcome.

Time is stored in UTC and entered and shown in the tenant's time zone. Deletes are soft
(`deleted_at`): a deleted interaction stays restorable from the "Recycle bin" filter of the
interactions page until its customer is purged.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .labels import DEFAULT_OUTCOMES, Channel, Direction

LIVE = models.Q(deleted_at=None)


class InteractionOutcome(models.Model):
    """A tenant-configurable outcome. Defaults have a `key` and no `name` (shown translated)."""

    key = models.SlugField(_("key"), max_length=50, unique=True)
    name = models.CharField(_("name"), max_length=80, blank=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("interaction outcome")
        verbose_name_plural = _("interaction outcomes")

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        default = DEFAULT_OUTCOMES.get(self.key)
        return str(default) if default is not None else self.key


class Interaction(models.Model):
    # Sales see the interactions of the customers visible to them (crm.accounts.permissions.visible_to).
    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"

    customer = models.ForeignKey(
        "customers.Customer",
        verbose_name=_("customer"),
        on_delete=models.CASCADE,  # purged with the customer; soft-deleted customers keep them
        related_name="interactions",
        db_index=False,  # interaction_customer_time_idx (customer, -occurred_at, -id) serves it
    )
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    occurred_at = models.DateTimeField(_("when"))
    duration_minutes = models.PositiveIntegerField(_("duration (minutes)"), null=True, blank=True)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    notes = models.TextField(_("notes"), max_length=10_000, blank=True)
    outcome = models.ForeignKey(
        InteractionOutcome,
        verbose_name=_("outcome"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # interaction_outcome_time_idx
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("author"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # interaction_author_time_idx
    )
    order = models.ForeignKey(
        "customers.Order",
        verbose_name=_("order"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        indexes = [
            # The 360 panel, the timeline, "last contact" and "no contact for N days": per customer,
            # newest first.
            models.Index(
                fields=["customer", "-occurred_at", "-id"],
                name="interaction_customer_time_idx",
                condition=LIVE,
            ),
            # The interactions page: keyset by (occurred_at, id), alone or with the common filters.
            models.Index(fields=["-occurred_at", "-id"], name="interaction_time_idx", condition=LIVE),
            models.Index(
                fields=["channel", "-occurred_at", "-id"], name="interaction_channel_time_idx", condition=LIVE
            ),
            models.Index(
                fields=["author", "-occurred_at", "-id"], name="interaction_author_time_idx", condition=LIVE
            ),
            models.Index(
                fields=["outcome", "-occurred_at", "-id"], name="interaction_outcome_time_idx", condition=LIVE
            ),
            # The recycle bin filter: only the few deleted rows are indexed.
            models.Index(
                fields=["-deleted_at", "-id"],
                name="interaction_binned_idx",
                condition=models.Q(deleted_at__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(channel__in=Channel.values), name="interaction_channel_known"
            ),
            models.CheckConstraint(
                condition=models.Q(direction__in=Direction.values), name="interaction_direction_known"
            ),
            models.CheckConstraint(
                condition=models.Q(duration_minutes__lte=24 * 60), name="interaction_duration_max_1_day"
            ),
        ]

    def __str__(self) -> str:
        return self.subject or f"{self.get_channel_display()} {self.occurred_at:%Y-%m-%d}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class InteractionAttachment(models.Model):
    VISIBILITY_OWNER_FIELD = "interaction__customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "interaction__customer__shared_with"

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(_("file"), upload_to="interactions/%Y/%m/", max_length=300)
    original_name = models.CharField(_("file name"), max_length=200)
    size = models.PositiveIntegerField(_("size"))
    content_type = models.CharField(max_length=100, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Removed from its interaction by a user: hidden and restorable, the file kept, like an
    # interaction in the bin; the file goes when the customer is purged (or erased).
    removed_at = models.DateTimeField(_("removed at"), null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.original_name
