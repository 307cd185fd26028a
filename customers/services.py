"""Writes to customer data. Every change goes through one of these functions: validated, atomic, and
recorded in the audit log with old and new values (the customer's history).

Role rules enforced here (views check them too):
- anyone may create customers and edit, tag, delete and restore the customers they can see
  (sales: their own and those shared with them; deleting needs ownership or a manager);
- only managers and admins change owners, share customers, and run bulk delete / bulk assign;
- only admins define custom fields.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from crm.accounts.models import User
from crm.accounts.permissions import ADMINS, MANAGERS, user_has_role, visible_to
from crm.audit.models import AuditEvent
from crm.audit.services import audit_diff, audit_record

from . import custom_fields as cf
from .models import Customer, CustomFieldDefinition, Order, OrderLine, Refund, Tag
from .phone import normalise_phone
from .search import build_search_text
from .signals import (
    REASON_CREATED,
    REASON_DELETED,
    REASON_ORDERS,
    REASON_OWNERS,
    REASON_PURGED,
    REASON_RESTORED,
    customers_changed_on_commit,
)

logger = logging.getLogger(__name__)

BIN_RETENTION_DAYS = 30
BULK_LIMIT = 500
MONEY = Decimal("0.01")

# Profile fields a create or update may set (besides owner, tags, shared_with and custom_fields).
PROFILE_FIELDS = (
    "kind",
    "name",
    "email",
    "phone",
    "country",
    "province",
    "city",
    "street",
    "postcode",
    "birthday",
    "gender",
    "income_band",
    "occupation",
    "language",
    "source",
    "email_consent",
    "sms_consent",
    "external_id",
)
UPDATABLE_FIELDS = frozenset(PROFILE_FIELDS) | {"owner", "tags", "custom_fields"}
STRIPPED_FIELDS = ("name", "country", "province", "city", "street", "postcode", "occupation", "external_id")


# --- helpers ---------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _is_set(value: Any) -> bool:
    return value is not None and value is not False and value != "" and value != []


def _user_label(user: User | None) -> str | None:
    return user.get_full_name() if user is not None else None


def customer_snapshot(customer: Customer, *, with_tags: bool = True) -> dict[str, Any]:
    """The audited state of a customer: profile fields, owner, tags and custom fields (JSON-safe)."""
    snapshot = {field: _json_safe(getattr(customer, field)) for field in PROFILE_FIELDS}
    snapshot["owner"] = _user_label(customer.owner) if customer.owner_id else None
    if with_tags and customer.pk:
        snapshot["tags"] = sorted(customer.tags.live().values_list("name", flat=True))
    for key, value in (customer.custom_fields or {}).items():
        snapshot[f"custom_fields.{key}"] = value
    return snapshot


def _merge_errors(errors: dict[str, list], error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, field_errors in error.error_dict.items():
            errors.setdefault(field, []).extend(field_errors)
    else:
        errors.setdefault("__all__", []).extend(error.error_list)


def _require_roles(actor, roles, message) -> None:
    if not user_has_role(actor, roles):
        raise PermissionDenied(message)


def _active_definitions() -> list[CustomFieldDefinition]:
    return list(CustomFieldDefinition.objects.filter(is_active=True))


def _set_consent(customer: Customer, field: str, value: bool, now: datetime) -> None:
    previous = getattr(customer, field)
    value = bool(value)
    setattr(customer, field, value)
    if value and (not previous or getattr(customer, f"{field}_at") is None):
        setattr(customer, f"{field}_at", now)
    elif not value:
        setattr(customer, f"{field}_at", None)


def _apply_profile(
    customer: Customer, data: Mapping[str, Any], *, errors: dict[str, list], actor, is_new: bool
) -> None:
    """Set normalised profile values on `customer`, collecting field errors."""
    now = timezone.now()
    for field, value in data.items():
        if field in ("owner", "tags", "custom_fields", "shared_with"):
            continue
        if field in ("email_consent", "sms_consent"):
            _set_consent(customer, field, value, now)
        elif field == "email":
            customer.email = (value or "").strip().lower()
        elif field == "phone":
            try:
                customer.phone = normalise_phone(value or "")
            except ValidationError as error:
                customer.phone = (value or "").strip()[:32]
                errors.setdefault("phone", []).extend(error.error_list)
        elif field in STRIPPED_FIELDS:
            setattr(customer, field, (value or "").strip())
        elif field == "birthday":
            customer.birthday = value or None
        elif field == "income_band":
            customer.income_band = value or ""
        elif field in ("gender", "source", "kind"):
            setattr(customer, field, value or Customer._meta.get_field(field).default)
        else:
            setattr(customer, field, value)
    if customer.country:
        customer.country = customer.country.upper()
    if customer.birthday and customer.birthday > timezone.localdate():
        errors.setdefault("birthday", []).append(
            ValidationError(_("A birthday cannot be in the future."), code="future")
        )


def _validate_customer(customer: Customer, errors: dict[str, list]) -> None:
    exclude = ["search_text", "owner", "deleted_by", "merged_into", "created_by"] + [
        field for field in errors if field in {f.name for f in Customer._meta.fields}
    ]
    try:
        customer.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        _merge_errors(errors, error)
    if customer.external_id and "external_id" not in errors:
        clash = Customer.objects.filter(external_id=customer.external_id).exclude(pk=customer.pk).exists()
        if clash:
            errors.setdefault("external_id", []).append(
                ValidationError(_("Another customer already has this external id."), code="unique")
            )


def _check_owner(owner, errors: dict[str, list]) -> None:
    if owner is not None and not (owner.is_active and getattr(owner, "role", None)):
        errors.setdefault("owner", []).append(
            ValidationError(_("Choose an active user as owner."), code="invalid_owner")
        )


def _refresh_search_text(customer: Customer) -> None:
    customer.search_text = build_search_text(
        name=customer.name, email=customer.email, phone=customer.phone, external_id=customer.external_id
    )


# --- customers -------------------------------------------------------------------------------------


@transaction.atomic
def customer_create(
    *,
    actor: User | None,
    name: str,
    email: str = "",
    phone: str = "",
    kind: str = Customer.Kind.PERSON,
    country: str = "",
    province: str = "",
    city: str = "",
    street: str = "",
    postcode: str = "",
    birthday: date | None = None,
    gender: str = Customer.Gender.UNKNOWN,
    income_band: str = "",
    occupation: str = "",
    language: str = "",
    source: str = Customer.Source.STORE,
    email_consent: bool = False,
    sms_consent: bool = False,
    external_id: str = "",
    owner: User | None = None,
    tags: Iterable[Tag] = (),
    shared_with: Iterable[User] = (),
    custom_fields: Mapping[str, Any] | None = None,
) -> Customer:
    """Create a customer. Sales staff always own what they create; managers may pick any owner."""
    errors: dict[str, list] = {}
    if actor is not None and not user_has_role(actor, MANAGERS):
        owner = actor  # sales: a new customer is theirs (they could not see it otherwise)
    customer = Customer(created_by=actor if actor is not None and actor.pk else None, owner=owner)
    _apply_profile(
        customer,
        {
            "kind": kind,
            "name": name,
            "email": email,
            "phone": phone,
            "country": country,
            "province": province,
            "city": city,
            "street": street,
            "postcode": postcode,
            "birthday": birthday,
            "gender": gender,
            "income_band": income_band,
            "occupation": occupation,
            "language": language,
            "source": source,
            "email_consent": email_consent,
            "sms_consent": sms_consent,
            "external_id": external_id,
        },
        errors=errors,
        actor=actor,
        is_new=True,
    )
    _check_owner(owner, errors)
    values, cf_errors = cf.clean_values(
        values=dict(custom_fields or {}), definitions=_active_definitions(), check_all_required=True
    )
    errors.update(cf_errors)
    customer.custom_fields = values
    _validate_customer(customer, errors)
    if errors:
        raise ValidationError(errors)
    _refresh_search_text(customer)
    customer.save()
    tags = list(tags)
    if tags:
        customer.tags.add(*tags)
    shared_with = list(shared_with)
    if shared_with:
        customer.shared_with.add(*shared_with)
    audit_record(
        actor=actor,
        action="customer.created",
        target=customer,
        changes=audit_diff({}, {k: v for k, v in customer_snapshot(customer).items() if _is_set(v)}),
    )
    customers_changed_on_commit(reason=REASON_CREATED, customer_ids=[customer.pk], actor=actor)
    return customer


@transaction.atomic
def customer_update(*, actor: User | None, customer: Customer, data: Mapping[str, Any]) -> Customer:
    """Change some fields of a customer. `data` may hold profile fields, `owner` (managers only),
    `tags` (a list of Tag) and `custom_fields` (a partial dict: only the keys given change)."""
    unknown = set(data) - UPDATABLE_FIELDS
    if unknown:
        raise ValueError(f"Not updatable: {sorted(unknown)}")
    locked = Customer.objects.select_for_update(of=("self",)).select_related("owner").get(pk=customer.pk)
    before = customer_snapshot(locked)
    errors: dict[str, list] = {}
    _apply_profile(locked, data, errors=errors, actor=actor, is_new=False)
    if "owner" in data and (data["owner"] or None) != locked.owner:
        if actor is not None and not user_has_role(actor, MANAGERS):
            errors.setdefault("owner", []).append(
                ValidationError(_("Only managers and admins can change the owner."), code="forbidden")
            )
        else:
            _check_owner(data["owner"], errors)
            locked.owner = data["owner"] or None
    if "custom_fields" in data:
        values, cf_errors = cf.clean_values(
            values=dict(data["custom_fields"] or {}),
            definitions=list(CustomFieldDefinition.objects.all()),
            existing=locked.custom_fields,
            check_all_required=False,
        )
        errors.update(cf_errors)
        locked.custom_fields = values
    _validate_customer(locked, errors)
    if errors:
        raise ValidationError(errors)
    _refresh_search_text(locked)
    locked.save()
    if "tags" in data:
        # The form offers live tags only: links to binned tags stay, for the tag's restore.
        binned = list(locked.tags.filter(deleted_at__isnull=False))
        locked.tags.set([*(tag for tag in data["tags"] or [] if tag.deleted_at is None), *binned])
    changes = audit_diff(before, customer_snapshot(locked))
    if changes:
        audit_record(actor=actor, action="customer.updated", target=locked, changes=changes)
    if "owner" in changes:  # what each sales user sees (and is counted in their figures) changed
        customers_changed_on_commit(reason=REASON_OWNERS, customer_ids=[locked.pk], actor=actor)
    return locked


@transaction.atomic
def customer_share(*, actor: User, customer: Customer, users: Iterable[User]) -> Customer:
    """Replace the users the customer is shared with (managers and admins only)."""
    _require_roles(actor, MANAGERS, _t("Only managers and admins can share customers."))
    users = [u for u in users if u.pk != customer.owner_id]
    before = sorted(u.get_full_name() for u in customer.shared_with.all())
    customer.shared_with.set(users)
    after = sorted(u.get_full_name() for u in users)
    if before != after:
        audit_record(
            actor=actor,
            action="customer.shared",
            target=customer,
            changes={"shared_with": {"old": before, "new": after}},
        )
        customers_changed_on_commit(reason=REASON_OWNERS, customer_ids=[customer.pk], actor=actor)
    return customer


def tag_get_or_create(*, name: str) -> Tag:
    """The live tag with this name in any case, else a new one (a binned tag of the same name stays in
    the bin with its customers: restoring it is a choice made on the bin page)."""
    from .tags.services import NAME_MAX, normalise_tag_name

    name = normalise_tag_name(name)
    if not name:
        raise ValidationError({"tag": [_("Enter a tag name.")]})
    if len(name) > NAME_MAX:
        raise ValidationError({"tag": [_("A tag name can be at most 60 characters.")]})
    tag = Tag.objects.live().filter(name__iexact=name).first()
    if tag is None:
        try:
            with transaction.atomic():
                tag = Tag.objects.create(name=name)
        except IntegrityError:  # created by a concurrent request in the meantime
            tag = Tag.objects.live().get(name__iexact=name)
    return tag


def _visible_customers(actor: User, customer_ids: Sequence[int]) -> QuerySet[Customer]:
    ids = [int(pk) for pk in customer_ids][:BULK_LIMIT]
    return visible_to(Customer.objects.filter(pk__in=ids, deleted_at__isnull=True), actor)


def _audit_many(*, actor, action: str, rows: list[tuple[Customer, dict]]) -> None:
    """One INSERT for the audit rows of a bulk action (the same rows audit_record would write)."""
    has_actor = actor is not None and getattr(actor, "pk", None)
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                actor=actor if has_actor else None,
                actor_label=actor.get_full_name() if has_actor else "",
                action=action,
                target_type=Customer._meta.label_lower,
                target_id=str(customer.pk),
                target_label=str(customer)[:300],
                changes=changes,
            )
            for customer, changes in rows
        ]
    )


@transaction.atomic
def customers_bulk_tag(*, actor: User, customer_ids: Sequence[int], tag: Tag, remove: bool = False) -> int:
    """Add (or remove) one tag on the customers the actor can see; returns how many changed."""
    customers = list(_visible_customers(actor, customer_ids).order_by("pk"))
    through = Customer.tags.through
    having = set(
        through.objects.filter(customer_id__in=[c.pk for c in customers], tag=tag).values_list(
            "customer_id", flat=True
        )
    )
    if remove:
        changed = [c for c in customers if c.pk in having]
        through.objects.filter(customer_id__in=[c.pk for c in changed], tag=tag).delete()
    else:
        changed = [c for c in customers if c.pk not in having]
        through.objects.bulk_create([through(customer_id=c.pk, tag_id=tag.pk) for c in changed])
    change = {"old": None, "new": tag.name} if not remove else {"old": tag.name, "new": None}
    _audit_many(
        actor=actor,
        action="customer.untagged" if remove else "customer.tagged",
        rows=[(c, {"tags": change}) for c in changed],
    )
    return len(changed)


@transaction.atomic
def customers_bulk_assign_owner(*, actor: User, customer_ids: Sequence[int], owner: User | None) -> int:
    """Give the customers a new owner (managers and admins only)."""
    _require_roles(actor, MANAGERS, _t("Only managers and admins can assign owners."))
    errors: dict[str, list] = {}
    _check_owner(owner, errors)
    if errors:
        raise ValidationError(errors)
    customers = list(
        _visible_customers(actor, customer_ids).select_related("owner").select_for_update(of=("self",))
    )
    changed = [c for c in customers if c.owner_id != (owner.pk if owner else None)]
    rows = [(c, {"owner": {"old": _user_label(c.owner), "new": _user_label(owner)}}) for c in changed]
    Customer.objects.filter(pk__in=[c.pk for c in changed]).update(owner=owner, updated_at=timezone.now())
    _audit_many(actor=actor, action="customer.updated", rows=rows)
    if changed:
        customers_changed_on_commit(reason=REASON_OWNERS, customer_ids=[c.pk for c in changed], actor=actor)
    return len(changed)


# --- recycle bin -----------------------------------------------------------------------------------


def can_delete(actor: User, customer: Customer) -> bool:
    return user_has_role(actor, MANAGERS) or (
        user_has_role(actor, ("sales",)) and customer.owner_id == actor.pk
    )


@transaction.atomic
def customer_delete(*, actor: User, customer: Customer) -> Customer:
    """Move a customer to the recycle bin. Orders, events and history stay attached."""
    if not can_delete(actor, customer):
        raise PermissionDenied(_t("Only the owner, managers and admins can delete this customer."))
    updated = Customer.objects.filter(pk=customer.pk, deleted_at__isnull=True).update(
        deleted_at=timezone.now(), deleted_by=actor, updated_at=timezone.now()
    )
    customer.refresh_from_db()
    if updated:
        audit_record(
            actor=actor,
            action="customer.deleted",
            target=customer,
            changes={"deleted_at": {"old": None, "new": customer.deleted_at.isoformat()}},
        )
        customers_changed_on_commit(reason=REASON_DELETED, customer_ids=[customer.pk], actor=actor)
    return customer


@transaction.atomic
def customers_bulk_delete(*, actor: User, customer_ids: Sequence[int]) -> int:
    """Move several customers to the recycle bin (managers and admins only)."""
    _require_roles(actor, MANAGERS, _t("Only managers and admins can delete customers in bulk."))
    customers = list(_visible_customers(actor, customer_ids))
    now = timezone.now()
    Customer.objects.filter(pk__in=[c.pk for c in customers]).update(
        deleted_at=now, deleted_by=actor, updated_at=now
    )
    _audit_many(
        actor=actor,
        action="customer.deleted",
        rows=[(c, {"deleted_at": {"old": None, "new": now.isoformat()}}) for c in customers],
    )
    if customers:
        ids = [c.pk for c in customers]
        customers_changed_on_commit(reason=REASON_DELETED, customer_ids=ids, actor=actor)
    return len(customers)


@transaction.atomic
def customer_restore(*, actor: User, customer: Customer) -> Customer:
    """Bring a customer back from the recycle bin, with everything still attached to it."""
    if not can_delete(actor, customer):
        raise PermissionDenied(_t("Only the owner, managers and admins can restore this customer."))
    deleted_at = customer.deleted_at
    updated = Customer.objects.filter(pk=customer.pk, deleted_at__isnull=False).update(
        deleted_at=None, deleted_by=None, updated_at=timezone.now()
    )
    customer.refresh_from_db()
    if updated:
        audit_record(
            actor=actor,
            action="customer.restored",
            target=customer,
            changes={"deleted_at": {"old": deleted_at.isoformat() if deleted_at else None, "new": None}},
        )
        customers_changed_on_commit(reason=REASON_RESTORED, customer_ids=[customer.pk], actor=actor)
    return customer


def purge_date(customer: Customer) -> datetime | None:
    if customer.deleted_at is None:
        return None
    return customer.deleted_at + timedelta(days=BIN_RETENTION_DAYS)


def _run_purge_hooks(ids: list[int]) -> None:
    """Other apps' `PurgeHook`s (customers.registry): each reads what it must clean up before the rows
    go and gets its clean-up run after the commit."""
    from .registry import registry

    for hook in registry.purge_hooks.values():
        after = hook.before_purge(ids)
        if after is not None:
            transaction.on_commit(after)


def customers_purge_expired(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Delete for good the customers that have been in the bin longer than the retention period.

    Each batch is its own transaction, so a crash leaves finished batches done and the rest for the
    next run (idempotent). Deleting goes through the ORM so other apps' rows with a CASCADE foreign
    key to the customer go too; orders (PROTECTed) are deleted first, with their lines and refunds.
    """
    cutoff = (now or timezone.now()) - timedelta(days=BIN_RETENTION_DAYS)
    purged = 0
    while True:
        with transaction.atomic():
            batch = list(
                Customer.objects.filter(deleted_at__lt=cutoff)
                .order_by("pk")
                .select_for_update(skip_locked=True)
                .values_list("pk", "name")[:batch_size]
            )
            if not batch:
                break
            ids = [pk for pk, _name in batch]
            _run_purge_hooks(ids)
            Order.objects.filter(customer_id__in=ids).delete()
            # Merged records pointing at a purged survivor keep their rows (SET_NULL), as the model says.
            Customer.objects.filter(pk__in=ids).delete()
            AuditEvent.objects.bulk_create(
                [
                    AuditEvent(
                        action="customer.purged",
                        actor_label="",
                        target_type=Customer._meta.label_lower,
                        target_id=str(pk),
                        target_label=name[:300],
                        changes={},
                    )
                    for pk, name in batch
                ]
            )
            customers_changed_on_commit(reason=REASON_PURGED, customer_ids=ids)
            purged += len(batch)
        if len(batch) < batch_size:
            break
    return purged


