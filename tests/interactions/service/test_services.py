"""Ticket services against the real tenant schema: customers matched or created, bad input writes
nothing, SLA clocks with pauses and reopening, replies by e-mail, assignment rules, the SLA scan raising
each warning and escalation exactly once, and two tenants' tickets never crossing."""

from datetime import date, timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.http import Http404
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from crm.errors import ApplicationError
from customers.models import Customer
from interactions.service import services
from interactions.service.models import (
    ServiceSettings,
    SlaEvent,
    SlaPolicy,
    Status,
    Team,
    Ticket,
    TicketAttachment,
    TicketMessage,
)
from interactions.service.selectors import ticket_get_for_user, ticket_scope
from interactions.service.signals import ticket_resolved
from tests.factories import CustomerFactory, OrderFactory

ALL_DAY = {str(day): [["00:00", "24:00"]] for day in range(7)}


@pytest.fixture
def always_open(tenant):
    """A desk open around the clock, without public holidays: business time == wall time."""
    ServiceSettings.objects.update_or_create(pk=1, defaults={"working_hours": ALL_DAY, "holiday_country": ""})


@pytest.fixture
def policy(always_open):
    return SlaPolicy.objects.create(priority="normal", first_response_minutes=60, resolution_minutes=600)


def _open(actor, **kwargs):
    data = {"subject": "Printer broken", "description": "It smokes", "email": "Buyer@Example.COM "}
    data.update(kwargs)
    return services.ticket_open(actor=actor, **data)


# --- opening --------------------------------------------------------------------------------------


def test_open_matches_the_customer_by_normalised_email(tenant, manager_user):
    customer = CustomerFactory(email="buyer@example.com")
    ticket = _open(manager_user)
    assert ticket.customer == customer
    assert ticket.requester_email == "buyer@example.com"
    assert AuditEvent.objects.filter(action="ticket.opened", target_id=str(ticket.pk)).exists()


def test_open_matches_by_normalised_phone(tenant, manager_user):
    customer = CustomerFactory(email="", phone="+8613800138000")
    ticket = _open(manager_user, email="", phone="138 0013 8000", channel="phone")
    assert ticket.customer == customer


def test_open_creates_a_customer_when_none_matches(tenant, sales_user):
    ticket = _open(sales_user, name="Wang Fang", email="wang@example.cn")
    customer = ticket.customer
    assert (customer.name, customer.email, customer.owner) == ("Wang Fang", "wang@example.cn", sales_user)
    assert ticket.assignee == sales_user  # sales staff get the tickets they open
    assert ticket.status == Status.OPEN


def test_bad_input_writes_nothing(tenant, manager_user):
    customers_before, tickets_before = Customer.objects.count(), Ticket.objects.count()
    with pytest.raises(ValidationError) as caught:
        _open(manager_user, subject="  ", email="not-an-address", priority="extreme")
    assert {"subject", "email", "priority"} <= set(caught.value.message_dict)
    with pytest.raises(ValidationError) as caught:
        _open(manager_user, email="", phone="")
    assert "email" in caught.value.message_dict
    with pytest.raises(ValidationError):
        _open(manager_user, subject="x" * 201)
    assert (Customer.objects.count(), Ticket.objects.count()) == (customers_before, tickets_before)


def test_an_order_of_another_customer_is_refused(tenant, manager_user):
    mine, other = CustomerFactory(email="a@example.com"), CustomerFactory()
    with pytest.raises(ValidationError) as caught:
        services.ticket_open(
            actor=manager_user, subject="x", customer=mine, order=OrderFactory(customer=other)
        )
    assert "order" in caught.value.message_dict
    assert not Ticket.objects.exists()


