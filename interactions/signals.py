"""Signals the interaction log sends so the apps beside it can follow new interactions without this
app calling them. The surveys hook in here: an invitation after an interaction with a chosen outcome.

    from interactions.signals import interaction_logged

    interaction_logged.connect(receiver, dispatch_uid="surveys.interaction_logged")  # in ready()

    def receiver(sender, *, interaction_id: int, customer_id: int, outcome_id, author_id, **kwargs): ...

`interaction_logged` is sent once the transaction that logged the interaction commits (never for a
rollback), once per interaction logged by `services.interaction_log` (an import of many rows sends
none). The receiver runs in the tenant's schema; its error is logged and does not undo the log.
"""

import logging

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

interaction_logged = Signal()


def interaction_logged_on_commit(
    *, interaction_id: int, customer_id: int, outcome_id: int | None, author_id: int | None
) -> None:
    def send() -> None:
        for receiver, result in interaction_logged.send_robust(
            sender="interactions",
            interaction_id=interaction_id,
            customer_id=customer_id,
            outcome_id=outcome_id,
            author_id=author_id,
        ):
            if isinstance(result, Exception):
                logger.error("interaction_logged receiver %r failed", receiver, exc_info=result)

    transaction.on_commit(send)
