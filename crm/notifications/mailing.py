"""Sending: the pending notification e-mails and the daily digest, both crash-safe.

E-mails (`email_deliveries_send`): a batch of pending rows is claimed in its own committed
transaction (`SELECT ... FOR UPDATE SKIP LOCKED`, claimed_at = now, attempts + 1), then its messages
are sent through Django's e-mail backend and the batch marked sent. Two workers never claim the same
row; a worker that dies after claiming leaves rows whose claim grows stale, and after
NOTIFICATION_EMAIL_CLAIM_SECONDS they are claimed again and sent with the same Message-ID (a
resend the receiving side can recognise; `attempts` > 1 counts it).

Digest (`digest_send_due`): for each active user whose local time has passed 08:00 and who has no
`DigestRun` for the local date, a run row is inserted first (unique per user and day: whoever inserts
it sends it), then the sections are gathered and one e-mail sent, or the run is marked skipped when
every section is empty. A claim left behind by a dead worker is taken again after the same timeout.
"""

import datetime as dt
import logging
import smtplib
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone, translation

from crm.accounts.models import User

from .digest import SECTION_MAX_ITEMS, registered_sections, section_items
from .emails import digest_email, notification_email, preferences_link, user_language, user_zone
from .models import DigestRun, EmailDelivery
from .selectors import digest_sections_off

logger = logging.getLogger(__name__)

DIGEST_HOUR = 8
MAX_ATTEMPTS = 10


def claim_seconds() -> int:
    return getattr(settings, "NOTIFICATION_EMAIL_CLAIM_SECONDS", 300)


def _claimable(now):
    stale = now - dt.timedelta(seconds=claim_seconds())
    return EmailDelivery.objects.filter(status=EmailDelivery.Status.PENDING).filter(
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale)
    )


