"""The interaction log's services are all or nothing (the pattern of tests/test_audit_fault.py): when
the database refuses the audit row, or a later row of the same change, nothing of the change stays;
no row, and no attachment file left behind in the tenant's storage. Each service is called by its
public name with real arguments; the cases are named after it.

Also here: the services' own role checks (not only the views'), for the roles a view never lets
through: a deactivated author and a manager configuring the outcomes."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection
from django.utils import timezone

from crm.accounts.models import User
from interactions import services
from interactions.followups.models import FollowUp
from interactions.models import Interaction, InteractionAttachment, InteractionOutcome
from tests.factories import CustomerFactory
from tests.test_audit_fault import _refuse_audit_rows, _state

pytestmark = pytest.mark.django_db

MODELS = (Interaction, InteractionAttachment, InteractionOutcome, FollowUp, User)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _pdf(name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b"%PDF-1.4 " + name.encode(), "application/pdf")


def _log(actor, customer, **extra):
    values = {"channel": "phone", "direction": "out", "occurred_at": timezone.now() - timedelta(hours=1)}
    return services.interaction_log(actor=actor, customer=customer, **{**values, **extra})


def refuse_rows(model, *, event: str = "INSERT", when: str = "TRUE") -> None:
    """The database refuses `event` on `model`'s table for the rows matching `when` (SQL over NEW /
    OLD): a failure part-way through a service, after some of its rows were written."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION 'the database refused the row of {table}'; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER refuse_{table} BEFORE {event} ON "{table}" '
            f"FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION refuse_{table}()"
        )


@pytest.fixture
def w(tenant, users):
    customer = CustomerFactory(owner=users["sales"])
    interaction = _log(
        users["sales"], customer, subject="First call", attachments=[_pdf("a.pdf"), _pdf("b.pdf")]
    )
    live, removed = interaction.attachments.order_by("pk")
    services.attachment_remove(actor=users["sales"], attachment=removed)
    binned = _log(users["sales"], customer, subject="Binned")
    services.interaction_delete(actor=users["sales"], interaction=binned)
    followup = FollowUp.objects.create(
        customer=customer,
        assignee=users["sales"],
        due_at=timezone.now() + timedelta(days=1),
        title="Call back",
        created_by=users["sales"],
    )
    return {
        **users,
        "tenant": tenant,
        "customer": customer,
        "interaction": interaction,
        "live": live,
        "removed": removed,
        "binned": binned,
        "followup": followup,
        "outcome": InteractionOutcome.objects.order_by("position", "pk")[1],
    }


