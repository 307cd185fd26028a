from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentationConfig(AppConfig):
    name = "segmentation"
    verbose_name = _("Segmentation")

    def ready(self) -> None:
        # Filters, columns, the "Value" panel, timeline entries and the merge hook on customer pages.
        from .integration import register

        register()
