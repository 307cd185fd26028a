"""Interaction pages: the log dialog, the interactions page (filters, keyset, bin, query counts),
detail/edit/delete/restore, attachments, export, outcome settings, and two tenants."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import User
from crm.jobs.models import BackgroundJob
from interactions import services
from interactions.exports import export_run
from interactions.models import Interaction, InteractionOutcome
from tests.factories import CustomerFactory, OrderFactory

INDEX = "/interactions/"


@pytest.fixture(autouse=True)
def english(tenant, settings, tmp_path):
    User.objects.update(language="en")
    settings.MEDIA_ROOT = tmp_path


def text(response) -> str:
    return response.content.decode()


def _log(actor, customer, minutes_ago=60, **extra):
    values = {
        "channel": "phone",
        "direction": "out",
        "occurred_at": timezone.now() - timedelta(minutes=minutes_ago),
    }
    values.update(extra)
    return services.interaction_log(actor=actor, customer=customer, **values)


def _form(**changes):
    data = {
        "channel": "wechat",
        "direction": "in",
        "occurred_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "duration_minutes": "5",
        "subject": "Asked about delivery",
        "notes": "Wants it before Friday",
        "outcome": str(InteractionOutcome.objects.get(key="reached").pk),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


# --- logging from the dialog -----------------------------------------------------------------------


def test_the_dialog_logs_an_interaction_and_tells_the_page(sales_client, sales_user):
    customer = CustomerFactory(owner=sales_user, name="Li Lei")
    order = OrderFactory(customer=customer)
    url = reverse("interactions:log", args=[customer.pk])
    dialog = sales_client.get(url, HTTP_HX_REQUEST="true")
    assert dialog.status_code == 200
    assert 'class="modal-header"' in text(dialog) and "<html" not in text(dialog)
    assert order.number in text(dialog)  # the customer's orders are offered
    response = sales_client.post(url, _form(order=str(order.pk)), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'id="interaction-logged"' in text(response), response.context["form"].errors
    assert json.loads(response["HX-Trigger"]) == {"customer-updated": True, "interaction-logged": True}
    interaction = Interaction.objects.get()
    assert (interaction.customer, interaction.channel, interaction.author, interaction.order) == (
        customer,
        "wechat",
        sales_user,
        order,
    )


def test_without_htmx_the_log_form_is_a_page_and_redirects(sales_client, sales_user):
    customer = CustomerFactory(owner=sales_user)
    url = reverse("interactions:log", args=[customer.pk])
    assert "<html" in text(sales_client.get(url))
    response = sales_client.post(url, _form())
    assert response.status_code == 302 and response["Location"] == reverse(
        "customers:detail", args=[customer.pk]
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"occurred_at": (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")},
            "cannot be dated in the future",
        ),
        ({"channel": "fax"}, "Select a valid choice"),
        ({"duration_minutes": "99999"}, "1440"),
        ({"occurred_at": "yesterday"}, "Enter a valid date/time"),
        ({"outcome": "999999"}, "Select a valid choice"),
    ],
)
def test_bad_input_gets_a_message_at_the_field_and_writes_nothing(sales_client, sales_user, changes, message):
    customer = CustomerFactory(owner=sales_user)
    response = sales_client.post(
        reverse("interactions:log", args=[customer.pk]), _form(**changes), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert message in text(response)
    assert "is-invalid" in text(response)
    assert not Interaction.objects.exists()


def test_a_refused_attachment_gets_a_clear_message(sales_client, sales_user, settings):
    settings.INTERACTION_ATTACHMENT_MAX_BYTES = 1024
    customer = CustomerFactory(owner=sales_user)
    data = _form()
    data["attachments"] = [SimpleUploadedFile("recording.mp3", b"x" * 2048, "audio/mpeg")]
    response = sales_client.post(
        reverse("interactions:log", args=[customer.pk]), data, HTTP_HX_REQUEST="true"
    )
    assert "recording.mp3 is too large (2.0\xa0KB); the limit is 1.0\xa0KB." in text(response)
    data["attachments"] = [SimpleUploadedFile("macro.xlsm", b"x", "application/vnd.ms-excel")]
    response = sales_client.post(
        reverse("interactions:log", args=[customer.pk]), data, HTTP_HX_REQUEST="true"
    )
    assert "macro.xlsm: this type of file cannot be attached." in text(response)
    assert not Interaction.objects.exists()


def test_sales_cannot_log_for_a_customer_they_cannot_see(sales_client, sales_user2):
    customer = CustomerFactory(owner=sales_user2)
    url = reverse("interactions:log", args=[customer.pk])
    assert sales_client.get(url).status_code == 404
    assert sales_client.post(url, _form()).status_code == 404
    assert not Interaction.objects.exists()


# --- customer pages --------------------------------------------------------------------------------


def test_customer_list_rows_offer_the_log_action_and_last_contact(sales_client, sales_user):
    customer = CustomerFactory(owner=sales_user, name="Han Meimei")
    _log(sales_user, customer, minutes_ago=60 * 24 * 2)
    page = text(sales_client.get("/customers/"))
    log_url = reverse("interactions:log", args=[customer.pk])
    assert f'hx-get="{log_url}"' in page and 'data-row-action="interactions.log"' in page
    assert "Last contact" in page
    # the day in the list's one date format, on one line (a date never wraps at its hyphens)
    assert (
        f'<td class="small text-nowrap">{(timezone.localdate() - timedelta(days=2)).isoformat()}</td>' in page
    )
    no_contact = text(sales_client.get("/customers/", {"no_contact_days": "1"}))
    assert "Han Meimei" in no_contact
    recent = text(sales_client.get("/customers/", {"no_contact_days": "3"}))
    assert "Han Meimei" not in recent


def test_the_360_page_shows_the_panel_and_timeline_entries(sales_client, sales_user):
    customer = CustomerFactory(owner=sales_user)
    _log(sales_user, customer, subject="Promised a quote", channel="meeting")
    page = text(sales_client.get(reverse("customers:detail", args=[customer.pk])))
    assert 'data-panel="interactions.latest"' in page
    assert 'id="panel-log-interaction"' in page
    timeline = text(sales_client.get(reverse("customers:timeline", args=[customer.pk])))
    assert 'data-kind="interaction"' in timeline
    assert "Meeting · Promised a quote" in timeline


def test_360_page_query_count_does_not_grow_with_interactions(sales_client, sales_user):
    customer = CustomerFactory(owner=sales_user)
    url = reverse("customers:detail", args=[customer.pk])
    _log(sales_user, customer)
    sales_client.get(url)
    with CaptureQueriesContext(connection) as one:
        assert sales_client.get(url).status_code == 200
    for minutes in range(30):
        _log(
            sales_user,
            customer,
            minutes_ago=minutes + 2,
            outcome=InteractionOutcome.objects.get(key="reached"),
        )
    with CaptureQueriesContext(connection) as many:
        sales_client.get(url)
    assert len(many) == len(one), [q["sql"][:120] for q in many.captured_queries]


# --- the interactions page -------------------------------------------------------------------------


def test_index_query_count_is_pinned_and_does_not_grow_with_rows(manager_client, sales_user, sales_user2):
    outcome = InteractionOutcome.objects.get(key="interested")
    _log(sales_user, CustomerFactory(owner=sales_user), outcome=outcome)
    manager_client.get(INDEX)
    with CaptureQueriesContext(connection) as one:
        assert manager_client.get(INDEX).status_code == 200
    for i in range(49):
        owner = sales_user if i % 2 else sales_user2
        _log(owner, CustomerFactory(owner=owner), minutes_ago=i + 2, outcome=outcome)
    with CaptureQueriesContext(connection) as fifty:
        response = manager_client.get(INDEX)
    assert text(response).count("data-interaction=") == 50
    assert len(fifty) == len(one)
    # tenant lookup (3 with the search paths), session, user, outcomes, authors, saved segments, the page
    assert len(fifty) <= 9, "\n".join(q["sql"][:150] for q in fifty.captured_queries)


def test_index_filters_and_keyset_links(manager_client, sales_user):
    customer = CustomerFactory(owner=sales_user)
    for i in range(55):
        _log(sales_user, customer, minutes_ago=i + 1, channel="sms" if i % 5 == 0 else "phone")
    first = manager_client.get(INDEX)
    assert text(first).count("data-interaction=") == 50
    next_link = first.context["next_query"]
    second = manager_client.get(f"{INDEX}?{next_link}")
    assert text(second).count("data-interaction=") == 5
    sms = manager_client.get(INDEX, {"channel": "sms"})
    assert text(sms).count("data-interaction=") == 11
    partial = manager_client.get(
        INDEX, {"channel": "sms"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="interaction-results"
    )
    assert "<html" not in text(partial) and text(partial).count("data-interaction=") == 11


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"date_from": "2024-99-99"},
        {"outcome": "x" * 500},
        {"author": "-1"},
        {"segment": "999999"},
        {"channel": "<script>"},
        {"customer": "1e9"},
    ],
)
def test_bad_index_input_never_errors(manager_client, params):
    assert manager_client.get(INDEX, params).status_code == 200


def test_delete_goes_to_the_bin_and_restore_brings_it_back(sales_client, sales_user):
    interaction = _log(sales_user, CustomerFactory(owner=sales_user), subject="Binned call")
    response = sales_client.post(reverse("interactions:delete", args=[interaction.pk]))
    assert response.status_code == 302
    assert "Binned call" not in text(sales_client.get(INDEX))
    binned = text(sales_client.get(INDEX, {"binned": "on"}))
    assert "Binned call" in binned and reverse("interactions:restore", args=[interaction.pk]) in binned
    sales_client.post(reverse("interactions:restore", args=[interaction.pk]))
    assert "Binned call" in text(sales_client.get(INDEX))


def test_edit_page_saves_and_shows_field_errors(sales_client, sales_user):
    interaction = _log(sales_user, CustomerFactory(owner=sales_user), subject="Before")
    url = reverse("interactions:edit", args=[interaction.pk])
    assert "Before" in text(sales_client.get(url))
    future = (timezone.localtime() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = sales_client.post(url, _form(subject="After", occurred_at=future))
    assert response.status_code == 200 and "cannot be dated in the future" in text(response)
    assert Interaction.objects.get().subject == "Before"
    assert sales_client.post(url, _form(subject="After")).status_code == 302
    assert Interaction.objects.get().subject == "After"


def test_attachment_download_is_scoped(sales_client, sales_user, sales_user2, client_for):
    interaction = _log(
        sales_user,
        CustomerFactory(owner=sales_user),
        attachments=[SimpleUploadedFile("quote.pdf", b"%PDF-quote", "application/pdf")],
    )
    attachment = interaction.attachments.get()
    url = reverse("interactions:attachment", args=[attachment.pk])
    response = sales_client.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"%PDF-quote"
    assert 'filename="quote.pdf"' in response["Content-Disposition"]
    assert client_for(sales_user2).get(url).status_code == 404


# --- export ----------------------------------------------------------------------------------------


def test_export_runs_as_a_job_with_the_filters_and_escapes_formulas(sales_client, sales_user, sales_user2):
    mine = CustomerFactory(owner=sales_user, name="Mine")
    _log(sales_user, mine, subject='=HYPERLINK("http://evil")', channel="sms")
    _log(sales_user, mine, subject="phone call")
    _log(sales_user2, CustomerFactory(owner=sales_user2, name="Theirs"), channel="sms")
    response = sales_client.post(f"{reverse('interactions:export')}?channel=sms", {"format": "csv"})
    job = BackgroundJob.objects.get(kind="interactions.export")
    assert response["Location"] == reverse("interactions:export_job", args=[job.pk])
    export_run(job_id=job.pk)  # the task body, in this process (the job machinery is tested in crm)
    job.refresh_from_db()
    assert job.status == "succeeded", job.message
    rows = list(csv.reader(io.StringIO(job.output_file.read().decode("utf-8-sig"))))
    assert len(rows) == 2  # header + my one SMS; not the other rep's
    assert rows[1][2] == "Mine" and rows[1][7] == '\'=HYPERLINK("http://evil")'
    assert sales_client.get(reverse("interactions:export_job", args=[job.pk])).status_code == 200


# --- outcomes settings -----------------------------------------------------------------------------


def test_admin_manages_outcomes(admin_client):
    url = reverse("interactions:outcomes")
    assert "No answer" in text(admin_client.get(url))
    assert admin_client.post(url, {"name": "Sent catalogue"}).status_code == 302
    outcome = InteractionOutcome.objects.get(name="Sent catalogue")
    change = reverse("interactions:outcome_change", args=[outcome.pk])
    admin_client.post(change, {"action": "deactivate"})
    assert not InteractionOutcome.objects.get(pk=outcome.pk).is_active
    response = admin_client.post(url, {"name": "No answer"})
    assert "An outcome with this name exists already." in text(response)


# --- two tenants -----------------------------------------------------------------------------------


def test_another_tenant_never_sees_interactions_or_attachments(client_for, tenant_a, tenant_b, admin_user):
    interaction = _log(
        admin_user,
        CustomerFactory(owner=admin_user),
        subject="Alpha secret call",
        attachments=[SimpleUploadedFile("alpha.txt", b"alpha only")],
    )
    attachment = interaction.attachments.get()
    with schema_context(tenant_b.schema_name):
        admin_b = User.objects.get(email="admin@beta.test")
        User.objects.filter(pk=admin_b.pk).update(language="en")
        assert not Interaction.objects.filter(subject="Alpha secret call").exists()
    client_b = client_for(admin_b, tenant_b)
    assert "Alpha secret call" not in text(client_b.get(INDEX))
    assert client_b.get(reverse("interactions:detail", args=[interaction.pk])).status_code == 404
    assert client_b.get(reverse("interactions:attachment", args=[attachment.pk])).status_code == 404
    connection.set_tenant(tenant_a)
    assert attachment.file.name.startswith(f"{tenant_a.schema_name}/")


def test_the_log_form_can_plan_the_next_follow_up_in_n_days(sales_client, sales_user):
    from interactions.followups.models import FollowUp

    customer = CustomerFactory(owner=sales_user)
    url = reverse("interactions:log", args=[customer.pk])
    response = sales_client.post(url, _form(follow_up_in_days="3"), HTTP_HX_REQUEST="true")
    assert 'id="interaction-logged"' in text(response)
    followup = FollowUp.objects.get(customer=customer)
    assert (followup.assignee, followup.title) == (sales_user, "Asked about delivery")
    assert timedelta(days=2, hours=22) < followup.due_at - timezone.now() < timedelta(days=3, hours=1)
    # a refused number of days writes neither the interaction nor a follow-up
    response = sales_client.post(
        url, _form(subject="Second", follow_up_in_days="999"), HTTP_HX_REQUEST="true"
    )
    assert "is-invalid" in text(response)
    assert Interaction.objects.filter(subject="Second").count() == 0
    assert FollowUp.objects.count() == 1


def test_both_or_neither_when_the_follow_up_is_refused(sales_user):
    from django.core.exceptions import ValidationError

    from interactions.followups.models import FollowUp

    customer = CustomerFactory(owner=sales_user)
    with pytest.raises(ValidationError) as raised:
        services.interaction_log_with_follow_up(
            actor=sales_user,
            customer=customer,
            follow_up_in_days=400,
            channel="phone",
            direction="out",
            occurred_at=timezone.now(),
        )
    assert "follow_up_in_days" in raised.value.error_dict
    assert not Interaction.objects.exists() and not FollowUp.objects.exists()


# The 360 page with every panel filled (interactions, follow-ups, tickets, loyalty, rewards,
# referrals, surveys, churn alert, duplicates, segmentation), pinned exactly per role; the same with 1
# and with many rows behind each panel. Tenant lookup (3 with the search paths), session, user, then
# the page's own: customer 1, profile card 4 (with the secondary contacts), the Orders tab's badge 1,
# panels 15 (manager: +1 the follow-up form's assignee list, +1 the sharing form's users).
# The timeline is a request of its own (htmx, when it scrolls into view): the customer and one or two
# queries per registered provider; so are the Orders and History tabs (htmx, when first shown).
CUSTOMER_360_QUERIES = {"sales": 27, "manager": 29}
CUSTOMER_TIMELINE_QUERIES = 20


def _fill_every_panel(actor, customer, n: int) -> None:
    from interactions.followups.services import followup_create
    from interactions.service.services import ticket_open
    from loyalty.services import member_enrol
    from segmentation.services import alert_create

    outcome = InteractionOutcome.objects.get(key="reached")
    for i in range(n):
        _log(actor, customer, minutes_ago=i + 2, outcome=outcome)
        followup_create(
            actor=actor,
            customer=customer,
            assignee=actor,
            due_at=timezone.now() + timedelta(hours=i + 1),
            title=f"Call {i}",
            notes="",
        )
        ticket_open(actor=actor, subject=f"Ticket {i}", customer=customer)
        OrderFactory(customer=customer)
    member_enrol(actor=actor, customer=customer)
    if not customer.churn_alerts.exists():
        alert_create(customer=customer, reason="entered_at_risk")


@pytest.mark.parametrize("role", ["sales", "manager"])
def test_360_page_query_count_is_pinned_with_every_panel(role, client_for, sales_user, manager_user):
    viewer = sales_user if role == "sales" else manager_user
    customer = CustomerFactory(owner=sales_user, email="panel@example.com")
    CustomerFactory(owner=sales_user, email="panel@example.com")  # a duplicate for the panel
    client = client_for(viewer)
    url = reverse("customers:detail", args=[customer.pk])
    _fill_every_panel(sales_user, customer, 1)
    client.get(url)  # warm the session and caches
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    _fill_every_panel(sales_user, customer, 12)
    client.get(url)
    with CaptureQueriesContext(connection) as many:
        page = client.get(url).content.decode()
    for panel in (
        "interactions.latest",
        "followups",
        "service.tickets",
        "loyalty",
        "loyalty_rewards",
        "loyalty_referrals",
        "customers.duplicates",
    ):
        assert f'data-panel="{panel}"' in page, panel
    sql = "\n".join(q["sql"][:150] for q in many.captured_queries)
    assert len(many) == len(one), sql
    assert len(many) == CUSTOMER_360_QUERIES[role], sql


@pytest.mark.parametrize("role", ["sales", "manager"])
def test_360_timeline_query_count_is_pinned_and_loaded_when_revealed(
    role, client_for, sales_user, manager_user
):
    viewer = sales_user if role == "sales" else manager_user
    customer = CustomerFactory(owner=sales_user)
    client = client_for(viewer)
    detail = reverse("customers:detail", args=[customer.pk])
    timeline = reverse("customers:timeline", args=[customer.pk])
    _fill_every_panel(sales_user, customer, 1)
    page = client.get(detail).content.decode()
    # The page asks for its timeline when it scrolls into view; without JavaScript, a link shows it.
    assert f'hx-get="{timeline}" hx-trigger="revealed, customer-updated from:body"' in page
    assert f'href="{detail}?timeline=1#tab-timeline"' in page and 'data-kind="interaction"' not in page
    client.get(timeline)
    with CaptureQueriesContext(connection) as one:
        entries = client.get(timeline).content.decode()
    for kind in ("interaction", "followup", "ticket", "order"):
        assert f'data-kind="{kind}"' in entries, kind
    _fill_every_panel(sales_user, customer, 12)
    with CaptureQueriesContext(connection) as many:
        assert client.get(timeline).status_code == 200
    sql = "\n".join(q["sql"][:150] for q in many.captured_queries)
    assert len(many) == len(one) == CUSTOMER_TIMELINE_QUERIES, sql
    inline = client.get(detail, {"timeline": "1"}).content.decode()
    assert 'class="list-group-item d-flex gap-3 timeline-entry"' in inline and 'id="timeline-more"' in inline
    assert 'hx-trigger="customer-updated from:body"' in inline  # loaded already: not again on reveal
