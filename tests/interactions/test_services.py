"""The interaction log's services: logging, editing, the bin, outcomes, merge + undo, and bad input
that writes nothing (no row, no audit event, no file)."""

from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from crm.audit.models import AuditEvent
from customers.dedupe.services import customer_merge, customer_merge_undo
from interactions import services
from interactions.models import Interaction, InteractionAttachment, InteractionOutcome
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _log(actor, customer, **extra):
    values = {"channel": "phone", "direction": "out", "occurred_at": timezone.now() - timedelta(hours=1)}
    values.update(extra)
    return services.interaction_log(actor=actor, customer=customer, **values)


def _state():
    """Everything a refused write must leave untouched."""
    return (
        sorted(Interaction.objects.values_list("pk", "subject", "channel", "deleted_at", "customer_id")),
        InteractionAttachment.objects.count(),
        AuditEvent.objects.count(),
    )


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@contextmanager
def _refused(field: str, code: str, media: Path | None = None):
    before = _state()
    files = _files(media) if media else None
    with pytest.raises(ValidationError) as raised:
        yield
    assert code in [e.code for e in raised.value.error_dict[field]], raised.value.error_dict
    assert _state() == before
    if media is not None:
        assert _files(media) == files


def test_log_writes_the_interaction_and_an_audit_event(sales_user):
    customer = CustomerFactory(owner=sales_user)
    outcome = InteractionOutcome.objects.get(key="interested")
    order = OrderFactory(customer=customer)
    interaction = _log(
        sales_user,
        customer,
        channel="wechat",
        subject="  Asked   about the sale ",
        outcome=outcome,
        order=order,
    )
    interaction.refresh_from_db()
    assert (interaction.channel, interaction.subject, interaction.author, interaction.outcome) == (
        "wechat",
        "Asked about the sale",
        sales_user,
        outcome,
    )
    event = AuditEvent.objects.get(action="interaction.logged", target_id=str(interaction.pk))
    assert event.actor == sales_user
    assert event.changes["channel"] == {"old": None, "new": "wechat"}
    assert event.changes["order"] == {"old": None, "new": order.number}


def test_future_date_beyond_the_limit_is_refused_and_writes_nothing(sales_user, settings):
    settings.INTERACTION_FUTURE_LIMIT_MINUTES = 10
    customer = CustomerFactory(owner=sales_user)
    _log(sales_user, customer, occurred_at=timezone.now() + timedelta(minutes=5))  # within the limit
    with _refused("occurred_at", "future"):
        _log(sales_user, customer, occurred_at=timezone.now() + timedelta(minutes=11))


def test_unknown_channel_and_direction_are_refused(sales_user):
    customer = CustomerFactory(owner=sales_user)
    with _refused("channel", "unknown_channel"):
        _log(sales_user, customer, channel="fax")
    with _refused("direction", "unknown_direction"):
        _log(sales_user, customer, direction="sideways")


def test_an_order_of_another_customer_is_refused(sales_user):
    customer = CustomerFactory(owner=sales_user)
    other_order = OrderFactory(customer=CustomerFactory(owner=sales_user))
    with _refused("order", "foreign_order"):
        _log(sales_user, customer, order=other_order)


def test_an_inactive_outcome_is_refused_for_new_interactions_but_kept_on_edits(sales_user, admin_user):
    customer = CustomerFactory(owner=sales_user)
    outcome = InteractionOutcome.objects.get(key="complaint")
    interaction = _log(sales_user, customer, outcome=outcome)
    services.outcome_set_active(actor=admin_user, outcome=outcome, active=False)
    outcome.refresh_from_db()
    with _refused("outcome", "unknown_outcome"):
        _log(sales_user, customer, outcome=outcome)
    services.interaction_update(actor=sales_user, interaction=interaction, data={"subject": "kept"})
    interaction.refresh_from_db()
    assert (interaction.subject, interaction.outcome_id) == ("kept", outcome.pk)


def test_attachments_are_stored_under_the_tenant_and_checked(sales_user, settings, _media, tenant):
    customer = CustomerFactory(owner=sales_user)
    interaction = _log(
        sales_user,
        customer,
        attachments=[SimpleUploadedFile("Call notes.pdf", b"%PDF-1.4", "application/pdf")],
    )
    attachment = interaction.attachments.get()
    assert attachment.original_name == "Call notes.pdf"
    assert attachment.file.name.startswith(f"{tenant.schema_name}/interactions/")
    assert "Call notes" not in attachment.file.name  # a random stored name
    assert Path(attachment.file.path).read_bytes() == b"%PDF-1.4"


def test_oversize_or_wrong_type_attachments_are_refused_and_write_nothing(sales_user, settings, _media):
    settings.INTERACTION_ATTACHMENT_MAX_BYTES = 10
    customer = CustomerFactory(owner=sales_user)
    with _refused("attachments", "file_size", _media):
        _log(sales_user, customer, attachments=[SimpleUploadedFile("big.pdf", b"x" * 11, "application/pdf")])
    with _refused("attachments", "file_type", _media):
        _log(
            sales_user,
            customer,
            attachments=[SimpleUploadedFile("run.exe", b"MZ", "application/x-msdownload")],
        )
    # one good and one bad file: neither is written
    with _refused("attachments", "file_type", _media):
        _log(
            sales_user,
            customer,
            attachments=[SimpleUploadedFile("ok.txt", b"ok"), SimpleUploadedFile("bad.html", b"<script>")],
        )


