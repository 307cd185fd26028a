"""Names of the events the segmentation app records."""

from django.utils.translation import gettext_lazy as _

EVENT_NAMES = {
    "segmentation.segment_create": _("Segment created"),
    "segmentation.segment_update": _("Segment changed"),
    "segmentation.segment_delete": _("Segment deleted"),
    "segmentation.settings_update": _("Segmentation settings changed"),
    "segmentation.alert_assigned": _("Churn alert assigned"),
    "segmentation.alert_acknowledged": _("Churn alert acknowledged"),
    "segmentation.alert_dismissed": _("Churn alert dismissed"),
    "segmentation.alert_open": _("Churn alert reopened"),
}
