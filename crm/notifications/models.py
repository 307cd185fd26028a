"""Notifications, their e-mail deliveries, per-user preferences and the daily digest runs (tenant schema)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .registry import KIND_MAX_LENGTH

TITLE_MAX_LENGTH = 200
BODY_MAX_LENGTH = 2000
URL_MAX_LENGTH = 500
KEY_MAX_LENGTH = 200


class Notification(models.Model):
    """One message for one user. `key` makes creation idempotent: the same (recipient, key) is one row
    however often it is sent (e.g. "followups.due:42:2026-12-03")."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("recipient"),
    )
    kind = models.CharField(_("kind"), max_length=KIND_MAX_LENGTH)
    key = models.CharField(_("key"), max_length=KEY_MAX_LENGTH)
    title = models.CharField(_("title"), max_length=TITLE_MAX_LENGTH)
    body = models.TextField(_("text"), max_length=BODY_MAX_LENGTH, blank=True)
    url = models.CharField(_("link"), max_length=URL_MAX_LENGTH, blank=True)  # relative to the tenant's site
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints = [
            models.UniqueConstraint(fields=["recipient", "key"], name="notification_recipient_key_unique"),
            models.CheckConstraint(condition=~models.Q(key=""), name="notification_key_not_empty"),
        ]
        indexes = [
            # The page lists a user's notifications newest first, the unread ones first (partial index)
            models.Index(fields=["recipient", "-id"], name="notification_recipient_idx"),
            models.Index(
                fields=["recipient", "-id"],
                name="notification_unread_idx",
                condition=models.Q(read_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class EmailDelivery(models.Model):
    """The e-mail of one notification. Claimed (claimed_at, attempts + 1) in a committed transaction
    before sending and marked sent after: a worker that dies in between leaves the row claimed, and it
    is claimed again after a timeout and re-sent with the same Message-ID; `attempts` > 1 counts that."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        SENT = "sent", _("Sent")
        SKIPPED = "skipped", _("Not sent")  # the recipient was deactivated meanwhile
        FAILED = "failed", _("Failed")

    notification = models.OneToOneField(
        Notification, on_delete=models.CASCADE, related_name="email_delivery", verbose_name=_("notification")
    )
    message_id = models.CharField(_("Message-ID"), max_length=255, unique=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("e-mail delivery")
        verbose_name_plural = _("e-mail deliveries")
        indexes = [
            models.Index(
                fields=["claimed_at", "id"],
                name="email_delivery_pending_idx",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} ({self.status})"


class NotificationPreference(models.Model):
    """A user's choice for one topic: a notification kind (`email`) or a digest section (`digest`).
    In-app notifications are always on. No row means the registered defaults."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(_("kind"), max_length=KIND_MAX_LENGTH)
    email = models.BooleanField(_("by e-mail"), default=True)
    digest = models.BooleanField(_("in the daily digest"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="notification_preference_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}"


class DigestRun(models.Model):
    """The daily digest of one user for one local date: claimed (inserted) before sending, so it is
    never sent twice for a day; a claim left by a worker that died is taken again after a timeout."""

    class Status(models.TextChoices):
        CLAIMED = "claimed", _("Sending")
        SENT = "sent", _("Sent")
        SKIPPED = "skipped", _("Nothing to send")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(_("day"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.CLAIMED)
    attempts = models.PositiveIntegerField(_("attempts"), default=1)
    items = models.PositiveIntegerField(_("items"), default=0)
    claimed_at = models.DateTimeField(_("claimed"))
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)

    class Meta:
        verbose_name = _("daily digest")
        verbose_name_plural = _("daily digests")
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="digest_run_user_day_unique")]
        indexes = [
            models.Index(fields=["day"], name="digest_run_claimed_idx", condition=models.Q(status="claimed")),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} ({self.status})"
