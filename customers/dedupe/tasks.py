"""Celery task of the duplicate finder: a thin wrapper that calls `jobs.duplicate_scan_run`."""

from celery import shared_task


@shared_task(acks_late=True)
def duplicate_scan_task(*, job_id: int, user_id: int, key: str) -> int:
    """Scan a user's scope for duplicate customers and cache the result (big tenants; see
    customers.dedupe.selectors.duplicate_scan_for_page)."""
    from .jobs import duplicate_scan_run

    return duplicate_scan_run(job_id=job_id, user_id=user_id, key=key)
