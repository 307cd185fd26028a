"""Every URL of the tenant and public sites x GET and POST x every actor -> the status in
tests/crm/access_matrix.py, requested against real objects (one request per cell, each in a savepoint
that is rolled back, so a POST in one cell never changes what the next cell sees)."""

import itertools
import os
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tenants.utils import schema_context

from crm.accounts.models import Invitation, UserSession
from crm.accounts.services import invitation_make_token
from crm.jobs.models import BackgroundJob
from crm.jobs.services import job_create
from crm.notifications.services import notify
from crm.tenancy.models import Tenant
from customers.models import Customer, CustomFieldDefinition
from interactions.followups.models import FollowUp, FollowUpRule
from interactions.models import InteractionOutcome
from loyalty.models import Tier
from loyalty.services import member_enrol
from segmentation.models import ChurnAlert, Segment
from tests.conftest import PASSWORD, PLATFORM_ADMIN_EMAIL, ROLE_EMAILS, tenant_host
from tests.crm import access_matrix as matrix
from tests.crm.access_matrix import ANON, FOREIGN, LOGIN, OPERATOR, OWN, TENANT_ADMIN
from tests.factories import CustomerFactory, OrderFactory, TagFactory

TENANT_URLCONF = "crm.urls_tenant"
PUBLIC_URLCONF = "crm.urls_public"
# A browser's POST always carries the CSRF token; an empty POST would leave `Form(request.POST or None)`
# unbound.
BROWSER_POST = {"csrfmiddlewaretoken": "x"}
GOOD_CSV = "name,email\nMatrix Import,matrix-import@example.com\n"
INTERACTIONS_CSV = "email,date,channel\nmatrix-import@example.com,2025-01-02,phone\n"
OPENING_CSV = "email,points\nmatrix-import@example.com,100\n"


def _walk(patterns, namespace=None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = entry.namespace
            full = f"{namespace}:{inner}" if namespace and inner else (inner or namespace)
            yield from _walk(entry.url_patterns, full)
        elif isinstance(entry, URLPattern) and (namespace or "") not in matrix.SKIPPED_NAMESPACES:
            name = entry.name and (f"{namespace}:{entry.name}" if namespace else entry.name)
            yield name, entry


def url_names(urlconf: str) -> list[str]:
    names = []
    for name, pattern in _walk(get_resolver(urlconf).url_patterns):
        assert name, f"{urlconf}: the URL pattern {pattern.pattern} has no name, so no matrix row can name it"
        if name not in names:
            names.append(name)
    return sorted(names)


def _selected(urlconf: str, names: list[str]) -> list[str]:
    """`make mutants` runs only the rows a planted fault can affect: ACCESS_MATRIX_FILTER lists
    namespaces, URL names, view function names or view modules (empty: every row)."""
    tokens = {t for t in os.environ.get("ACCESS_MATRIX_FILTER", "").split(",") if t}
    if not tokens:
        return names
    views = {name: pattern.callback for name, pattern in _walk(get_resolver(urlconf).url_patterns) if name}
    keep = []
    for name in names:
        view = getattr(views[name], "view_class", views[name])
        # a view made by a factory function is named after the factory
        outer = view.__qualname__.split(".")[0]
        keys = {name, name.split(":")[0], view.__name__, outer, view.__module__}
        if keys & tokens:
            keep.append(name)
    return keep


TENANT_URLS = url_names(TENANT_URLCONF)
PUBLIC_URLS = url_names(PUBLIC_URLCONF)


def test_a_filter_selects_rows():
    """A `make mutants` filter that selects no row would let its mutant survive unexamined."""
    if os.environ.get("ACCESS_MATRIX_FILTER"):
        selected = _selected(TENANT_URLCONF, TENANT_URLS) + _selected(PUBLIC_URLCONF, PUBLIC_URLS)
        assert selected, f"ACCESS_MATRIX_FILTER={os.environ['ACCESS_MATRIX_FILTER']!r} selects no row"


@pytest.mark.parametrize(
    ("urlconf", "names", "table"),
    [(TENANT_URLCONF, TENANT_URLS, matrix.TENANT), (PUBLIC_URLCONF, PUBLIC_URLS, matrix.PUBLIC)],
)
def test_every_url_pattern_has_a_row_and_every_row_a_pattern(urlconf, names, table):
    missing = sorted(set(names) - set(table))
    assert not missing, (
        f"{urlconf}: no row in tests/crm/access_matrix.py for {missing}. Add one line per URL with the "
        "status each actor gets on GET and on POST."
    )
    stale = sorted(set(table) - set(names))
    assert not stale, f"tests/crm/access_matrix.py has rows for URLs that no longer exist: {stale}"


# --- the objects every row is checked against ----------------------------------------------------


@pytest.fixture(scope="module")
def _module_world(django_db_setup, django_db_blocker, tmp_path_factory):
    """The objects, built once per module (and test process) in a transaction rolled back after the
    module's last test. Each test runs in a savepoint of it (pytest-django's `db`), and each request
    in a savepoint of that (`_request`), so no test or cell changes what the next one sees. Built per
    test, they cost more than the 2,000 requests of the matrix (84 s of its 130 s)."""
    media = tmp_path_factory.mktemp("matrix-media")
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=str(media)):
        outer = transaction.atomic()
        outer.__enter__()
        try:
            tenant = Tenant.objects.get(slug="alpha")
            connection.set_tenant(tenant)
            w = _build_world(tenant, {key: _tenant_user(tenant, key) for key in ROLE_EMAILS})
            w.media = media
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
        finally:
            connection.set_schema_to_public()
    yield w
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)
        connection.set_schema_to_public()