def test_attachments_are_size_limited_and_type_checked(tenant, manager_user, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path
    good = SimpleUploadedFile("receipt.pdf", b"%PDF-1.4 ...", content_type="application/pdf")
    ticket = _open(manager_user, attachments=[good])
    assert TicketAttachment.objects.get(ticket=ticket).original_name == "receipt.pdf"
    script = SimpleUploadedFile("run.exe", b"MZ", content_type="application/octet-stream")
    with pytest.raises(ValidationError) as caught:
        _open(manager_user, subject="second", attachments=[script])
    assert "cannot be attached" in " ".join(caught.value.message_dict["attachments"])
    monkeypatch.setattr(services, "ATTACHMENT_MAX_BYTES", 10)
    big = SimpleUploadedFile("big.txt", b"x" * 11, content_type="text/plain")
    with pytest.raises(ValidationError) as caught:
        _open(manager_user, subject="third", attachments=[big])
    assert "larger than" in " ".join(caught.value.message_dict["attachments"])
    assert Ticket.objects.count() == 1


# --- SLA clocks -----------------------------------------------------------------------------------


def test_due_times_follow_the_policy(tenant, manager_user, policy):
    ticket = _open(manager_user)
    assert ticket.first_response_due_at == ticket.created_at + timedelta(minutes=60)
    assert ticket.first_response_warn_at == ticket.created_at + timedelta(minutes=48)
    assert ticket.resolution_due_at == ticket.created_at + timedelta(minutes=600)


def test_a_category_policy_wins_over_the_priority_default(tenant, admin_user, policy):
    category = services.category_save(actor=admin_user, name="Billing")
    SlaPolicy.objects.create(
        priority="normal", category=category, first_response_minutes=30, resolution_minutes=60
    )
    ticket = _open(admin_user, category=category)
    assert ticket.first_response_target == 30


def test_waiting_on_the_customer_pauses_the_clocks(tenant, manager_user, policy):
    ticket = _open(manager_user)
    start = ticket.created_at
    services.ticket_change_status(
        actor=manager_user, ticket=ticket, status="waiting", now=start + timedelta(minutes=10)
    )
    ticket.refresh_from_db()
    assert ticket.paused_since == start + timedelta(minutes=10)
    services.ticket_change_status(
        actor=manager_user, ticket=ticket, status="open", now=start + timedelta(minutes=40)
    )
    ticket.refresh_from_db()
    assert ticket.paused_seconds == 30 * 60
    assert ticket.first_response_due_at == start + timedelta(minutes=90)
    assert ticket.resolution_due_at == start + timedelta(minutes=630)


def test_clocks_show_time_left_paused_and_breached(tenant, manager_user, policy):
    ticket = _open(manager_user)
    calendar = services.calendar_get()
    start = ticket.created_at
    first, resolution = services.ticket_clocks(ticket, calendar=calendar, now=start + timedelta(minutes=20))
    assert (first.state, first.seconds_left) == ("running", 40 * 60)
    first, _ = services.ticket_clocks(ticket, calendar=calendar, now=start + timedelta(minutes=50))
    assert first.state == "warning"
    first, _ = services.ticket_clocks(ticket, calendar=calendar, now=start + timedelta(minutes=75))
    assert (first.state, first.seconds_left) == ("breached", -15 * 60)


def test_reopening_starts_a_new_cycle_without_counting_the_resolved_time(tenant, manager_user, policy):
    ticket = _open(manager_user)
    start = ticket.created_at
    services.ticket_resolve(actor=manager_user, ticket=ticket, now=start + timedelta(minutes=100))
    services.ticket_reopen(actor=manager_user, ticket=ticket, now=start + timedelta(minutes=160))
    ticket.refresh_from_db()
    assert (ticket.status, ticket.resolved_at, ticket.sla_cycle) == (Status.OPEN, None, 2)
    assert ticket.resolution_due_at == start + timedelta(minutes=660)


def test_moves_that_make_no_sense_are_refused(tenant, manager_user, policy):
    ticket = _open(manager_user)
    services.ticket_close(actor=manager_user, ticket=ticket)
    with pytest.raises(ApplicationError):
        services.ticket_change_status(actor=manager_user, ticket=ticket, status="waiting")
    with pytest.raises(ApplicationError):
        services.ticket_reply(actor=manager_user, ticket=ticket, body="hello?")
    assert not TicketMessage.objects.exists()


def test_resolving_sends_ticket_resolved_on_commit(
    tenant, manager_user, policy, django_capture_on_commit_callbacks
):
    received = []

    def receiver(sender, **kwargs):
        kwargs.pop("signal")
        received.append(kwargs)

    ticket_resolved.connect(receiver, dispatch_uid="test.resolved")
    try:
        ticket = _open(manager_user)
        with django_capture_on_commit_callbacks(execute=True):
            services.ticket_resolve(actor=manager_user, ticket=ticket)
            assert received == []  # not before the commit
    finally:
        ticket_resolved.disconnect(dispatch_uid="test.resolved")
    assert received == [
        {
            "ticket_id": ticket.pk,
            "customer_id": ticket.customer_id,
            "assignee_id": None,
            "actor_id": manager_user.pk,
        }
    ]


# --- thread ----------------------------------------------------------------------------------------


def test_a_reply_is_the_first_response_and_goes_out_by_email_once(
    tenant, manager_user, policy, django_capture_on_commit_callbacks
):
    ticket = _open(manager_user)
    with django_capture_on_commit_callbacks() as callbacks:
        message = services.ticket_reply(actor=manager_user, ticket=ticket, body="We are on it.")
    assert len(callbacks) == 1  # the send task is queued on commit
    ticket.refresh_from_db()
    assert ticket.first_response_at is not None
    assert services.ticket_reply_send(message_id=message.pk) is True
    assert services.ticket_reply_send(message_id=message.pk) is False  # a redelivered task sends nothing
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["buyer@example.com"]
    assert sent.extra_headers["Message-ID"] == message.email_message_id
    assert f"ticket-{ticket.pk}.message-{message.pk}.{connection.schema_name}@" in message.email_message_id
    assert "We are on it." in sent.body


def test_a_note_is_not_a_response_and_sends_nothing(
    tenant, manager_user, policy, django_capture_on_commit_callbacks
):
    ticket = _open(manager_user)
    with django_capture_on_commit_callbacks() as callbacks:
        services.ticket_note(actor=manager_user, ticket=ticket, body="Customer is VIP")
    ticket.refresh_from_db()
    assert ticket.first_response_at is None
    assert callbacks == []


def test_an_empty_reply_writes_nothing(tenant, manager_user, policy):
    ticket = _open(manager_user)
    with pytest.raises(ValidationError):
        services.ticket_reply(actor=manager_user, ticket=ticket, body="   ")
    with pytest.raises(ValidationError):
        services.ticket_reply(actor=manager_user, ticket=ticket, body="x" * 10_001)
    ticket.refresh_from_db()
    assert ticket.first_response_at is None and not TicketMessage.objects.exists()


# --- assignment and scope ------------------------------------------------------------------------


def test_managers_bulk_assign_and_sales_may_only_take(tenant, users, policy):
    manager, sales, sales2 = users["manager"], users["sales"], users["sales2"]
    tickets = [_open(manager, subject=f"t{i}") for i in range(3)]
    team = services.team_save(actor=users["admin"], name="Front desk", manager=manager, members=[sales])
    assert services.tickets_assign(actor=manager, ticket_ids=[t.pk for t in tickets], assignee=sales) == 3
    assert set(Ticket.objects.values_list("assignee", "team")) == {(sales.pk, team.pk)}
    with pytest.raises(PermissionDenied):
        services.tickets_assign(actor=sales, ticket_ids=[tickets[0].pk], assignee=sales2)
    assert Ticket.objects.filter(assignee=sales2).count() == 0
    assert AuditEvent.objects.filter(action="ticket.assigned").count() == 3


def test_sales_see_their_tickets_only(tenant, users, policy):
    sales, sales2, manager = users["sales"], users["sales2"], users["manager"]
    mine = _open(sales, email="mine@example.com")
    theirs = _open(sales2, email="theirs@example.com")
    assert list(ticket_scope(Ticket.objects.all(), sales)) == [mine]
    with pytest.raises(Http404):
        ticket_get_for_user(user=sales, ticket_id=theirs.pk)
    assert ticket_get_for_user(user=manager, ticket_id=theirs.pk) == theirs
    # a sales user's take on another's ticket they cannot see changes nothing
    assert services.tickets_assign(actor=sales, ticket_ids=[theirs.pk], assignee=sales) == 0
    # team members see the team's tickets
    team = Team.objects.create(name="Desk")
    team.members.add(sales)
    Ticket.objects.filter(pk=theirs.pk).update(team=team)
    assert set(ticket_scope(Ticket.objects.all(), sales)) == {mine, theirs}


def test_soft_delete_and_restore_managers_only(tenant, users, policy):
    ticket = _open(users["manager"])
    with pytest.raises(PermissionDenied):
        services.ticket_delete(actor=users["sales"], ticket=ticket)
    services.ticket_delete(actor=users["manager"], ticket=ticket)
    with pytest.raises(Http404):
        ticket_get_for_user(user=users["manager"], ticket_id=ticket.pk)
    services.ticket_restore(actor=users["manager"], ticket=ticket)
    assert ticket_get_for_user(user=users["manager"], ticket_id=ticket.pk) == ticket


# --- the SLA scan --------------------------------------------------------------------------------------


def test_the_scan_raises_each_warning_and_escalation_exactly_once(tenant, users, policy):
    manager, sales = users["manager"], users["sales"]
    team = services.team_save(actor=users["admin"], name="Desk", manager=manager, members=[sales])
    ticket = _open(manager)
    services.tickets_assign(actor=manager, ticket_ids=[ticket.pk], assignee=sales, team=team)
    start = ticket.created_at
    assert services.sla_scan(now=start + timedelta(minutes=30)) == []
    assert len(services.sla_scan(now=start + timedelta(minutes=50))) == 1  # 80% of the first response
    assert services.sla_scan(now=start + timedelta(minutes=55)) == []  # a second run: nothing new
    assert len(services.sla_scan(now=start + timedelta(minutes=61))) == 1  # breach
    assert services.sla_scan(now=start + timedelta(minutes=61)) == []
    events = {(e.target, e.level): e.recipient for e in SlaEvent.objects.all()}
    assert events == {("first_response", "warning"): sales, ("first_response", "breach"): manager}


def test_the_scan_skips_answered_paused_and_resolved_tickets(tenant, users, policy):
    manager = users["manager"]
    answered, paused, resolved = (_open(manager, subject=s) for s in ("answered", "paused", "resolved"))
    Ticket.objects.filter(pk=answered.pk).update(first_response_at=timezone.now())
    services.ticket_change_status(actor=manager, ticket=paused, status="waiting")
    services.ticket_resolve(actor=manager, ticket=resolved)
    later = timezone.now() + timedelta(minutes=65)
    raised = SlaEvent.objects.filter(pk__in=services.sla_scan(now=later))
    assert {(e.ticket_id, e.target) for e in raised} == set()


def test_a_reopened_ticket_can_breach_again(tenant, users, policy):
    manager = users["manager"]
    ticket = _open(manager)
    start = ticket.created_at
    services.sla_scan(now=start + timedelta(minutes=601))
    services.ticket_resolve(actor=manager, ticket=ticket, now=start + timedelta(minutes=602))
    services.ticket_reopen(actor=manager, ticket=ticket, now=start + timedelta(minutes=603))
    assert services.sla_scan(now=start + timedelta(minutes=610)) != []
    assert SlaEvent.objects.filter(target="resolution", level="breach").count() == 2


# --- settings --------------------------------------------------------------------------------------


def test_working_hours_and_holidays_are_validated_and_used(tenant, admin_user, sales_user):
    with pytest.raises(PermissionDenied):
        services.working_hours_save(actor=sales_user, working_hours=ALL_DAY, holiday_country="")
    with pytest.raises(ValidationError):
        services.working_hours_save(
            actor=admin_user, working_hours={"0": [["18:00", "09:00"]]}, holiday_country=""
        )
    with pytest.raises(ValidationError):
        services.working_hours_save(
            actor=admin_user, working_hours={"0": [["09:00", "18:00"]]}, holiday_country="XX"
        )
    services.working_hours_save(
        actor=admin_user, working_hours={"0": [["09:00", "12:00"]]}, holiday_country="CN"
    )
    services.holiday_add(actor=admin_user, day=date(2026, 12, 7), name="Company day")
    with pytest.raises(ValidationError):
        services.holiday_add(actor=admin_user, day=date(2026, 12, 7), name="Again")
    calendar = services.calendar_get()
    assert calendar.weekly[0] == ((540, 720),) and calendar.holiday_country == "CN"
    assert not calendar.is_working_day(date(2026, 12, 7))
    assert calendar.is_working_day(date(2026, 12, 14))


def test_sla_policy_rules(tenant, admin_user, manager_user):
    with pytest.raises(PermissionDenied):
        services.sla_policy_save(
            actor=manager_user,
            priority="high",
            category=None,
            first_response_minutes=10,
            resolution_minutes=20,
        )
    with pytest.raises(ValidationError):
        services.sla_policy_save(
            actor=admin_user, priority="high", category=None, first_response_minutes=30, resolution_minutes=20
        )
    services.sla_policy_save(
        actor=admin_user, priority="high", category=None, first_response_minutes=10, resolution_minutes=20
    )
    with pytest.raises(ValidationError):
        services.sla_policy_save(
            actor=admin_user, priority="high", category=None, first_response_minutes=10, resolution_minutes=20
        )
    assert SlaPolicy.objects.count() == 1


# --- two tenants --------------------------------------------------------------------------------------


def test_two_tenants_tickets_and_scans_never_cross(tenant, tenant_b, users, policy):
    mine = _open(users["manager"], subject="Alpha's ticket")
    with schema_context(tenant_b.schema_name):
        assert not Ticket.objects.filter(subject="Alpha's ticket").exists()
        assert services.sla_scan(now=timezone.now() + timedelta(days=30)) == []
        from crm.accounts.models import User

        beta_manager = User.objects.get(email="manager@beta.test")
        with pytest.raises(Http404):
            ticket_get_for_user(user=beta_manager, ticket_id=mine.pk)
    connection.set_tenant(tenant)
    assert Ticket.objects.filter(pk=mine.pk).exists()
