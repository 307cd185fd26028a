"""Service desk pages through the real middleware stack: queues and the ticket page with pinned query
counts, working a ticket, the public contact form under abuse, the customer-page plug-ins, the demo."""

import io
import random
import re

import pytest
from django.core import mail
from django.db import connection
from django.urls import reverse
from django_tenants.utils import schema_context

from customers.models import Customer
from interactions.service import services
from interactions.service.demo import seed
from interactions.service.models import ServiceSettings, SlaPolicy, Status, Ticket, TicketMessage
from tests.conftest import tenant_host
from tests.factories import CustomerFactory

ALL_DAY = {str(day): [["00:00", "24:00"]] for day in range(7)}


@pytest.fixture
def desk(tenant):
    ServiceSettings.objects.update_or_create(pk=1, defaults={"working_hours": ALL_DAY, "holiday_country": ""})
    SlaPolicy.objects.create(priority="normal", first_response_minutes=60, resolution_minutes=600)


def _tickets(actor, n, **kwargs):
    return [
        services.ticket_open(actor=actor, subject=f"Ticket {i}", email=f"c{i}@example.com", **kwargs)
        for i in range(n)
    ]


# --- queues ----------------------------------------------------------------------------------------


def test_queue_query_count_does_not_grow_with_rows(
    desk, manager_user, manager_client, django_assert_max_num_queries
):
    _tickets(manager_user, 3)
    url = reverse("service:queue") + "?queue=all"
    with django_assert_max_num_queries(14) as few:
        response = manager_client.get(url)
    assert response.status_code == 200
    _tickets(manager_user, 30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = manager_client.get(url)
    assert response.content.decode().count("data-ticket=") == 33


def test_queue_keyset_pages_do_not_repeat_or_skip(desk, manager_user, manager_client):
    _tickets(manager_user, 55)
    first = manager_client.get(reverse("service:queue") + "?queue=all").content.decode()
    ids_first = re.findall(r'data-ticket="(\d+)"', first)
    next_url = re.search(r'href="(\?[^"]*cursor=[^"]*)" data-testid="next-page"', first).group(1)
    second = manager_client.get(reverse("service:queue") + next_url.replace("&amp;", "&")).content.decode()
    ids_second = re.findall(r'data-ticket="(\d+)"', second)
    assert len(ids_first) == 50 and len(ids_second) == 5
    assert not set(ids_first) & set(ids_second)


def test_sales_queue_shows_only_their_tickets(desk, users, client_for):
    _tickets(users["sales"], 1)
    theirs = services.ticket_open(actor=users["sales2"], subject="Theirs", email="other@example.com")
    page = client_for(users["sales"]).get(reverse("service:queue") + "?queue=all").content.decode()
    assert page.count("data-ticket=") == 1
    assert f'data-ticket="{theirs.pk}"' not in page


def test_breaching_queue_and_filters(desk, manager_user, manager_client):
    late, fine = _tickets(manager_user, 2)
    Ticket.objects.filter(pk=late.pk).update(first_response_warn_at=late.created_at.replace(year=2020))
    page = manager_client.get(reverse("service:queue") + "?queue=breaching").content.decode()
    assert f'data-ticket="{late.pk}"' in page and f'data-ticket="{fine.pk}"' not in page
    page = manager_client.get(reverse("service:queue") + "?queue=all&priority=urgent").content.decode()
    assert "data-ticket=" not in page


def test_bulk_assign_from_the_queue(desk, users, manager_client):
    tickets = _tickets(users["manager"], 3)
    response = manager_client.post(
        reverse("service:bulk_assign"),
        {"ids": [t.pk for t in tickets[:2]], "assignee": users["sales"].pk, "next": "/service/?queue=all"},
    )
    assert response.status_code == 302 and response["Location"] == "/service/?queue=all"
    assert Ticket.objects.filter(assignee=users["sales"]).count() == 2


def test_export_streams_the_queue_as_csv(desk, manager_user, manager_client):
    _tickets(manager_user, 2)
    Ticket.objects.filter(subject="Ticket 0").update(subject="=HYPERLINK(1)")
    response = manager_client.get(reverse("service:export") + "?queue=all")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert "Ticket 1" in body and "'=HYPERLINK(1)" in body  # formulas are defused


# --- the ticket page -----------------------------------------------------------------------------------


def test_ticket_page_query_count_does_not_grow_with_the_thread(
    desk, manager_user, manager_client, django_assert_max_num_queries
):
    ticket = _tickets(manager_user, 1)[0]
    services.ticket_note(actor=manager_user, ticket=ticket, body="first")
    url = reverse("service:ticket", args=[ticket.pk])
    with django_assert_max_num_queries(30) as few:
        assert manager_client.get(url).status_code == 200
    for i in range(10):
        services.ticket_note(actor=manager_user, ticket=ticket, body=f"note {i}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = manager_client.get(url).content.decode()
    assert page.count('data-message-kind="note"') == 11


def test_working_a_ticket_through_the_pages(
    desk, manager_user, manager_client, django_capture_on_commit_callbacks
):
    response = manager_client.post(
        reverse("service:ticket_create"),
        {"subject": "Broken kettle", "email": "kettle@example.com", "channel": "phone", "priority": "normal"},
    )
    ticket = Ticket.objects.get(subject="Broken kettle")
    assert response["Location"] == reverse("service:ticket", args=[ticket.pk])
    with django_capture_on_commit_callbacks(execute=False):
        manager_client.post(
            reverse("service:ticket_reply", args=[ticket.pk]), {"reply-body": "We'll send a new one"}
        )
    manager_client.post(reverse("service:ticket_status", args=[ticket.pk]), {"status": "waiting"})
    ticket.refresh_from_db()
    assert ticket.status == Status.WAITING and ticket.first_response_at is not None
    clocks = manager_client.get(reverse("service:ticket_clocks", args=[ticket.pk])).content.decode()
    assert 'data-state="paused"' in clocks and "hx-trigger" in clocks
    manager_client.post(reverse("service:ticket_status", args=[ticket.pk]), {"status": "resolved"})
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED


def test_an_empty_reply_shows_the_error_and_writes_nothing(desk, manager_user, manager_client):
    ticket = _tickets(manager_user, 1)[0]
    response = manager_client.post(reverse("service:ticket_reply", args=[ticket.pk]), {"reply-body": "  "})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not TicketMessage.objects.exists()


def test_user_text_is_escaped_on_the_ticket_page(desk, manager_user, manager_client):
    ticket = services.ticket_open(
        actor=manager_user,
        subject="<script>alert(1)</script>",
        description="<img src=x onerror=alert(2)>",
        email="x@example.com",
    )
    page = manager_client.get(reverse("service:ticket", args=[ticket.pk])).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page


# --- the public contact form --------------------------------------------------------------------------


def _contact(client, **data):
    form = {"name": "Li Lei", "email": "lilei@example.com", "subject": "Help", "message": "My order is late"}
    form.update(data)
    return client.post(reverse("service:contact"), form)


def test_contact_form_opens_a_ticket_and_acknowledges_it(
    desk, anon_client, django_capture_on_commit_callbacks
):
    assert anon_client.get(reverse("service:contact")).status_code == 200
    with django_capture_on_commit_callbacks() as callbacks:
        response = _contact(anon_client, email="LiLei@Example.com ")
    assert response.status_code == 302
    ticket = Ticket.objects.get()
    assert (ticket.channel, ticket.requester_email, ticket.customer.email) == (
        "web",
        "lilei@example.com",
        "lilei@example.com",
    )
    assert [c for c in callbacks if "ticket_open_from_contact_form" in c.__qualname__]  # the ack is queued
    assert services.contact_acknowledge_send(ticket_id=ticket.pk, language="zh-hans") is True
    assert services.contact_acknowledge_send(ticket_id=ticket.pk, language="zh-hans") is False  # once
    assert mail.outbox[0].to == ["lilei@example.com"] and f"#{ticket.pk}" in mail.outbox[0].subject
    assert "感谢您联系" in mail.outbox[0].body


def test_contact_form_honeypot_writes_nothing(desk, anon_client):
    response = _contact(anon_client, website="http://spam.example")
    assert response.status_code == 302
    assert not Ticket.objects.exists() and not Customer.objects.exists()


def test_contact_form_rate_limit_per_address_and_per_ip(desk, anon_client):
    for _ in range(3):
        assert _contact(anon_client).status_code == 302
    response = _contact(anon_client)
    assert response.status_code == 429
    assert "Too many requests" in response.content.decode()
    assert Ticket.objects.count() == 3
    # other addresses from the same IP: 10 an hour in all
    codes = [_contact(anon_client, email=f"x{i}@example.com").status_code for i in range(8)]
    assert codes.count(302) == 6 and codes[-1] == 429


def test_contact_form_rate_limit_keys_are_per_tenant(desk, anon_client, tenant_b):
    for _ in range(3):
        _contact(anon_client)
    assert _contact(anon_client).status_code == 429
    from django.test import Client

    beta = Client(HTTP_HOST=tenant_host(tenant_b))
    assert _contact(beta).status_code == 302  # the same address at another company is not limited
    with schema_context(tenant_b.schema_name):
        assert Ticket.objects.filter(requester_email="lilei@example.com").count() == 1
    connection.set_schema_to_public()


def test_contact_form_bounds_input_and_escapes_script(desk, anon_client):
    response = _contact(anon_client, message="x" * 5001, subject="y" * 201)
    assert response.status_code == 200
    assert "at most" in response.content.decode()
    assert not Ticket.objects.exists()
    response = _contact(anon_client, name="<script>alert(1)</script>", email="not-an-email")
    page = response.content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


# --- plug-ins and demo -----------------------------------------------------------------------------------


def test_customer_page_shows_open_tickets_and_timeline(desk, manager_user, manager_client):
    customer = CustomerFactory(email="panel@example.com")
    ticket = services.ticket_open(actor=manager_user, customer=customer, subject="Panel ticket")
    services.ticket_note(actor=manager_user, ticket=ticket, body="Called back")
    page = manager_client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert 'data-testid="service-panel"' in page and "Panel ticket" in page
    timeline = manager_client.get(reverse("customers:timeline", args=[customer.pk])).content.decode()
    assert "Ticket opened: Panel ticket" in timeline and "Internal note on" in timeline
    listed = manager_client.get(reverse("customers:list") + "?has_open_ticket=yes").content.decode()
    assert customer.name in listed


def test_merge_moves_tickets_and_undo_moves_them_back(desk, manager_user):
    from interactions.service.integration import merge_move, merge_undo

    survivor, merged = CustomerFactory(), CustomerFactory()
    ticket = services.ticket_open(actor=manager_user, customer=merged, subject="Merged one")
    info = merge_move(survivor, merged)
    assert Ticket.objects.get(pk=ticket.pk).customer == survivor
    merge_undo(survivor, merged, info)
    assert Ticket.objects.get(pk=ticket.pk).customer == merged


def test_demo_seed_adds_tickets_across_statuses(tenant, users):
    for i in range(30):
        CustomerFactory(email=f"demo-c{i}@example.com")
    result = seed(users=list(users.values()), customers=1000, rng=random.Random(7), stdout=io.StringIO())
    assert result["tickets"] >= 12
    statuses = set(Ticket.objects.values_list("status", flat=True))
    assert {Status.NEW, Status.RESOLVED} <= statuses
    assert seed(users=list(users.values()), customers=1000, rng=random.Random(7), stdout=io.StringIO())[
        "skipped"
    ]