@pytest.fixture
def world(_module_world, tenant, settings):
    """Objects of each kind: one the sales user owns ("own") and one of another user ("other")."""
    settings.MEDIA_ROOT = str(_module_world.media)
    return _module_world


def _build_world(tenant, users):
    sales, sales2, manager, admin = users["sales"], users["sales2"], users["manager"], users["admin"]
    w = SimpleNamespace(users=users)

    def pair(owner, tag):
        return (
            CustomerFactory(owner=owner, name=f"{tag} Pair", email=f"{tag}@pair.test"),
            CustomerFactory(owner=owner, name=f"{tag} Pair", email=f"{tag}@pair.test", phone=""),
        )

    w.customer = {True: CustomerFactory(owner=sales), False: CustomerFactory(owner=sales2)}
    w.order = {True: OrderFactory(customer=w.customer[True]), False: OrderFactory(customer=w.customer[False])}
    w.pair = {True: pair(sales, "own"), False: pair(sales2, "other")}
    binned = {True: CustomerFactory(owner=sales), False: CustomerFactory(owner=sales2)}
    Customer.objects.filter(pk__in=[c.pk for c in binned.values()]).update(
        deleted_by=admin, deleted_at=timezone.now()
    )
    w.binned = binned
    # Merged customers: merged through the page by the admin (the merge keeps each one's owner).
    merged = {True: pair(sales, "ownmerged"), False: pair(sales2, "othermerged")}
    admin_client = _client(admin, tenant)
    for survivor, gone in merged.values():
        response = admin_client.post(reverse("customers:merge", args=[survivor.pk, gone.pk]), BROWSER_POST)
        assert response.status_code == 302, (
            response.context["form"].errors,
            response.content.decode()[-3000:],
        )
    w.merged = {mine: gone for mine, (_survivor, gone) in merged.items()}

    def export_job(user, kind):
        job = job_create(kind=kind, created_by=user)
        job.output_file.save("matrix-export.csv", ContentFile(b"name\nsecret\n"), save=False)
        BackgroundJob.objects.filter(pk=job.pk).update(
            output_file=job.output_file.name, status=BackgroundJob.Status.SUCCEEDED, progress=100
        )
        return job

    # the sales user's own export, and the manager's export of all the tenant's data
    w.job = {True: export_job(sales, "customers.export"), False: export_job(manager, "customers.export_all")}
    from customers.imports import services as import_services

    w.import_job = import_services.import_upload(
        actor=manager, uploaded_file=SimpleUploadedFile("c.csv", GOOD_CSV.encode())
    )
    w.segment = {
        True: Segment.objects.create(name="Mine", rules=_RULES, is_shared=False, created_by=sales),
        False: Segment.objects.create(name="Theirs", rules=_RULES, is_shared=False, created_by=sales2),
    }
    w.alert = {
        mine: ChurnAlert.objects.create(
            customer=w.customer[mine], owner=w.customer[mine].owner, reason="entered_at_risk"
        )
        for mine in (True, False)
    }
    w.followup = {
        mine: FollowUp.objects.create(
            customer=w.customer[mine],
            assignee=sales if mine else sales2,
            due_at=timezone.now() + timedelta(hours=2),
            title="Call back",
        )
        for mine in (True, False)
    }
    w.followup_rule = FollowUpRule.objects.create(
        name="Matrix rule", trigger="customer_created", delay_days=1, title="Welcome call"
    )
    w.tier = Tier.objects.create(name="Matrix tier", rank=0, threshold=0)
    w.member = {mine: member_enrol(actor=None, customer=w.customer[mine]) for mine in (True, False)}
    w.not_member = {True: CustomerFactory(owner=sales), False: CustomerFactory(owner=sales2)}
    w.custom_field = CustomFieldDefinition.objects.create(
        key="matrix_field", label="Matrix", field_type="text"
    )
    w.invitation = Invitation.objects.create(
        email="matrix-invitee@alpha.test", role="sales", invited_by=admin
    )
    w.invitation_token = invitation_make_token(invitation=w.invitation, schema_name=tenant.schema_name)
    _settings_world(w, tenant)
    # a session of the sales user's (not the one the test client uses) and one of sales2's
    w.user_session = {
        mine: UserSession.objects.create(
            user=sales if mine else sales2, session_key=f"matrix-{int(mine)}" + "x" * 30
        )
        for mine in (True, False)
    }
    # interactions: each user's interaction with their own customer (with an attachment), one in the bin
    from interactions import services as interaction_services

    def interaction(user, customer, **extra):
        return interaction_services.interaction_log(
            actor=user,
            customer=customer,
            channel="phone",
            direction="out",
            occurred_at=timezone.now(),
            subject="Matrix call",
            **extra,
        )

    w.interaction = {
        mine: interaction(
            sales if mine else sales2,
            w.customer[mine],
            attachments=[SimpleUploadedFile("note.txt", b"matrix", "text/plain")],
        )
        for mine in (True, False)
    }
    w.binned_interaction = {
        mine: interaction_services.interaction_delete(
            actor=admin, interaction=interaction(sales if mine else sales2, w.customer[mine])
        )
        for mine in (True, False)
    }
    w.attachment = {mine: w.interaction[mine].attachments.get() for mine in (True, False)}
    w.interaction_job = {
        True: export_job(sales, "interactions.export"),
        False: export_job(manager, "interactions.export"),
    }
    w.outcome = InteractionOutcome.objects.get(key="no_answer")
    from interactions import imports as interaction_imports

    w.interaction_import = interaction_imports.import_upload(
        actor=manager, uploaded_file=SimpleUploadedFile("i.csv", INTERACTIONS_CSV.encode())
    )
    from loyalty import imports as loyalty_imports

    w.opening_import = loyalty_imports.import_upload(
        actor=manager, uploaded_file=SimpleUploadedFile("o.csv", OPENING_CSV.encode())
    )
    w.notification = {
        mine: notify(
            recipient=sales if mine else sales2,
            kind="matrix.test",
            key="matrix",
            title="Matrix",
            url="/customers/",
        )
        for mine in (True, False)
    }
    _service_world(w, sales, sales2)
    _rewards_world(w, sales, sales2)
    return w


