"""The loyalty app's faults that the mutation tool plants (scripts/mutants.py), shown by real outcomes:

- its writes are all or nothing (tests/test_audit_fault.py for the other apps): when the audit row
  cannot be written (a trigger on the audit table refuses it), or a later row of the same service is
  refused by the database, what the service wrote before is undone too. The sweeps work in batches,
  one transaction each: a refused batch leaves nothing of itself and keeps the batches before it;
- the sweeps' big reads turn JIT off, which holds only in a transaction of their own;
- the services themselves refuse a role without the right and a member the actor cannot see.

Each case is named after the function it shows (the tool runs the cases of the function it changed)."""

import io
import random
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import tenant_context

from crm.audit.models import AuditEvent
from crm.errors import ApplicationError
from crm.jobs.models import BackgroundJob
from customers.models import Order
from loyalty import demo, imports
from loyalty import selectors as loyalty_selectors
from loyalty import services as loyalty
from loyalty.models import Member, PointsEntry, Programme, Tier, TierChange
from loyalty.referrals import services as referrals
from loyalty.referrals.models import Referral, ReferralCode, ReferralSettings
from loyalty.rewards import selectors as reward_selectors
from loyalty.rewards import services as rewards
from loyalty.rewards.models import Reward, Voucher
from tests.factories import CustomerFactory
from tests.test_audit_fault import TENANT_MODELS, _refuse_audit_rows, _state

from .conftest import buy, member_with_balance

LOYALTY_MODELS = (
    *TENANT_MODELS,
    Programme,
    Tier,
    Member,
    PointsEntry,
    TierChange,
    Reward,
    Reward.tiers.through,
    Voucher,
    Referral,
    ReferralCode,
    ReferralSettings,
)


def _loyalty_state():
    return _state(LOYALTY_MODELS)


def _refuse(model, event: str = "INSERT", when: str = "") -> None:
    """A trigger that makes the database refuse `event` on the model's table (only the rows matching
    `when`, a trigger WHEN condition on NEW, when given)."""
    table = model._meta.db_table
    name = f"refuse_{table}_{event.lower()}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION 'the database refused the {event} on {table}'; END $$"
        )
        condition = f"WHEN ({when}) " if when else ""
        cursor.execute(
            f'CREATE TRIGGER {name} BEFORE {event} ON "{table}" '
            f"FOR EACH ROW {condition}EXECUTE FUNCTION {name}()"
        )


@pytest.fixture
def lw(programme, tenant, users, settings, tmp_path):
    """A loyalty programme (four tiers, a sign-up bonus) with: a member with about 1,000 points and a
    referral code, a member to be referred, a referred member who has since bought (their bonuses
    due), a customer who is not a member yet, a reward in stock and a voucher issued for it."""
    settings.MEDIA_ROOT = tmp_path
    Programme.objects.filter(pk=programme.pk).update(signup_bonus=50, name="Club")
    rich = member_with_balance(1000, owner=users["sales"], name="Rich", email="rich@example.com")
    referee = member_with_balance(0, owner=users["sales"], name="Newcomer", email="new@example.com")
    buyer = member_with_balance(0, owner=users["sales"], name="Buyer", email="buyer@example.com")
    code = referrals.referral_code_for(rich)
    referrals.referral_settings_get()
    referrals.referral_record(actor=None, referee=buyer, code=code)
    buy(buyer.customer, "80.00")
    reward = Reward.objects.create(name="Mug", points_cost=100, stock=5, voucher_days=30)
    voucher = rewards.voucher_issue(actor=users["sales"], member=rich, reward=reward)
    rich.refresh_from_db()
    return {
        **users,
        "tenant": tenant,
        "rich": rich,
        "referee": referee,
        "buyer": buyer,
        "code": code,
        "customer": CustomerFactory(owner=users["sales"], name="Not Yet"),
        "reward": reward,
        "voucher": voucher,
        "tier": Tier.objects.get(rank=1),
    }


# --- roles and scopes checked by the services themselves (not only by their pages) --------------------

