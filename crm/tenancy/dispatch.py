"""Run periodic work in every ready tenant.

Celery beat fires in the public schema, where tenant tables do not exist. A dispatcher task loops
over the ACTIVE tenants and sends the per-tenant task inside each tenant's context, so
tenant-schemas-celery stamps the message with that schema. Tenants still provisioning (or
suspended) are skipped.

Names: the per-tenant task is `<thing>_task`, its beat entry (the dispatcher) `<thing>_all_tenants`
(e.g. `customers.tasks.purge_bin_task` / `purge_bin_all_tenants`).
"""

import logging
from collections.abc import Callable

from celery import Task
from django_tenants.utils import tenant_context

from .models import Tenant

logger = logging.getLogger(__name__)


def active_tenants():
    return Tenant.objects.filter(status=Tenant.Status.ACTIVE).exclude(schema_name="public").order_by("pk")


def run_in_active_tenants(function: Callable[[], object], *, what: str) -> int:
    """Call `function()` once inside each active tenant's context; returns in how many it succeeded.
    One tenant that fails (logged, with `what` for the reader) does not stop the others."""
    done = 0
    for tenant in active_tenants():
        try:
            with tenant_context(tenant):
                function()
            done += 1
        except Exception:
            logger.exception("could not queue %s for tenant %s", what, tenant.schema_name)
    return done


def enqueue_for_active_tenants(task: Task, **kwargs) -> int:
    """Send `task` once per active tenant (a beat entry `<thing>_all_tenants` sending `<thing>_task`);
    returns how many were sent."""
    return run_in_active_tenants(lambda: task.apply_async(kwargs=kwargs), what=task.name)
