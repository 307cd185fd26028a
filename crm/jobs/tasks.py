from datetime import timedelta

from celery import shared_task
from django.utils import timezone
from django.utils.translation import gettext_noop

from crm.tenancy.dispatch import enqueue_for_active_tenants

from .models import BackgroundJob


@shared_task(acks_late=True)
def fail_stale_jobs_task(max_age_hours: int = 6) -> int:
    """Mark jobs that have been waiting or running far too long as failed, so no progress bar spins
    forever after a lost worker. Runs in the tenant schema it was sent from; idempotent."""
    cutoff = timezone.now() - timedelta(hours=max_age_hours)
    return BackgroundJob.objects.filter(
        status__in=BackgroundJob.ACTIVE_STATUSES, updated_at__lt=cutoff
    ).update(
        status=BackgroundJob.Status.FAILED,
        # A worker's language is nobody's: the key and parameters, translated when shown.
        message=gettext_noop("Stopped: no progress for %(hours)s hours. Please start it again."),
        message_params={"hours": max_age_hours},
        finished_at=timezone.now(),
    )


@shared_task(acks_late=True)
def fail_stale_jobs_all_tenants() -> int:
    """Beat entry (public schema): one fail_stale_jobs_task per active tenant."""
    return enqueue_for_active_tenants(fail_stale_jobs_task)


@shared_task(acks_late=True)
def delete_expired_job_files_task() -> int:
    """Delete the files of jobs past the retention period in the tenant schema it was sent from."""
    from .services import job_files_delete_expired

    return job_files_delete_expired()


@shared_task(acks_late=True)
def delete_expired_job_files_all_tenants() -> int:
    """Beat entry (public schema): one delete_expired_job_files_task per active tenant."""
    return enqueue_for_active_tenants(delete_expired_job_files_task)
