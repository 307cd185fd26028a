from datetime import timedelta

from django.contrib.auth.signals import user_logged_in
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
