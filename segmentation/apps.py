from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentationConfig(AppConfig):
    name = "segmentation"
    verbose_name = _("Segmentation")

    def ready(self) -> None:
        from crm.audit.labels import register_event_names

        from .audit_names import EVENT_NAMES

        register_event_names(EVENT_NAMES)  # the audit log's names for this app's events

        from crm.navigation import NavItem
        from crm.navigation import register as register_nav
        from customers.signals import customers_changed

        # Filters, columns, the "Value" panel, timeline entries and the merge hook on customer pages.
        from .integration import open_alerts_badge, recompute_when_customers_change, register

        register()
        # Personal-data export and erasure (PIPL / GDPR requests).
        from .privacy import register as register_personal_data

        register_personal_data()
        register_nav(
            NavItem(
                key="segments",
                label=_("Segments"),
                url_name="segmentation:index",
                icon="pie-chart",
                badge=open_alerts_badge,
                order=40,
            )
        )
        customers_changed.connect(recompute_when_customers_change, dispatch_uid="segmentation.recompute")
        from customers.signals import tags_merged

        from .integration import follow_tag_merge

        tags_merged.connect(follow_tag_merge, dispatch_uid="segmentation.follow_tag_merge")