CASES = {
    "interaction_log": lambda w: _log(
        w["sales"], w["customer"], subject="New", outcome=w["outcome"], attachments=[_pdf("new.pdf")]
    ),
    # with a new file: neither its row nor the file itself may stay behind
    "interaction_update": lambda w: services.interaction_update(
        actor=w["sales"],
        interaction=w["interaction"],
        data={"subject": "Changed", "outcome": w["outcome"]},
        attachments=[_pdf("more.pdf")],
    ),
    "interaction_delete": lambda w: services.interaction_delete(
        actor=w["manager"], interaction=w["interaction"]
    ),
    "interaction_restore": lambda w: services.interaction_restore(
        actor=w["manager"], interaction=w["binned"]
    ),
    "attachment_remove": lambda w: services.attachment_remove(actor=w["sales"], attachment=w["live"]),
    "attachment_restore": lambda w: services.attachment_restore(actor=w["sales"], attachment=w["removed"]),
    "outcome_create": lambda w: services.outcome_create(actor=w["admin"], name="Asked for a quote"),
    "outcome_rename": lambda w: services.outcome_rename(actor=w["admin"], outcome=w["outcome"], name="Keen"),
    "outcome_set_active": lambda w: services.outcome_set_active(
        actor=w["admin"], outcome=w["outcome"], active=False
    ),
    # every outcome renumbered, then the audit row
    "outcome_move": lambda w: services.outcome_move(actor=w["admin"], outcome=w["outcome"], up=False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_refused_audit_row_undoes_the_interaction_change(case, w, _media):
    before, files = _state(MODELS), _files(_media)
    _refuse_audit_rows()
    with pytest.raises(DatabaseError):
        CASES[case](w)
    connection.set_tenant(w["tenant"])
    assert _state(MODELS) == before
    assert _files(_media) == files


# interaction_log_with_follow_up: the interaction's own service is atomic and audited first; what
# must go back with the follow-up is the interaction logged before it.
FOLLOW_UP_CASES = {
    # "next follow-up in 3 days": the follow-up's row is refused
    "interaction_log_with_follow_up-new": (
        lambda: refuse_rows(FollowUp),
        lambda w: services.interaction_log_with_follow_up(
            actor=w["sales"],
            customer=w["customer"],
            follow_up_in_days=3,
            channel="phone",
            direction="out",
            occurred_at=timezone.now() - timedelta(minutes=5),
            attachments=[_pdf("call.pdf")],
        ),
    ),
    # the call logged from My day: marking the open follow-up done is refused
    "interaction_log_with_follow_up-complete": (
        lambda: refuse_rows(FollowUp, event="UPDATE", when="NEW.status = 'done'"),
        lambda w: services.interaction_log_with_follow_up(
            actor=w["sales"],
            customer=w["customer"],
            follow_up_in_days=None,
            complete_followup=w["followup"],
            channel="phone",
            direction="out",
            occurred_at=timezone.now() - timedelta(minutes=5),
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(FOLLOW_UP_CASES))
def test_a_refused_follow_up_undoes_the_logged_interaction(case, w, _media):
    refuse, call = FOLLOW_UP_CASES[case]
    before, files = _state(MODELS), _files(_media)
    refuse()
    with pytest.raises(DatabaseError):
        call(w)
    connection.set_tenant(w["tenant"])
    assert _state(MODELS) == before
    assert _files(_media) == files


# --- the services' own role checks -------------------------------------------------------------------


def test_can_change_refuses_a_deactivated_author(w):
    """The author may change their interaction while they hold the sales role: once deactivated, no
    longer (a session kept open after the deactivation is no way in)."""
    author = w["sales"]
    assert services.can_change(author, w["interaction"])
    User.objects.filter(pk=author.pk).update(is_active=False)
    author.refresh_from_db()
    before = _state(MODELS)
    assert not services.can_change(author, w["interaction"])
    with pytest.raises(PermissionDenied):
        services.interaction_update(
            actor=author, interaction=w["interaction"], data={"subject": "Mine still"}
        )
    with pytest.raises(PermissionDenied):
        services.interaction_delete(actor=author, interaction=w["interaction"])
    assert _state(MODELS) == before


def test_can_change_refuses_another_sales_rep_who_sees_the_customer(w):
    w["customer"].shared_with.add(w["sales2"])
    before = _state(MODELS)
    assert not services.can_change(w["sales2"], w["interaction"])
    with pytest.raises(PermissionDenied):
        services.interaction_update(
            actor=w["sales2"], interaction=w["interaction"], data={"subject": "Not mine"}
        )
    with pytest.raises(PermissionDenied):
        services.attachment_remove(actor=w["sales2"], attachment=w["live"])
    assert _state(MODELS) == before


@pytest.mark.parametrize("role", ["manager", "sales"])
def test_require_admin_refuses_other_roles_the_outcome_changes(w, role):
    actor, outcome = w[role], w["outcome"]
    before = _state(MODELS)
    for change in (
        lambda: services.outcome_create(actor=actor, name="Sneaky"),
        lambda: services.outcome_rename(actor=actor, outcome=outcome, name="Sneaky"),
        lambda: services.outcome_set_active(actor=actor, outcome=outcome, active=False),
        lambda: services.outcome_move(actor=actor, outcome=outcome, up=True),
    ):
        with pytest.raises(PermissionDenied):
            change()
    assert _state(MODELS) == before


# --- the log's scope (selectors._scoped) and the page's offers ------------------------------------------


def test_scoped_shows_a_deactivated_user_nothing(w):
    from interactions import selectors

    author = w["sales"]
    assert set(selectors.interaction_list(user=author)) == {w["interaction"]}
    User.objects.filter(pk=author.pk).update(is_active=False)
    author.refresh_from_db()
    assert not selectors.interaction_list(user=author).exists()
    assert not selectors.interaction_list(user=author, filters={"binned": True}).exists()


def test_scoped_shows_sales_only_their_own_and_shared_customers(w):
    from interactions import selectors

    theirs = CustomerFactory(owner=w["sales2"])
    other = _log(w["sales2"], theirs, subject="Not for sales")
    assert other not in selectors.interaction_list(user=w["sales"])
    theirs.shared_with.add(w["sales"])
    assert other in selectors.interaction_list(user=w["sales"])
    assert set(selectors.interaction_list(user=w["manager"])) >= {w["interaction"], other}


def test_interaction_index_offers_the_import_to_managers_only(w, client_for):
    from django.urls import reverse

    link = f'href="{reverse("interactions:import")}"'
    for role, offered in (("sales", False), ("manager", True), ("admin", True)):
        page = client_for(w[role]).get(reverse("interactions:index"))
        assert page.status_code == 200
        assert (link in page.content.decode()) is offered, role


# --- the demo seeder ---------------------------------------------------------------------------------------


def test_interactions_demo_seed_writes_nothing_when_a_later_copy_is_refused(tenant, users, monkeypatch):
    """The seeder writes its interactions in one COPY per batch of customers: when a later batch is
    refused, the earlier ones go back too (a re-run then seeds afresh instead of skipping a tenant
    that has only some of its demo interactions)."""
    import io
    import random

    import psycopg

    from interactions import demo

    customers = [CustomerFactory(owner=users["sales"]) for _ in range(4)]
    monkeypatch.setattr(demo, "CUSTOMERS_PER_COPY", 2)
    before = _state(MODELS)
    refuse_rows(Interaction, when=f"NEW.customer_id = {customers[-1].pk}")
    with pytest.raises(psycopg.errors.RaiseException):  # the COPY runs on psycopg's own cursor
        demo.seed(users=[users["sales"]], customers=0, rng=random.Random(2), stdout=io.StringIO())
    assert _state(MODELS) == before


def test_interaction_update_audits_the_added_files_and_stores_them(w, _media):
    """The files are written after the audit row now: the row still names them, and they are stored."""
    from crm.audit.models import AuditEvent

    services.interaction_update(
        actor=w["sales"], interaction=w["interaction"], data={}, attachments=[_pdf("quote.pdf")]
    )
    event = AuditEvent.objects.get(action="interaction.updated", target_id=str(w["interaction"].pk))
    assert event.changes == {"attachments": {"old": None, "new": ["quote.pdf"]}}
    added = w["interaction"].attachments.get(original_name="quote.pdf")
    assert Path(added.file.path).read_bytes() == b"%PDF-1.4 quote.pdf"
