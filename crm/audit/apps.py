from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "crm.audit"
    label = "audit"
    verbose_name = _("Audit log")

    def ready(self) -> None:
        from .labels import register_event_names, register_field_labels
        from .names import EVENT_NAMES, FIELD_LABELS

        register_event_names(EVENT_NAMES)
        for model_label, labels in FIELD_LABELS.items():
            register_field_labels(model_label, labels)
