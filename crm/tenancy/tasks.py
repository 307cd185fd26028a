from celery import shared_task


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=5)
def provision_tenant_task(self, tenant_id: int) -> str:
    """Runs in the public schema; safe to re-run (each provisioning step checks what already exists)."""
    from .services import tenant_provision

    tenant = tenant_provision(tenant_id=tenant_id)
    return tenant.status
