"""A background job the user can watch: imports, exports, recomputes. Lives in the tenant schema."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class BackgroundJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Finished")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING)

    # e.g. "customers.import", "customers.export", "segmentation.recompute"
    kind = models.CharField(_("kind"), max_length=60, db_index=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)  # 0..100
    # A msgid (translated when shown, see crm/jobs/messages.py) or a sentence stored as it is.
    message = models.CharField(_("message"), max_length=500, blank=True)
    message_params = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    # A file the job reads (an upload) or produces (an export); stored under the tenant's folder.
    input_file = models.FileField(upload_to="jobs/input/%Y/%m/", blank=True)
    output_file = models.FileField(upload_to="jobs/output/%Y/%m/", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    celery_task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("background job")
        verbose_name_plural = _("background jobs")
        indexes = [models.Index(fields=["kind", "status"], name="job_kind_status_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="job_progress_max_100"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def shown_message(self) -> str:
        """The message in the reader's language."""
        from .messages import shown

        return shown(self.message, self.message_params)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES
