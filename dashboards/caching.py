"""Report figures are cached per tenant (the cache key function puts the schema first), per scope (the
whole company, or one sales user's customers), per page parameters, under a data version.

The version changes whenever the data under the figures changes, so a cached figure is never older
than the last change: customers' `customers_changed` (an order written or refunded, an import
finished, a merge, the bin) and `records_imported` (any other import), segmentation's
`recompute_finished` (new scores, stages and segment changes), and a row of the activity the overview
and the team page count saved or deleted (interactions, follow-ups, tickets, survey answers, churn
alerts, loyalty members and points; `dashboards.apps` lists them), once per transaction, when it
commits. The timeout only frees memory, except for figures that move with the clock ("overdue now").
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

VERSION_KEY = "dashboards:data-version"
TIMEOUT = 60 * 60
WORK_MEM = "64MB"
CLOCK_TIMEOUT = 5 * 60  # figures that change as time passes (a follow-up falling overdue)


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


def cached(
    name: str, user, params: dict[str, Any], compute: Callable[[], Any], *, timeout: int = TIMEOUT
) -> Any:
    scope = "all" if user.sees_all_customers else f"user-{user.pk}"
    # Periods, months and "today" are cut in the viewer's time zone (the user's, else the company's,
    # which its admin can change): a figure cut in another zone is another figure.
    params = {**params, "_zone": timezone.get_current_timezone_name()}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:24]
    key = f"dashboards:{data_version()}:{name}:{scope}:{digest}"
    value = cache.get(key)
    if value is None:
        with report_transaction():
            value = compute()
        cache.set(key, value, timeout)
    return value
