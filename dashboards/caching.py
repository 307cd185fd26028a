"""Report figures are cached per tenant (the cache key function puts the schema first), per scope (the
whole company, or one sales user's customers) and per page parameters: one entry each, holding the
figures, the data version they were computed at, when, and how many seconds that took.

The version changes whenever the data under the figures changes: customers' `customers_changed` (an
order written or refunded, an import finished, a merge, the bin) and `records_imported` (any other
import), segmentation's `recompute_finished` (new scores, stages and segment changes), and a row of
the activity the overview and the team page count saved or deleted (interactions, follow-ups,
tickets, survey answers, churn alerts, loyalty members and points; `dashboards.apps` lists them),
once per transaction, when it commits.

What `cached()` gives a page, one rule for every report:
- an entry of the current version (and of today, for a `daily` report: the start page, the reports
  of a preset period, the cohorts): served (fresh);
- no entry: computed now, while the page waits, and stored;
- an entry of an earlier version (stale) whose last computation took less than
  `settings.DASHBOARDS_REFRESH_IN_BACKGROUND_FROM` seconds: computed again now, so a small company
  always sees fresh figures after a short wait;
- a stale entry that took longer: served at once, marked stale with the time it was computed (the
  page says "Figures as of 10:42 (being updated)" and polls until newer figures land), while one
  background refresh per entry (`dashboards.tasks.report_refresh_task`, deduplicated by a lock key)
  computes them again. In a busy company someone writes something every few seconds: without this,
  a big company's managers would wait seconds for nearly every report.
An export always gets fresh figures: a file carries no "as of".
No entry is served, fresh or stale, once it is older than its report's `max_age` (see `Report`).

The cached reports are module-level functions registered by name (`REPORTS`, which
dashboards.reports fills) that compute from the user and JSON-safe parameters, so the page and the
background refresh run the same code with the same arguments.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from crm.reportcache import REPORTS, Figures, Report

# How long an entry is kept and may be served, by default: a day. Its period and "today" are in its
# parameters (or it is a daily report), so a day-old entry still counts the same days; shown stale,
# it says when it was computed.
from crm.reportcache import TIMEOUT as TIMEOUT

logger = logging.getLogger(__name__)

VERSION_KEY = "dashboards:data-version"
WORK_MEM = "64MB"
CLOCK_TIMEOUT = 5 * 60  # figures that change as time passes (a follow-up falling overdue)
# How long one background refresh of an entry keeps others from being sent: far longer than the
# slowest report takes at 1,000,000 customers (15 s) plus a wait in the queue. A refresh lost with
# its worker (acks_late brings the message back, but only after the broker's visibility timeout) is
# sent again by the first view after that.
REFRESH_LOCK_TIMEOUT = 5 * 60


def data_version() -> str:
    version = cache.get(VERSION_KEY)
    if version is None:
        version = secrets.token_hex(6)
        cache.add(VERSION_KEY, version, None)
        version = cache.get(VERSION_KEY) or version
    return version


def data_changed(**_kwargs) -> None:
    """Receiver of the signals above: every cached figure of this tenant is stale from now on."""
    cache.set(VERSION_KEY, secrets.token_hex(6), None)


def _replacement() -> Callable[[], None]:
    """One on-commit replacement of the version; `done` once it ran (a test that runs its on-commit
    callbacks by hand leaves them in the list)."""

    def replace() -> None:
        replace.done = True
        data_changed()

    replace.done = False
    return replace


def data_changed_on_commit(**_kwargs) -> None:
    """Receiver for row signals: replace the version when the transaction commits, once however many
    rows it wrote (a bulk path saving rows one by one costs one cache write, not one per row).

    The replacement waiting in this transaction is remembered on the connection with the list of
    on-commit hooks it sits in: Django starts a new list at every commit or rollback (of a savepoint
    too), so a list that is still the same one still holds it, at no cost per row."""
    if not connection.in_atomic_block:
        data_changed()
        return
    waiting = getattr(connection, "dashboards_replacement", None)
    if waiting is not None and not waiting.done and waiting.hooks is connection.run_on_commit:
        return
    replacement = _replacement()
    replacement.hooks = connection.run_on_commit
    connection.dashboards_replacement = replacement
    transaction.on_commit(replacement)


def data_changed_after_sweep(*, wrote: bool = True, **_kwargs) -> None:
    """Receiver of loyalty's `points_swept`: a sweep that wrote nothing (the sweep after every order
    and import, most of which finds nothing left to earn) leaves every cached figure as it is."""
    if wrote:
        data_changed_on_commit()


def watch(*models) -> None:
    """Figures also read these models: a row saved or deleted makes every cached figure stale."""
    from django.db.models.signals import post_delete, post_save

    for model in models:
        label = model._meta.label_lower
        post_save.connect(data_changed_on_commit, sender=model, dispatch_uid=f"dashboards.saved.{label}")
        post_delete.connect(data_changed_on_commit, sender=model, dispatch_uid=f"dashboards.deleted.{label}")


@contextmanager
def report_transaction():
    """A transaction tuned for the reports' few large aggregates, for its own statements only:
    room to hash tens of thousands of buyers in memory instead of sorting on disk (PostgreSQL's
    default work_mem is 4 MB), and no JIT compilation, which the planner's large estimates for these
    joins set off and which cost more (seconds) than the queries themselves."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        cursor.execute("SET LOCAL jit = off")
        yield