def test_a_customer_the_actor_cannot_see_is_refused(sales_user, sales_user2):
    customer = CustomerFactory(owner=sales_user2)
    with pytest.raises(PermissionDenied):
        _log(sales_user, customer)
    assert not Interaction.objects.exists()


def test_update_is_audited_with_old_and_new_values(sales_user):
    interaction = _log(sales_user, CustomerFactory(owner=sales_user), subject="First")
    services.interaction_update(
        actor=sales_user, interaction=interaction, data={"subject": "Second", "channel": "sms"}
    )
    event = AuditEvent.objects.get(action="interaction.updated", target_id=str(interaction.pk))
    assert event.changes == {
        "subject": {"old": "First", "new": "Second"},
        "channel": {"old": "phone", "new": "sms"},
    }


def test_bad_update_writes_nothing(sales_user):
    interaction = _log(sales_user, CustomerFactory(owner=sales_user), subject="First")
    with _refused("occurred_at", "future"):
        services.interaction_update(
            actor=sales_user,
            interaction=interaction,
            data={"subject": "Changed", "occurred_at": timezone.now() + timedelta(days=2)},
        )


def test_only_author_managers_and_admins_change_an_interaction(sales_user, sales_user2, manager_user):
    customer = CustomerFactory(owner=sales_user)
    customer.shared_with.add(sales_user2)
    interaction = _log(sales_user, customer)
    with pytest.raises(PermissionDenied):
        services.interaction_update(actor=sales_user2, interaction=interaction, data={"subject": "x"})
    with pytest.raises(PermissionDenied):
        services.interaction_delete(actor=sales_user2, interaction=interaction)
    services.interaction_update(actor=manager_user, interaction=interaction, data={"subject": "by manager"})
    assert Interaction.objects.get(pk=interaction.pk).subject == "by manager"


def test_delete_is_soft_and_restore_brings_it_back(sales_user):
    interaction = _log(sales_user, CustomerFactory(owner=sales_user))
    services.interaction_delete(actor=sales_user, interaction=interaction)
    interaction.refresh_from_db()
    assert interaction.deleted_at is not None and interaction.deleted_by == sales_user
    services.interaction_restore(actor=sales_user, interaction=interaction)
    interaction.refresh_from_db()
    assert interaction.deleted_at is None
    actions = list(
        AuditEvent.objects.filter(target_id=str(interaction.pk), target_type="interactions.interaction")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == ["interaction.logged", "interaction.deleted", "interaction.restored"]


def test_merge_moves_interactions_to_the_survivor_and_undo_moves_exactly_them_back(admin_user, sales_user):
    survivor = CustomerFactory(owner=sales_user, name="Wang Fang", email="wf@example.com")
    merged = CustomerFactory(owner=sales_user, name="Wang Fang", email="wf@example.com")
    own = _log(sales_user, survivor, subject="survivor's")
    moved = [_log(sales_user, merged, subject="merged's 1"), _log(sales_user, merged, subject="merged's 2")]
    services.interaction_delete(actor=admin_user, interaction=moved[1])  # binned ones move too
    customer_merge(actor=admin_user, survivor=survivor, merged=merged)
    assert set(Interaction.objects.filter(customer=survivor).values_list("pk", flat=True)) == {
        own.pk,
        *[m.pk for m in moved],
    }
    logged_after_merge = _log(sales_user, survivor, subject="after")
    merged.refresh_from_db()
    customer_merge_undo(actor=admin_user, merged=merged)
    assert set(Interaction.objects.filter(customer=merged).values_list("pk", flat=True)) == {
        m.pk for m in moved
    }
    assert set(Interaction.objects.filter(customer=survivor).values_list("pk", flat=True)) == {
        own.pk,
        logged_after_merge.pk,
    }


def test_outcomes_are_admin_only_unique_and_audited(admin_user, manager_user):
    with pytest.raises(PermissionDenied):
        services.outcome_create(actor=manager_user, name="Visited")
    outcome = services.outcome_create(actor=admin_user, name="  Sent   a quote ")
    assert (outcome.name, outcome.is_active) == ("Sent a quote", True)
    with pytest.raises(ValidationError):
        services.outcome_create(actor=admin_user, name="sent a QUOTE")
    with pytest.raises(ValidationError):  # the English label of a default counts as taken
        services.outcome_create(actor=admin_user, name="No answer")
    services.outcome_rename(actor=admin_user, outcome=outcome, name="已报价")
    assert InteractionOutcome.objects.get(pk=outcome.pk).label == "已报价"
    assert AuditEvent.objects.filter(target_type="interactions.interactionoutcome").count() == 2


def test_outcome_move_swaps_neighbours(admin_user):
    first, second = list(InteractionOutcome.objects.order_by("position", "id")[:2])
    services.outcome_move(actor=admin_user, outcome=second, up=True)
    assert list(InteractionOutcome.objects.order_by("position", "id")[:2]) == [second, first]
