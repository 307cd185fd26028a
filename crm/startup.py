"""What a web process does once the application is loaded, before its first request."""

from __future__ import annotations

import gc
from importlib import import_module

from django.conf import settings


def freeze_loaded_objects() -> int:
    """Import what a first request would (both URLconfs, hence every view module), then move every
    object alive now out of the garbage collector's sight (`gc.freeze`) and return how many.

    A loaded process holds some 375,000 objects that live as long as it does, most of them the pinyin
    dictionaries that the search text is built from. CPython's full collection walks all of them each
    time: at 1,000,000 customers one list or search request in forty took 200-240 ms longer than the
    others for it (`tests/benchmarks/test_customers_benchmark.py`). Frozen, they are never walked again;
    objects made later are collected as before. Called by `crm/wsgi.py`, and by the list benchmark so
    that it measures what a web process does."""
    for name in (settings.ROOT_URLCONF, getattr(settings, "PUBLIC_SCHEMA_URLCONF", "")):
        if name:
            import_module(name)
    gc.collect()  # what is garbage already is not frozen with the rest
    gc.freeze()
    return gc.get_freeze_count()