@dataclass(frozen=True)
class Entry:
    """What the cache keeps per report, scope and parameters (whatever the data version)."""

    value: Any
    version: str  # the data version it was computed at
    computed_at: datetime  # when its computation began (aware)
    seconds: float  # how long the computation took


def _report(name: str) -> Report:
    return REPORTS[name]


def scope_of(user) -> str:
    return "all" if user.sees_all_customers else f"user-{user.pk}"


def _keys(name: str, scope: str, params: dict[str, Any]) -> tuple[str, str]:
    """The entry's key and its refresh lock's. Both are tenant-scoped by the cache's key function
    (django_tenants.cache.make_key puts the schema first), like every key of this module.
    The parameters must be JSON as they are (no `default=`): the background refresh gets them through
    a JSON message and must find the same key."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]
    return f"dashboards:figures:{name}:{scope}:{digest}", f"dashboards:refreshing:{name}:{scope}:{digest}"


def _servable(entry: Entry | None, report: Report) -> Entry | None:
    """The entry if it may still be served (see Report.max_age); the cache's own expiry is the same
    age, and this check keeps the rule whatever the cache does."""
    if entry is None or timezone.now() - entry.computed_at >= timedelta(seconds=report.max_age):
        return None
    return entry


def _compute(report: Report, user, params: dict[str, Any], version: str) -> Entry:
    """The report computed now, in the reports' transaction; `version` was read before it began, so
    a change made meanwhile leaves the entry stale."""
    computed_at = timezone.now()
    started = time.perf_counter()
    with report_transaction():
        value = report.compute(user, params)
    return Entry(value, version, computed_at, time.perf_counter() - started)


def _store(key: str, entry: Entry, report: Report) -> None:
    """Keep `entry` unless a computation that began later has already stored its own (a page and a
    refresh computing at the same time: the later figures win)."""
    current = cache.get(key)
    if current is not None and current.computed_at > entry.computed_at:
        return
    cache.set(key, entry, report.max_age)


def cached(name: str, user, params: dict[str, Any], *, stale_ok: bool = True) -> Figures:
    """The figures of report `name` (REPORTS) for `user` and `params` (JSON-safe: dates as ISO
    text), by the rule in this module's docstring. `stale_ok=False` (an export) never
    gets stale figures."""
    report = _report(name)
    scope = scope_of(user)
    # Periods, months and "today" are cut in the viewer's time zone (the user's, else the company's,
    # which its admin can change): a figure cut in another zone is another figure.
    params = {**params, "_zone": timezone.get_current_timezone_name()}
    key, lock = _keys(name, scope, params)
    version = data_version()
    entry = _servable(cache.get(key), report)
    if entry is not None and report.is_current(entry, version):
        return Figures(entry.value, entry.computed_at)
    if entry is None or not stale_ok or entry.seconds < settings.DASHBOARDS_REFRESH_IN_BACKGROUND_FROM:
        entry = _compute(report, user, params, version)
        _store(key, entry, report)
        return Figures(entry.value, entry.computed_at)
    if cache.add(lock, timezone.now().isoformat(), REFRESH_LOCK_TIMEOUT):
        # A refresh may have finished between the read above and this lock: it stores its entry
        # before it releases the lock, so a second read now sees it, and no second refresh is sent.
        current = _servable(cache.get(key), report)
        if current is not None and report.is_current(current, version):
            cache.delete(lock)
            return Figures(current.value, current.computed_at)
        # On commit, as tasks are sent here; a page's GET runs in autocommit, so that is at once.
        transaction.on_commit(
            partial(_send_refresh, lock=lock, name=name, user_id=user.pk, scope=scope, params=params)
        )
    return Figures(entry.value, entry.computed_at, stale=True)


def _send_refresh(*, lock: str, **kwargs) -> None:
    from .tasks import report_refresh_task  # the tasks import this module

    try:
        report_refresh_task.apply_async(kwargs=kwargs)
    except Exception:
        # The page shows the stale figures all the same; the next view sends the refresh again.
        logger.exception("could not send the refresh of report %s", kwargs["name"])
        cache.delete(lock)


def report_refresh(*, name: str, user_id: int, scope: str, params: dict[str, Any]) -> str:
    """The background refresh of one entry (dashboards.tasks.report_refresh_task), in the tenant the
    task runs in; returns what it did. Recomputes as the page would (in the time zone the figures are
    cut in, in the reports' transaction) unless the entry is fresh already (a second delivery: nothing
    to do), or the user is gone, inactive, or no longer has the scope the entry is for (a manager
    demoted to sales must not write company-wide figures computed with a sales scope, nor the other
    way round). The lock is released whatever happens, a failure included; a worker killed mid-way
    leaves it to its timeout and writes nothing (the entry is written in one `set` at the end)."""
    from crm.accounts.models import User

    report = _report(name)
    key, lock = _keys(name, scope, params)
    try:
        user = User.objects.filter(pk=user_id, is_active=True).first()
        if user is None or scope_of(user) != scope:
            return "skipped"
        with timezone.override(params["_zone"]):
            version = data_version()
            entry = _servable(cache.get(key), report)
            if entry is not None and report.is_current(entry, version):
                return "fresh"
            _store(key, _compute(report, user, params, version), report)
            return "refreshed"
    finally:
        cache.delete(lock)
