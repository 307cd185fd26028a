"""Writes of the referral programme.

- Every member gets a referral code the first time one is asked for (a member page, the 360 panel,
  the report): stored, unique, eight characters that read well aloud.
- A referral is recorded by staff on the new member's page (the referrer's code), or by the new
  person through the referrer's link (`/r/<code>/`, a public page of the tenant's site: the link
  can be sent by WeChat or printed as a QR code, and sign-up needs no staff; it creates a
  customer and a membership and records the referral).
- Refused with a clear message, writing nothing: an unknown code, the member's own code, a referrer
  with the same phone or e-mail (normalised: E.164, lower case) as the new member, a member already
  referred, or one who had already bought before the referral.
- The bonuses: after each earning sweep (`loyalty.signals.points_swept`), every pending referral
  whose new member now has a paid order credits both members once (ledger keys
  "referral:<id>:referrer" / ":referee"); a re-run, a retried task or a re-import credits nothing
  more.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.accounts.permissions import ADMINS, user_has_role, visible_to
from crm.audit.services import audit_diff, audit_record
from crm.errors import ApplicationError
from customers.models import Customer, Order
from loyalty.models import Member, PointsEntry
from loyalty.services import credit, lock_member

from .models import (
    MAX_BONUS,
    REFERRAL_CODE_ALPHABET,
    REFERRAL_CODE_LENGTH,
    Referral,
    ReferralCode,
    ReferralSettings,
)

AWARD_BATCH = 200


def referral_settings_get() -> ReferralSettings:
    found = ReferralSettings.objects.filter(pk=1).first()
    if found is None:
        found, _created = ReferralSettings.objects.get_or_create(pk=1)
    return found


@transaction.atomic
def referral_settings_update(*, actor, data: Mapping[str, Any]) -> ReferralSettings:
    if not user_has_role(actor, ADMINS):
        raise PermissionDenied
    found = ReferralSettings.objects.select_for_update().get(pk=referral_settings_get().pk)
    fields = ("is_active", "referrer_bonus", "referee_bonus")
    before = {name: getattr(found, name) for name in fields}
    for name, value in data.items():
        if name not in fields:
            raise ValueError(f"unknown referral setting {name!r}")
        setattr(found, name, value)
    for name in ("referrer_bonus", "referee_bonus"):
        value = getattr(found, name)
        if not isinstance(value, int) or not 0 <= value <= MAX_BONUS:
            raise ValidationError(
                {name: [_("Enter between 0 and %(max)s points.") % {"max": f"{MAX_BONUS:,}"}]}
            )
    found.full_clean()
    found.save()
    changes = audit_diff(before, {name: getattr(found, name) for name in fields})
    if changes:
        audit_record(actor=actor, action="loyalty.referral_settings_updated", target=found, changes=changes)
    return found


# --------------------------------------------------------------------------------------------------
# Codes
# --------------------------------------------------------------------------------------------------
def referral_code_clean(raw: Any) -> str:
    text = str(raw or "")[:40].upper()
    return "".join(ch for ch in text if ch not in " -\t")


def referral_code_for(member: Member) -> str:
    """The member's code, made on first use (idempotent; safe when two requests ask at once)."""
    existing = ReferralCode.objects.filter(member_id=member.pk).values_list("code", flat=True).first()
    if existing:
        return existing
    for _attempt in range(5):
        code = "".join(secrets.choice(REFERRAL_CODE_ALPHABET) for _i in range(REFERRAL_CODE_LENGTH))
        try:
            with transaction.atomic():
                ReferralCode.objects.create(member_id=member.pk, code=code)
            return code
        except IntegrityError:
            existing = ReferralCode.objects.filter(member_id=member.pk).values_list("code", flat=True).first()
            if existing:  # another request made it first
                return existing
    raise ApplicationError(_("No referral code could be made. Please try again."), code="code")


# --------------------------------------------------------------------------------------------------
# Recording a referral
# --------------------------------------------------------------------------------------------------
def _same_person(a: Customer, b: Customer) -> bool:
    phone_a, phone_b = (a.phone or "").strip(), (b.phone or "").strip()
    email_a, email_b = (a.email or "").strip().lower(), (b.email or "").strip().lower()
    return bool((phone_a and phone_a == phone_b) or (email_a and email_a == email_b))


