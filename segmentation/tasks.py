"""Celery tasks: thin wrappers around `segmentation.recompute` and `segmentation.services`."""

from celery import shared_task
from django.utils.translation import gettext_lazy as _


@shared_task(acks_late=True, max_retries=0)
def recompute_task(job_id: int, trigger: str = "manual") -> dict:
    """Recompute the tenant the message was sent from (tenant-schemas-celery switches the schema).

    Idempotent: a redelivered message whose job already finished does nothing, and a re-run of the
    recompute itself changes nothing twice (see segmentation.recompute). The job runs through
    crm.jobs.runner, in the tenant's language (its progress messages are stored text).
    """
    from crm.jobs.runner import run_job

    from .recompute import recompute

    def body(job_run) -> dict:
        def scores_written(run) -> None:
            # The progress bar finishes as soon as the new figures are visible.
            job_run.succeed(result=_result(run))

        run = recompute(
            trigger=trigger,
            triggered_by=job_run.job.created_by,
            job_id=job_run.job_id,
            progress=job_run.progress,
            on_scores_written=scores_written,
        )
        return _result(run)

    result = run_job(job_id, body, failure_message=_("The recompute failed. Please try again."))
    return {"skipped": "job already finished"} if result is None else result


def _result(run) -> dict:
    return {
        "run_id": run.pk,
        "customers": run.customers_count,
        "stage_changes": run.stage_changes,
        "alerts": run.alerts_created,
        "clv_model": run.clv_model,
    }


@shared_task(acks_late=True)
def recompute_all_tenants() -> int:
    """Nightly, in the public schema: queue one recompute per active tenant (joining a running one)."""
    from crm.tenancy.dispatch import run_in_active_tenants

    from .models import RecomputeRun
    from .services import recompute_request

    return run_in_active_tenants(
        lambda: recompute_request(trigger=RecomputeRun.Trigger.NIGHTLY), what="the nightly recompute"
    )