# --- orders ----------------------------------------------------------------------------------------


def _money(value: Any, field: str, errors: dict[str, list]) -> Decimal | None:
    try:
        amount = Decimal(str(value)).quantize(MONEY)
    except (InvalidOperation, ValueError, TypeError):
        errors.setdefault(field, []).append(ValidationError(_("Enter an amount."), code="invalid"))
        return None
    if not amount.is_finite():
        errors.setdefault(field, []).append(ValidationError(_("Enter an amount."), code="invalid"))
        return None
    return amount


def _tenant_currency() -> str:
    return getattr(getattr(connection, "tenant", None), "currency", "") or "CNY"


@transaction.atomic
def order_create(
    *,
    actor: User | None,
    customer: Customer,
    number: str,
    placed_at: datetime,
    lines: Sequence[Mapping[str, Any]],
    channel: str = Order.Channel.STORE,
    currency: str = "",
    total: Decimal | None = None,
    external_id: str = "",
    refresh_stats: bool = True,
) -> Order:
    """Record a paid order with its lines. `total`, when given, must equal the sum of the lines."""
    errors: dict[str, list] = {}
    if customer.deleted_at is not None:
        errors.setdefault("customer", []).append(
            ValidationError(_("This customer is in the recycle bin."), code="deleted")
        )
    number = (number or "").strip()
    if number and Order.objects.filter(number=number).exists():
        errors.setdefault("number", []).append(
            ValidationError(_("An order with this number already exists."), code="unique")
        )
    if not lines:
        errors.setdefault("lines", []).append(ValidationError(_("Add at least one line."), code="required"))
    order_lines: list[OrderLine] = []
    lines_total = Decimal("0")
    for index, line in enumerate(lines, start=1):
        line_errors: dict[str, list] = {}
        quantity = _money(line.get("quantity", 1), "quantity", line_errors)
        unit_price = _money(line.get("unit_price"), "unit_price", line_errors)
        if quantity is not None and quantity <= 0:
            line_errors.setdefault("quantity", []).append(ValidationError(_("must be greater than zero")))
        if unit_price is not None and unit_price < 0:
            line_errors.setdefault("unit_price", []).append(ValidationError(_("cannot be negative")))
        if not str(line.get("product_name", "")).strip():
            line_errors.setdefault("product_name", []).append(ValidationError(_("is required")))
        for field, field_errors in line_errors.items():
            for error in field_errors:
                errors.setdefault("lines", []).append(
                    ValidationError(
                        _("Line %(line)d, %(field)s: %(message)s"),
                        params={"line": index, "field": field, "message": " ".join(error.messages)},
                    )
                )
        if not line_errors:
            order_lines.append(
                OrderLine(
                    sku=str(line.get("sku", "") or "").strip(),
                    product_name=str(line["product_name"]).strip(),
                    category=str(line.get("category", "") or "").strip(),
                    quantity=quantity,
                    unit_price=unit_price,
                )
            )
            lines_total += (quantity * unit_price).quantize(MONEY)
    if total is not None and "lines" not in errors:
        given = _money(total, "total", errors)
        if given is not None and given != lines_total:
            errors.setdefault("total", []).append(
                ValidationError(
                    _("The total %(total)s does not match the sum of the lines %(sum)s."),
                    params={"total": given, "sum": lines_total},
                    code="mismatch",
                )
            )
    order = Order(
        number=number,
        customer=customer,
        placed_at=placed_at,
        channel=channel,
        currency=(currency or _tenant_currency()).upper(),
        total=lines_total,
        external_id=(external_id or "").strip(),
        status=Order.Status.PAID,
    )
    try:
        order.full_clean(exclude=["customer", *errors], validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        _merge_errors(errors, error)
    if errors:
        raise ValidationError(errors)
    order.save()
    for line in order_lines:
        line.order = order
    OrderLine.objects.bulk_create(order_lines)
    audit_record(
        actor=actor,
        action="order.created",
        target=order,
        changes={
            "total": {"old": None, "new": str(order.total)},
            "customer": {"old": None, "new": customer.pk},
        },
    )
    if refresh_stats:
        customer_refresh_order_stats(customer_ids=[customer.pk])
    customers_changed_on_commit(reason=REASON_ORDERS, customer_ids=[customer.pk], actor=actor)
    return order


@transaction.atomic
def order_refund(
    *,
    actor: User | None,
    order: Order,
    amount: Decimal,
    reason: str = "",
    refunded_at: datetime | None = None,
) -> Refund:
    """Record a refund. The order keeps its total; refunded_total and status follow from the refunds."""
    locked = Order.objects.select_for_update().get(pk=order.pk)
    errors: dict[str, list] = {}
    value = _money(amount, "amount", errors)
    if locked.status in (Order.Status.CANCELLED, Order.Status.REFUNDED):
        errors.setdefault("amount", []).append(
            ValidationError(
                _("This order cannot be refunded (it is %(status)s)."),
                params={"status": locked.get_status_display()},
            )
        )
    elif value is not None:
        remaining = locked.total - locked.refunded_total
        if value <= 0:
            errors.setdefault("amount", []).append(ValidationError(_("Enter an amount above zero.")))
        elif value > remaining:
            errors.setdefault("amount", []).append(
                ValidationError(
                    _("At most %(remaining)s can still be refunded."), params={"remaining": remaining}
                )
            )
    if len(reason or "") > 300:
        errors.setdefault("reason", []).append(ValidationError(_("Use at most 300 characters.")))
    if errors:
        raise ValidationError(errors)
    refund = Refund.objects.create(
        order=locked,
        amount=value,
        reason=(reason or "").strip(),
        refunded_at=refunded_at or timezone.now(),
        created_by=actor if actor is not None and actor.pk else None,
    )
    old_status = locked.status
    locked.refunded_total += value
    locked.status = (
        Order.Status.REFUNDED if locked.refunded_total >= locked.total else Order.Status.PARTIALLY_REFUNDED
    )
    locked.save(update_fields=["refunded_total", "status", "updated_at"])
    audit_record(
        actor=actor,
        action="order.refunded",
        target=locked,
        changes={
            "refunded_total": {"old": str(locked.refunded_total - value), "new": str(locked.refunded_total)},
            "status": {"old": old_status, "new": locked.status},
        },
    )
    customer_refresh_order_stats(customer_ids=[locked.customer_id])
    customers_changed_on_commit(reason=REASON_ORDERS, customer_ids=[locked.customer_id], actor=actor)
    order.refresh_from_db()
    return refund


def customer_refresh_order_stats(*, customer_ids: Iterable[int] | None = None) -> int:
    """Recompute total spent (net of refunds), order count and first/last purchase from the orders,
    in one UPDATE ... FROM (aggregate) statement. Only rows whose figures changed are written.
    Returns the number of customers updated. Pass None to refresh every customer (after a bulk load).
    """
    customer_table = Customer._meta.db_table
    order_table = Order._meta.db_table
    params: list[Any] = [list(Order.PURCHASE_STATUSES)]
    where = ""
    if customer_ids is not None:
        ids = sorted({int(pk) for pk in customer_ids})
        if not ids:
            return 0
        where = "WHERE cu.id = ANY(%s)"
        params.append(ids)
    sql = f"""
        UPDATE {customer_table} AS c
        SET total_spent = s.total_spent, orders_count = s.orders_count,
            first_order_at = s.first_order_at, last_order_at = s.last_order_at
        FROM (
            SELECT cu.id AS customer_id,
                   COALESCE(SUM(o.total - o.refunded_total), 0) AS total_spent,
                   COUNT(o.id) AS orders_count,
                   MIN(o.placed_at) AS first_order_at,
                   MAX(o.placed_at) AS last_order_at
            FROM {customer_table} AS cu
            LEFT JOIN {order_table} AS o ON o.customer_id = cu.id AND o.status = ANY(%s)
            {where}
            GROUP BY cu.id
        ) AS s
        WHERE c.id = s.customer_id
          AND (c.total_spent, c.orders_count, c.first_order_at, c.last_order_at)
              IS DISTINCT FROM (s.total_spent, s.orders_count, s.first_order_at, s.last_order_at)
    """  # noqa: S608 - table names come from model metadata, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- custom field definitions ------------------------------------------------------------------------


def _clean_definition(
    definition: CustomFieldDefinition, *, choices: Any, errors: dict[str, list], is_new: bool
) -> None:
    definition.label = (definition.label or "").strip()
    definition.help_text = (definition.help_text or "").strip()
    if is_new:
        definition.key = (definition.key or "").strip().lower()
        if not cf.KEY_PATTERN.match(definition.key):
            errors.setdefault("key", []).append(
                ValidationError(
                    _(
                        "Use 1-50 lower-case letters, digits and underscores, starting with a letter "
                        "(e.g. wechat_id)."
                    ),
                    code="invalid_key",
                )
            )
        elif CustomFieldDefinition.objects.filter(key=definition.key).exists():
            errors.setdefault("key", []).append(
                ValidationError(_("A custom field with this key already exists."), code="unique")
            )
    if isinstance(choices, str):
        choices = [line for chunk in choices.splitlines() for line in chunk.split(",")]
    cleaned = list(dict.fromkeys(str(c).strip() for c in (choices or []) if str(c).strip()))
    if definition.field_type in (cf.FieldType.CHOICE, cf.FieldType.MULTI_CHOICE):
        if not cleaned:
            errors.setdefault("choices", []).append(
                ValidationError(_("A choice field needs at least one choice."), code="required")
            )
        elif any(len(c) > 100 for c in cleaned):
            errors.setdefault("choices", []).append(
                ValidationError(_("A choice can be at most 100 characters."), code="max_length")
            )
        definition.choices = cleaned
    else:
        definition.choices = []
    try:
        definition.full_clean(exclude=["key", *errors], validate_unique=False)
    except ValidationError as error:
        _merge_errors(errors, error)


@transaction.atomic
def custom_field_create(
    *,
    actor: User,
    key: str,
    label: str,
    field_type: str,
    required: bool = False,
    choices: Sequence[str] | str = (),
    help_text: str = "",
    position: int = 0,
) -> CustomFieldDefinition:
    _require_roles(actor, ADMINS, _t("Only admins can define custom fields."))
    definition = CustomFieldDefinition(
        key=key, label=label, field_type=field_type, required=required, help_text=help_text, position=position
    )
    errors: dict[str, list] = {}
    _clean_definition(definition, choices=choices, errors=errors, is_new=True)
    if errors:
        raise ValidationError(errors)
    definition.save()
    audit_record(
        actor=actor,
        action="custom_field.created",
        target=definition,
        changes=audit_diff({}, _definition_snapshot(definition)),
    )
    return definition


def _definition_snapshot(definition: CustomFieldDefinition) -> dict[str, Any]:
    return {
        "key": definition.key,
        "label": definition.label,
        "field_type": definition.field_type,
        "required": definition.required,
        "choices": list(definition.choices or []),
        "help_text": definition.help_text,
        "position": definition.position,
        "is_active": definition.is_active,
    }


@transaction.atomic
def custom_field_update(
    *, actor: User, definition: CustomFieldDefinition, data: Mapping[str, Any]
) -> CustomFieldDefinition:
    """Change label, required, choices, help text, position or active flag. The key and type stay:
    stored values depend on them."""
    _require_roles(actor, ADMINS, _t("Only admins can define custom fields."))
    allowed = {"label", "required", "choices", "help_text", "position", "is_active"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"Not updatable: {sorted(unknown)}")
    locked = CustomFieldDefinition.objects.select_for_update().get(pk=definition.pk)
    before = _definition_snapshot(locked)
    for field in allowed - {"choices"}:
        if field in data:
            setattr(locked, field, data[field])
    errors: dict[str, list] = {}
    _clean_definition(locked, choices=data.get("choices", locked.choices), errors=errors, is_new=False)
    if errors:
        raise ValidationError(errors)
    locked.save()
    changes = audit_diff(before, _definition_snapshot(locked))
    if changes:
        audit_record(actor=actor, action="custom_field.updated", target=locked, changes=changes)
    return locked


@transaction.atomic
def custom_field_move(
    *, actor: User, definition: CustomFieldDefinition, direction: str
) -> CustomFieldDefinition:
    """Move a custom field one place up or down in the order forms, the profile and exports show;
    the positions are renumbered 10, 20, 30... so every field has its own place."""
    _require_roles(actor, ADMINS, _t("Only admins can define custom fields."))
    if direction not in ("up", "down"):
        raise ValidationError(_t("Choose up or down."), code="bad_direction")
    ordered = list(CustomFieldDefinition.objects.select_for_update().order_by("position", "label", "pk"))
    index = next(i for i, d in enumerate(ordered) if d.pk == definition.pk)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
    before = {d.pk: d.position for d in ordered}
    for number, item in enumerate(ordered, start=1):
        item.position = number * 10
    changed = [d for d in ordered if d.position != before[d.pk]]
    CustomFieldDefinition.objects.bulk_update(changed, ["position"])
    moved = next(d for d in ordered if d.pk == definition.pk)
    if moved.position != before[moved.pk] or changed:
        audit_record(
            actor=actor,
            action="custom_field.moved",
            target=moved,
            changes={"position": {"old": before[moved.pk], "new": moved.position}},
        )
    return moved


def custom_field_set_active(*, actor: User, definition: CustomFieldDefinition, active: bool):
    """Deactivate (hide; stored values are kept) or reactivate a custom field."""
    return custom_field_update(actor=actor, definition=definition, data={"is_active": active})
