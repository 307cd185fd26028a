from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = _("Loyalty")

    def ready(self) -> None:
        from crm.audit.labels import register_event_names

        from .audit_names import EVENT_NAMES

        register_event_names(EVENT_NAMES)  # the audit log's names for this app's events

        from crm.navigation import NavItem, register
        from crm.notifications.registry import register_kind
        from customers.signals import customers_changed

        # Filters, columns, the "Loyalty" panel, timeline entries, the merge hook, segment rule fields.
        from .integration import earn_when_customers_change
        from .integration import register as register_integration

        register_integration()
        from .privacy import register as register_personal_data

        register_personal_data()
        register(NavItem("loyalty", _("Loyalty"), "loyalty:index", "award", order=50))
        from crm.reportcache import REPORTS, Report

        from .selectors import overview_report

        # The overview's figures read every member and the ledger's last 30 days: kept like a report
        # (crm.reportcache), a daily one (its 30 days end today).
        REPORTS["loyalty-overview"] = Report(overview_report, daily=True)
        from .reports import report_for_cache

        # The report page reads a year or two of the ledger and of orders: 10 s at 1,000,000 customers.
        REPORTS["loyalty-report"] = Report(report_for_cache, daily=True)
        customers_changed.connect(earn_when_customers_change, dispatch_uid="loyalty.earn")
        register_kind("loyalty.points_expiring", _("A member's points expire in 30 days"), default_email=True)