_matrix_keys = itertools.count()


def _rewards_world(w, sales, sales2):
    from loyalty.referrals.services import referral_code_for
    from loyalty.rewards.models import Reward
    from loyalty.rewards.services import voucher_issue
    from loyalty.services import points_adjust

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    w.reward = Reward.objects.create(name="Matrix mug", points_cost=10, voucher_days=30)
    w.reward.image.save("mug.png", ContentFile(png), save=True)
    for mine in (True, False):
        points_adjust(actor=w.users["admin"], member=w.member[mine], points=1000, reason="matrix")
    w.voucher = {
        mine: voucher_issue(actor=sales if mine else sales2, member=w.member[mine], reward=w.reward)
        for mine in (True, False)
    }
    w.referral_code = referral_code_for(w.member[False])
    w.referee = {
        mine: member_enrol(actor=None, customer=CustomerFactory(owner=sales if mine else sales2))
        for mine in (True, False)
    }

    def fresh_voucher_code(w):
        return voucher_issue(actor=None, member=w.member[False], reward=w.reward).code

    w.fresh_voucher_code = fresh_voucher_code


def _reward_form(name):
    return {"name": name, "points_cost": "10", "voucher_days": "30", "is_active": "on"}


def _interaction_form(w, mine):
    return {
        "channel": "wechat",
        "direction": "in",
        "occurred_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "subject": "Matrix",
        "outcome": w.outcome.pk,
    }


def _service_world(w, sales, sales2):
    from datetime import date

    from interactions.service import services as service
    from interactions.service.models import Holiday, SlaPolicy, Team, TicketAttachment, TicketCategory

    w.ticket = {
        mine: service.ticket_open(
            actor=owner,
            customer=w.customer[mine],
            subject=f"Matrix {mine}",
            email=f"matrix{int(mine)}@t.test",
        )
        for mine, owner in ((True, sales), (False, sales2))
    }
    w.ticket_attachment = {}
    for mine, ticket in w.ticket.items():
        attachment = TicketAttachment(
            ticket=ticket, original_name="a.txt", content_type="text/plain", size=2, uploaded_by=sales
        )
        attachment.file.save("a.txt", ContentFile(b"hi"), save=True)
        w.ticket_attachment[mine] = attachment
    w.category = TicketCategory.objects.create(name="Matrix category")
    w.team = Team.objects.create(name="Matrix team")
    w.policy = SlaPolicy.objects.create(priority="low", first_response_minutes=60, resolution_minutes=120)
    w.holiday = Holiday.objects.create(day=date(2026, 5, 20), name="Matrix day")
    w.binned_ticket = service.ticket_delete(
        actor=w.users["admin"],
        ticket=service.ticket_open(actor=sales, customer=w.customer[True], subject="Matrix binned"),
    )
    _surveys_world(w)


def _settings_world(w, tenant):
    """A company logo (stored under the test's MEDIA_ROOT), a live tag and a binned one."""
    import io

    from PIL import Image

    from crm.tenancy.profile import logo_name_version, tenant_update_profile
    from customers.tags.services import tag_delete

    png = io.BytesIO()
    Image.new("RGB", (40, 20), "#123456").save(png, format="PNG")
    tenant_update_profile(
        actor=w.users["admin"],
        tenant=tenant,
        name=tenant.name,
        time_zone=tenant.time_zone,
        currency=tenant.currency,
        default_language=tenant.default_language,
        logo=SimpleUploadedFile("logo.png", png.getvalue(), "image/png"),
    )
    w.logo_version = logo_name_version(tenant.logo)
    w.tag = TagFactory(name="Matrix tag")
    w.binned_tag = tag_delete(actor=w.users["admin"], tag=TagFactory(name="Matrix binned tag"))


def _surveys_world(w):
    from interactions.surveys import services as surveys
    from interactions.surveys.models import SurveyTemplate

    w.survey_template = SurveyTemplate.objects.get(kind="nps")
    CustomerFactory(owner=w.users["sales"], email="consent@matrix.test", email_consent=True)
    invitation = surveys._invite(
        template=w.survey_template, customer=w.customer[True], source="bulk", source_key="bulk:matrix:1"
    )
    w.survey_token = surveys.invitation_token(invitation)


_contact_count = itertools.count()


def _contact_form(w, mine):
    return {
        "name": "Matrix Visitor",
        "email": f"visitor{next(_contact_count)}@matrix.test",
        "subject": "Hello",
        "message": "Please call me",
    }


