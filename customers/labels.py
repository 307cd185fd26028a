"""What a customer's fields and history actions are called on every page, decided here once: the
History card and timeline of the 360° page, and the merge pages (which start a label with a capital).

Field names come in the forms the audit log and the merge page use: a model field ("email",
"owner"), a relation or event name ("tags", "shared_with", "deleted_at", "merged_customer"), or a
custom field as "custom_fields.<key>" (history) or "custom:<key>" (merge choices).
"""

from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from crm.audit.labels import event_name as audit_event_name
from crm.audit.labels import field_label as audit_field_label

from .models import CustomFieldDefinition

CUSTOM_FIELD_PREFIXES = ("custom_fields.", "custom:")

CUSTOMER = "customers.customer"

# Names that are not model fields (or whose form label differs from the model field's verbose name).
# Registered with the audit log's label registry (crm/audit/labels.py): the customer form, the
# History card, the merge page and the audit log all read the same entry.
EXTRA_FIELD_LABELS = {
    "phone": _("Phone"),
    "owner": _("Owner"),
    "tags": _("Tags"),
    "shared_with": _("Shared with"),
    "deleted_at": _("Deleted"),
    "merged_customer": _("Merged customer"),
    "secondary_contacts": _("Other contacts"),
    "merged_customers": _("Merged customers"),
}

# audit action → (title, Bootstrap icon) in the History card and the timeline.
ACTION_TITLES = {
    "customer.created": (_("Customer created"), "person-plus"),
    "customer.updated": (_("Edited"), "pencil"),
    "customer.tagged": (_("Tag added"), "tag"),
    "customer.untagged": (_("Tag removed"), "tag"),
    "customer.shared": (_("Sharing changed"), "share"),
    "customer.deleted": (_("Moved to the recycle bin"), "trash"),
    "customer.restored": (_("Restored from the recycle bin"), "arrow-counterclockwise"),
    "customer.merged": (_("Merged"), "intersect"),
    "customer.merge_undone": (_("Merge undone"), "arrow-counterclockwise"),
    "customer.merged_in": (_("Another customer merged into this one"), "intersect"),
    "customer.group_merged": (_("A group of customers merged into this one"), "intersect"),
    "customer.group_merge_undone": (_("Group merge undone"), "arrow-counterclockwise"),
    "customer.duplicate_dismissed": (_("Marked as not a duplicate"), "x-circle"),
}


def custom_field_definitions() -> dict[str, CustomFieldDefinition]:
    """{key: definition} for `field_label` (one query; pass it in when labelling many names)."""
    return {definition.key: definition for definition in CustomFieldDefinition.objects.all()}


def field_label(name: str, definitions: dict[str, CustomFieldDefinition] | None = None) -> str:
    """The label of a field name, as the customer form shows it ("Occupation" / "职业")."""
    for prefix in CUSTOM_FIELD_PREFIXES:
        if name.startswith(prefix):
            key = name[len(prefix) :]
            if definitions is None:
                definitions = custom_field_definitions()
            definition = definitions.get(key)
            return str(definition.label) if definition else key
    return audit_field_label(CUSTOMER, name)


def field_title(name: str, definitions: dict[str, CustomFieldDefinition] | None = None) -> str:
    """The same label starting with a capital, for a column or a list of fields."""
    return capfirst(field_label(name, definitions))


def action_title(action: str) -> tuple[str, str]:
    """(title, icon) of an audit action."""
    if action in ACTION_TITLES:
        title, icon = ACTION_TITLES[action]
        return str(title), icon
    # Another app's event about this customer: its registered name, never the raw code.
    return audit_event_name(action), "clock-history"
