"""Celery tasks of the exports: thin wrappers that take a job id and run in the sender's tenant."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


def _run(function, job_id: int) -> None:
    from django.utils.translation import gettext as _

    from crm.jobs.services import job_fail

    try:
        function(job_id=job_id)
    except Exception:
        logger.exception("Export job %s failed", job_id)
        job_fail(job_id=job_id, message=_("The export failed. Please try again."))
        raise


@shared_task(acks_late=True, max_retries=0)
def export_task(job_id: int) -> None:
    """Write the filtered customer list of a job to a CSV or XLSX file (a finished job is left alone)."""
    from .services import export_run

    _run(export_run, job_id)


@shared_task(acks_late=True, max_retries=0)
def export_all_task(job_id: int) -> None:
    """Write the zip of all the tenant's customer data (a finished job is left alone)."""
    from .services import export_all_run

    _run(export_all_run, job_id)
