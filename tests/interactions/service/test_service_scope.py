"""Who may do what at the service desk, checked behind the pages: each service refuses a role that may
not use it and writes nothing, a deactivated account (a session or task still holding it) sees no
ticket and is given none, and the ticket pages offer sales staff only what they may do."""

from datetime import date

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from crm.audit.models import AuditEvent
from interactions.service import services
from interactions.service.models import Holiday, ServiceSettings, SlaPolicy, Team, Ticket, TicketCategory
from interactions.service.selectors import ticket_scope
from tests.factories import CustomerFactory
from tests.test_audit_fault import TENANT_MODELS, _state

SERVICE_MODELS = (*TENANT_MODELS, Ticket, TicketCategory, Team, Team.members.through, SlaPolicy, Holiday)


def _desk_state():
    return {
        **_state(SERVICE_MODELS),
        "desk": sorted(map(repr, ServiceSettings.objects.values())),
        "audit": AuditEvent.objects.count(),
    }


def _deactivated(user):
    user.is_active = False  # as a session or task still holding the account would see it
    return user


@pytest.fixture
def w(tenant, users):
    admin, manager, sales = users["admin"], users["manager"], users["sales"]
    customer = CustomerFactory(owner=sales, email="buyer@example.com")
    mine = services.ticket_open(actor=sales, customer=customer, subject="Mine")
    return {
        **users,
        "customer": customer,
        "mine": mine,
        # opened by the manager for the rep's customer: the rep sees it, nobody is assigned
        "unassigned": services.ticket_open(actor=manager, customer=customer, subject="Nobody's yet"),
        "binned": services.ticket_delete(
            actor=manager, ticket=services.ticket_open(actor=sales, customer=customer, subject="Binned")
        ),
        "category": services.category_save(actor=admin, name="Billing"),
        "team": services.team_save(actor=admin, name="Front desk", manager=manager, members=[sales]),
        "policy": services.sla_policy_save(
            actor=admin, priority="high", category=None, first_response_minutes=10, resolution_minutes=20
        ),
        "holiday": services.holiday_add(actor=admin, day=date(2026, 10, 1), name="National Day"),
    }


REFUSED = {
    "ticket delete by sales": lambda w: services.ticket_delete(actor=w["sales"], ticket=w["mine"]),
    "ticket restore by sales": lambda w: services.ticket_restore(actor=w["sales"], ticket=w["binned"]),
    "assigning to another by sales": lambda w: services.tickets_assign(
        actor=w["sales"], ticket_ids=[w["mine"].pk], assignee=w["sales2"]
    ),
    "new category by a manager": lambda w: services.category_save(actor=w["manager"], name="Returns"),
    "category change by a manager": lambda w: services.category_save(
        actor=w["manager"], category=w["category"], name="Invoices"
    ),
    "new team by a manager": lambda w: services.team_save(
        actor=w["manager"], name="Night shift", manager=w["manager"], members=[w["sales2"]]
    ),
    "team change by a manager": lambda w: services.team_save(
        actor=w["manager"], team=w["team"], name="Front desk", manager=w["manager"], members=[w["sales2"]]
    ),
    "policy change by a manager": lambda w: services.sla_policy_save(
        actor=w["manager"],
        policy=w["policy"],
        priority="high",
        category=None,
        first_response_minutes=5,
        resolution_minutes=10,
    ),
    "policy delete by a manager": lambda w: services.sla_policy_delete(
        actor=w["manager"], policy=w["policy"]
    ),
    "working hours by a manager": lambda w: services.working_hours_save(
        actor=w["manager"], working_hours={"0": [["09:00", "12:00"]]}, holiday_country=""
    ),
    "holiday added by a manager": lambda w: services.holiday_add(
        actor=w["manager"], day=date(2026, 12, 24), name="Company day"
    ),
    "holiday removed by a manager": lambda w: services.holiday_remove(
        actor=w["manager"], holiday=w["holiday"]
    ),
    "holiday removed by a deactivated admin": lambda w: services.holiday_remove(
        actor=_deactivated(w["admin"]), holiday=w["holiday"]
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_desk_service_refuses_a_role_that_may_not_use_it(case, w):
    before = _desk_state()
    with pytest.raises(PermissionDenied):
        REFUSED[case](w)
    assert _desk_state() == before


def test_a_deactivated_account_sees_no_ticket_not_even_its_own(w):
    sales = w["sales"]
    assert set(ticket_scope(Ticket.objects.all(), sales)) == {w["mine"], w["unassigned"], w["binned"]}
    assert list(ticket_scope(Ticket.objects.all(), _deactivated(sales))) == []


def test_a_deactivated_rep_opening_a_ticket_is_not_given_it(w):
    """Sales staff get the tickets they open; an account deactivated meanwhile gets nothing (an
    inactive user is never an assignee)."""
    ticket = services.ticket_open(actor=_deactivated(w["sales"]), customer=w["customer"], subject="Late")
    assert (ticket.assignee, ticket.status) == (None, "new")


# --- the pages offer each role what it may do ------------------------------------------------------------


def test_sales_may_only_take_tickets_from_the_queue(w, client_for):
    page = client_for(w["sales"]).get(reverse("service:queue") + "?queue=all").content.decode()
    assert f'data-ticket="{w["unassigned"].pk}"' in page
    assert 'data-testid="take"' in page and 'data-testid="bulk-assign"' not in page
    page = client_for(w["manager"]).get(reverse("service:queue") + "?queue=all").content.decode()
    assert 'data-testid="bulk-assign"' in page and 'data-testid="take"' not in page


def test_the_ticket_page_offers_sales_to_take_it_and_managers_to_assign_or_delete_it(w, client_for):
    url = reverse("service:ticket", args=[w["unassigned"].pk])
    page = client_for(w["sales"]).get(url).content.decode()
    assert "Take it" in page
    assert w["sales2"].get_full_name() not in page  # nobody else to choose
    assert "Delete ticket" not in page
    page = client_for(w["manager"]).get(url).content.decode()
    assert "Take it" not in page and w["sales2"].get_full_name() in page
    assert "Delete ticket" in page
