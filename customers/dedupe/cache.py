"""Finished scans in the cache, per tenant, per visibility scope and per "version" of the customer
table, so paging through a list does not recompute it; the last finished scan of a scope is kept
longer, to be shown while a newer one runs."""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, QuerySet

from crm.accounts.permissions import MANAGERS
from crm.audit.models import AuditEvent

from ..models import Customer
from .scan import DISMISS_ACTION, DuplicateScan

CACHE_SECONDS = 3600  # per data version: any change to the customers makes a new key
LATEST_CACHE_SECONDS = 7 * 24 * 3600  # the last finished scan, shown while a new one runs


def _version(user, queryset: QuerySet[Customer]) -> tuple[str, int]:
    """(cache key, customers in scope). The key changes whenever a live customer is added, removed
    or saved, or a pair is dismissed."""
    stats = queryset.order_by().aggregate(count=Count("id"), updated=Max("updated_at"), top=Max("id"))
    dismissed = AuditEvent.objects.filter(action=DISMISS_ACTION).aggregate(last=Max("id"))["last"]
    version = f"{stats['count']}:{stats['updated']}:{stats['top']}:{dismissed}"
    digest = hashlib.sha1(version.encode()).hexdigest()[:16]
    return f"{_scope_key(user)}:{digest}", int(stats["count"])


def _scope_key(user) -> str:
    scope = "all" if user.role in MANAGERS else f"user{user.pk}"
    return f"customers:duplicates:{connection.schema_name}:{scope}"


def _latest_key(user) -> str:
    """The last scan finished for the user's scope, whatever data it was computed on."""
    return f"{_scope_key(user)}:latest"


def _cache_key(user, queryset: QuerySet[Customer]) -> str:
    return _version(user, queryset)[0]


KEYS_KEPT = 1000  # the index of a tenant's scan keys keeps the newest ones


def _index_key() -> str:
    return f"customers:duplicates:{connection.schema_name}:keys"


def remember_scan(key: str, scan: DuplicateScan, seconds: int) -> None:
    """Cache a scan and note its key in the tenant's index, so an erasure can delete every cached
    scan (they hold names, e-mails and phones), whatever scope or version it was made for."""
    cache.set(key, scan, seconds)
    index = [k for k in (cache.get(_index_key()) or []) if k != key]
    index.append(key)
    cache.set(_index_key(), index[-KEYS_KEPT:], LATEST_CACHE_SECONDS)


def _remember(user, key: str, scan: DuplicateScan) -> None:
    remember_scan(key, scan, CACHE_SECONDS)
    remember_scan(_latest_key(user), scan, LATEST_CACHE_SECONDS)


def duplicate_scans_forget() -> int:
    """Personal-data erasure: delete every cached duplicate scan of the tenant (the pages compute a
    new one). Returns how many keys were known."""
    index = cache.get(_index_key()) or []
    cache.delete_many([*index, _index_key()])
    return len(index)