ROLE_CASES = {
    "programme_update": lambda w: loyalty.programme_update(actor=w["manager"], data={"name": "Mine"}),
    "tier_save": lambda w: loyalty.tier_save(
        actor=w["manager"], data={"name": "Platinum", "rank": 4, "threshold": Decimal("1")}
    ),
    "member_set_status": lambda w: loyalty.member_set_status(
        actor=w["sales"], member=w["rich"], status=Member.Status.CLOSED
    ),
    "reward_save": lambda w: rewards.reward_save(actor=w["sales"], data={"name": "Free", "points_cost": 1}),
    "reward_deactivate": lambda w: rewards.reward_deactivate(actor=w["sales"], reward=w["reward"]),
    "referral_settings_update": lambda w: referrals.referral_settings_update(
        actor=w["manager"], data={"referrer_bonus": 5000}
    ),
}

# The second sales rep cannot see the first one's customers.
SCOPE_CASES = {
    "member_enrol": lambda w: loyalty.member_enrol(actor=w["sales2"], customer=w["customer"]),
    "points_redeem-_check_visible": lambda w: loyalty.points_redeem(
        actor=w["sales2"], member=w["rich"], points=100
    ),
    "points_adjust-_check_visible": lambda w: loyalty.points_adjust(
        actor=w["sales2"], member=w["rich"], points=10, reason="Goodwill"
    ),
    "voucher_issue": lambda w: rewards.voucher_issue(actor=w["sales2"], member=w["rich"], reward=w["reward"]),
    "voucher_cancel": lambda w: rewards.voucher_cancel(actor=w["sales2"], voucher=w["voucher"]),
    "referral_record": lambda w: referrals.referral_record(
        actor=w["sales2"], referee=w["referee"], code=w["code"]
    ),
}


@pytest.mark.parametrize("case", sorted(ROLE_CASES))
def test_the_service_refuses_a_role_without_the_right(case, lw):
    before = _loyalty_state()
    with pytest.raises(PermissionDenied):
        ROLE_CASES[case](lw)
    assert _loyalty_state() == before


@pytest.mark.parametrize("case", sorted(SCOPE_CASES))
def test_the_service_refuses_a_member_the_actor_cannot_see(case, lw):
    before = _loyalty_state()
    with pytest.raises(PermissionDenied):
        SCOPE_CASES[case](lw)
    assert _loyalty_state() == before


def test_voucher_issue_refuses_a_member_the_actor_cannot_see_before_replaying_a_form(lw):
    """A repeated confirm form returns the voucher it issued (and its code) without spending again:
    only to someone who may see the member. Another rep replaying the form's key is refused."""
    issued = rewards.voucher_issue(
        actor=lw["sales"], member=lw["rich"], reward=lw["reward"], request_key="f-1"
    )
    again = rewards.voucher_issue(
        actor=lw["sales"], member=lw["rich"], reward=lw["reward"], request_key="f-1"
    )
    assert again == issued
    with pytest.raises(PermissionDenied):
        rewards.voucher_issue(actor=lw["sales2"], member=lw["rich"], reward=lw["reward"], request_key="f-1")


def test_members_and_vouchers_the_user_cannot_see_are_not_found(lw):
    assert lw["rich"] not in loyalty_selectors.member_queryset(lw["sales2"])
    assert loyalty_selectors.member_get_for_user(user=lw["sales"], member_id=lw["rich"].pk) == lw["rich"]
    with pytest.raises(Http404):
        loyalty_selectors.member_get_for_user(user=lw["sales2"], member_id=lw["rich"].pk)
    voucher = lw["voucher"]
    assert reward_selectors.voucher_get_for_user(user=lw["sales"], voucher_id=voucher.pk) == voucher
    assert voucher not in reward_selectors.voucher_queryset(lw["sales2"])
    with pytest.raises(Http404):
        reward_selectors.voucher_get_for_user(user=lw["sales2"], voucher_id=voucher.pk)


def test_adjustments_above_the_limit_need_a_manager(lw):
    """The programme's limit is 500 points: sales may adjust up to it, managers beyond."""
    assert loyalty.can_adjust(lw["sales"], 500) and loyalty.can_adjust(lw["sales"], -500)
    assert not loyalty.can_adjust(lw["sales"], 600) and not loyalty.can_adjust(lw["sales"], -600)
    assert loyalty.can_adjust(lw["manager"], 600)
    before, balance = _loyalty_state(), lw["rich"].balance
    with pytest.raises(ValidationError):
        loyalty.points_adjust(actor=lw["sales"], member=lw["rich"], points=600, reason="Too much")
    assert _loyalty_state() == before
    loyalty.points_adjust(actor=lw["manager"], member=lw["rich"], points=600, reason="Approved")
    lw["rich"].refresh_from_db()
    assert lw["rich"].balance == balance + 600


