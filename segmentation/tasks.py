"""Celery tasks: thin wrappers around `segmentation.recompute` and `segmentation.services`."""

import logging

from celery import shared_task
from django.db import connection
from django.utils import translation
from django_tenants.utils import tenant_context

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, max_retries=0)
def recompute_task(self, job_id: int | None = None, trigger: str = "manual") -> dict:
    """Recompute the tenant the message was sent from (tenant-schemas-celery switches the schema).

    Idempotent: a redelivered message whose job already finished does nothing, and a re-run of the
    recompute itself changes nothing twice (see segmentation.recompute).
    """
    from crm.jobs.services import job_fail, job_progress_callback, job_start, job_succeed

    from .recompute import recompute

    job = None
    if job_id is not None:
        job = job_start(job_id=job_id)
        if job is None:
            return {"skipped": "job already finished"}
    progress = job_progress_callback(job_id) if job_id is not None else None

    def scores_written(run) -> None:
        if job_id is not None:
            job_succeed(job_id=job_id, result=_result(run))

    # Progress messages are stored text: write them in the tenant's language.
    language = getattr(getattr(connection, "tenant", None), "default_language", None) or "en"
    try:
        with translation.override(language):
            run = recompute(
                trigger=trigger,
                triggered_by=job.created_by if job is not None else None,
                job_id=job_id,
                progress=progress,
                on_scores_written=scores_written,
            )
    except Exception as exc:
        logger.exception("segmentation recompute failed in %s", connection.schema_name)
        if job_id is not None:
            job_fail(job_id=job_id, message=f"Recompute failed: {exc}")
        raise
    return _result(run)


def _result(run) -> dict:
    return {
        "run_id": run.pk,
        "customers": run.customers_count,
        "stage_changes": run.stage_changes,
        "alerts": run.alerts_created,
        "clv_model": run.clv_model,
    }


@shared_task(acks_late=True)
def recompute_dispatch_task() -> int:
    """Nightly, in the public schema: queue one recompute per active tenant (joining a running one)."""
    from crm.tenancy.dispatch import active_tenants

    from .models import RecomputeRun
    from .services import request_recompute

    queued = 0
    for tenant in active_tenants():
        try:
            with tenant_context(tenant):
                request_recompute(trigger=RecomputeRun.Trigger.NIGHTLY)
            queued += 1
        except Exception:  # one broken tenant must not stop the others
            logger.exception("could not queue the recompute of tenant %s", tenant.schema_name)
    return queued