def email_deliveries_claim(*, batch_size: int, exclude: Iterable[int] = ()) -> list[int]:
    """Claim up to `batch_size` pending deliveries (committed before anything is sent), leaving out
    `exclude` (the caller's batch still on the wire, whose claim may have gone stale meanwhile)."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            _claimable(now)
            .exclude(id__in=list(exclude))
            .select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("id", flat=True)[:batch_size]
        )
        if ids:
            EmailDelivery.objects.filter(id__in=ids).update(claimed_at=now, attempts=F("attempts") + 1)
    return ids


def email_connections() -> int:
    return max(1, getattr(settings, "NOTIFICATION_EMAIL_CONNECTIONS", 4))


def email_deliveries_send(*, batch_size: int = 100, max_seconds: float = 50.0) -> dict[str, int]:
    """Send this tenant's pending e-mails for up to `max_seconds`; returns counts. Idempotent: what is
    marked sent is never sent again; what was claimed and not marked is sent again after the timeout.

    Each claimed batch is rendered here and sent over NOTIFICATION_EMAIL_CONNECTIONS SMTP connections
    at once (threads that only talk SMTP; every database write stays in this thread), then marked
    sent in one statement. The connections stay open for the whole run, and the next batch is claimed
    and rendered while the previous one is on the wire: a crash re-sends at most two batches, each
    message with its Message-ID."""
    tenant = connection.tenant
    started = time.monotonic()
    counts = {"sent": 0, "resent": 0, "skipped": 0, "failed": 0, "more": 0}
    parallel = email_connections()
    mail_connections = [get_connection() for _ in range(parallel)]
    preferences_url = preferences_link(tenant)
    in_flight = None
    try:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="notification-mail") as pool:
            while True:
                on_the_wire = [delivery.pk for delivery, _ in in_flight[0]] if in_flight else []
                ids = email_deliveries_claim(batch_size=batch_size, exclude=on_the_wire)
                outgoing = _prepare_batch(ids, tenant, preferences_url, counts)
                if in_flight is not None:
                    refused = _finish_batch(in_flight, counts)
                    in_flight = None
                    if refused:  # the mail server refuses everything: give the next batch back
                        _release(ids)
                        break
                if not ids:
                    break
                in_flight = (outgoing, send_in_parallel_async(pool, outgoing, mail_connections))
                if time.monotonic() - started > max_seconds:
                    _finish_batch(in_flight, counts)
                    in_flight = None
                    counts["more"] = int(_claimable(timezone.now()).exists())
                    break
            if in_flight is not None:
                _finish_batch(in_flight, counts)
    finally:
        for mail_connection in mail_connections:
            _close_quietly(mail_connection)
    return counts


def _prepare_batch(ids: list[int], tenant, preferences_url: str, counts: dict[str, int]) -> list:
    """[(delivery, message)] for the claimed rows; rows of deactivated users are marked skipped."""
    if not ids:
        return []
    outgoing, inactive = [], []
    for delivery in (
        EmailDelivery.objects.filter(id__in=ids).select_related("notification__recipient").order_by("id")
    ):
        if delivery.notification.recipient.is_active:
            message = notification_email(
                notification=delivery.notification,
                message_id=delivery.message_id,
                tenant=tenant,
                preferences_url=preferences_url,
            )
            outgoing.append((delivery, message))
        else:
            inactive.append(delivery.pk)
    if inactive:
        EmailDelivery.objects.filter(id__in=inactive, status=EmailDelivery.Status.PENDING).update(
            status=EmailDelivery.Status.SKIPPED
        )
        counts["skipped"] += len(inactive)
    return outgoing


def _finish_batch(in_flight, counts: dict[str, int]) -> bool:
    """Wait for a batch on the wire, mark what went as sent (one statement) and record failures.
    Returns True when the server refused every message of a non-empty batch."""
    outgoing, futures = in_flight
    results = [result for future in futures for result in future.result()]
    sent = [delivery for delivery, error in results if error is None]
    EmailDelivery.objects.filter(
        id__in=[delivery.pk for delivery in sent], status=EmailDelivery.Status.PENDING
    ).update(status=EmailDelivery.Status.SENT, sent_at=timezone.now(), last_error="")
    counts["sent"] += len(sent)
    counts["resent"] += sum(1 for delivery in sent if delivery.attempts > 1)
    for delivery, error in results:
        if error is not None:
            _record_failure(delivery, error)
            counts["failed"] += 1
    return bool(outgoing) and not sent


def _release(ids: list[int]) -> None:
    """Give back a claim that was never sent: the rows are claimable at once, the attempt uncounted."""
    if ids:
        EmailDelivery.objects.filter(id__in=ids, status=EmailDelivery.Status.PENDING).update(
            claimed_at=None, attempts=F("attempts") - 1
        )


def send_in_parallel(
    pool: ThreadPoolExecutor, outgoing: list, parallel: int
) -> list[tuple[Any, Exception | None]]:
    """Send [(row, message)] over `parallel` SMTP connections of `pool` at once; returns [(row, error or
    None)]. Only SMTP happens in the pool's threads: the caller claims and marks its rows itself (the
    notification e-mails here, the survey invitations of interactions.surveys)."""
    mail_connections = [get_connection() for _ in range(parallel)]
    try:
        futures = send_in_parallel_async(pool, outgoing, mail_connections)
        return [result for future in futures for result in future.result()]
    finally:
        for mail_connection in mail_connections:
            _close_quietly(mail_connection)


def send_in_parallel_async(pool: ThreadPoolExecutor, outgoing: list, mail_connections: list) -> list:
    """Start sending [(row, message)] spread over `mail_connections` (one pool thread each, opened on
    first use and left open for the next batch); returns the futures, each giving [(row, error or
    None)]. The caller must wait for them before handing the same connections out again."""
    parallel = len(mail_connections)
    return [
        pool.submit(_send_group, outgoing[i::parallel], mail_connections[i])
        for i in range(parallel)
        if outgoing[i::parallel]
    ]


def _send_group(group: list, mail_connection) -> list[tuple[Any, Exception | None]]:
    """Send these messages over one SMTP connection (runs in a pool thread: no database access). The
    connection is opened if it is not yet; after an error it is closed, and opened again for the next
    message."""
    results: list[tuple[EmailDelivery, Exception | None]] = []
    for delivery, message in group:
        try:
            _send_one(message, mail_connection)
        except Exception as exc:
            results.append((delivery, exc))
            _close_quietly(mail_connection)  # a broken session must not carry the next message
        else:
            results.append((delivery, None))
    return results


def _send_one(message, mail_connection) -> None:
    reused = getattr(mail_connection, "connection", None) is not None
    mail_connection.open()  # no-op while the connection is open
    message.connection = mail_connection
    try:
        message.send()
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        if not reused:
            raise
        # The server closed a session left open since the last batch: once more on a fresh one (the
        # same Message-ID, should the first attempt have arrived after all).
        _close_quietly(mail_connection)
        mail_connection.open()
        message.send()


def _close_quietly(mail_connection) -> None:
    try:
        mail_connection.close()
    except Exception:  # closing a broken SMTP connection must not hide what happened
        logger.warning("closing the mail connection failed", exc_info=True)


def _record_failure(delivery: EmailDelivery, error: Exception) -> None:
    """Left claimed: tried again after the claim timeout, up to MAX_ATTEMPTS, then failed for good."""
    logger.warning("notification e-mail %s failed: %s", delivery.message_id, error)
    status = (
        EmailDelivery.Status.FAILED if delivery.attempts >= MAX_ATTEMPTS else EmailDelivery.Status.PENDING
    )
    EmailDelivery.objects.filter(pk=delivery.pk, status=EmailDelivery.Status.PENDING).update(
        status=status, last_error=str(error)[:500]
    )


# --- The daily digest -----------------------------------------------------------------------------
def local_digest_day(user: User, tenant, now: dt.datetime) -> dt.date | None:
    """The user's local date when their local time has passed 08:00, else None."""
    local = now.astimezone(user_zone(user, tenant))
    return local.date() if local.hour >= DIGEST_HOUR else None


