from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ServiceConfig(AppConfig):
    """Service tickets (工单) with SLA in business hours: a Django app of its own inside interactions."""

    name = "interactions.service"
    label = "service"
    verbose_name = _("Service")

    def ready(self) -> None:
        # Customer-page filter, panel, timeline and merge hook; the "Service" navigation entry.
        from .integration import register

        register()