_RULES = {"op": "and", "rules": [{"op": "and", "rules": [{"field": "total_spent", "op": "gte", "value": 0}]}]}


# URL kwargs per object kind: `mine` is True for the "own" actor, False for everyone else.
KWARGS = {
    "accounts:password_reset_confirm": lambda w, mine: _reset_link(w),
    "accounts:invitation_accept": lambda w, mine: {"token": w.invitation_token},
    "accounts:user_detail": lambda w, mine: {"user_id": w.users["sales2"].pk},
    "accounts:user_change_role": lambda w, mine: {"user_id": w.users["sales2"].pk},
    "accounts:user_deactivate": lambda w, mine: {"user_id": w.users["sales2"].pk},
    "accounts:user_reactivate": lambda w, mine: {"user_id": w.users["sales2"].pk},
    "accounts:invitation_resend": lambda w, mine: {"invitation_id": w.invitation.pk},
    "accounts:invitation_revoke": lambda w, mine: {"invitation_id": w.invitation.pk},
    "accounts:session_end": lambda w, mine: {"session_id": w.user_session[mine].pk},
    "jobs:status": lambda w, mine: {"job_id": w.job[mine].pk},
    "dashboards:figure": lambda w, mine: {"key": "revenue"},
    "notifications:open": lambda w, mine: {"notification_id": w.notification[mine].pk},
    "notifications:read": lambda w, mine: {"notification_id": w.notification[mine].pk},
    "jobs:download": lambda w, mine: {"job_id": w.job[mine].pk},
    "customers:export_job": lambda w, mine: {"job_id": w.job[mine].pk},
    "customers:restore": lambda w, mine: {"pk": w.binned[mine].pk},
    "accounts:company_logo": lambda w, mine: {"version": w.logo_version},
    "customers:tag_edit": lambda w, mine: {"pk": w.tag.pk},
    # merged away by the first POST that succeeds: the next actor gets a tag of the same name again
    "customers:tag_merge": lambda w, mine: {"pk": TagFactory(name="Matrix merged tag").pk},
    "customers:tag_delete": lambda w, mine: {"pk": w.tag.pk},
    "customers:tag_restore": lambda w, mine: {"pk": w.binned_tag.pk},
    "customers:custom_field_edit": lambda w, mine: {"pk": w.custom_field.pk},
    "customers:custom_field_toggle": lambda w, mine: {"pk": w.custom_field.pk},
    "customers:custom_field_move": lambda w, mine: {"pk": w.custom_field.pk},
    "customers:order_refund": lambda w, mine: {"pk": w.order[mine].pk},
    **{
        f"customers:{name}": (lambda w, mine: {"pk": w.customer[mine].pk})
        for name in (
            "detail",
            "edit",
            "profile_card",
            "delete",
            "share",
            "timeline",
            "history",
            "orders",
            "privacy",
            "privacy_export",
            "privacy_erase",
        )  # fmt: skip
    },
    **{
        f"customers:{name}": (lambda w, mine: {"job_id": w.import_job.pk})
        for name in ("import_preview", "import_mapping", "import_status", "import_confirm", "import_cancel")
    },
    "customers:duplicate_dismiss": lambda w, mine: {
        "first": w.pair[mine][0].pk,
        "second": w.pair[mine][1].pk,
    },
    "customers:merge": lambda w, mine: {"survivor_pk": w.pair[mine][0].pk, "merged_pk": w.pair[mine][1].pk},
    "customers:merge_result": lambda w, mine: {"pk": w.merged[mine].pk},
    "customers:merge_undo": lambda w, mine: {"pk": w.merged[mine].pk},
    "customers:merge_group_undo": lambda w, mine: {"pk": w.customer[mine].pk},
    "interactions:log": lambda w, mine: {"customer_id": w.customer[mine].pk},
    **{
        f"interactions:{name}": (lambda w, mine: {"pk": w.interaction[mine].pk})
        for name in ("detail", "edit", "delete")
    },
    "interactions:restore": lambda w, mine: {"pk": w.binned_interaction[mine].pk},
    "interactions:attachment": lambda w, mine: {"pk": w.attachment[mine].pk},
    "interactions:attachment_remove": lambda w, mine: {"pk": w.attachment[mine].pk},
    "interactions:attachment_restore": lambda w, mine: {"pk": w.attachment[mine].pk},
    "interactions:export_job": lambda w, mine: {"job_id": w.interaction_job[mine].pk},
    "interactions:outcome_change": lambda w, mine: {"pk": w.outcome.pk},
    "interactions:import_job": lambda w, mine: {"job_id": w.interaction_import.pk},
    "loyalty:opening_import_job": lambda w, mine: {"job_id": w.opening_import.pk},
    **{
        f"followups:{name}": (lambda w, mine: {"pk": w.followup[mine].pk})
        for name in ("complete", "cancel", "snooze", "reschedule", "reassign")
    },
    "followups:create": lambda w, mine: {"customer_id": w.customer[mine].pk},
    "followups:rule_edit": lambda w, mine: {"pk": w.followup_rule.pk},
    **{
        f"service:{name}": (lambda w, mine: {"pk": w.ticket[mine].pk})
        for name in ("ticket", "ticket_clocks", "ticket_reply", "ticket_note", "ticket_status")
        + ("ticket_assign", "ticket_update", "ticket_delete")
    },
    "service:attachment": lambda w, mine: {"pk": w.ticket_attachment[mine].pk},
    "service:category_edit": lambda w, mine: {"pk": w.category.pk},
    "service:team_edit": lambda w, mine: {"pk": w.team.pk},
    "service:policy_edit": lambda w, mine: {"pk": w.policy.pk},
    "service:policy_delete": lambda w, mine: {"pk": w.policy.pk},
    "service:holiday_delete": lambda w, mine: {"pk": w.holiday.pk},
    "service:ticket_restore": lambda w, mine: {"pk": w.binned_ticket.pk},
    "surveys:template_edit": lambda w, mine: {"pk": w.survey_template.pk},
    "surveys:answer": lambda w, mine: {"token": w.survey_token},
    "segmentation:alert_acknowledge": lambda w, mine: {"alert_id": w.alert[mine].pk},
    "loyalty:member": lambda w, mine: {"member_id": w.member[mine].pk},
    "loyalty:member_adjust": lambda w, mine: {"member_id": w.member[mine].pk},
    "loyalty:enrol": lambda w, mine: {"customer_id": w.not_member[mine].pk},
    "loyalty:tier_edit": lambda w, mine: {"tier_id": w.tier.pk},
    "loyalty:rewards:reward_edit": lambda w, mine: {"reward_id": w.reward.pk},
    "loyalty:rewards:reward_deactivate": lambda w, mine: {"reward_id": w.reward.pk},
    "loyalty:rewards:reward_image": lambda w, mine: {"reward_id": w.reward.pk},
    "loyalty:rewards:redeem_pick": lambda w, mine: {"member_id": w.member[mine].pk},
    "loyalty:rewards:redeem_confirm": lambda w, mine: {
        "member_id": w.member[mine].pk,
        "reward_id": w.reward.pk,
    },
    "loyalty:rewards:voucher": lambda w, mine: {"voucher_id": w.voucher[mine].pk},
    "loyalty:rewards:voucher_cancel": lambda w, mine: {"voucher_id": w.voucher[mine].pk},
    "loyalty:rewards:voucher_use": lambda w, mine: {"voucher_id": w.voucher[mine].pk},
    "loyalty:referrals:record": lambda w, mine: {"member_id": w.referee[mine].pk},
    "loyalty:referrals:ambassador": lambda w, mine: {"member_id": w.member[mine].pk},
    "referral_link:join": lambda w, mine: {"code": w.referral_code},
    "segmentation:alert_dismiss": lambda w, mine: {"alert_id": w.alert[mine].pk},
    **{
        f"segmentation:{name}": (lambda w, mine: {"pk": w.segment[mine].pk})
        for name in ("segment_open", "segment_count", "segment_delete", "builder_edit")
    },
}


