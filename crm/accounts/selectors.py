"""Reads for the accounts pages. Everything here runs in the schema of the tenant being served."""

from django.db.models import Q, QuerySet
from django.http import Http404

from crm.audit.models import AuditEvent

from .models import Invitation, Role, User

AUDIT_PAGE_SIZE = 50


def user_list(*, search: str = "", role: str = "", status: str = "") -> QuerySet[User]:
    users = User.objects.all().only(
        "id", "email", "full_name", "role", "is_active", "last_login", "date_joined"
    )
    search = (search or "").strip()
    if search:
        users = users.filter(Q(email__icontains=search) | Q(full_name__icontains=search))
    if role in Role.values:
        users = users.filter(role=role)
    if status == "active":
        users = users.filter(is_active=True)
    elif status == "inactive":
        users = users.filter(is_active=False)
    return users.order_by("-is_active", "full_name", "email")


def user_get(*, user_id: int) -> User:
    try:
        return User.objects.get(pk=user_id)
    except (User.DoesNotExist, ValueError, TypeError):
        raise Http404


def invitation_list_pending() -> QuerySet[Invitation]:
    return (
        Invitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True)
        .select_related("invited_by")
        .order_by("-created_at")
    )


def invitation_get(*, invitation_id: int) -> Invitation:
    try:
        return Invitation.objects.get(pk=invitation_id)
    except (Invitation.DoesNotExist, ValueError, TypeError):
        raise Http404


def audit_actor_choices() -> list[User]:
    """The users the audit log can be filtered by (former users too: their records stay)."""
    return list(User.objects.order_by("full_name", "email").only("id", "full_name", "email"))


def audit_event_list(
    *,
    before_id: int | None = None,
    action: str = "",
    actor_id: int | None = None,
    customer: str = "",
    date_from=None,
    date_to=None,
    target_type: str = "",
    target_id: str = "",
) -> list[AuditEvent]:
    """One page of the tenant's audit log, newest first, paged by id (no COUNT over a long log).

    Dates are whole days in the viewer's time zone. Returns up to AUDIT_PAGE_SIZE + 1 events: the
    extra one only tells the page there is more.
    """
    from datetime import datetime, time, timedelta

    from django.utils import timezone

    events = AuditEvent.objects.select_related("actor").order_by("-id")
    if before_id:
        events = events.filter(id__lt=before_id)
    if action:
        events = events.filter(action=action)
    if actor_id:
        events = events.filter(actor_id=actor_id)
    if customer:
        events = events.filter(target_type=CUSTOMER_TARGET, target_label__icontains=customer)
    zone = timezone.get_current_timezone()
    if date_from:
        events = events.filter(created_at__gte=datetime.combine(date_from, time.min, tzinfo=zone))
    if date_to:
        events = events.filter(
            created_at__lt=datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=zone)
        )
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=str(target_id))
    return list(events[: AUDIT_PAGE_SIZE + 1])


# The customers app's model label (a string: crm/ does not import the apps above it).
CUSTOMER_TARGET = "customers.customer"


def audit_with_display_changes(events) -> list[AuditEvent]:
    """Attach what the log shows: `name` (the event's translated name) and `display_changes` (each
    detail's label, as the forms name the field, and its formatted old/new or value)."""
    from crm.audit.labels import display_value, event_name, field_label

    result = []
    for event in events:
        rows = []
        for field, change in (event.changes or {}).items():
            label = field_label(event.target_type, field)
            if isinstance(change, dict) and change and set(change) <= {"old", "new"}:
                rows.append(
                    {
                        "field": label,
                        "is_edit": True,
                        "old": display_value(change.get("old"), event.target_type, field),
                        "new": display_value(change.get("new"), event.target_type, field),
                    }
                )
            else:
                rows.append(
                    {"field": label, "is_edit": False, "value": display_value(change, event.target_type)}
                )
        event.name = event_name(event.action)
        event.display_changes = rows
        result.append(event)
    return result


def user_session_list(*, user: User, current_session_key: str | None) -> list:
    """The user's sessions that are still alive, newest activity first, the current one marked."""
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from .models import UserSession

    alive = Session.objects.filter(expire_date__gt=timezone.now()).values("session_key")
    rows = list(
        UserSession.objects.filter(user=user, session_key__in=alive).order_by("-last_seen_at", "-created_at")
    )
    for row in rows:
        row.is_current = row.session_key == current_session_key
        row.browser = describe_user_agent(row.user_agent)
    rows.sort(key=lambda row: not row.is_current)
    return rows


def describe_user_agent(user_agent: str) -> str:
    """A short "browser on system" label from a User-Agent string (no parsing library, a few patterns)."""
    text = user_agent or ""
    browser = next(
        (
            name
            for token, name in (
                ("Edg/", "Edge"),
                ("OPR/", "Opera"),
                ("MicroMessenger", "WeChat"),
                ("Firefox/", "Firefox"),
                ("HeadlessChrome", "Chrome (headless)"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
            )
            if token in text
        ),
        "",
    )
    system = next(
        (
            name
            for token, name in (
                ("iPhone", "iPhone"),
                ("iPad", "iPad"),
                ("Android", "Android"),
                ("Windows", "Windows"),
                ("Mac OS X", "macOS"),
                ("Linux", "Linux"),
            )
            if token in text
        ),
        "",
    )
    if browser and system:
        return f"{browser} · {system}"
    return browser or system or text[:60]
