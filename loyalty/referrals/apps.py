from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReferralsConfig(AppConfig):
    name = "loyalty.referrals"
    label = "loyalty_referrals"
    verbose_name = _("Referrals")

    def ready(self) -> None:
        # The 360 panel, timeline entries, the merge hook, and the bonus after the earning sweep.
        from .integration import register

        register()
