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

        from crm import reportcache
        from customers.signals import customers_changed, records_imported
        from interactions.followups.models import FollowUp
        from interactions.models import Interaction
        from interactions.service.models import Ticket
        from interactions.surveys.models import SurveyResponse
        from loyalty.models import Member, PointsEntry, Programme, Tier
        from loyalty.signals import points_swept
        from segmentation.models import ChurnAlert
        from segmentation.signals import churn_alerts_raised, recompute_finished

        from . import reports  # noqa: F401  (fills caching.REPORTS, the cached reports by name)
        from .caching import cached, data_changed, data_changed_after_sweep, data_changed_on_commit, watch

        reportcache.install(cached)  # other apps' figures (the loyalty overview) kept by the same rule

        customers_changed.connect(data_changed, dispatch_uid="dashboards.customers_changed")
        recompute_finished.connect(data_changed, dispatch_uid="dashboards.recompute_finished")
        for signal, name in (
            (records_imported, "records_imported"),
            (churn_alerts_raised, "churn_alerts_raised"),
        ):
            signal.connect(data_changed_on_commit, dispatch_uid=f"dashboards.{name}")
        points_swept.connect(data_changed_after_sweep, dispatch_uid="dashboards.points_swept")
        watch(Interaction, FollowUp, Ticket, SurveyResponse, ChurnAlert, Member, PointsEntry, Programme, Tier)
