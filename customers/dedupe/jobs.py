"""The background scan of a scope too big to scan while the page waits."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from crm.jobs.messages import JobMessage

from .cache import CACHE_SECONDS, _remember, _scope_key, _version, remember_scan
from .scan import duplicate_scan, scope_queryset

SCAN_JOB_KIND = "customers.duplicates"


def _scan_job(user, key: str):
    """The running scan of the user's scope, or a new one queued for `key`."""
    from crm.jobs.services import job_enqueue, job_get_or_create_active

    from .tasks import duplicate_scan_task

    job, created = job_get_or_create_active(
        kind=SCAN_JOB_KIND,
        created_by=user,
        params={"scope": _scope_key(user), "key": key},
        same_params=("scope",),
    )
    if created:
        job_enqueue(job=job, task=duplicate_scan_task, user_id=user.pk, key=key)
    return job


def duplicate_scan_run(*, job_id: int, user_id: int, key: str) -> int:
    """The background scan (customers.dedupe.tasks.duplicate_scan_task): scan the user's scope as it is
    now and cache it; returns the number of pairs. Idempotent: a redelivered message of a finished
    job does nothing (returns 0)."""
    from crm.accounts.models import User
    from crm.jobs.runner import JobRun, run_job

    def body(run: JobRun) -> int:
        user = User.objects.get(pk=user_id)
        run.progress(10, JobMessage(gettext_noop("Comparing customers")))
        queryset = scope_queryset(user)
        current_key, _customers = _version(user, queryset)
        scan = duplicate_scan(queryset)
        _remember(user, current_key, scan)
        if current_key != key:  # data changed since the request: the page asks for this one
            remember_scan(key, scan, CACHE_SECONDS)
        run.succeed(result={"pairs": scan.total, "customers": scan.customers_scanned})
        return scan.total

    return run_job(job_id, body, failure_message=_("The duplicate search failed. Please try again.")) or 0
