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