def test_only_a_manager_cancels_a_voucher_after_the_issuers_day(lw):
    """The issuer may cancel their own voucher for 24 hours; after that only a manager may."""
    voucher = lw["voucher"]
    Voucher.objects.filter(pk=voucher.pk).update(issued_at=timezone.now() - timedelta(hours=25))
    voucher.refresh_from_db()
    assert not rewards.can_cancel(lw["sales"], voucher) and rewards.can_cancel(lw["manager"], voucher)
    before = _loyalty_state()
    with pytest.raises(ApplicationError) as refused:
        rewards.voucher_cancel(actor=lw["sales"], voucher=voucher)
    assert refused.value.code == "cancel_forbidden"
    assert _loyalty_state() == before
    assert rewards.voucher_cancel(actor=lw["manager"], voucher=voucher).status == Voucher.Status.CANCELLED


def test_only_managers_see_withdrawn_rewards_in_the_catalogue(lw, client_for):
    Reward.objects.create(name="Withdrawn teapot", points_cost=300, is_active=False)
    url = reverse("loyalty:rewards:catalogue")
    assert "Withdrawn teapot" in client_for(lw["manager"]).get(url).content.decode()
    page = client_for(lw["sales"]).get(url)
    assert page.status_code == 200 and "Mug" in page.content.decode()
    assert "Withdrawn teapot" not in page.content.decode()


# Services whose last write is their audit row.
AUDITED_CASES = {
    "programme_update": lambda w: loyalty.programme_update(
        actor=w["admin"], data={"name": "Renamed club", "signup_bonus": 80}
    ),
    "tier_save": lambda w: loyalty.tier_save(
        actor=w["admin"],
        data={"name": "Platinum", "rank": 4, "threshold": Decimal("50000"), "multiplier": Decimal("3")},
    ),
    # the member, its history row and its sign-up bonus, then the audit row
    "member_enrol": lambda w: loyalty.member_enrol(actor=w["sales"], customer=w["customer"]),
    "member_set_status": lambda w: loyalty.member_set_status(
        actor=w["manager"], member=w["rich"], status=Member.Status.SUSPENDED
    ),
    "points_redeem": lambda w: loyalty.points_redeem(actor=w["sales"], member=w["rich"], points=300),
    "points_adjust": lambda w: loyalty.points_adjust(
        actor=w["manager"], member=w["rich"], points=-200, reason="Correction"
    ),
    # the reward, its tiers, then the audit row
    "reward_save": lambda w: rewards.reward_save(
        actor=w["manager"],
        data={"name": "Tea set", "points_cost": 400, "stock": 3, "voucher_days": 14, "is_active": True},
        tiers=[w["tier"]],
    ),
    "reward_deactivate": lambda w: rewards.reward_deactivate(actor=w["manager"], reward=w["reward"]),
    # the points and the stock back, the voucher cancelled, then the audit row
    "voucher_cancel": lambda w: rewards.voucher_cancel(actor=w["manager"], voucher=w["voucher"]),
    "voucher_use": lambda w: rewards.voucher_use(actor=w["sales"], code=w["voucher"].code),
    "referral_settings_update": lambda w: referrals.referral_settings_update(
        actor=w["admin"], data={"referrer_bonus": 300}
    ),
    "referral_record": lambda w: referrals.referral_record(
        actor=w["sales"], referee=w["referee"], code=w["code"]
    ),
    # both bonuses credited and the referral marked rewarded, then its audit row (_award_batch)
    "referral_bonuses_award-_award_batch": lambda w: referrals.referral_bonuses_award(
        customer_ids=[w["buyer"].customer_id]
    ),
}


@pytest.mark.parametrize("case", sorted(AUDITED_CASES))
def test_a_refused_audit_row_undoes_the_loyalty_change(case, lw):
    before = _loyalty_state()
    _refuse_audit_rows()
    with pytest.raises(DatabaseError):
        AUDITED_CASES[case](lw)
    connection.set_tenant(lw["tenant"])
    assert _loyalty_state() == before


