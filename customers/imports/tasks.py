"""Celery tasks of the import: thin wrappers that take a job id (the tenant comes from the message
header, see tenant-schemas-celery). Both are idempotent; see customers.imports.services, whose
job bodies run through crm.jobs.runner."""

from celery import shared_task


@shared_task(acks_late=True, max_retries=0)
def import_validate_task(job_id: int) -> None:
    """Check every row of the job's file and store the preview (writes no customer data)."""
    from .services import import_validate

    import_validate(job_id=job_id)


@shared_task(acks_late=True, max_retries=0)
def import_run_task(job_id: int) -> dict | None:
    """Import the job's file in one transaction (a re-delivered message does not import twice)."""
    from .services import import_run

    return import_run(job_id=job_id)


@shared_task(acks_late=True, max_retries=2, default_retry_delay=10)
def search_text_refresh_task(runs: list[list[int]]) -> int:
    """Add the pinyin forms of Chinese names to search_text (idempotent). Nothing sends it any more:
    imports write the full search text with each row. It stays registered so that messages an earlier
    version queued before an upgrade still run."""
    from .services import search_text_refresh

    return search_text_refresh(runs=runs)


@shared_task(acks_late=True, max_retries=0)
def import_kind_check_task(job_id: int) -> None:
    """Check every row of another app's import (customers.imports.kinds); writes none of its rows."""
    from .kinds import kind_check

    kind_check(job_id=job_id)


@shared_task(acks_late=True, max_retries=0)
def import_kind_write_task(job_id: int) -> None:
    """Write the rows of another app's checked import, all or none (a redelivery writes nothing twice)."""
    from .kinds import kind_write

    kind_write(job_id=job_id)
