from celery import shared_task


@shared_task(bind=True, acks_late=True)
def provision_tenant_task(self, tenant_id: int) -> str:
    """Runs in the public schema; safe to re-run (each provisioning step checks what already exists).

    A failure marks the tenant "failed" with the error; the console offers "retry", which sends
    this task again.
    """
    from .services import tenant_provision, tenant_spares_prepare

    tenant = tenant_provision(tenant_id=tenant_id)
    # The tenant is active now; get the next one's schema ready while nobody waits.
    tenant_spares_prepare()
    return tenant.status


@shared_task(acks_late=True)
def tenant_final_backup_task(tenant_id: int) -> str:
    """The final backup of a company deleted in the console (public schema; idempotent)."""
    from .deletion import tenant_final_backup

    return tenant_final_backup(tenant_id=tenant_id)


@shared_task(acks_late=True)
def tenant_purge_task(tenant_id: int) -> bool:
    """Purge one deleted company past its grace period (public schema; idempotent)."""
    from .deletion import tenant_purge

    return tenant_purge(tenant_id=tenant_id)


@shared_task(acks_late=True)
def purge_deleted_all_tenants() -> int:
    """Beat: send tenant_purge_task for every deleted company past its grace period."""
    from .deletion import tenants_due_for_purge

    due = list(tenants_due_for_purge().values_list("pk", flat=True))
    for tenant_id in due:
        tenant_purge_task.delay(tenant_id)
    return len(due)


@shared_task(acks_late=True)
def tenant_usage_task(tenant_id: int, day: str) -> bool:
    """Record one tenant's usage for `day` (ISO date) in the public schema; an upsert, so a re-run or a
    redelivery after a crash rewrites the same row."""
    from datetime import date

    from .usage import tenant_usage_record

    return tenant_usage_record(tenant_id=tenant_id, day=date.fromisoformat(day)) is not None


@shared_task(acks_late=True)
def tenant_usage_all_tenants() -> int:
    """Beat (daily): send tenant_usage_task for every active tenant, all for the same day, and drop
    rows past their keeping time."""
    from django.utils import timezone

    from .dispatch import active_tenants
    from .usage import tenant_usage_forget_old

    day = timezone.now().date()
    tenant_ids = list(active_tenants().values_list("pk", flat=True))
    for tenant_id in tenant_ids:
        tenant_usage_task.delay(tenant_id, day.isoformat())
    tenant_usage_forget_old(today=day)
    return len(tenant_ids)
