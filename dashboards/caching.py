"""Report figures are cached per tenant (the cache key function puts the schema first), per scope (the
whole company, or one sales user's customers), per page parameters, under a data version.

The version changes whenever the data under the figures changes, so a cached figure is never older
than the last change: customers' `customers_changed` (an order written or refunded, an import
finished, a merge, the bin) and segmentation's `recompute_finished` (new scores, stages and segment
changes). The timeout only frees memory.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from typing import Any

from django.core.cache import cache

VERSION_KEY = "dashboards:data-version"
TIMEOUT = 60 * 60


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


def cached(name: str, user, params: dict[str, Any], compute: Callable[[], Any]) -> Any:
    scope = "all" if user.sees_all_customers else f"user-{user.pk}"
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:24]
    key = f"dashboards:{data_version()}:{name}:{scope}:{digest}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, TIMEOUT)
    return value
