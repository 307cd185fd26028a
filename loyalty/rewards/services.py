"""Writes of the rewards catalogue and the vouchers.

A redemption is one transaction: the member's row is locked first, then the reward's (always in
that order, so two redemptions never wait on each other in a cycle); tier, validity, stock and
balance are checked under those locks; the points go through `loyalty.services.points_redeem`
(source "redemption", source key "voucher:<code>"), the stock goes down by one and the voucher is
written. Any refusal raises before anything is written.

Cancelling gives the points back as a new ledger row (kind "adjust", source "redemption", key
"voucher-cancel:<id>": unique, so a voucher is refunded once) and the stock back; the ledger is
never edited. Managers and admins may cancel any voucher they can see; the staff member who issued
it may cancel it within ISSUER_CANCEL_HOURS.

Roles: managers and admins keep the catalogue; every staff member who can see the member may
redeem for them. A voucher is marked used by its code at the counter: the code is what the customer
presents, so any staff member may mark it (it is found in the tenant's own schema only).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.accounts.permissions import MANAGERS, user_has_role, visible_to
from crm.audit.services import audit_diff, audit_record
from crm.errors import ApplicationError
from loyalty.models import Member, PointsEntry
from loyalty.services import credit, lock_member, points_redeem

from .models import MAX_REWARD_POINTS, VOUCHER_CODE_ALPHABET, VOUCHER_CODE_LENGTH, Reward, Voucher

ISSUER_CANCEL_HOURS = 24
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")
# The first bytes of each allowed image type: an extension alone does not make a file an image.
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"RIFF")
REWARD_FIELDS = (
    "name",
    "description",
    "points_cost",
    "stock",
    "valid_from",
    "valid_until",
    "voucher_days",
    "is_active",
)


# --------------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------------
def _snapshot(reward: Reward, tier_ids: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in REWARD_FIELDS:
        value = getattr(reward, name)
        out[name] = value if isinstance(value, bool | int | type(None) | str) else str(value)
    out["tiers"] = sorted(tier_ids)
    out["image"] = reward.image.name if reward.image else ""
    return out


def _check_image(upload: UploadedFile) -> None:
    name = upload.name or ""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    limit = settings.REWARD_IMAGE_MAX_BYTES
    if extension not in IMAGE_EXTENSIONS:
        raise ValidationError(
            {
                "image": [
                    _("%(name)s: this type of file cannot be used as an image. Allowed: %(types)s.")
                    % {"name": name[:100], "types": ", ".join(IMAGE_EXTENSIONS)}
                ]
            }
        )
    if upload.size is None or upload.size > limit:
        raise ValidationError(
            {
                "image": [
                    _("%(name)s is too large (%(size)s); the limit is %(limit)s.")
                    % {
                        "name": name[:100],
                        "size": filesizeformat(upload.size or 0),
                        "limit": filesizeformat(limit),
                    }
                ]
            }
        )
    upload.seek(0)
    head = upload.read(12)
    upload.seek(0)
    if not any(head.startswith(signature) for signature in IMAGE_SIGNATURES) or (
        head.startswith(b"RIFF") and head[8:12] != b"WEBP"
    ):
        raise ValidationError({"image": [_("%(name)s is not an image.") % {"name": name[:100]}]})


@transaction.atomic
def reward_save(
    *,
    actor,
    reward: Reward | None = None,
    data: Mapping[str, Any],
    tiers: Sequence | None = None,
    image: UploadedFile | None = None,
) -> Reward:
    """Create (reward=None) or change a reward (managers and admins), audited. The image is checked
    (type allow-list, size limit, image signature) and written last; a refusal writes no file."""
    if not user_has_role(actor, MANAGERS):
        raise PermissionDenied
    creating = reward is None
    if creating:
        reward = Reward(created_by=actor if getattr(actor, "pk", None) else None)
    else:
        reward = Reward.objects.select_for_update().get(pk=reward.pk)
    before = {} if creating else _snapshot(reward, list(reward.tiers.values_list("pk", flat=True)))
    for name, value in data.items():
        if name not in REWARD_FIELDS:
            raise ValueError(f"unknown reward field {name!r}")
        setattr(reward, name, value)
    reward.name = " ".join((reward.name or "").split())
    reward.description = (reward.description or "").strip()
    errors: dict[str, list] = {}
    if not isinstance(reward.points_cost, int) or not 0 < reward.points_cost <= MAX_REWARD_POINTS:
        errors["points_cost"] = [
            _("Enter a cost between 1 and %(max)s points.") % {"max": f"{MAX_REWARD_POINTS:,}"}
        ]
    if reward.valid_from and reward.valid_until and reward.valid_until < reward.valid_from:
        errors["valid_until"] = [_("A reward cannot end before it starts.")]
    if errors:
        raise ValidationError(errors)
    if image is not None:
        _check_image(image)
    reward.full_clean(exclude=["image"])
    old_image = reward.image.name if reward.image else ""
    reward.save()
    tier_ids = list(reward.tiers.values_list("pk", flat=True)) if tiers is None else [t.pk for t in tiers]
    if tiers is not None:
        reward.tiers.set(tiers)
    changes = audit_diff(before, _snapshot(reward, tier_ids))
    if image is not None:
        _store_image(reward, image)
        changes["image"] = {"old": old_image, "new": reward.image.name}
    audit_record(
        actor=actor,
        action="loyalty.reward_created" if creating else "loyalty.reward_updated",
        target=reward,
        changes=changes,
    )
    return reward


def _store_image(reward: Reward, image: UploadedFile) -> None:
    """Write the (checked) image under the tenant's folder with a random name, last in the service:
    the file is removed again if the row cannot be written; the old file goes once this commits."""
    old_image = reward.image.name if reward.image else ""
    extension = (image.name or "").rsplit(".", 1)[-1].lower()
    reward.image.save(f"{secrets.token_hex(16)}.{extension}", image, save=False)
    stored, storage = reward.image.name, reward.image.storage
    try:
        Reward.objects.filter(pk=reward.pk).update(image=stored)
    except BaseException:
        storage.delete(stored)
        raise
    if old_image:
        transaction.on_commit(lambda: storage.delete(old_image))


@transaction.atomic
def reward_deactivate(*, actor, reward: Reward) -> Reward:
    """Take a reward off the counter (vouchers already issued stay valid). Rewards are never deleted:
    their vouchers keep pointing at them."""
    if not user_has_role(actor, MANAGERS):
        raise PermissionDenied
    locked = Reward.objects.select_for_update().get(pk=reward.pk)
    if locked.is_active:
        locked.is_active = False
        locked.save(update_fields=["is_active", "updated_at"])
        audit_record(
            actor=actor,
            action="loyalty.reward_deactivated",
            target=locked,
            changes={"is_active": {"old": True, "new": False}},
        )
    return locked


# --------------------------------------------------------------------------------------------------
# Vouchers
# --------------------------------------------------------------------------------------------------
def voucher_code_new() -> str:
    return "".join(secrets.choice(VOUCHER_CODE_ALPHABET) for _i in range(VOUCHER_CODE_LENGTH))


def voucher_code_clean(raw: Any) -> str:
    """What a person typed or a scanner sent: case, spaces and dashes do not matter; bounded."""
    text = str(raw or "")[:40].upper()
    return "".join(ch for ch in text if ch not in " -\t")


def _reward_refusal(reward: Reward, member: Member, today) -> str | None:
    if not reward.is_active:
        return _("This reward is no longer offered.")
    if reward.valid_from and today < reward.valid_from:
        return _("This reward can be redeemed from %(date)s.") % {"date": reward.valid_from.isoformat()}
    if reward.valid_until and today > reward.valid_until:
        return _("This reward expired on %(date)s.") % {"date": reward.valid_until.isoformat()}
    if reward.stock is not None and reward.stock <= 0:
        return _("This reward is out of stock.")
    allowed = {tier.pk for tier in reward.tiers.all()}
    if allowed and member.tier_id not in allowed:
        return _("This reward is not offered to the member's tier.")
    return None


@transaction.atomic
def voucher_issue(*, actor, member: Member, reward: Reward, request_key: str = "") -> Voucher:
    """Redeem `reward` for `member`: one voucher, its points spent, one item of stock gone. A repeated
    `request_key` (the confirm form's token: a double click, a retried POST) returns the voucher
    already issued and spends nothing more."""
    request_key = (request_key or "")[:64] or None
    locked_member = lock_member(member)
    if actor is not None and not visible_to(Member.objects.filter(pk=locked_member.pk), actor).exists():
        raise PermissionDenied
    if request_key:
        existing = Voucher.objects.filter(request_key=request_key).first()
        if existing is not None:
            if existing.member_id != locked_member.pk:
                raise ApplicationError(_("This form was already used for another member."), code="key_used")
            return existing
    locked_reward = Reward.objects.select_for_update().get(pk=reward.pk)
    if locked_member.status != Member.Status.ACTIVE:
        raise ApplicationError(_("This membership is not active."), code="inactive")
    today = timezone.localdate()
    refusal = _reward_refusal(locked_reward, locked_member, today)
    if refusal:
        raise ApplicationError(refusal, code="reward_refused")
    now = timezone.now()
    voucher = Voucher(
        reward=locked_reward,
        member=locked_member,
        points=locked_reward.points_cost,
        status=Voucher.Status.ISSUED,
        expires_on=today + timedelta(days=locked_reward.voucher_days),
        request_key=request_key,
        issued_by=actor if getattr(actor, "pk", None) else None,
        issued_at=now,
    )
    for _attempt in range(5):
        voucher.code = voucher_code_new()
        if not Voucher.objects.filter(code=voucher.code).exists():
            break
    else:  # 31^10 codes: five collisions in a row means something else is wrong
        raise ApplicationError(_("No voucher code could be made. Please try again."), code="code")
    try:
        points_redeem(
            actor=actor,
            member=locked_member,
            points=locked_reward.points_cost,
            source=PointsEntry.Source.REDEMPTION,
            source_key=f"voucher:{voucher.code}",
            reason=str(locked_reward.name)[:300],
        )
    except ValidationError as error:
        # points_redeem reports on "points"; the counter shows it as the refusal it is.
        raise ApplicationError(" ".join(error.messages), code="insufficient") from error
    if locked_reward.stock is not None:
        Reward.objects.filter(pk=locked_reward.pk).update(stock=locked_reward.stock - 1, updated_at=now)
    try:
        with transaction.atomic():
            voucher.save()
    except IntegrityError as error:  # a code taken between the check and the insert
        raise ApplicationError(_("No voucher code could be made. Please try again."), code="code") from error
    audit_record(
        actor=actor,
        action="loyalty.voucher_issued",
        target=voucher,
        changes={
            "reward": {"old": None, "new": locked_reward.name},
            "points": {"old": None, "new": voucher.points},
            "member": {"old": None, "new": locked_member.number},
        },
    )
    return voucher


def can_cancel(actor, voucher: Voucher, now=None) -> bool:
    if actor is None or user_has_role(actor, MANAGERS):
        return True
    now = now or timezone.now()
    return voucher.issued_by_id == actor.pk and now - voucher.issued_at <= timedelta(
        hours=ISSUER_CANCEL_HOURS
    )


def _lock_voucher(voucher: Voucher) -> Voucher:
    """Lock the member first, then the voucher (the same order as a redemption)."""
    member_id = Voucher.objects.filter(pk=voucher.pk).values_list("member_id", flat=True).first()
    if member_id is None:
        raise ApplicationError(_("This voucher does not exist."), code="missing")
    lock_member(member_id)
    return Voucher.objects.select_for_update().select_related("reward", "member").get(pk=voucher.pk)


@transaction.atomic
def voucher_cancel(*, actor, voucher: Voucher) -> Voucher:
    """Cancel an issued voucher: its points come back (a new ledger row, once) and so does the stock."""
    locked = _lock_voucher(voucher)
    if actor is not None and not visible_to(Voucher.objects.filter(pk=locked.pk), actor).exists():
        raise PermissionDenied
    if locked.status != Voucher.Status.ISSUED:
        raise ApplicationError(
            _("This voucher is %(status)s and cannot be cancelled.")
            % {"status": locked.get_status_display().lower()},
            code="not_issued",
        )
    if not can_cancel(actor, locked):
        raise ApplicationError(
            _("Only a manager can cancel this voucher (the issuer may within %(hours)s hours).")
            % {"hours": ISSUER_CANCEL_HOURS},
            code="cancel_forbidden",
        )
    member = Member.objects.get(pk=locked.member_id)  # locked by _lock_voucher
    credit(
        member,
        kind=PointsEntry.Kind.ADJUST,
        points=locked.points,
        source=PointsEntry.Source.REDEMPTION,
        source_key=f"voucher-cancel:{locked.pk}",
        reason=str(locked.reward.name)[:300],
        actor=actor,
    )
    reward = Reward.objects.select_for_update().get(pk=locked.reward_id)
    now = timezone.now()
    if reward.stock is not None:
        Reward.objects.filter(pk=reward.pk).update(stock=reward.stock + 1, updated_at=now)
    locked.status = Voucher.Status.CANCELLED
    locked.cancelled_at = now
    locked.cancelled_by = actor if getattr(actor, "pk", None) else None
    locked.save(update_fields=["status", "cancelled_at", "cancelled_by"])
    audit_record(
        actor=actor,
        action="loyalty.voucher_cancelled",
        target=locked,
        changes={
            "status": {"old": Voucher.Status.ISSUED, "new": Voucher.Status.CANCELLED},
            "points": locked.points,
        },
    )
    return locked


@transaction.atomic
def voucher_use(*, actor, code: Any) -> Voucher:
    """Mark the voucher with this code used (at the counter). Refused, writing nothing, for an unknown
    code, a voucher already used or cancelled, or one past its expiry day."""
    cleaned = voucher_code_clean(code)
    if not cleaned:
        raise ValidationError({"code": [_("Enter the voucher code.")]})
    found = Voucher.objects.filter(code=cleaned).first()
    if found is None:
        raise ValidationError({"code": [_("No voucher has this code.")]})
    locked = _lock_voucher(found)
    today = timezone.localdate()
    if locked.status != Voucher.Status.ISSUED:
        raise ValidationError(
            {"code": [_("This voucher is %(status)s.") % {"status": locked.get_status_display().lower()}]}
        )
    if locked.is_past_expiry(today):
        raise ValidationError(
            {"code": [_("This voucher expired on %(date)s.") % {"date": locked.expires_on.isoformat()}]}
        )
    locked.status = Voucher.Status.USED
    locked.used_at = timezone.now()
    locked.used_by = actor if getattr(actor, "pk", None) else None
    locked.save(update_fields=["status", "used_at", "used_by"])
    audit_record(
        actor=actor,
        action="loyalty.voucher_used",
        target=locked,
        changes={"status": {"old": Voucher.Status.ISSUED, "new": Voucher.Status.USED}},
    )
    return locked


def vouchers_expire(*, today=None) -> int:
    """Mark issued vouchers past their expiry day expired (their points are not returned: the
    member spent them on a voucher they did not use). Idempotent; one UPDATE on a partial index."""
    today = today or timezone.localdate()
    return Voucher.objects.filter(status=Voucher.Status.ISSUED, expires_on__lt=today).update(
        status=Voucher.Status.EXPIRED
    )