def _segment_form(name):
    return {
        "name": name,
        "description": "",
        "top_op": "and",
        "g0_op": "and",
        "g0_c0_field": "total_spent",
        "g0_c0_op": "gte",
        "g0_c0_value": "10",
    }


def _customer_form(name, email):
    return {"name": name, "kind": "person", "email": email, "gender": "female", "source": "store"}


def _reset_link(w):
    """A valid reset link, made just before the request (signing in changes the token)."""
    from crm.accounts.models import User

    sales = User.objects.get(pk=w.users["sales"].pk)
    return {
        "uidb64": urlsafe_base64_encode(force_bytes(sales.pk)),
        "token": default_token_generator.make_token(sales),
    }


def _settings_form(w):
    from segmentation.forms import SettingsForm
    from segmentation.services import settings_get

    form = SettingsForm(instance=settings_get())
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None:
            continue
        data[name] = "on" if value is True else ("" if value is False else value)
    return {k: v for k, v in data.items() if v != ""}


# Real form data for a POST that is expected to succeed (an empty POST otherwise).
POST_DATA = {
    "set_language": lambda w, mine: {"language": "en", "next": "/"},
    "accounts:login": lambda w, mine: {
        "username": ROLE_EMAILS["sales"].format(slug="alpha"),
        "password": PASSWORD,
    },
    "accounts:profile": lambda w, mine: {
        "full_name": "Renamed",
        "language": "en",
        "time_zone": "Asia/Shanghai",
    },
    "accounts:password_reset": lambda w, mine: {"email": ROLE_EMAILS["sales"].format(slug="alpha")},
    "accounts:password_reset_confirm": lambda w, mine: {
        "new_password1": "x-Long-pass-2026",
        "new_password2": "x-Long-pass-2026",
    },
    "accounts:invitation_accept": lambda w, mine: {
        "full_name": "Nina",
        "password1": "x-Long-pass-2026",
        "password2": "x-Long-pass-2026",
    },
    "accounts:user_invite": lambda w, mine: {"email": "new-member@alpha.test", "role": "sales"},
    "accounts:user_change_role": lambda w, mine: {"role": "manager"},
    "customers:create": lambda w, mine: _customer_form("Made By Matrix", "made@matrix.test"),
    "customers:edit": lambda w, mine: _customer_form("Edited", w.customer[mine].email),
    "customers:columns": lambda w, mine: {"columns": ["email", "city"]},
    "customers:bulk": lambda w, mine: {"action": "tag_add", "tag": "matrix", "ids": [w.customer[mine].pk]},
    "customers:custom_fields": lambda w, mine: {
        "key": "matrix_new",
        "label": "Matrix new",
        "field_type": "text",
        "position": 1,
    },
    "customers:custom_field_edit": lambda w, mine: {
        "key": "matrix_field",
        "label": "Renamed",
        "field_type": "text",
        "position": 2,
    },
    "customers:order_refund": lambda w, mine: {"amount": "1.00", "reason": "matrix"},
    "customers:tag_edit": lambda w, mine: {"name": "Matrix tag", "color": "danger"},
    "customers:tag_merge": lambda w, mine: {"target": w.tag.pk},
    "accounts:company_profile": lambda w, mine: {
        "name": "Alpha Trading 阿尔法",
        "time_zone": "Asia/Shanghai",
        "currency": "CNY",
        "default_language": "en",
    },
    "customers:custom_field_move": lambda w, mine: {"direction": "up"},
    "customers:share": lambda w, mine: {"users": [w.users["sales"].pk]},
    "customers:import_start": lambda w, mine: {
        "file": SimpleUploadedFile("m.csv", GOOD_CSV.encode(), "text/csv")
    },
    "customers:import_mapping": lambda w, mine: {
        **{f"col_{i}": key for i, key in enumerate(w.import_job.params["mapping"])},
        "policy": "update",
    },
    "customers:export": lambda w, mine: {"format": "csv"},
    "interactions:log": _interaction_form,
    "interactions:edit": _interaction_form,
    "interactions:export": lambda w, mine: {"format": "csv"},
    "interactions:outcomes": lambda w, mine: {"name": "Matrix outcome"},
    "interactions:import": lambda w, mine: {
        "file": SimpleUploadedFile("i.csv", INTERACTIONS_CSV.encode(), "text/csv")
    },
    "interactions:import_job": lambda w, mine: {
        "col_0": "customer_email",
        "col_1": "occurred_at",
        "col_2": "channel",
    },
    "interactions:outcome_change": lambda w, mine: {"action": "deactivate"},
    "loyalty:opening_import": lambda w, mine: {
        "file": SimpleUploadedFile("o.csv", OPENING_CSV.encode(), "text/csv")
    },
    "loyalty:opening_import_job": lambda w, mine: {"col_0": "customer_email", "col_1": "points"},
    "segmentation:builder": lambda w, mine: _segment_form("Matrix made"),
    "segmentation:builder_edit": lambda w, mine: _segment_form("Matrix edited"),
    "segmentation:builder_refresh": lambda w, mine: {**_segment_form("x"), "action": "add_condition:0"},
    "segmentation:builder_preview": lambda w, mine: _segment_form("x"),
    "segmentation:settings": lambda w, mine: _settings_form(w),
    "followups:snooze": lambda w, mine: {"hours": "24"},
    "followups:reschedule": lambda w, mine: {"due_at": _tomorrow_input()},
    "followups:reassign": lambda w, mine: {"assignee": w.users["sales"].pk},
    "followups:create": lambda w, mine: {"title": "Matrix call", "due_at": _tomorrow_input()},
    "followups:bulk_new": lambda w, mine: {
        "ids": [w.customer[mine].pk],
        "confirm": "1",
        "title": "Matrix bulk",
        "due_at": _tomorrow_input(),
    },
    "followups:rules": lambda w, mine: _rule_form("Matrix new rule"),
    "followups:rule_edit": lambda w, mine: _rule_form("Matrix renamed rule"),
    "segmentation:alerts_bulk": lambda w, mine: {"action": "acknowledge", "alert": [w.alert[mine].pk]},
    "loyalty:member_adjust": lambda w, mine: {"points": "10", "reason": "matrix"},
    "loyalty:settings": lambda w, mine: _programme_form(),
    "loyalty:rewards:reward_new": lambda w, mine: _reward_form("Matrix new reward"),
    "loyalty:rewards:reward_edit": lambda w, mine: _reward_form("Matrix renamed reward"),
    "loyalty:rewards:redeem_confirm": lambda w, mine: {"request_key": f"matrix-{next(_matrix_keys)}"},
    "loyalty:rewards:counter": lambda w, mine: {"code": w.fresh_voucher_code(w)},
    "loyalty:referrals:record": lambda w, mine: {"code": w.referral_code},
    "loyalty:referrals:settings": lambda w, mine: {
        "is_active": "on",
        "referrer_bonus": "200",
        "referee_bonus": "100",
    },
    "referral_link:join": lambda w, mine: {
        "name": "Matrix friend",
        "phone": f"+86139{next(_matrix_keys):08d}",
    },
    "loyalty:tier_new": lambda w, mine: {
        "name": "Matrix new",
        "rank": "7",
        "threshold": "10",
        "multiplier": "1",
    },
    "loyalty:tier_edit": lambda w, mine: {
        "name": "Renamed",
        "rank": "0",
        "threshold": "0",
        "multiplier": "1.5",
    },
    "service:bulk_assign": lambda w, mine: {"ids": [w.ticket[mine].pk], "assignee": w.users["sales"].pk},
    "service:ticket_create": lambda w, mine: {
        "subject": "Matrix ticket",
        "email": "matrix-new@t.test",
        "channel": "phone",
        "priority": "normal",
    },
    "service:ticket_reply": lambda w, mine: {"reply-body": "Thanks for waiting"},
    "service:ticket_note": lambda w, mine: {"note-body": "Internal"},
    "service:ticket_status": lambda w, mine: {"status": "waiting"},
    "service:ticket_assign": lambda w, mine: {"assignee": w.users["sales"].pk},
    "service:ticket_update": lambda w, mine: {"priority": "high"},
    "service:settings": lambda w, mine: {"section": "category", "category-name": "Matrix new category"},
    "service:category_edit": lambda w, mine: {"name": "Renamed category", "position": 1, "is_active": "on"},
    "service:team_edit": lambda w, mine: {"name": "Renamed team"},
    "service:policy_edit": lambda w, mine: {
        "priority": "low",
        "first_response_minutes": 30,
        "resolution_minutes": 90,
    },
    "service:contact": _contact_form,
    "surveys:settings": lambda w, mine: _survey_template_form("Matrix survey"),
    "surveys:template_edit": lambda w, mine: _survey_template_form("Matrix renamed survey"),
    "surveys:bulk_send": lambda w, mine: {"template": w.survey_template.pk, "segment": w.segment[False].pk},
    "surveys:answer": lambda w, mine: {"score": "9", "comment": "Matrix"},
}


