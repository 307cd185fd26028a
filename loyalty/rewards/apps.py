from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RewardsConfig(AppConfig):
    name = "loyalty.rewards"
    label = "loyalty_rewards"
    verbose_name = _("Rewards and vouchers")

    def ready(self) -> None:
        # The 360 panel, timeline entries and the merge hook (vouchers follow the membership).
        from .integration import register

        register()
