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


def _remember(user, key: str, scan: DuplicateScan) -> None:
    cache.set(key, scan, CACHE_SECONDS)
    cache.set(_latest_key(user), scan, LATEST_CACHE_SECONDS)
