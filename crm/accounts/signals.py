import time
from datetime import timedelta

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import connection
from django.dispatch import receiver
from django.utils import timezone


@receiver(user_logged_in)
def record_tenant_activity(sender, request, user, **kwargs):
    """Keep the platform console's "last activity" current, at most one write per five minutes."""
    from crm.tenancy.models import Tenant

    tenant = getattr(connection, "tenant", None)
    if not isinstance(tenant, Tenant) or tenant.schema_name == "public":
        return
    now = timezone.now()
    Tenant.objects.filter(pk=tenant.pk).exclude(last_activity_at__gt=now - timedelta(minutes=5)).update(
        last_activity_at=now
    )


@receiver(user_logged_in)
def remember_user_session(sender, request, user, **kwargs):
    """Map the new session to its user (in the schema being served) so it can be ended later."""
    from django.contrib.sessions.models import Session

    from .models import UserSession

    session = getattr(request, "session", None)
    if session is None or not hasattr(session, "session_key"):
        return
    if session.session_key is None:
        session.save()
    UserSession.objects.filter(user=user).exclude(
        session_key__in=Session.objects.filter(expire_date__gt=timezone.now()).values("session_key")
    ).delete()
    from .middleware import SessionActivityMiddleware

    session[SessionActivityMiddleware.SESSION_KEY] = time.time()
    UserSession.objects.update_or_create(
        session_key=session.session_key,
        defaults={
            "user": user,
            "user_agent": (request.headers.get("User-Agent") or "")[:300],
            "ip_address": client_ip(request),
            "last_seen_at": timezone.now(),
        },
    )


def client_ip(request) -> str | None:
    """The address as django-axes sees it (honouring AXES_IPWARE_PROXY_COUNT), if it is a valid IP."""
    import ipaddress

    from axes.helpers import get_client_ip_address

    try:
        value = get_client_ip_address(request)
        return str(ipaddress.ip_address(value)) if value else None
    except (ValueError, TypeError):
        return None


@receiver(user_logged_out)
def forget_user_session(sender, request, user, **kwargs):
    from .models import UserSession

    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        UserSession.objects.filter(session_key=session_key).delete()