def digest_send_due(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Send the digest to every active user of this tenant who is due one (see the module docstring)."""
    tenant = connection.tenant
    now = now or timezone.now()
    counts = {"sent": 0, "skipped": 0}
    users = list(User.objects.filter(is_active=True).order_by("pk"))
    due = {user.pk: day for user in users if (day := local_digest_day(user, tenant, now)) is not None}
    if due:
        done = set(
            DigestRun.objects.filter(user_id__in=list(due), day__in=set(due.values())).values_list(
                "user_id", "day"
            )
        )
        due = {uid: day for uid, day in due.items() if (uid, day) not in done}
    by_id = {user.pk: user for user in users}
    off = digest_sections_off(user_ids=list(due))
    # One SMTP session for the whole run (opened at the first digest that has something to say).
    mail_connection = get_connection()
    try:
        for uid, day in due.items():
            run, created = _claim_run(uid, day, now)
            if created:
                _digest_send(run, by_id[uid], tenant, off.get(uid, set()), counts, mail_connection)
        _digest_send_stale(tenant, now, counts, mail_connection)
    finally:
        _close_quietly(mail_connection)
    return counts


def _digest_send_stale(tenant, now: dt.datetime, counts: dict[str, int], mail_connection) -> None:
    # Claims left by a worker that died, older than the timeout: taken again and sent.
    stale = now - dt.timedelta(seconds=claim_seconds())
    while True:
        with transaction.atomic():
            run = (
                DigestRun.objects.select_for_update(skip_locked=True)
                .filter(status=DigestRun.Status.CLAIMED, claimed_at__lt=stale)
                .order_by("pk")
                .first()
            )
            if run is None:
                break
            run.claimed_at, run.attempts = now, run.attempts + 1
            run.save(update_fields=["claimed_at", "attempts"])
        user = User.objects.get(pk=run.user_id)
        sections_off = digest_sections_off(user_ids=[user.pk]).get(user.pk, set())
        _digest_send(run, user, tenant, sections_off, counts, mail_connection)


def _claim_run(user_id: int, day: dt.date, now: dt.datetime) -> tuple[DigestRun, bool]:
    with transaction.atomic():
        return DigestRun.objects.get_or_create(user_id=user_id, day=day, defaults={"claimed_at": now})


def digest_message_id(user_id: int, day: dt.date) -> str:
    return f"<digest-{connection.schema_name}-{user_id}-{day.isoformat()}@{settings.BASE_DOMAIN}>"


def _digest_send(
    run: DigestRun, user: User, tenant, sections_off: set[str], counts: dict[str, int], mail_connection
) -> None:
    sections = []
    total = 0
    with translation.override(user_language(user, tenant)):
        for section in registered_sections():
            if section.key in sections_off:
                continue
            items = section_items(section, user, run.day)
            if items:
                total += len(items)
                shown = items[:SECTION_MAX_ITEMS]
                sections.append((str(section.title), shown, len(items) - len(shown)))
    rows = DigestRun.objects.filter(pk=run.pk, status=DigestRun.Status.CLAIMED)
    if not sections:
        rows.update(status=DigestRun.Status.SKIPPED, items=0)
        counts["skipped"] += 1
        return
    message = digest_email(
        user=user,
        tenant=tenant,
        day=run.day,
        sections=sections,
        message_id=digest_message_id(user.pk, run.day),
    )
    _send_one(message, mail_connection)
    rows.update(status=DigestRun.Status.SENT, items=total, sent_at=timezone.now())
    counts["sent"] += 1
