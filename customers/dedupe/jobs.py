"""The background scan of a scope too big to scan while the page waits."""

from __future__ import annotations

from django.core.cache import cache
from django.utils.translation import gettext_lazy as _

from .cache import CACHE_SECONDS, _remember, _scope_key, _version
from .scan import find_duplicates, scope_queryset

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
    now and cache it. Idempotent: a redelivered message of a finished job does nothing."""
    from crm.accounts.models import User
    from crm.jobs.services import job_fail, job_progress, job_start, job_succeed

    if job_start(job_id=job_id) is None:
        return 0
    try:
        user = User.objects.get(pk=user_id)
        job_progress(job_id=job_id, progress=10, message=str(_("Comparing customers")))
        queryset = scope_queryset(user)
        current_key, _customers = _version(user, queryset)
        scan = find_duplicates(queryset)
        _remember(user, current_key, scan)
        if current_key != key:  # data changed since the request: the page asks for this one
            cache.set(key, scan, CACHE_SECONDS)
    except Exception as exc:
        job_fail(job_id=job_id, message=str(_("The duplicate search failed: %(error)s")) % {"error": exc})
        raise
    job_succeed(job_id=job_id, result={"pairs": scan.total, "customers": scan.customers_scanned})
    return scan.total