def test_voucher_issue_gives_the_points_and_the_stock_back_when_its_audit_row_is_refused(lw):
    """A redemption spends the points (points_redeem, audited on its own), takes one item of stock,
    writes the voucher, then its own audit row: when only that last row is refused, the points and
    the stock are back."""
    before = _loyalty_state()
    _refuse(AuditEvent, when="NEW.action = 'loyalty.voucher_issued'")
    with pytest.raises(DatabaseError):
        rewards.voucher_issue(actor=lw["sales"], member=lw["rich"], reward=lw["reward"])
    assert _loyalty_state() == before


def test_referral_join_by_link_undoes_the_new_customer_when_the_referral_is_refused(lw):
    """The sign-up writes a customer and a membership (each audited), then the referral: when the
    referral row is refused, the customer and the membership are gone too."""
    before = _loyalty_state()
    _refuse(Referral)
    with pytest.raises(DatabaseError):
        referrals.referral_join_by_link(code=lw["code"], name="Linked Friend", email="friend@example.com")
    assert _loyalty_state() == before


def test_points_reverse_undoes_its_entry_when_the_balance_cannot_be_written(lw):
    """A reversal writes its ledger row and takes from the lots, then lowers the balance: when the
    member's row is refused, the entry and the lots are back as they were."""
    before = _loyalty_state()
    _refuse(Member, "UPDATE")
    with pytest.raises(DatabaseError):
        loyalty.points_reverse(
            actor=None, member=lw["rich"], points=150, source=PointsEntry.Source.REFUND, source_key="refund:1"
        )
    assert _loyalty_state() == before


def test_referral_code_for_tries_another_code_after_a_collision(lw):
    """The first random code collides with another member's (the unique index refuses it: played
    here by a trigger that raises the unique violation once); the member still gets a code, and the
    request goes on in its transaction."""
    member = lw["referee"]
    table = ReferralCode._meta.db_table
    with connection.cursor() as cursor:
        # a sequence is not rolled back with the refused insert: the second attempt goes through
        cursor.execute("CREATE SEQUENCE code_attempts")
        cursor.execute(
            "CREATE FUNCTION collide_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF nextval('code_attempts') = 1 THEN RAISE unique_violation USING MESSAGE = "
            f"'duplicate key value violates unique constraint on {table}.code'; END IF; RETURN NEW; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER collide_once BEFORE INSERT ON "{table}" '
            "FOR EACH ROW EXECUTE FUNCTION collide_once()"
        )
    code = referrals.referral_code_for(member)
    assert list(ReferralCode.objects.filter(member=member).values_list("code", flat=True)) == [code]
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM code_attempts")
        assert cursor.fetchone()[0] == 2


# --- the sweeps: one transaction per batch -----------------------------------------------------------


def test_points_earn_for_orders_keeps_the_earlier_batch_and_nothing_of_the_refused_one(lw):
    """Two new customers, one batch each: the second batch's members are enrolled first, then its
    earnings are refused; it leaves no member, history row or bonus behind, the first batch stays."""
    first, second = CustomerFactory(name="First buyer"), CustomerFactory(name="Second buyer")
    buy(first, "120.00")
    refused_order = buy(second, "90.00")
    before = (Member.objects.count(), PointsEntry.objects.count(), TierChange.objects.count())
    _refuse(PointsEntry, when=f"NEW.order_id = {refused_order.pk}")
    with pytest.raises(DatabaseError):
        loyalty.points_earn_for_orders(customer_ids=[first.pk, second.pk], batch_size=1)
    assert not Member.objects.filter(customer=second).exists()
    kept = Member.objects.get(customer=first)
    assert kept.balance == 50 + 120 and loyalty.member_balances_check() == []
    assert (
        Member.objects.exclude(pk=kept.pk).count(),
        PointsEntry.objects.exclude(member=kept).count(),
        TierChange.objects.exclude(member=kept).count(),
    ) == before