def _survey_template_form(name):
    return {
        "name": name,
        "kind": "nps",
        "question_en": "Recommend us?",
        "question_zh": "推荐我们吗？",
        "is_active": "on",
        "expires_days": "14",
    }


def _tomorrow_input() -> str:
    return (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")


def _rule_form(name):
    return {
        "name": name,
        "trigger": "customer_created",
        "delay_days": "2",
        "title": "Welcome",
        "is_active": "on",
    }


def _programme_form():
    from loyalty.forms import ProgrammeForm
    from loyalty.services import programme_get

    form = ProgrammeForm(instance=programme_get())
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False or value == []:
            continue
        data[name] = "on" if value is True else value
    return data


def _client(user, tenant) -> Client:
    client = Client(HTTP_HOST=tenant_host(tenant))
    if user is not None:
        with schema_context(tenant.schema_name):
            client.force_login(user)
    return client


def _request(client, method, url, data):
    """One request in a savepoint that is rolled back: a POST never changes what the next cell sees."""
    with transaction.atomic():
        response = client.post(url, data) if method == "post" else client.get(url)
        transaction.set_rollback(True)
    return response


def _check(response, expected, actor) -> str | None:
    actual = response.status_code
    if expected == LOGIN:
        location = response.get("Location", "")
        if actual != 302 or not location.startswith("/accounts/login/"):
            return f"{actor}: expected a redirect to the sign-in page, got {actual} {location}"
        return None
    if actual != expected:
        form = (getattr(response, "context", None) or {}).get("form")
        errors = f" {form.errors.as_json()}" if form is not None and form.is_bound else ""
        return f"{actor}: expected {expected}, got {actual}{errors}"
    return None


@pytest.mark.parametrize("name", _selected(TENANT_URLCONF, TENANT_URLS))
def test_tenant_access_matrix(name, world, tenant, tenant_b, users):
    row = matrix.TENANT.get(name)
    assert row is not None, f"{name!r} has no row in tests/crm/access_matrix.py"
    with schema_context(tenant_b.schema_name):
        from crm.accounts.models import User

        foreign_admin = User.objects.get(email=ROLE_EMAILS["admin"].format(slug=tenant_b.slug))
        foreign = Client(HTTP_HOST=tenant_host(tenant_b))
        foreign.force_login(foreign_admin)
        foreign.defaults["HTTP_HOST"] = tenant_host(tenant)  # beta's session cookie, alpha's site
    connection.set_tenant(tenant)
    clients = {
        ANON: Client(HTTP_HOST=tenant_host(tenant)),
        OWN: _client(users["sales"], tenant),
        "other": _client(users["sales"], tenant),
        "manager": _client(users["manager"], tenant),
        "admin": _client(users["admin"], tenant),
        FOREIGN: foreign,
    }
    problems = []
    for method in ("get", "post"):
        for actor, expected in getattr(row, method).items():
            mine = actor == OWN
            kwargs = KWARGS[name](world, mine) if name in KWARGS else None
            url = reverse(name, kwargs=kwargs, urlconf=TENANT_URLCONF)
            data = POST_DATA[name](world, mine) if method == "post" and name in POST_DATA else BROWSER_POST
            problem = _check(_request(clients[actor], method, url, data), expected, actor)
            if problem:
                problems.append(f"{method.upper()} {url} {problem}")
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


# --- public site -----------------------------------------------------------------------------------

PUBLIC_KWARGS = {
    f"tenancy:{name}": (lambda w: {"tenant_id": w.tenant.pk})
    for name in (
        "detail",
        "edit",
        "resend_invitation",
        "progress",
        "suspend",
        "reactivate",
        "retry",
        "delete",
    )
}
PUBLIC_POST_DATA = {
    "set_language": lambda w: {"language": "en", "next": "/"},
    "accounts:login": lambda w: {"username": PLATFORM_ADMIN_EMAIL, "password": PASSWORD},
    "tenancy:create": lambda w: {
        "name": "Matrix Co",
        "slug": "matrixco",
        "time_zone": "Asia/Shanghai",
        "currency": "CNY",
        "default_language": "en",
        "admin_email": "boss@matrixco.test",
    },
}


@pytest.mark.parametrize("name", _selected(PUBLIC_URLCONF, PUBLIC_URLS))
def test_public_access_matrix(name, tenant_b, tenant_a, platform_admin, settings):
    row = matrix.PUBLIC.get(name)
    assert row is not None, f"{name!r} has no row in tests/crm/access_matrix.py"
    w = SimpleNamespace(tenant=tenant_b)
    tenant_admin = _client(
        _tenant_user(tenant_a, "admin"),
        tenant_a,
    )
    tenant_admin.defaults["HTTP_HOST"] = settings.BASE_DOMAIN  # alpha's session cookie, the public site
    connection.set_schema_to_public()
    operator = Client(HTTP_HOST=settings.BASE_DOMAIN)
    operator.force_login(platform_admin)
    clients = {ANON: Client(HTTP_HOST=settings.BASE_DOMAIN), OPERATOR: operator, TENANT_ADMIN: tenant_admin}
    problems = []
    for method in ("get", "post"):
        for actor, expected in getattr(row, method).items():
            kwargs = PUBLIC_KWARGS[name](w) if name in PUBLIC_KWARGS else None
            url = reverse(name, kwargs=kwargs, urlconf=PUBLIC_URLCONF)
            data = (
                PUBLIC_POST_DATA[name](w) if method == "post" and name in PUBLIC_POST_DATA else BROWSER_POST
            )
            connection.set_schema_to_public()
            problem = _check(_request(clients[actor], method, url, data), expected, actor)
            if problem:
                problems.append(f"{method.upper()} {url} {problem}")
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def _tenant_user(tenant: Tenant, key: str):
    from crm.accounts.models import User

    with schema_context(tenant.schema_name):
        return User.objects.get(email=ROLE_EMAILS[key].format(slug=tenant.slug))


# --- a record outside the user's visibility answers like a missing one ---------------------------

MISSING_ID = 2_000_000_000


def _scoped_rows(world) -> list[str]:
    """Routes about one record whose "own" and "other" cells name different records."""
    return [
        name
        for name in TENANT_URLS
        if name in KWARGS and KWARGS[name](world, True) != KWARGS[name](world, False)
    ]


def test_no_route_answers_403_for_another_users_record(world):
    """The class behind issue 15's share route: a sales user on another rep's record gets 404 on every
    route (403 would say "it exists, you may not"), whatever the role the route asks for."""
    refusing = [
        f"{name} {method.upper()}"
        for name in _scoped_rows(world)
        for method in ("get", "post")
        if getattr(matrix.TENANT[name], method)[matrix.OTHER] == 403
    ]
    assert not refusing, f"403 for another user's record (should be 404): {refusing}"


def test_another_users_record_answers_like_a_missing_one(world, tenant, users):
    """Live: for every route about one record and every method, the sales user gets the same status
    for sales2's record as for an id that does not exist."""
    connection.set_tenant(tenant)
    client = _client(users["sales"], tenant)
    problems = []
    for name in _scoped_rows(world):
        other = KWARGS[name](world, False)
        missing = {key: MISSING_ID if isinstance(value, int) else value for key, value in other.items()}
        for method in ("get", "post"):
            data = POST_DATA[name](world, False) if method == "post" and name in POST_DATA else BROWSER_POST
            urls = [reverse(name, kwargs=kwargs, urlconf=TENANT_URLCONF) for kwargs in (other, missing)]
            theirs, absent = (_request(client, method, url, data).status_code for url in urls)
            if theirs != absent or theirs == 403:
                problems.append(f"{method.upper()} {name}: another's record {theirs}, missing {absent}")
    assert not problems, "\n  ".join(problems)


# --- the form renderer ---------------------------------------------------------------------------------

_CSRF = re.compile(r"\b[A-Za-z0-9]{64}\b")  # a CSRF token, masked anew for every response
# made anew for every page: a two-factor key and its QR code, a redemption's idempotency key
_PER_REQUEST = re.compile(
    r'<svg[^>]*>.*?</svg>|data-secret="[^"]*"|<code[^>]*>[A-Z2-7 ]{16,}</code>'
    r'|name="request_key" value="[^"]*"',
    re.S,
)


def _page_text(response) -> str:
    if response.status_code != 200 or not response.get("Content-Type", "").startswith("text/html"):
        return str(response.status_code)
    text = _CSRF.sub("…", response.content.decode(errors="replace"))
    return _PER_REQUEST.sub("…", text)


@pytest.mark.parametrize("name", _selected(TENANT_URLCONF, TENANT_URLS))
def test_every_page_shows_its_fields_as_djangos_own_renderer_does(name, world, tenant, users, settings):
    """crm/formrender.py writes Django's input and select templates in Python. Every page of the site,
    as the manager and as the admin, read (GET) and sent back with no data (POST: a form shows its
    errors), is the same text with Django's own form renderer."""
    connection.set_tenant(tenant)
    clients = {role: _client(users[role], tenant) for role in ("manager", "admin")}
    kwargs = KWARGS[name](world, False) if name in KWARGS else None
    url = reverse(name, kwargs=kwargs, urlconf=TENANT_URLCONF)
    differ = []
    for role, client in clients.items():
        for method in ("get", "post"):
            settings.FORM_RENDERER = "crm.formrender.FastWidgets"
            ours = _page_text(_request(client, method, url, BROWSER_POST))
            settings.FORM_RENDERER = "django.forms.renderers.DjangoTemplates"
            djangos = _page_text(_request(client, method, url, BROWSER_POST))
            if ours != djangos:
                pairs = zip(ours + "\0", djangos + "\0", strict=False)
                at = next(i for i, (a, b) in enumerate(pairs) if a != b)
                near = slice(max(at - 80, 0), at + 80)
                differ.append(f"{role} {method.upper()} {url}: {ours[near]!r}, Django's {djangos[near]!r}")
    assert not differ, "\n".join(differ)
