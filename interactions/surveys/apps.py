from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveysConfig(AppConfig):
    """NPS and CSAT surveys by signed link (issue 14): a Django app of its own inside interactions."""

    name = "interactions.surveys"
    label = "surveys"
    verbose_name = _("Surveys")

    def ready(self) -> None:
        # Triggers (ticket resolved, interaction logged), customer-page plug-ins, segment rule fields,
        # the personal-data provider, navigation and notification kinds.
        from .integration import register

        register()
