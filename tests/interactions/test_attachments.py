"""Removing one attachment (role-checked, audited, kept and restorable like the bin) and the purge of
a customer taking their attachment files off the tenant's storage."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from crm.audit.models import AuditEvent
from customers.models import Customer
from customers.services import BIN_RETENTION_DAYS, customer_delete, customers_purge_expired
from interactions import services
from interactions.models import Interaction, InteractionAttachment
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _log_with_files(actor, customer, *names):
    return services.interaction_log(
        actor=actor,
        customer=customer,
        channel="phone",
        direction="out",
        occurred_at=timezone.now() - timedelta(hours=1),
        attachments=[
            SimpleUploadedFile(name, b"%PDF-1.4 " + name.encode(), "application/pdf") for name in names
        ],
    )


def test_remove_and_restore_one_attachment(sales_user):
    interaction = _log_with_files(sales_user, CustomerFactory(owner=sales_user), "a.pdf", "b.pdf")
    first, second = interaction.attachments.order_by("pk")
    services.attachment_remove(actor=sales_user, attachment=first)
    first.refresh_from_db()
    assert first.removed_at is not None and first.removed_by_id == sales_user.pk
    assert Path(first.file.path).exists()  # kept while removed, like an interaction in the bin
    event = AuditEvent.objects.get(action="interaction.attachment_removed")
    assert event.target_id == str(interaction.pk) and event.changes["attachments"]["old"] == "a.pdf"
    services.attachment_restore(actor=sales_user, attachment=first)
    first.refresh_from_db()
    assert first.removed_at is None and second.removed_at is None
    assert AuditEvent.objects.filter(action="interaction.attachment_restored").count() == 1


def test_only_the_author_managers_and_admins_remove(sales_user, sales_user2, manager_user):
    customer = CustomerFactory(owner=sales_user)
    customer.shared_with.add(sales_user2)
    attachment = _log_with_files(sales_user, customer, "a.pdf").attachments.get()
    with pytest.raises(PermissionDenied):
        services.attachment_remove(actor=sales_user2, attachment=attachment)
    assert InteractionAttachment.objects.get(pk=attachment.pk).removed_at is None
    assert not AuditEvent.objects.filter(action="interaction.attachment_removed").exists()
    services.attachment_remove(actor=manager_user, attachment=attachment)
    assert InteractionAttachment.objects.get(pk=attachment.pk).removed_at is not None


def test_an_attachment_of_a_binned_interaction_is_not_removed(sales_user):
    interaction = _log_with_files(sales_user, CustomerFactory(owner=sales_user), "a.pdf")
    services.interaction_delete(actor=sales_user, interaction=interaction)
    with pytest.raises(PermissionDenied):
        services.attachment_remove(actor=sales_user, attachment=interaction.attachments.get())


def test_remove_view_hides_it_and_download_answers_404(sales_client, client_for, sales_user, sales_user2):
    interaction = _log_with_files(sales_user, CustomerFactory(owner=sales_user), "notes.pdf")
    attachment = interaction.attachments.get()
    other = client_for(sales_user2)
    assert other.post(reverse("interactions:attachment_remove", args=[attachment.pk])).status_code == 404
    response = sales_client.post(reverse("interactions:attachment_remove", args=[attachment.pk]))
    assert response.status_code == 302
    page = sales_client.get(reverse("interactions:detail", args=[interaction.pk])).content.decode()
    assert 'data-testid="removed-attachment"' in page and 'data-testid="attachment"' not in page
    assert sales_client.get(reverse("interactions:attachment", args=[attachment.pk])).status_code == 404
    sales_client.post(reverse("interactions:attachment_restore", args=[attachment.pk]))
    assert sales_client.get(reverse("interactions:attachment", args=[attachment.pk])).status_code == 200


def test_purging_a_customer_deletes_their_attachment_files(
    sales_user, manager_user, _media, django_capture_on_commit_callbacks
):
    gone = CustomerFactory(owner=sales_user)
    kept = CustomerFactory(owner=sales_user)
    removed = _log_with_files(sales_user, gone, "removed.pdf").attachments.get()
    services.attachment_remove(actor=sales_user, attachment=removed)
    binned = _log_with_files(sales_user, gone, "binned.pdf")
    services.interaction_delete(actor=sales_user, interaction=binned)
    live = _log_with_files(sales_user, gone, "live.pdf").attachments.get()
    other = _log_with_files(sales_user, kept, "other.pdf").attachments.get()
    paths = [Path(a.file.path) for a in (removed, binned.attachments.get(), live)]
    paths.append(Path(_ticket_attachment(gone).file.path))  # the service desk's hook serves tickets
    kept_ticket = Path(_ticket_attachment(kept).file.path)
    customer_delete(actor=manager_user, customer=gone)
    assert all(p.exists() for p in paths)  # in the bin: everything kept, restorable
    Customer.objects.filter(pk=gone.pk).update(
        deleted_at=timezone.now() - timedelta(days=BIN_RETENTION_DAYS + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert customers_purge_expired() == 1
    assert not Interaction.objects.filter(customer_id=gone.pk).exists()
    assert not any(p.exists() for p in paths)
    assert Path(other.file.path).exists() and kept_ticket.exists()


def _ticket_attachment(customer):
    from django.core.files.base import ContentFile

    from interactions.service.models import Ticket, TicketAttachment

    ticket = Ticket.objects.create(customer=customer, subject="Cup broken")
    attachment = TicketAttachment(ticket=ticket, original_name="photo.png", size=3, content_type="image/png")
    attachment.file.save("photo.png", ContentFile(b"png"), save=True)
    return attachment
