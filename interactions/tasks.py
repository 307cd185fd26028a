"""Celery tasks of the interaction log (its import runs on the generic import-kind tasks of
customers.imports.tasks): thin wrappers that take a job id and run in the sender's
tenant (the bodies run through crm.jobs.runner)."""

from celery import shared_task


@shared_task(acks_late=True, max_retries=0)
def export_task(job_id: int) -> None:
    """Write the filtered interactions of a job to a CSV or XLSX file (a finished job is left alone)."""
    from .exports import export_run

    export_run(job_id=job_id)
