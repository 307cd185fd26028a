"""Reads for the duplicates and merge pages, always within what the user can see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models import Q

from crm.audit.models import AuditEvent

from ..models import Customer
from .cache import _cache_key, _latest_key, _remember, _version
from .jobs import _scan_job
from .scan import DuplicatePair, DuplicateScan, duplicate_scan, scope_queryset

# Up to this many customers in scope, the page scans at once; above, in a background job.
INLINE_SCAN_LIMIT = 20_000
MERGED_ACTION = "customer.merged"  # on the merged (losing) customer; holds the undo information


def duplicate_candidates(*, user, use_cache: bool = True) -> DuplicateScan:
    """The duplicate pairs `user` may see (both customers visible to them), best first. Computed
    here when not cached (see `duplicate_scan_for_page` for pages, which compute big scans in the
    background)."""
    queryset = scope_queryset(user)
    if not use_cache:
        return duplicate_scan(queryset)
    key = _cache_key(user, queryset)
    scan = cache.get(key)
    if scan is None:
        scan = duplicate_scan(queryset)
        _remember(user, key, scan)
    return scan


@dataclass(frozen=True)
class PageScan:
    """What the duplicates page shows: the scan (None before the first one has finished), whether
    it predates the latest changes, and the background job computing the current one, if any."""

    scan: DuplicateScan | None
    job: object | None  # crm.jobs.models.BackgroundJob
    customers: int

    @property
    def stale(self) -> bool:
        """A scan is only shown while a newer one runs when the data changed since it was made."""
        return self.job is not None


def duplicate_scan_for_page(*, user) -> PageScan:
    """The scan for the duplicates page without keeping the user waiting: current scans come from
    the cache; a scope of up to `INLINE_SCAN_LIMIT` customers is scanned at once (well under a
    second); a bigger one is scanned by a background job (one per scope at a time) while the page
    shows the last finished scan, marked as such, and the job's progress."""
    queryset = scope_queryset(user)
    key, customers = _version(user, queryset)
    scan = cache.get(key)
    if scan is not None:
        return PageScan(scan, job=None, customers=customers)
    if customers <= INLINE_SCAN_LIMIT:
        scan = duplicate_scan(queryset)
        _remember(user, key, scan)
        return PageScan(scan, job=None, customers=customers)
    return PageScan(cache.get(_latest_key(user)), job=_scan_job(user, key), customers=customers)


def duplicate_list_for_customer(*, user, customer: Customer) -> list[DuplicatePair]:
    """Candidate pairs that involve `customer` (for the "Find duplicates" link on its page)."""
    scan = duplicate_candidates(user=user)
    return [pair for pair in scan.pairs if customer.pk in (pair.first_id, pair.second_id)]


def merge_partner_search(*, user, customer: Customer, query: str, limit: int = 10) -> list[Customer]:
    """Other live customers the user can see that match a search, to merge `customer` with."""
    from ..search import normalise_query

    needle = normalise_query(query)
    if not needle:
        return []
    queryset = scope_queryset(user).exclude(pk=customer.pk).filter(search_text__contains=needle)
    return list(queryset.select_related("owner").order_by("name", "pk")[:limit])


def exact_matches(*, user, customer: Customer, limit: int = 5) -> list[Customer]:
    """Other live customers the user can see with the same stored email or phone (indexed lookups)."""
    condition = Q()
    if customer.email:
        # Stored emails are lower-cased by the services; "in" keeps the email index usable.
        condition |= Q(email__in={customer.email, customer.email.strip().lower()})
    if customer.phone:
        condition |= Q(phone=customer.phone)
    if not condition:
        return []
    queryset = scope_queryset(user).filter(condition).exclude(pk=customer.pk)
    return list(queryset.select_related("owner").order_by("pk")[:limit])


def pair_is_visible(*, user, first_id: int, second_id: int) -> bool:
    return scope_queryset(user).filter(Q(pk=first_id) | Q(pk=second_id)).count() == 2


def merge_event_for(merged: Customer) -> AuditEvent | None:
    """The audit event holding the undo information of `merged`'s current merge."""
    if merged.merged_into_id is None:
        return None
    return (
        AuditEvent.objects.filter(
            action=MERGED_ACTION,
            target_type=Customer._meta.label_lower,
            target_id=str(merged.pk),
            changes__survivor_id=merged.merged_into_id,
        )
        .order_by("-created_at", "-id")
        .first()
    )


def moved_count(info: Any) -> int | None:
    """How many rows a hook reports it moved: the length of its id lists ({"ids": [...]} or several
    lists such as {"stages": [...], "alerts": [...]}); None when it reports no lists."""
    if not isinstance(info, dict):
        return None
    lists = [value for value in info.values() if isinstance(value, list)]
    return sum(len(value) for value in lists) if lists else None
