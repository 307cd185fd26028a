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