def test_points_reverse_for_orders_undoes_a_batch_whose_balances_are_refused(lw):
    """A refund reversal batch writes its entries and empties the lots, then lowers the balances:
    refused there, the batch leaves nothing."""
    customer = CustomerFactory(name="Refunded")
    order = buy(customer, "200.00")
    loyalty.points_earn_for_orders(customer_ids=[customer.pk])
    Order.objects.filter(pk=order.pk).update(
        refunded_total=Decimal("100.00"), status=Order.Status.PARTIALLY_REFUNDED
    )
    before = _loyalty_state()
    _refuse(Member, "UPDATE")
    with pytest.raises(DatabaseError):
        loyalty.points_reverse_for_orders(customer_ids=[customer.pk])
    assert _loyalty_state() == before


def test_points_expire_keeps_the_earlier_batch_and_nothing_of_the_refused_one(lw):
    """Two members with a lot due, one batch each: the second's expiry entry is refused; its lot and
    balance are as they were, the first member's expiry stays."""
    first = member_with_balance(300, name="First expiring")
    second = member_with_balance(200, name="Second expiring")
    yesterday = timezone.localdate() - timedelta(days=1)
    PointsEntry.objects.filter(member__in=[first, second]).update(expires_on=yesterday)
    second_before = (
        Member.objects.get(pk=second.pk).balance,
        sorted(map(repr, PointsEntry.objects.filter(member=second).values())),
    )
    _refuse(PointsEntry, when=f"NEW.kind = 'expire' AND NEW.member_id = {second.pk}")
    with pytest.raises(DatabaseError):
        loyalty.points_expire(batch_size=1)
    first.refresh_from_db()
    assert first.balance == 0 and not PointsEntry.objects.filter(member=first, remaining__gt=0).exists()
    assert PointsEntry.objects.filter(member=first, kind="expire").exists()
    assert (
        Member.objects.get(pk=second.pk).balance,
        sorted(map(repr, PointsEntry.objects.filter(member=second).values())),
    ) == second_before


# --- the opening-balance import and the demo -----------------------------------------------------------


def test_import_run_writes_no_opening_balance_when_its_audit_row_is_refused(lw):
    """The import's write (_import): members enrolled, opening lots, tiers, then the audit row; the
    audit refused, the job fails and no row of the file is written."""
    CustomerFactory(email="opening@example.com", name="Opening")
    csv = f"会员号,邮箱,积分,会员等级\n{lw['rich'].number},,1200,金卡\n,opening@example.com,300,\n"
    job = imports.import_upload(
        actor=lw["manager"], uploaded_file=SimpleUploadedFile("opening.csv", csv.encode("utf-8"))
    )
    job = imports.import_start(actor=lw["manager"], job=job, mapping=job.params["mapping"])
    imports.import_run(job_id=job.pk)
    job = imports.import_confirm(actor=lw["manager"], job=BackgroundJob.objects.get(pk=job.pk))
    before = _loyalty_state()
    _refuse_audit_rows()
    with pytest.raises(DatabaseError):
        imports.import_run(job_id=job.pk)
    assert _loyalty_state() == before
    assert BackgroundJob.objects.get(pk=job.pk).status == "failed"


def _loyalty_foreign_keys() -> set:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace "
            "AND conrelid::regclass::text LIKE 'loyalty_%%'"
        )
        return set(cursor.fetchall())


def test_demo_seed_in_bulk_mode_puts_the_foreign_keys_back_when_earning_fails(lw):
    """The demo (seed) earns with the ledger's foreign keys dropped from the bulk size on; when the
    earning fails, the keys are back and no member or entry of it is left."""
    buy(CustomerFactory(name="Demo buyer"), "150.00")
    keys = _loyalty_foreign_keys()
    counts = (Member.objects.count(), PointsEntry.objects.count(), TierChange.objects.count())
    _refuse(TierChange)
    with pytest.raises(DatabaseError):
        demo.seed(
            users=[lw["manager"]],
            customers=demo.BULK_MODE_MIN_CUSTOMERS,
            rng=random.Random(5),
            stdout=io.StringIO(),
        )
    assert _loyalty_foreign_keys() == keys and len(keys) >= 3
    assert (Member.objects.count(), PointsEntry.objects.count(), TierChange.objects.count()) == counts


# --- the sweeps' reads: JIT off, which needs their own transaction ---------------------------------------


