"""The service desk's writes are all or nothing. When the database refuses the audit row that ends a
service (a trigger on the audit table, tests/test_audit_fault.py), everything the service wrote before
it is undone too. Services whose last write is not an audit row are failed at their last write instead
(a trigger refusing that table's statement), and the senders run the way a worker runs them: with no
transaction around the call, so they must open their own to take their row lock.

scripts/mutants.py runs this file's tests for a dropped transaction with `-k "<function> or not
test_audit_fault"`: each test's name holds the name of the service it fails."""

import io
import random
from datetime import date, timedelta

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection
from django_tenants.utils import tenant_context

from crm.audit.models import AuditEvent
from crm.notifications.models import Notification
from interactions.service import services
from interactions.service.demo import seed
from interactions.service.models import (
    Holiday,
    ServiceSettings,
    SlaEvent,
    SlaPolicy,
    Team,
    Ticket,
    TicketAttachment,
    TicketCategory,
    TicketMessage,
)
from tests.factories import CustomerFactory, OrderFactory
from tests.test_audit_fault import TENANT_MODELS, _refuse_audit_rows, _state

ALL_DAY = {str(day): [["00:00", "24:00"]] for day in range(7)}
SERVICE_MODELS = (
    *TENANT_MODELS,
    Ticket,
    TicketMessage,
    TicketAttachment,
    TicketCategory,
    Team,
    Team.members.through,
    SlaPolicy,
    SlaEvent,
    Holiday,
    ServiceSettings,
    Notification,
    AuditEvent,
)


def _service_state():
    return _state(SERVICE_MODELS)


def _refuse(model, statement: str, when: str = "") -> None:
    """A trigger that makes the database refuse `statement` (INSERT, UPDATE, DELETE) on the model's
    table, for the rows matching `when` (a condition on NEW or OLD) or for every row."""
    table = model._meta.db_table
    name = f"refuse_{statement.lower()}_{table}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION 'the database refused the {statement} on {table}'; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER {name} BEFORE {statement} ON "{table}" FOR EACH ROW '
            f"{f'WHEN ({when}) ' if when else ''}EXECUTE FUNCTION {name}()"
        )


@pytest.fixture
def w(tenant, users, settings, tmp_path):
    """A desk open around the clock with a policy, a category, a team, a holiday and tickets: one new,
    one being worked (assigned, with an order), one in the recycle bin."""
    settings.MEDIA_ROOT = tmp_path
    ServiceSettings.objects.update_or_create(pk=1, defaults={"working_hours": ALL_DAY, "holiday_country": ""})
    manager, sales = users["manager"], users["sales"]
    policy = SlaPolicy.objects.create(priority="normal", first_response_minutes=60, resolution_minutes=600)
    customer = CustomerFactory(owner=sales, email="buyer@example.com")
    category = services.category_save(actor=users["admin"], name="Billing")
    team = services.team_save(actor=users["admin"], name="Front desk", manager=manager, members=[sales])
    fresh = services.ticket_open(actor=manager, customer=customer, subject="Printer broken")
    worked = services.ticket_open(actor=sales, customer=customer, subject="Refund please")
    binned = services.ticket_delete(
        actor=manager, ticket=services.ticket_open(actor=manager, customer=customer, subject="Spam")
    )
    return {
        **users,
        "tenant": tenant,
        "policy": policy,
        "customer": customer,
        "order": OrderFactory(customer=customer),
        "category": category,
        "team": team,
        "holiday": services.holiday_add(actor=users["admin"], day=date(2026, 10, 1), name="National Day"),
        "fresh": fresh,
        "worked": worked,
        "binned": binned,
    }


def _pdf():
    return SimpleUploadedFile("receipt.pdf", b"%PDF-1.4 ...", content_type="application/pdf")


AUDITED = {
    # the customer is matched by e-mail; the ticket and its attachment are written, then the audit row
    "ticket_open": lambda w: services.ticket_open(
        actor=w["manager"], subject="Late parcel", email="Buyer@Example.com", attachments=[_pdf()]
    ),
    # the message, its attachment, the first response and the new status, then the audit row
    "ticket_reply": lambda w: services.ticket_reply(
        actor=w["manager"], ticket=w["fresh"], body="We are on it.", attachments=[_pdf()]
    ),
    "ticket_note": lambda w: services.ticket_note(
        actor=w["manager"], ticket=w["fresh"], body="VIP customer", attachments=[_pdf()]
    ),
    # both tickets are saved before the first audit row
    "tickets_assign": lambda w: services.tickets_assign(
        actor=w["manager"], ticket_ids=[w["fresh"].pk, w["worked"].pk], assignee=w["sales2"], team=w["team"]
    ),
    "ticket_update": lambda w: services.ticket_update(
        actor=w["sales"], ticket=w["worked"], priority="urgent", category=w["category"], order=w["order"]
    ),
    "ticket_change_status": lambda w: services.ticket_change_status(
        actor=w["sales"], ticket=w["worked"], status="resolved"
    ),
    "ticket_delete": lambda w: services.ticket_delete(actor=w["manager"], ticket=w["fresh"]),
    "ticket_restore": lambda w: services.ticket_restore(actor=w["manager"], ticket=w["binned"]),
    "category_save": lambda w: services.category_save(
        actor=w["admin"], category=w["category"], name="Invoices", position=3, is_active=False
    ),
    # the team's row and its members, then the audit row
    "team_save": lambda w: services.team_save(
        actor=w["admin"], team=w["team"], name="Back office", manager=w["sales2"], members=[w["sales2"]]
    ),
    "sla_policy_save": lambda w: services.sla_policy_save(
        actor=w["admin"],
        policy=w["policy"],
        priority="normal",
        category=None,
        first_response_minutes=30,
        resolution_minutes=300,
    ),
    "working_hours_save": lambda w: services.working_hours_save(
        actor=w["admin"],
        working_hours={"0": [["09:00", "12:00"]]},
        holiday_country="CN",
        acknowledge_contact_form=False,
    ),
    "holiday_add": lambda w: services.holiday_add(
        actor=w["admin"], day=date(2026, 12, 24), name="Company day", is_working_day=False
    ),
}


