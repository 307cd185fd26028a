"""Service tickets (工单): tickets, their thread, teams, SLA policies and the desk's working hours.

Times are stored in UTC. The SLA clocks are kept as due times on the ticket (computed in business
hours by `business_hours.py` when the ticket opens and again whenever a pause ends), together with the
80% warning instants, so the periodic scan over tens of thousands of open tickets is plain indexed SQL.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Priority(models.TextChoices):
    URGENT = "urgent", _("Urgent")
    HIGH = "high", _("High")
    NORMAL = "normal", _("Normal")
    LOW = "low", _("Low")


PRIORITY_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


class Status(models.TextChoices):
    NEW = "new", _("New")
    OPEN = "open", _("Open")
    WAITING = "waiting", _("Waiting on customer")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


# Statuses in which the SLA clocks run (WAITING pauses them; RESOLVED/CLOSED stop them).
RUNNING_STATUSES = (Status.NEW, Status.OPEN)
OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.WAITING)


class Channel(models.TextChoices):
    PHONE = "phone", _("Phone")
    EMAIL = "email", _("E-mail")
    WECHAT = "wechat", _("WeChat")
    WEB = "web", _("Web form")
    STORE = "store", _("Store")
    CHAT = "chat", _("Online chat")


class SlaTarget(models.TextChoices):
    FIRST_RESPONSE = "first_response", _("First response")
    RESOLUTION = "resolution", _("Resolution")


class SlaLevel(models.TextChoices):
    WARNING = "warning", _("Warning (80%)")
    BREACH = "breach", _("Breach")


class ServiceSettings(models.Model):
    """The tenant's service desk settings: one row (pk=1) per tenant schema."""

    # weekday ("0" = Monday) -> [["09:00", "18:00"], ...] in the tenant's time zone
    working_hours = models.JSONField(_("working hours"), default=dict, blank=True)
    holiday_country = models.CharField(
        _("public holidays of"),
        max_length=2,
        blank=True,
        default="CN",
        help_text=_("Public holidays and make-up working days of this country are taken into account."),
    )
    acknowledge_contact_form = models.BooleanField(
        _("acknowledge contact form requests by e-mail"), default=True
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("service settings")
        verbose_name_plural = _("service settings")

    def __str__(self) -> str:
        return str(_("Service settings"))


class Holiday(models.Model):
    """A day the tenant's desk is closed (or, with is_working_day, an extra working day)."""

    day = models.DateField(_("date"), unique=True)
    name = models.CharField(_("name"), max_length=100)
    is_working_day = models.BooleanField(_("extra working day"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["day"]
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")

    def __str__(self) -> str:
        return f"{self.day} {self.name}"


class TicketCategory(models.Model):
    name = models.CharField(_("name"), max_length=80, unique=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "name"]
        verbose_name = _("ticket category")
        verbose_name_plural = _("ticket categories")

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    name = models.CharField(_("name"), max_length=80, unique=True)
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("manager"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="managed_service_teams",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, verbose_name=_("members"), blank=True, related_name="service_teams"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self) -> str:
        return self.name


class SlaPolicy(models.Model):
    """Targets for tickets of one priority (and optionally one category) in business minutes."""

    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices)
    category = models.ForeignKey(
        TicketCategory,
        verbose_name=_("category"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sla_policies",
        help_text=_("Empty: every category without a policy of its own."),
    )
    first_response_minutes = models.PositiveIntegerField(_("first response within (business minutes)"))
    resolution_minutes = models.PositiveIntegerField(_("resolution within (business minutes)"))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "category__name"]
        verbose_name = _("SLA policy")
        verbose_name_plural = _("SLA policies")
        constraints = [
            models.UniqueConstraint(
                fields=["priority", "category"], name="sla_policy_priority_category_unique"
            ),
            models.UniqueConstraint(
                fields=["priority"],
                condition=models.Q(category=None),
                name="sla_policy_priority_default_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(first_response_minutes__gt=0, resolution_minutes__gt=0),
                name="sla_policy_targets_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_priority_display()} {self.category or ''}".strip()


class Ticket(models.Model):
    # Who sees a ticket is decided by selectors.ticket_scope (assignee, the customer's owner or
    # sharers, the assignee's team); managers and admins see every ticket.
    customer = models.ForeignKey(
        "customers.Customer", verbose_name=_("customer"), on_delete=models.CASCADE, related_name="tickets"
    )
    subject = models.CharField(_("subject"), max_length=200)
    description = models.TextField(_("description"), max_length=10_000, blank=True)
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    category = models.ForeignKey(
        TicketCategory,
        verbose_name=_("category"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tickets",
    )
    priority = models.CharField(
        _("priority"), max_length=10, choices=Priority.choices, default=Priority.NORMAL
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assignee"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tickets",
        db_index=False,  # ticket_assignee_queue_idx
    )
    team = models.ForeignKey(
        Team, verbose_name=_("team"), on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    order = models.ForeignKey(
        "customers.Order",
        verbose_name=_("related order"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tickets",
    )
    requester_email = models.EmailField(_("requester e-mail"), blank=True)
    requester_phone = models.CharField(_("requester phone"), max_length=32, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    first_response_at = models.DateTimeField(_("first response"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)  # contact-form acknowledgement sent
    # Business time (seconds, pauses taken out) it took to respond and to resolve: kept when they happen
    # so the service figures (median, p90) are one SQL aggregate.
    first_response_seconds = models.PositiveIntegerField(null=True, blank=True)
    resolution_seconds = models.PositiveIntegerField(null=True, blank=True)

    # SLA: the policy's targets copied at opening (a later policy change does not move old tickets),
    # due and 80%-warning instants (None: no target), the pause in progress and the business time
    # paused so far, and the cycle (a reopened ticket starts a new cycle of warnings and escalations).
    first_response_target = models.PositiveIntegerField(null=True, blank=True)  # business minutes
    resolution_target = models.PositiveIntegerField(null=True, blank=True)
    first_response_due_at = models.DateTimeField(null=True, blank=True)
    first_response_warn_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    resolution_warn_at = models.DateTimeField(null=True, blank=True)
    paused_since = models.DateTimeField(null=True, blank=True)
    paused_seconds = models.PositiveIntegerField(default=0)  # business seconds
    sla_cycle = models.PositiveSmallIntegerField(default=1)

    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # set by ticket_open before the SLA instants are computed from it (not auto_now_add)
    created_at = models.DateTimeField(_("opened"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        indexes = [
            # queues: keyset (-created_at, -id) per assignee / team / unassigned, live tickets only
            models.Index(
                fields=["assignee", "-created_at", "-id"],
                name="ticket_assignee_queue_idx",
                condition=models.Q(deleted_at=None),
            ),
            models.Index(
                fields=["team", "-created_at", "-id"],
                name="ticket_team_queue_idx",
                condition=models.Q(deleted_at=None),
            ),
            models.Index(
                fields=["-created_at", "-id"],
                name="ticket_live_created_idx",
                condition=models.Q(deleted_at=None),
            ),
            models.Index(fields=["customer", "status"], name="ticket_customer_status_idx"),
            # the SLA scan and "breaching soon": open tickets by their next instants
            models.Index(
                fields=["first_response_warn_at"],
                name="ticket_fr_warn_idx",
                condition=models.Q(deleted_at=None, first_response_at=None, status__in=["new", "open"]),
            ),
            models.Index(
                fields=["resolution_warn_at"],
                name="ticket_res_warn_idx",
                condition=models.Q(deleted_at=None, status__in=["new", "open"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(status="waiting") | models.Q(paused_since__isnull=False),
                name="ticket_waiting_is_paused",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class TicketMessage(models.Model):
    class Kind(models.TextChoices):
        REPLY = "reply", _("Reply to the customer")
        NOTE = "note", _("Internal note")
        CUSTOMER = "customer", _("From the customer")

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    body = models.TextField(_("message"), max_length=10_000)
    # Replies: the Message-ID every (re)send uses, and when the e-mail went out.
    email_message_id = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("ticket message")
        verbose_name_plural = _("ticket messages")
        indexes = [models.Index(fields=["ticket", "created_at"], name="ticket_message_thread_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.ticket_id}"


def attachment_path(instance: "TicketAttachment", filename: str) -> str:
    # The storage puts every file under the tenant's own folder (crm.storage).
    return f"service/tickets/{instance.ticket_id}/{filename}"


class TicketAttachment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(
        TicketMessage, on_delete=models.SET_NULL, null=True, blank=True, related_name="attachments"
    )
    file = models.FileField(upload_to=attachment_path, max_length=300)
    original_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.original_name


class SlaEvent(models.Model):
    """One warning (80%) or escalation (breach) of one SLA target of one ticket, in one cycle.

    The unique key is the claim: the scan inserts with ON CONFLICT DO NOTHING, so a scan that runs
    twice, or again after a worker was killed, never raises the same event twice. `delivered_at` is set
    once the notification has been handed on (see services.sla_deliver_pending).
    """

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="sla_events")
    target = models.CharField(max_length=20, choices=SlaTarget.choices)
    level = models.CharField(max_length=10, choices=SlaLevel.choices)
    cycle = models.PositiveSmallIntegerField(default=1)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    due_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["ticket", "target", "level", "cycle"], name="sla_event_once"),
        ]
        indexes = [
            models.Index(
                fields=["id"], name="sla_event_undelivered_idx", condition=models.Q(delivered_at=None)
            ),
            models.Index(fields=["recipient", "-created_at"], name="sla_event_recipient_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.target} {self.level} #{self.ticket_id}"
