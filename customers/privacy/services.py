"""Export and erasure of one customer's personal data, through every app's PersonalDataProvider."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _t

from crm.accounts.models import User
from crm.accounts.permissions import ADMINS, user_has_role
from crm.audit.services import audit_record, audit_redact
from crm.jobs.services import job_files_redact, job_redact
from customers.dedupe.cache import duplicate_scans_forget
from customers.models import Customer
from customers.registry import registry

from .providers import ERASED_VALUES, personal_values

ERASE_CONFIRMATION = "ERASE"


def _require_admin(actor: User) -> None:
    if not user_has_role(actor, ADMINS):
        raise PermissionDenied(_t("Only admins handle personal-data requests."))


def customer_personal_data_export(*, actor: User, customer: Customer) -> dict:
    """Everything every app holds about the customer, as one JSON-safe document (audited)."""
    _require_admin(actor)
    document = {
        "customer_id": customer.pk,
        "exported_at": timezone.now().isoformat(),
        "sections": {},
    }
    for provider in registry.sorted_personal_data():
        document["sections"][provider.key] = {"label": str(provider.label), "data": provider.export(customer)}
    audit_record(
        actor=actor,
        action="customer.personal_data_exported",
        target=customer,
        changes={"sections": list(document["sections"])},
    )
    return document


@transaction.atomic
def customer_erase(*, actor: User, customer: Customer, confirmation: str) -> dict:
    """Remove the person's identity everywhere: each app's provider first, then the customer record
    (a neutral name, every other personal field blanked), the audit log and job records. Orders and
    their amounts stay. Nothing is written when a step fails."""
    _require_admin(actor)
    if (confirmation or "").strip() != ERASE_CONFIRMATION:
        raise ValidationError(
            {"confirmation": _t("Type %(word)s to confirm the erasure.") % {"word": ERASE_CONFIRMATION}}
        )
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    values = personal_values(customer)
    summary = {}
    for provider in registry.sorted_personal_data():
        summary[provider.key] = provider.erase(customer, actor)
    erased_name = _t("Erased customer %(id)s") % {"id": customer.pk}
    Customer.objects.filter(pk=customer.pk).update(
        name=erased_name, updated_at=timezone.now(), **ERASED_VALUES
    )
    customer.tags.clear()
    summary["audit_events_redacted"] = audit_redact(target=customer, values=values)
    summary["jobs_redacted"] = job_redact(values=values)
    # Files and caches that may hold the person: job files (imports, exports) that mention them go
    # after the commit; every cached duplicate scan of the tenant goes now (they are recomputed).
    summary["job_files_deleted"] = job_files_redact(values=values)
    summary["duplicate_scans_forgotten"] = duplicate_scans_forget()
    customer.refresh_from_db()
    audit_record(actor=actor, action="customer.erased", target=customer, changes={"summary": summary})
    return summary