@pytest.mark.parametrize("case", sorted(AUDITED))
def test_a_refused_audit_row_undoes_the_desk_change(case, w):
    before = _service_state()
    _refuse_audit_rows()
    with pytest.raises(DatabaseError):
        AUDITED[case](w)
    connection.set_tenant(w["tenant"])
    assert _service_state() == before


# The audit row comes first here, the delete last: the delete is refused, the audit row goes back.
DELETES = {
    "sla_policy_delete": (
        SlaPolicy,
        lambda w: services.sla_policy_delete(actor=w["admin"], policy=w["policy"]),
    ),
    "holiday_remove": (Holiday, lambda w: services.holiday_remove(actor=w["admin"], holiday=w["holiday"])),
}


@pytest.mark.parametrize("case", sorted(DELETES))
def test_a_refused_delete_undoes_its_audit_row(case, w):
    model, call = DELETES[case]
    before = _service_state()
    _refuse(model, "DELETE")
    with pytest.raises(DatabaseError):
        call(w)
    assert _service_state() == before


# --- the periodic scan and its delivery ------------------------------------------------------------------


def test_sla_scan_raises_all_its_events_or_none(w):
    """The scan inserts the first-response events before the resolution ones: when the database refuses
    a resolution event, the first-response breach raised in the same scan is undone too."""
    services.tickets_assign(actor=w["manager"], ticket_ids=[w["fresh"].pk], assignee=w["sales"])
    later = w["fresh"].created_at + timedelta(minutes=601)  # both targets breached
    before = _service_state()
    _refuse(SlaEvent, "INSERT", "NEW.target = 'resolution'")
    with pytest.raises(DatabaseError):
        services.sla_scan(now=later)
    assert _service_state() == before


def test_sla_deliver_pending_that_cannot_mark_its_events_notifies_nobody(w):
    """Notifications are written, then the events marked delivered: when the mark is refused, the
    notifications go back too (the next run delivers them, once)."""
    services.tickets_assign(actor=w["manager"], ticket_ids=[w["fresh"].pk], assignee=w["sales"])
    # both live tickets breach both targets
    assert len(services.sla_scan(now=w["fresh"].created_at + timedelta(minutes=601))) == 4
    before = _service_state()
    _refuse(SlaEvent, "UPDATE")
    with pytest.raises(DatabaseError):
        services.sla_deliver_pending()
    assert _service_state() == before


def test_a_demo_seed_that_fails_at_its_last_write_leaves_nothing(tenant, users):
    """The demo writes the desk's categories, policies, team and tickets, then the tickets' replies:
    when a reply is refused, the tenant is as it was (a later seed starts from scratch)."""
    for number in range(30):
        CustomerFactory(email=f"demo-c{number}@example.com")
    before = _service_state()
    _refuse(TicketMessage, "INSERT")
    with pytest.raises(DatabaseError):
        seed(users=list(users.values()), customers=1000, rng=random.Random(7), stdout=io.StringIO())
    assert _service_state() == before


# --- the senders, as a worker runs them ---------------------------------------------------------------


def test_ticket_reply_send_and_contact_acknowledge_send_lock_their_row_themselves(
    committed_tenant, django_db_blocker
):
    """A worker calls the senders with no transaction open (autocommit): each takes its row lock in a
    transaction of its own, sends, marks the row, and a second call sends nothing."""
    tenant = committed_tenant()
    with django_db_blocker.unblock(), tenant_context(tenant):
        from crm.accounts.models import User

        manager = User.objects.get(email=f"manager@{tenant.slug}.test")
        customer = CustomerFactory(email="asker@example.com")
        ticket = services.ticket_open(actor=manager, customer=customer, subject="Where is my parcel?")
        # the reply as ticket_reply leaves it (ticket_reply itself would queue the send on commit)
        reply = TicketMessage.objects.create(ticket=ticket, kind="reply", author=manager, body="On its way.")
        assert connection.get_autocommit() and not connection.in_atomic_block

        assert services.ticket_reply_send(message_id=reply.pk) is True
        assert services.contact_acknowledge_send(ticket_id=ticket.pk, language="en") is True
        assert services.ticket_reply_send(message_id=reply.pk) is False
        assert services.contact_acknowledge_send(ticket_id=ticket.pk, language="en") is False

        reply.refresh_from_db()
        ticket.refresh_from_db()
        assert reply.sent_at is not None and ticket.acknowledged_at is not None
        assert [message.to for message in mail.outbox] == [["asker@example.com"]] * 2
        assert "On its way." in mail.outbox[0].body
