"""Names of the events the customers app records, and labels of its audit detail keys."""

from django.utils.translation import gettext_lazy as _

EVENT_NAMES = {
    "customer.created": _("Customer created"),
    "customer.updated": _("Customer edited"),
    "customer.updated_by_import": _("Customer updated by an import"),
    "customer.imported": _("Customer imported"),
    "customer.tagged": _("Tag added"),
    "customer.untagged": _("Tag removed"),
    "customer.shared": _("Sharing changed"),
    "customer.deleted": _("Customer moved to the recycle bin"),
    "customer.restored": _("Customer restored"),
    "customer.purged": _("Customer deleted for good"),
    "customer.erased": _("Personal data erased"),
    "customer.personal_data_exported": _("Personal data exported"),
    "customer.merged": _("Customers merged"),
    "customer.merged_in": _("Another customer merged into this one"),
    "customer.merge_undone": _("Merge undone"),
    "customer.group_merged": _("A group of customers merged into this one"),
    "customer.group_merge_undone": _("Group merge undone"),
    "customer.duplicate_dismissed": _("Marked as not a duplicate"),
    "customers.import_uploaded": _("Import file uploaded"),
    "customers.imported": _("Customers imported"),
    "customers.export_all_requested": _("Export of all customers requested"),
    "custom_field.created": _("Custom field created"),
    "custom_field.updated": _("Custom field changed"),
    "custom_field.moved": _("Custom field moved"),
    "order.created": _("Order recorded"),
    "order.refunded": _("Order refunded"),
    "tag.updated": _("Tag renamed or recoloured"),
    "tag.merged": _("Tags merged"),
    "tag.deleted": _("Tag moved to the recycle bin"),
    "tag.restored": _("Tag restored"),
}

# Detail keys of the tag events (Settings > Tags).
TAG_DETAIL_LABELS = {
    "merged_tag": _("Merged tag"),
    "customers": _("Customers"),
    "moved": _("Customers moved"),
    "already_tagged": _("Customers who already had the tag"),
}

# Detail keys of the customers' events that are not customer fields (merge and erasure records).
DETAIL_LABELS = {
    "survivor_id": _("Kept customer"),
    "survivor_before": _("Kept customer before"),
    "survivor_after": _("Kept customer after"),
    "merged_before": _("Merged customer before"),
    "moved": _("Records moved"),
    "other_id": _("Other customer"),
    "file": _("File"),
}