# the call, and the start of the sweep's own statement (the one run with JIT off)
SWEEP_READS = {
    "_customers_with_earnings_due": (
        lambda: loyalty._customers_with_earnings_due(Programme()),
        "SELECT DISTINCT o.customer_id",
    ),
    "points_reverse_for_orders": (
        lambda: loyalty.points_reverse_for_orders(customer_ids=[]),
        "SELECT e.member_id, o.id",
    ),
    "points_expire": (lambda: loyalty.points_expire(today=date(2000, 1, 1)), "SELECT member_id, id FROM"),
    "tiers_evaluate": (lambda: loyalty.tiers_evaluate(), "WITH qualifying"),
}


@pytest.mark.parametrize("case", sorted(SWEEP_READS))
def test_the_sweeps_read_without_jit_in_their_own_transaction(case, committed_tenant, django_db_blocker):
    """The sweeps run in a Celery worker, outside any transaction. Their big statements turn JIT
    compilation off with SET LOCAL, which only holds inside a transaction: PostgreSQL ignores it
    with a warning otherwise. Here, in autocommit with JIT forced for every statement, the sweep's
    statement is not compiled and no warning comes back."""
    call, statement = SWEEP_READS[case]
    tenant = committed_tenant()
    notices: list = []
    with django_db_blocker.unblock(), tenant_context(tenant):
        Tier.objects.create(name="Classic", rank=0, threshold=Decimal("0"), multiplier=Decimal("1"))
        Programme.objects.get_or_create(pk=1)
        connection.ensure_connection()
        assert connection.get_autocommit() and not connection.in_atomic_block
        raw = connection.connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_jit_available()")
            jit_available = cursor.fetchone()[0]

        def keep(notice) -> None:  # a notice is only readable while its handler runs
            notices.append((notice.severity_nonlocalized, notice.message_primary or ""))

        raw.add_notice_handler(keep)
        try:
            with connection.cursor() as cursor:
                # every statement's plan comes back as a notice; JIT for every statement
                cursor.execute("LOAD 'auto_explain'")
                cursor.execute("SET auto_explain.log_min_duration = 0")
                cursor.execute("SET auto_explain.log_level = 'notice'")
                cursor.execute("SET jit_above_cost = 0")
            call()
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_class AS jit_control")  # compiled: JIT is on
        finally:
            raw.remove_notice_handler(keep)
            with connection.cursor() as cursor:
                cursor.execute("RESET ALL")  # the connection is used by the next tests
    assert not [notice for notice in notices if notice[0] == "WARNING"], notices
    plans = {
        key: [
            text
            for _severity, text in notices
            if "plan:" in text and f"Query Text: {start}" in " ".join(text.split())
        ]
        for key, start in (("sweep", statement), ("control", "SELECT count(*) FROM pg_class AS jit_control"))
    }
    assert len(plans["sweep"]) == 1 and len(plans["control"]) == 1, notices
    if jit_available:
        assert "JIT:" in plans["control"][0]
        assert "JIT:" not in plans["sweep"][0], plans["sweep"][0]


# --- roles checked by the services themselves ---------------------------------------------------------


def test_import_run_refuses_to_write_for_an_importer_who_lost_the_role(lw):
    """The opening import is written by a background job, later: a manager demoted to sales between
    the confirmation and the write gets a failed job, and no row of the file is written."""
    CustomerFactory(email="opening@example.com", name="Opening")
    csv = f"会员号,邮箱,积分\n{lw['rich'].number},,1200\n,opening@example.com,300\n"
    job = imports.import_upload(
        actor=lw["manager"], uploaded_file=SimpleUploadedFile("opening.csv", csv.encode("utf-8"))
    )
    job = imports.import_start(actor=lw["manager"], job=job, mapping=job.params["mapping"])
    imports.import_run(job_id=job.pk)
    job = imports.import_confirm(actor=lw["manager"], job=BackgroundJob.objects.get(pk=job.pk))
    before = _loyalty_state()
    type(lw["manager"]).objects.filter(pk=lw["manager"].pk).update(role="sales")
    imports.import_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.shown_message == "The user who started this import may no longer import."
    assert not PointsEntry.objects.filter(kind=PointsEntry.Kind.OPENING).exists()
    after = _loyalty_state()
    after["User"], before["User"] = [], []  # the demotion itself
    assert after == before
