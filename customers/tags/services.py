"""Writing tags: rename and recolour, merge one into another, move to the recycle bin and back.

Managers and admins only (the views check first; each service checks again). Every change is
audited on the tag ("customers.tag"). A binned tag keeps its customer links, so restoring it brings
them back; while binned it is left out of filters, pickers, segment rules, imports and exports.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.accounts.models import User
from crm.accounts.permissions import MANAGERS, user_has_role
from crm.audit.services import audit_diff, audit_record
from customers.models import Customer, Tag, TagColor
from customers.signals import tags_merged

NAME_MAX = Tag._meta.get_field("name").max_length


def normalise_tag_name(name: str) -> str:
    """Trimmed, runs of spaces collapsed: the one form a tag name is stored and compared in."""
    return " ".join((name or "").split())


def validate_tag_name(name: str, *, field: str = "name", exclude_id: int | None = None) -> str:
    """The normalised name, or ValidationError({field}) when it is empty, too long or already taken
    by another live tag in any case."""
    name = normalise_tag_name(name)
    if not name:
        raise ValidationError({field: [_("Enter a tag name.")]})
    if len(name) > NAME_MAX:
        raise ValidationError(
            {field: [_("A tag name can be at most %(max)d characters.") % {"max": NAME_MAX}]}
        )
    clash = Tag.objects.live().filter(name__iexact=name).exclude(pk=exclude_id).first()
    if clash is not None:
        raise ValidationError(
            {
                field: [
                    _("A tag named “%(name)s” already exists. Merge into it instead, or choose another name.")
                    % {"name": clash.name}
                ]
            }
        )
    return name


def _require_manager(actor: User) -> None:
    if not user_has_role(actor, MANAGERS):
        raise PermissionDenied(_("Only managers and admins can manage tags."))


def _locked(tag: Tag) -> Tag:
    return Tag.objects.select_for_update().get(pk=tag.pk)


@transaction.atomic
def tag_update(*, actor: User, tag: Tag, name: str, color: str) -> Tag:
    """Rename (normalised; unique among live tags ignoring case) and recolour (a palette colour)."""
    _require_manager(actor)
    locked = _locked(tag)
    if locked.deleted_at is not None:
        raise ValidationError(_("This tag is in the recycle bin. Restore it first."))
    errors: dict[str, list[str]] = {}
    try:
        name = validate_tag_name(name, exclude_id=locked.pk)
    except ValidationError as error:
        errors.update(error.message_dict)
    if color not in TagColor.values:
        errors["color"] = [_("Choose a colour from the list.")]
    if errors:
        raise ValidationError(errors)
    before = {"name": locked.name, "color": locked.color}
    locked.name, locked.color = name, color
    changes = audit_diff(before, {"name": locked.name, "color": locked.color})
    if changes:
        try:
            with transaction.atomic():
                locked.save(update_fields=["name", "color"])
        except IntegrityError:  # another request took the name between the check and the write
            raise ValidationError({"name": [_("A tag with this name already exists.")]}) from None
        audit_record(actor=actor, action="tag.updated", target=locked, changes=changes)
    tag.name, tag.color = locked.name, locked.color
    return tag


@transaction.atomic
def tag_merge(*, actor: User, source: Tag, target: Tag) -> dict[str, int]:
    """Move every customer of `source` to `target`, then delete `source` for good. Two statements,
    whatever the number of customers: INSERT ... SELECT ... ON CONFLICT DO NOTHING (customers who
    already had `target` keep one link), then DELETE. Returns the counts, also in the audit record."""
    _require_manager(actor)
    if source.pk == target.pk:
        raise ValidationError({"target": [_("Choose another tag to merge into.")]})
    # Both rows locked in id order, so two merges of the same pair in opposite directions cannot deadlock.
    locked = {
        t.pk: t for t in Tag.objects.select_for_update().filter(pk__in=[source.pk, target.pk]).order_by("pk")
    }
    source, target = locked.get(source.pk), locked.get(target.pk)
    if source is None or target is None or source.deleted_at is not None or target.deleted_at is not None:
        raise ValidationError({"target": [_("Both tags must exist and not be in the recycle bin.")]})
    through = Customer.tags.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {through} (customer_id, tag_id) "  # noqa: S608 - the table name is the model's
            f"SELECT customer_id, %s FROM {through} WHERE tag_id = %s ON CONFLICT DO NOTHING",
            [target.pk, source.pk],
        )
        moved = cursor.rowcount
        cursor.execute(f"DELETE FROM {through} WHERE tag_id = %s", [source.pk])  # noqa: S608
        had_source = cursor.rowcount
    counts = {"customers": had_source, "moved": moved, "already_tagged": had_source - moved}
    audit_record(
        actor=actor,
        action="tag.merged",
        target=target,
        changes={"merged_tag": source.name, **counts},
    )
    tags_merged.send(sender=Tag, source_id=source.pk, target_id=target.pk, actor=actor)
    source.delete()
    return counts


@transaction.atomic
def tag_delete(*, actor: User, tag: Tag) -> Tag:
    """Move the tag to the recycle bin; its customer links stay for a restore."""
    _require_manager(actor)
    locked = _locked(tag)
    if locked.deleted_at is None:
        locked.deleted_at, locked.deleted_by = timezone.now(), actor
        locked.save(update_fields=["deleted_at", "deleted_by"])
        audit_record(actor=actor, action="tag.deleted", target=locked)
    tag.deleted_at, tag.deleted_by = locked.deleted_at, locked.deleted_by
    return tag


@transaction.atomic
def tag_restore(*, actor: User, tag: Tag) -> Tag:
    """Bring a binned tag back with its customers; refused while a live tag has its name."""
    _require_manager(actor)
    locked = _locked(tag)
    if locked.deleted_at is not None:
        clash = Tag.objects.live().filter(name__iexact=locked.name).first()
        if clash is not None:
            raise ValidationError(
                _(
                    "Another tag is now called “%(name)s”. Rename that tag first, then restore this one "
                    "(you can merge them afterwards)."
                )
                % {"name": clash.name}
            )
        locked.deleted_at, locked.deleted_by = None, None
        locked.save(update_fields=["deleted_at", "deleted_by"])
        audit_record(actor=actor, action="tag.restored", target=locked)
    tag.deleted_at, tag.deleted_by = None, None
    return tag
