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
        from crm.reportcache import REPORTS, Report

        from .selectors import clv_report, lifecycle_report, rfm_report

        # The segment, CLV and lifecycle pages count every score the user may see (1-2 s at 1,000,000
        # customers, a sales rep's joined to the customers): kept like reports (crm.reportcache), made
        # stale by a recompute and by whatever changes who sees which customer (customers_changed).
        REPORTS["segments-rfm"] = Report(rfm_report)
        REPORTS["segments-clv"] = Report(clv_report)
        REPORTS["segments-lifecycle"] = Report(lifecycle_report)
        customers_changed.connect(recompute_when_customers_change, dispatch_uid="segmentation.recompute")
        from customers.signals import tags_merged

        from .integration import follow_tag_merge

        tags_merged.connect(follow_tag_merge, dispatch_uid="segmentation.follow_tag_merge")
