from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DashboardsConfig(AppConfig):
    name = "dashboards"
    verbose_name = _("Dashboards")

    def ready(self) -> None:
        from crm.navigation import NavItem, register

        register(NavItem("dashboard", _("Dashboard"), "home", "speedometer2", order=10))
        register(NavItem("reports", _("Reports"), "dashboards:overview", "bar-chart-line", order=60))

        from crm.notifications.registry import register_kind

        from .weekly import KIND, KIND_LABEL

        register_kind(KIND, KIND_LABEL)

        from customers.signals import customers_changed
        from segmentation.signals import recompute_finished

        from .caching import data_changed

        customers_changed.connect(data_changed, dispatch_uid="dashboards.customers_changed")
        recompute_finished.connect(data_changed, dispatch_uid="dashboards.recompute_finished")
