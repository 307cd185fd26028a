"""Run periodic work in every ready tenant.

Celery beat fires in the public schema, where tenant tables do not exist. A dispatcher task loops
over the ACTIVE tenants and sends the per-tenant task inside each tenant's context, so
tenant-schemas-celery stamps the message with that schema. Tenants still provisioning (or
suspended) are skipped.
"""

import logging

from celery import Task
from django_tenants.utils import tenant_context

from .models import Tenant

logger = logging.getLogger(__name__)


def active_tenants():
    return Tenant.objects.filter(status=Tenant.Status.ACTIVE).exclude(schema_name="public").order_by("pk")


def enqueue_for_active_tenants(task: Task, **kwargs) -> int:
    """Send `task` once per active tenant; returns how many were sent. One tenant that fails does
    not stop the others."""
    sent = 0
    for tenant in active_tenants():
        try:
            with tenant_context(tenant):
                task.apply_async(kwargs=kwargs)
            sent += 1
        except Exception:
            logger.exception("could not queue %s for tenant %s", task.name, tenant.schema_name)
    return sent
