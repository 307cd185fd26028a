"""Celery tasks of the exports: thin wrappers that take a job id and run in the sender's tenant
(the job bodies run through crm.jobs.runner; see customers.exports.services)."""

from celery import shared_task


@shared_task(acks_late=True, max_retries=0)
def export_task(job_id: int) -> None:
    """Write the filtered customer list of a job to a CSV or XLSX file (a finished job is left alone)."""
    from .services import export_run

    export_run(job_id=job_id)


@shared_task(acks_late=True, max_retries=0)
def export_all_task(job_id: int) -> None:
    """Write the zip of all the tenant's customer data (a finished job is left alone)."""
    from .services import export_all_run

    export_all_run(job_id=job_id)
