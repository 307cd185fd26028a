"""`customers_changed`: sent when customer data changed in a way other apps may want to follow
(segmentation recomputes its scores after an import; loyalty or dashboards may refresh theirs), so
customers never calls the apps above it. Sent once the surrounding transaction commits, never for a
change that was rolled back.

    customers_changed.connect(receiver, dispatch_uid="myapp.customers_changed")  # in AppConfig.ready()

    def receiver(sender, *, reason: str, customer_ids: list[int] | None, actor, **kwargs): ...

`reason` is one of the REASON_* values below; `customer_ids` names the customers concerned (None:
too many to list, e.g. an import of more than 200,000 customers); `actor` is the user who made the
change (None for a background purge). A receiver's error is logged and does not undo or fail the change.
"""

import logging
from collections.abc import Iterable

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

REASON_CREATED = (
    "created"  # a customer was created one at a time (ids: the new customer); imports send "import"
)
REASON_IMPORT = "import"  # an import of customers and/or orders finished and wrote something
REASON_ORDERS = "orders"  # an order was recorded or refunded
REASON_MERGE = "merge"  # two customers were merged (ids: survivor, merged)
REASON_MERGE_UNDONE = "merge_undone"  # a merge was undone (ids: survivor, merged)
REASON_DELETED = "deleted"  # customers moved to the recycle bin
REASON_RESTORED = "restored"  # customers restored from the recycle bin
REASON_PURGED = "purged"  # customers deleted for good from the recycle bin
REASON_OWNERS = "owners"  # customers got another owner or were shared with other users: who sees them

customers_changed = Signal()

# Settings > Tags merged one tag into another (customers.tags.services.tag_merge). Sent INSIDE the
# merge's transaction, so what a receiver writes (segment rules naming the merged tag) commits or rolls
# back with the merge; kwargs: source_id (the tag that is gone), target_id, actor.
tags_merged = Signal()

# An import of another kind (interactions, opening balances...; `customers.imports.kinds`) wrote its
# rows. Sent when the import's transaction commits; kwargs: kind (the import kind's key), rows.
records_imported = Signal()


def customers_changed_on_commit(
    *, reason: str, customer_ids: Iterable[int] | None = None, actor=None, sender=None
) -> None:
    """Send `customers_changed` when the current transaction commits (at once outside one)."""
    ids = None if customer_ids is None else sorted({int(pk) for pk in customer_ids})
    actor = actor if getattr(actor, "pk", None) else None

    def send() -> None:
        for receiver, result in customers_changed.send_robust(
            sender=sender or "customers", reason=reason, customer_ids=ids, actor=actor
        ):
            if isinstance(result, Exception):
                logger.error("customers_changed receiver %r failed (%s)", receiver, reason, exc_info=result)

    transaction.on_commit(send)