@transaction.atomic
def referral_record(*, actor, referee: Member, code: Any, channel: str = Referral.Channel.STAFF) -> Referral:
    """Record that the owner of `code` referred `referee`. Both members' rows are locked (in id order)
    so two recordings of the same new member cannot both pass the checks."""
    cleaned = referral_code_clean(code)
    if not cleaned:
        raise ValidationError({"code": [_("Enter the referrer's code.")]})
    found = ReferralCode.objects.filter(code=cleaned).values_list("member_id", flat=True).first()
    if found is None:
        raise ValidationError({"code": [_("No member has this referral code.")]})
    if found == referee.pk:
        raise ValidationError({"code": [_("A member cannot refer themselves.")]})
    first, second = sorted([found, referee.pk])
    locked = {first: lock_member(first), second: lock_member(second)}
    referrer, new_member = locked[found], locked[referee.pk]
    if actor is not None and not visible_to(Member.objects.filter(pk=new_member.pk), actor).exists():
        raise PermissionDenied
    referrer_customer = Customer.objects.get(pk=referrer.customer_id)
    referee_customer = Customer.objects.get(pk=new_member.customer_id)
    if _same_person(referrer_customer, referee_customer):
        raise ValidationError(
            {
                "code": [
                    _(
                        "The referrer has the same phone or e-mail as the new member: "
                        "a member cannot refer themselves."
                    )
                ]
            }
        )
    if referrer.status != Member.Status.ACTIVE:
        raise ValidationError({"code": [_("The referrer's membership is not active.")]})
    if Referral.objects.filter(referee=new_member).exists():
        raise ValidationError({"code": [_("This member was already referred.")]})
    if Order.objects.filter(
        customer_id=new_member.customer_id, status__in=Order.PURCHASE_STATUSES, placed_at__lt=timezone.now()
    ).exists():
        raise ValidationError(
            {"code": [_("This member had already bought before: a referral counts for new customers.")]}
        )
    referral = Referral.objects.create(
        referrer=referrer,
        referee=new_member,
        channel=channel,
        recorded_by=actor if getattr(actor, "pk", None) else None,
    )
    audit_record(
        actor=actor,
        action="loyalty.referral_recorded",
        target=referee_customer,
        changes={"referred_by": {"old": None, "new": referrer.number}},
    )
    return referral


@transaction.atomic
def referral_join_by_link(*, code: Any, name: str, email: str = "", phone: str = "") -> Referral:
    """The public sign-up through a member's referral link: a new customer (owned by the referrer's
    rep, source "referral"), enrolled, referred. An e-mail or phone that is already a customer's is
    refused with the same message as any other problem with the sign-up (no account probing)."""
    from customers.services import customer_create
    from loyalty.services import member_enrol

    cleaned = referral_code_clean(code)
    referrer_id = ReferralCode.objects.filter(code=cleaned).values_list("member_id", flat=True).first()
    if referrer_id is None:
        raise ApplicationError(_("This referral link is not valid."), code="unknown_code")
    referrer = Member.objects.select_related("customer").get(pk=referrer_id)
    customer = customer_create(
        actor=None,
        name=name,
        email=email,
        phone=phone,
        source=Customer.Source.REFERRAL,
        owner=referrer.customer.owner,
    )
    existing = Customer.objects.filter(deleted_at__isnull=True).exclude(pk=customer.pk)
    duplicate = (customer.email and existing.filter(email=customer.email).exists()) or (
        customer.phone and existing.filter(phone=customer.phone).exists()
    )
    if duplicate:
        raise ApplicationError(
            _("We could not sign you up with these details. Please ask at the counter."), code="exists"
        )
    member = member_enrol(actor=None, customer=customer)
    return referral_record(actor=None, referee=member, code=cleaned, channel=Referral.Channel.LINK)


