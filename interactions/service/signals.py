"""Signals the service desk sends so the apps beside it can follow tickets without this app calling
them. The surveys (NPS/CSAT) of issue 14 hook in here: a CSAT invitation when a ticket is resolved.

    from interactions.service.signals import ticket_resolved

    ticket_resolved.connect(receiver, dispatch_uid="surveys.ticket_resolved")  # in ready()

    def receiver(sender, *, ticket_id: int, customer_id: int, assignee_id, actor_id, **kwargs): ...

`ticket_resolved` is sent once the transaction that resolved the ticket commits (never for a
rollback), once per resolution: a reopened and again resolved ticket sends it again. The receiver
runs in the tenant's schema. A receiver's error is logged and does not undo the resolution.
"""

import logging

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

ticket_resolved = Signal()


def ticket_resolved_on_commit(*, ticket_id: int, customer_id: int, assignee_id: int | None, actor_id) -> None:
    def send() -> None:
        for receiver, result in ticket_resolved.send_robust(
            sender="service",
            ticket_id=ticket_id,
            customer_id=customer_id,
            assignee_id=assignee_id,
            actor_id=actor_id,
        ):
            if isinstance(result, Exception):
                logger.error("ticket_resolved receiver %r failed", receiver, exc_info=result)

    transaction.on_commit(send)
