"""Every service that changes data and records it in the audit log is all or nothing: when the audit
row cannot be written (the database refuses it: a trigger on the audit table), the change it would
record is undone too. One case per service, called by its public name with real arguments."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection
from django.urls import reverse
from django.utils import timezone

from crm.accounts import services as accounts
from crm.accounts.models import Invitation, User
from crm.audit.models import AuditEvent
from crm.notifications import services as notifications
from crm.notifications.models import NotificationPreference
from crm.tenancy import deletion as tenancy_deletion
from crm.tenancy import editing as tenancy_editing
from crm.tenancy import profile as tenancy_profile
from crm.tenancy import services as tenancy
from crm.tenancy.models import Tenant
from customers import services as customers
from customers.models import Customer, CustomFieldDefinition, Order, Tag
from customers.privacy import services as privacy
from customers.tags import services as tag_services
from segmentation import services as segmentation
from segmentation.models import ChurnAlert, Segment, SegmentationSettings
from tests.factories import CustomerFactory, OrderFactory

RULES = {"op": "and", "rules": [{"field": "city", "op": "eq", "value": "Shanghai"}]}
PASSWORD = "x-Long-pass-2026"


def _refuse_audit_rows() -> None:
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'the audit log refused the row'; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER refuse_audit BEFORE INSERT ON "{table}" '
            "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
        )


TENANT_MODELS = (
    Customer,
    Order,
    Tag,
    CustomFieldDefinition,
    User,
    Invitation,
    Segment,
    ChurnAlert,
    NotificationPreference,
)


def _state(models=TENANT_MODELS):
    state = {model.__name__: sorted(map(repr, model._base_manager.values())) for model in models}
    state["tags"] = sorted(Customer.tags.through.objects.values_list("customer_id", "tag_id"))
    state["shares"] = sorted(Customer.shared_with.through.objects.values_list("customer_id", "user_id"))
    state["settings"] = sorted(map(repr, SegmentationSettings.objects.values()))
    state["company"] = sorted(map(repr, Tenant.objects.values()))  # the profile's row (public table)
    return state


@pytest.fixture
def w(tenant, users):
    customer = CustomerFactory(owner=users["sales"])
    binned = CustomerFactory(owner=users["sales"], deleted_at=timezone.now())
    pair = [
        CustomerFactory(owner=users["sales"], name="Twin"),
        CustomerFactory(owner=users["sales"], name="Twin"),
    ]
    inactive = User.objects.create_user(
        email="gone@alpha.test", password=PASSWORD, role="sales", is_active=False
    )
    invitation = Invitation.objects.create(
        email="invitee@alpha.test", role="sales", invited_by=users["admin"]
    )
    segment = Segment.objects.create(name="Mine", rules=RULES, created_by=users["sales"])
    alert = ChurnAlert.objects.create(customer=customer, owner=users["sales"], reason="entered_at_risk")
    alert2 = ChurnAlert.objects.create(customer=pair[0], owner=users["sales"], reason="entered_at_risk")
    return {
        **users,
        "admin_client": _client(tenant, users["admin"]),
        "tenant": tenant,
        "customer": customer,
        "binned": binned,
        "pair": pair,
        "inactive": inactive,
        "invitation": invitation,
        "token": accounts.invitation_make_token(invitation=invitation),
        "order": OrderFactory(customer=customer, total=Decimal("100.00")),
        "field": CustomFieldDefinition.objects.create(key="level", label="Level", field_type="text"),
        "field2": CustomFieldDefinition.objects.create(key="shoe", label="Shoe size", field_type="text"),
        "segment": segment,
        "alert": alert,
        "alerts": [alert, alert2],
        "tag": Tag.objects.create(name="vip"),
        "tag2": Tag.objects.create(name="gold"),
        "binned_tag": Tag.objects.create(name="old", deleted_at=timezone.now()),
    }


TENANT_CASES = {
    "user_update_profile": lambda w: accounts.user_update_profile(
        actor=w["sales"], user=w["sales"], full_name="Renamed", language="en", time_zone="UTC"
    ),
    "user_change_role": lambda w: accounts.user_change_role(
        actor=w["admin"], user=w["sales2"], role="manager"
    ),
    "user_deactivate": lambda w: accounts.user_deactivate(actor=w["admin"], user=w["sales2"]),
    "user_reactivate": lambda w: accounts.user_reactivate(actor=w["admin"], user=w["inactive"]),
    "invitation_create": lambda w: accounts.invitation_create(
        actor=w["admin"], email="new@alpha.test", role="sales", tenant=w["tenant"]
    ),
    "invitation_resend": lambda w: accounts.invitation_resend(
        actor=w["admin"], invitation=w["invitation"], tenant=w["tenant"]
    ),
    "invitation_revoke": lambda w: accounts.invitation_revoke(actor=w["admin"], invitation=w["invitation"]),
    "invitation_accept": lambda w: accounts.invitation_accept(
        token=w["token"], full_name="Nina", password=PASSWORD
    ),
    "customer_create": lambda w: customers.customer_create(actor=w["sales"], name="New One", tags=[w["tag"]]),
    "customer_update": lambda w: customers.customer_update(
        actor=w["admin"], customer=w["customer"], data={"name": "Changed", "tags": [w["tag"]]}
    ),
    "customer_share": lambda w: customers.customer_share(
        actor=w["manager"], customer=w["customer"], users=[w["sales2"]]
    ),
    "customers_bulk_tag": lambda w: customers.customers_bulk_tag(
        actor=w["manager"], customer_ids=[w["customer"].pk, w["pair"][0].pk], tag=w["tag"]
    ),
    "customers_bulk_assign_owner": lambda w: customers.customers_bulk_assign_owner(
        actor=w["manager"], customer_ids=[w["customer"].pk, w["pair"][0].pk], owner=w["sales2"]
    ),
    "customer_delete": lambda w: customers.customer_delete(actor=w["admin"], customer=w["customer"]),
    "customers_bulk_delete": lambda w: customers.customers_bulk_delete(
        actor=w["manager"], customer_ids=[w["customer"].pk, w["pair"][0].pk]
    ),
    "customer_restore": lambda w: customers.customer_restore(actor=w["admin"], customer=w["binned"]),
    # the last step of an erasure is its audit row: the providers' and the record's blanking go back
    "customer_erase": lambda w: privacy.customer_erase(
        actor=w["admin"], customer=w["customer"], confirmation=privacy.ERASE_CONFIRMATION
    ),
    # two topics saved, then the audit row
    "preferences_update": lambda w: notifications.preferences_update(
        actor=w["sales"],
        user=w["sales"],
        choices={"followups.due": {"email": False}, "alerts.churn": {"email": False, "digest": False}},
    ),
    # the nightly purge: each batch's deletes and audit rows together
    "customers_purge_expired": lambda w: customers.customers_purge_expired(
        now=timezone.now() + timedelta(days=customers.BIN_RETENTION_DAYS + 1)
    ),
    "order_create": lambda w: customers.order_create(
        actor=w["admin"],
        customer=w["customer"],
        number="NEW-1",
        placed_at=timezone.now() - timedelta(days=1),
        lines=[{"product_name": "Tea", "unit_price": "12.00", "quantity": 2}],
    ),
    "order_refund": lambda w: customers.order_refund(
        actor=w["manager"], order=w["order"], amount=Decimal("10.00"), reason="broken"
    ),
    "custom_field_create": lambda w: customers.custom_field_create(
        actor=w["admin"], key="size", label="Size", field_type="text"
    ),
    "custom_field_update": lambda w: customers.custom_field_update(
        actor=w["admin"], definition=w["field"], data={"label": "Tier"}
    ),
    # both fields renumbered, then the audit row
    "custom_field_move": lambda w: customers.custom_field_move(
        actor=w["admin"], definition=w["field2"], direction="up"
    ),
    "settings_update": lambda w: segmentation.settings_update(actor=w["admin"], margin=Decimal("0.4")),
    "segment_create": lambda w: segmentation.segment_create(actor=w["sales"], name="Another", rules=RULES),
    "segment_update": lambda w: segmentation.segment_update(
        actor=w["sales"], segment=w["segment"], name="Renamed", rules=RULES
    ),
    "segment_delete": lambda w: segmentation.segment_delete(actor=w["sales"], segment=w["segment"]),
    "alert_acknowledge": lambda w: segmentation.alert_acknowledge(actor=w["sales"], alert=w["alert"]),
    # two alerts changed, then the first audit row
    "alert_acknowledge_many": lambda w: segmentation.alert_acknowledge_many(
        actor=w["sales"], alerts=w["alerts"]
    ),
    "alert_assign_many": lambda w: segmentation.alert_assign_many(
        actor=w["manager"], alerts=w["alerts"], owner=w["sales2"]
    ),
    "alert_dismiss": lambda w: segmentation.alert_dismiss(actor=w["sales"], alert=w["alert"]),
    "tag_update": lambda w: tag_services.tag_update(
        actor=w["manager"], tag=w["tag"], name="VIP", color="danger"
    ),
    "tag_merge": lambda w: tag_services.tag_merge(actor=w["manager"], source=w["tag"], target=w["tag2"]),
    "tag_delete": lambda w: tag_services.tag_delete(actor=w["manager"], tag=w["tag"]),
    "tag_restore": lambda w: tag_services.tag_restore(actor=w["manager"], tag=w["binned_tag"]),
    "tenant_update_profile": lambda w: tenancy_profile.tenant_update_profile(
        actor=w["admin"],
        tenant=w["tenant"],
        name="Renamed Co",
        time_zone="Europe/Berlin",
        currency="EUR",
        default_language="en",
    ),
    # through its page: the duplicates module is being moved
    "duplicate_dismiss": lambda w: w["admin_client"].post(
        reverse("customers:duplicate_dismiss", args=[w["pair"][0].pk, w["pair"][1].pk])
    ),
}


def _client(tenant, user):
    from django.test import Client

    from tests.conftest import tenant_host

    client = Client(HTTP_HOST=tenant_host(tenant))
    client.force_login(user)
    return client


@pytest.mark.parametrize("case", sorted(TENANT_CASES))
def test_a_refused_audit_row_undoes_the_change(case, w):
    SegmentationSettings.objects.get_or_create(pk=1)
    before = _state()
    _refuse_audit_rows()
    with pytest.raises(DatabaseError):
        TENANT_CASES[case](w)
    connection.set_tenant(w["tenant"])
    assert _state() == before


@pytest.fixture
def public(db):
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


PUBLIC_CASES = {
    "tenant_create": lambda admin, t: tenancy.tenant_create(
        actor=admin, name="Zeta", slug="zeta", admin_email="a@zeta.test"
    ),
    "tenant_open": lambda admin, t: tenancy.tenant_open(
        actor=admin, name="Eta", slug="eta", admin_email="a@eta.test"
    ),
    "tenant_suspend": lambda admin, t: tenancy.tenant_suspend(actor=admin, tenant=t["beta"]),
    "tenant_update": lambda admin, t: tenancy_editing.tenant_update(
        actor=admin, tenant=t["beta"], name="Beta Renamed", time_zone="Europe/Paris"
    ),
    "tenant_delete": lambda admin, t: tenancy_deletion.tenant_delete(
        actor=admin, tenant=t["beta"], confirm_slug=t["beta"].slug
    ),
    "tenant_reactivate": lambda admin, t: tenancy.tenant_reactivate(actor=admin, tenant=t["suspended"]),
    "tenant_retry_provisioning": lambda admin, t: tenancy.tenant_retry_provisioning(
        actor=admin, tenant=t["failed"]
    ),
}


@pytest.mark.parametrize("case", sorted(PUBLIC_CASES))
def test_a_refused_audit_row_undoes_the_platform_change(case, public, platform_admin, tenant_b):
    from crm.tenancy.models import Domain

    tenants = {
        "beta": tenant_b,
        "suspended": Tenant.objects.create(
            name="Paused", slug="paused", schema_name="paused", status="suspended"
        ),
        "failed": Tenant.objects.create(name="Broken", slug="broken", schema_name="broken", status="failed"),
    }
    before = (sorted(map(repr, Tenant.objects.values())), sorted(map(repr, Domain.objects.values())))
    _refuse_audit_rows()
    with pytest.raises(DatabaseError):
        PUBLIC_CASES[case](platform_admin, tenants)
    connection.set_schema_to_public()
    assert (sorted(map(repr, Tenant.objects.values())), sorted(map(repr, Domain.objects.values()))) == before


# --- two-factor sign-in and sessions ----------------------------------------------------------------


def _sign_in_state():
    from django.contrib.sessions.models import Session
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from crm.accounts.models import AccountSettings, UserSession

    models = (TOTPDevice, StaticDevice, StaticToken, UserSession, Session, AccountSettings)
    return _state(), {model.__name__: sorted(map(repr, model.objects.values())) for model in models}


@pytest.fixture
def sign_in(w):
    """The manager has an authenticator, recovery codes and two sessions; the sales user has an
    authenticator waiting to be confirmed."""
    from django.contrib.sessions.backends.db import SessionStore

    from crm.accounts.models import UserSession
    from tests.crm.test_two_factor import enrol

    device, codes = enrol(w["manager"])
    for _number in range(2):
        store = SessionStore()
        store.create()
        UserSession.objects.create(user=w["manager"], session_key=store.session_key)
    return {
        **w,
        "device": device,
        "recovery_codes": codes,
        "pending": accounts.two_factor_start_enrolment(user=w["sales"]),
    }


SIGN_IN_CASES = {
    "account_settings_update": lambda s: accounts.account_settings_update(
        actor=s["admin"], require_two_factor_for_admins=True
    ),
    "two_factor_confirm_enrolment": lambda s: accounts.two_factor_confirm_enrolment(
        actor=s["sales"], user=s["sales"], code=_code(s["pending"])
    ),
    # a recovery code is used up and its use audited
    "two_factor_verify": lambda s: accounts.two_factor_verify(user=s["manager"], code=s["recovery_codes"][0]),
    "two_factor_disable": lambda s: accounts.two_factor_disable(
        actor=s["manager"], user=s["manager"], code=_code(s["device"])
    ),
    "two_factor_new_recovery_codes": lambda s: accounts.two_factor_new_recovery_codes(
        actor=s["manager"], user=s["manager"], code=_code(s["device"])
    ),
    "user_end_other_sessions": lambda s: accounts.user_end_other_sessions(
        user=s["manager"], keep_session_key=None
    ),
}


def _code(device) -> str:
    from tests.crm.test_two_factor import code_for

    return code_for(device)


@pytest.mark.parametrize("case", sorted(SIGN_IN_CASES))
def test_a_refused_audit_row_undoes_the_sign_in_change(case, sign_in):
    before = _sign_in_state()
    _refuse_audit_rows()
    with pytest.raises(DatabaseError):
        SIGN_IN_CASES[case](sign_in)
    connection.set_tenant(sign_in["tenant"])
    assert _sign_in_state() == before


def test_user_session_end_ends_the_session_and_its_row_together(sign_in):
    """The session row is deleted before the user's row of it: when the second delete is refused,
    the session is back too (a user must not lose a session the page still lists)."""
    from crm.accounts.models import UserSession

    row = UserSession.objects.filter(user=sign_in["manager"]).first()
    before = _sign_in_state()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'the row may not be deleted'; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER refuse_delete BEFORE DELETE ON "{UserSession._meta.db_table}" '
            "FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
        )
    with pytest.raises(DatabaseError):
        accounts.user_session_end(user=sign_in["manager"], session_id=row.pk)
    assert _sign_in_state() == before