# --------------------------------------------------------------------------------------------------
# Bonuses (after the earning sweep)
# --------------------------------------------------------------------------------------------------
def referral_bonuses_award(*, customer_ids: Iterable[int] | None = None) -> int:
    """Credit both bonuses of every pending referral whose new member has a paid order (only those
    of `customer_ids` when given). In batches (keyset on the referral id), each one transaction that
    locks the batch's members in id order; idempotent: a referral already rewarded is skipped, and
    the ledger keys are unique."""
    settings_row = referral_settings_get()
    if not settings_row.is_active:
        return 0
    order_table = connection.ops.quote_name(Order._meta.db_table)
    member_table = connection.ops.quote_name(Member._meta.db_table)
    referral_table = connection.ops.quote_name(Referral._meta.db_table)
    where, params = "", [list(Order.PURCHASE_STATUSES)]
    if customer_ids is not None:
        ids = sorted({int(pk) for pk in customer_ids})
        if not ids:
            return 0
        where, params = "AND m.customer_id = ANY(%s)", [*params, ids]
    sql = f"""
        SELECT r.id, first_order.id
        FROM {referral_table} AS r
        JOIN {member_table} AS m ON m.id = r.referee_id
        CROSS JOIN LATERAL (
            SELECT o.id FROM {order_table} AS o
            WHERE o.customer_id = m.customer_id AND o.status = ANY(%s)
            ORDER BY o.placed_at, o.id LIMIT 1
        ) AS first_order
        WHERE r.rewarded_at IS NULL {where} AND r.id > %s
        ORDER BY r.id LIMIT %s
    """  # noqa: S608 - table names from model metadata, values are parameters
    from loyalty.services import programme_get

    programme = programme_get()
    awarded, after = 0, 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, after, AWARD_BATCH])
            due = dict(cursor.fetchall())
        if not due:
            return awarded
        awarded += _award_batch(due, settings_row, programme)
        after = max(due)


@transaction.atomic
def _award_batch(due: dict[int, int], settings_row: ReferralSettings, programme) -> int:
    """due: referral id -> its referee's first paid order."""
    pairs = Referral.objects.filter(pk__in=list(due), rewarded_at__isnull=True).values_list(
        "referrer_id", "referee_id"
    )
    member_ids = sorted({pk for pair in pairs for pk in pair})
    members = {m.pk: m for m in Member.objects.select_for_update().filter(pk__in=member_ids).order_by("pk")}
    referrals = list(
        Referral.objects.select_for_update().filter(pk__in=list(due), rewarded_at__isnull=True).order_by("pk")
    )
    keys = [f"referral:{r.pk}:{role}" for r in referrals for role in ("referrer", "referee")]
    already = set(
        PointsEntry.objects.filter(kind=PointsEntry.Kind.BONUS, source_key__in=keys).values_list(
            "source_key", flat=True
        )
    )
    now = timezone.now()
    for referral in referrals:
        if referral.referrer_id not in members or referral.referee_id not in members:
            continue  # a referral created after this batch was read: the next sweep takes it
        credited = {"referrer": 0, "referee": 0}
        for role, member, points in (
            ("referrer", members[referral.referrer_id], settings_row.referrer_bonus),
            ("referee", members[referral.referee_id], settings_row.referee_bonus),
        ):
            key = f"referral:{referral.pk}:{role}"
            if points and member.status == Member.Status.ACTIVE and key not in already:
                # `credit` keeps member.balance current, so a member credited twice in one batch
                # gets the right running balance.
                credit(
                    member,
                    kind=PointsEntry.Kind.BONUS,
                    points=points,
                    source=PointsEntry.Source.RULE,
                    source_key=key,
                    reason="referral",
                    programme=programme,
                )
                credited[role] = points
        referral.rewarded_at = now
        referral.qualifying_order_id = due[referral.pk]
        referral.referrer_points, referral.referee_points = credited["referrer"], credited["referee"]
        audit_record(
            actor=None,
            action="loyalty.referral_rewarded",
            target=referral,
            changes={"referrer_points": credited["referrer"], "referee_points": credited["referee"]},
        )
    Referral.objects.bulk_update(
        referrals, ["rewarded_at", "qualifying_order_id", "referrer_points", "referee_points"]
    )
    return len(referrals)


def award_after_sweep(sender, *, customer_ids=None, **kwargs) -> None:
    """`loyalty.signals.points_swept` receiver."""
    referral_bonuses_award(customer_ids=customer_ids)
