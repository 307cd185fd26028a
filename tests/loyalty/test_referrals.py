"""Referrals: codes, recording (staff and link), refusals, the bonus once after the earning sweep,
the ambassador report and the tenant boundary."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_tenants.utils import schema_context

from loyalty import services as loyalty_services
from loyalty.models import PointsEntry
from loyalty.referrals import services
from loyalty.referrals.models import Referral, ReferralCode, ReferralSettings
from loyalty.referrals.selectors import ambassadors, referees_of

from .conftest import buy, member_with_balance


@pytest.fixture(autouse=True)
def _english(users):
    for user in users.values():
        type(user).objects.filter(pk=user.pk).update(language="en")


@pytest.fixture
def bonuses(programme):
    ReferralSettings.objects.update_or_create(pk=1, defaults={"referrer_bonus": 200, "referee_bonus": 100})


def _member(**fields):
    return member_with_balance(0, **fields)


def test_a_code_is_made_once_and_looked_up_in_any_case(programme):
    member = _member()
    code = services.referral_code_for(member)
    assert services.referral_code_for(member) == code and len(code) == 8
    assert ReferralCode.objects.count() == 1
    other = _member(phone="", email="")
    referral = services.referral_record(actor=None, referee=other, code=f" {code.lower()} ")
    assert referral.referrer_id == member.pk


@pytest.mark.parametrize(
    ("referee_fields", "message"),
    [
        ({"phone": "+8613900000001", "email": "x@a.test"}, "same phone or e-mail"),
        ({"phone": "+8613900000002", "email": "AMBASSADOR@A.TEST"}, "same phone or e-mail"),
    ],
)
def test_the_same_person_cannot_refer_themselves(programme, referee_fields, message):
    ambassador = _member(phone="+8613900000001", email="ambassador@a.test")
    code = services.referral_code_for(ambassador)
    referee = _member(**referee_fields)
    with pytest.raises(ValidationError, match=message):
        services.referral_record(actor=None, referee=referee, code=code)
    assert not Referral.objects.exists()


def test_refusals_write_nothing(programme, sales_user):
    ambassador = _member()
    code = services.referral_code_for(ambassador)
    with pytest.raises(ValidationError, match="cannot refer themselves"):
        services.referral_record(actor=None, referee=ambassador, code=code)
    with pytest.raises(ValidationError, match="No member has this referral code"):
        services.referral_record(actor=None, referee=_member(), code="NOPE2345")
    buyer = _member()
    buy(buyer.customer, "50.00", days_ago=3)
    with pytest.raises(ValidationError, match="already bought"):
        services.referral_record(actor=None, referee=buyer, code=code)
    referee = _member()
    services.referral_record(actor=None, referee=referee, code=code)
    with pytest.raises(ValidationError, match="already referred"):
        services.referral_record(actor=None, referee=referee, code=services.referral_code_for(_member()))
    assert Referral.objects.count() == 1


def test_the_first_paid_order_credits_both_once_through_the_sweep(bonuses):
    ambassador = _member()
    referee = _member()
    services.referral_record(actor=None, referee=referee, code=services.referral_code_for(ambassador))
    loyalty_services.points_earn_for_orders()
    assert not PointsEntry.objects.filter(source_key__startswith="referral:").exists()  # no order yet
    buy(referee.customer, "80.00")
    loyalty_services.points_earn_for_orders(customer_ids=[referee.customer_id])
    loyalty_services.points_earn_for_orders()  # a re-run
    buy(referee.customer, "30.00")  # a second order
    loyalty_services.points_earn_for_orders()
    bonuses_written = dict(
        PointsEntry.objects.filter(kind="bonus", reason="referral").values_list("member_id", "points")
    )
    assert bonuses_written == {ambassador.pk: 200, referee.pk: 100}
    referral = Referral.objects.get()
    assert referral.rewarded_at and (referral.referrer_points, referral.referee_points) == (200, 100)
    assert loyalty_services.member_balances_check() == []


def test_a_reimport_of_the_same_orders_earns_no_second_bonus(bonuses):
    ambassador, referee = _member(), _member()
    referral = services.referral_record(
        actor=None, referee=referee, code=services.referral_code_for(ambassador)
    )
    buy(referee.customer, "80.00")
    assert services.referral_bonuses_award() == 1
    # a lost "rewarded" mark (e.g. a crash between the credit and the update) still credits nothing twice
    Referral.objects.filter(pk=referral.pk).update(rewarded_at=None)
    services.referral_bonuses_award()
    assert PointsEntry.objects.filter(reason="referral").count() == 2


def test_ambassador_report_counts_referrals_and_revenue_in_one_query(bonuses):
    top, second = _member(), _member()
    for index in range(3):
        referee = _member()
        services.referral_record(actor=None, referee=referee, code=services.referral_code_for(top))
        buy(referee.customer, f"{100 * (index + 1)}.00")
    referee = _member()
    services.referral_record(actor=None, referee=referee, code=services.referral_code_for(second))
    with CaptureQueriesContext(connection) as queries:
        rows = ambassadors()
    assert len(queries) == 2  # the aggregate, then the members
    assert [(row.member.pk, row.referrals, row.revenue) for row in rows] == [
        (top.pk, 3, Decimal("600.00")),
        (second.pk, 1, Decimal("0")),
    ]
    assert sorted(row.revenue for row in referees_of(member=top)) == [
        Decimal("100.00"),
        Decimal("200.00"),
        Decimal("300.00"),
    ]


def test_the_link_signs_up_a_new_member_and_records_the_referral(programme, anon_client, sales_user):
    ambassador = _member(owner=sales_user)
    code = services.referral_code_for(ambassador)
    url = reverse("referral_link:join", args=[code])
    page = anon_client.get(url)
    assert page.status_code == 200 and ambassador.customer.name not in page.content.decode()
    done = anon_client.post(url, {"name": "新朋友", "phone": "139 0000 7777", "email": ""})
    assert done.status_code == 200, done.content.decode()[-2000:]
    referral = Referral.objects.get()
    assert referral.channel == "link" and referral.referrer_id == ambassador.pk
    assert referral.referee.customer.phone == "+8613900007777"
    assert referral.referee.customer.owner == sales_user
    again = anon_client.post(url, {"name": "Again", "phone": "+8613900007777"})
    assert again.status_code == 400 and Referral.objects.count() == 1
    assert anon_client.get(reverse("referral_link:join", args=["NOPE2345"])).status_code == 404


def test_staff_record_a_referral_on_the_member_page(programme, sales_client, sales_user):
    ambassador = _member()
    referee = _member(owner=sales_user)
    code = services.referral_code_for(ambassador)
    response = sales_client.post(reverse("loyalty:referrals:record", args=[referee.pk]), {"code": code})
    assert response.status_code == 302 and Referral.objects.filter(referee=referee).exists()
    page = sales_client.get(reverse("loyalty:member", args=[referee.pk])).content.decode()
    assert "Referred by" in page
    refused = sales_client.post(
        reverse("loyalty:referrals:record", args=[referee.pk]), {"code": code}, follow=True
    )
    assert "already referred" in refused.content.decode()


def test_codes_and_referrals_never_cross_tenants(programme, tenant, tenant_b):
    ambassador = _member()
    code = services.referral_code_for(ambassador)
    with schema_context(tenant_b.schema_name):
        assert not ReferralCode.objects.filter(code=code).exists()
    connection.set_tenant(tenant)
    assert ReferralCode.objects.filter(code=code).exists()


def test_merge_moves_vouchers_and_referrals_and_undo_moves_them_back(programme, admin_user):
    from customers.dedupe.services import customer_merge, customer_merge_undo
    from loyalty.rewards.models import Reward, Voucher
    from loyalty.rewards.services import voucher_issue

    survivor_member = _member(name="Same Person")
    merged_member = _member(name="Same Person")
    referee = _member()
    services.referral_record(actor=None, referee=referee, code=services.referral_code_for(merged_member))
    loyalty_services.points_adjust(actor=admin_user, member=merged_member, points=300, reason="t")
    voucher = voucher_issue(
        actor=None,
        member=merged_member,
        reward=Reward.objects.create(name="Mug", points_cost=100, voucher_days=5),
    )
    customer_merge(actor=admin_user, survivor=survivor_member.customer, merged=merged_member.customer)
    assert Voucher.objects.get(pk=voucher.pk).member_id == survivor_member.pk
    assert Referral.objects.get().referrer_id == survivor_member.pk
    merged_member.customer.refresh_from_db()
    customer_merge_undo(actor=admin_user, merged=merged_member.customer)
    assert Voucher.objects.get(pk=voucher.pk).member_id == merged_member.pk
    assert Referral.objects.get().referrer_id == merged_member.pk


def test_timeline_shows_vouchers_and_referrals(programme, sales_client, sales_user):
    from loyalty.rewards.models import Reward
    from loyalty.rewards.services import voucher_cancel, voucher_issue, voucher_use

    ambassador = _member(owner=sales_user, name="Amy Ambassador")
    referee = _member(owner=sales_user, name="Ned Newcomer")
    services.referral_record(actor=sales_user, referee=referee, code=services.referral_code_for(ambassador))
    loyalty_services.points_adjust(actor=sales_user, member=ambassador, points=300, reason="t")
    mug = Reward.objects.create(name="Mug", points_cost=100, voucher_days=5)
    first = voucher_issue(actor=sales_user, member=ambassador, reward=mug)
    voucher_use(actor=sales_user, code=first.code)
    second = voucher_issue(actor=sales_user, member=ambassador, reward=mug)
    voucher_cancel(actor=sales_user, voucher=second)
    page = sales_client.get(reverse("customers:timeline", args=[ambassador.customer_id])).content.decode()
    assert "Referred Ned Newcomer" in page
    assert page.count("Voucher issued: Mug") == 2 and "Voucher used: Mug" in page
    assert "Voucher cancelled: Mug (100 points returned)" in page
    other = sales_client.get(reverse("customers:timeline", args=[referee.customer_id])).content.decode()
    assert "Referred by Amy Ambassador" in other
    panel = sales_client.get(reverse("customers:detail", args=[referee.customer_id])).content.decode()
    assert "Referred by Amy Ambassador" in panel and "Referred 0 people" in panel  # the referral panel
    panel = sales_client.get(reverse("customers:detail", args=[ambassador.customer_id])).content.decode()
    assert "Referred by" not in panel and "Referred 1 person" in panel


def test_referees_who_never_bought_do_not_hold_back_the_others(bonuses, monkeypatch):
    monkeypatch.setattr(services, "AWARD_BATCH", 2)
    ambassador = _member()
    code = services.referral_code_for(ambassador)
    referees = [_member() for _i in range(5)]
    for referee in referees:
        services.referral_record(actor=None, referee=referee, code=code)
    for referee in referees[3:]:  # only the last two bought
        buy(referee.customer, "20.00")
    assert services.referral_bonuses_award() == 2
    ambassador.refresh_from_db()
    assert ambassador.balance == 400
    entries = list(
        PointsEntry.objects.filter(member=ambassador, reason="referral")
        .order_by("id")
        .values_list("balance_after", flat=True)
    )
    assert entries == [200, 400]  # running balances within one batch
    assert loyalty_services.member_balances_check() == []


def test_the_link_page_ignores_bots_and_limits_sign_ups_per_address(programme, anon_client, settings):
    from loyalty.referrals import views

    code = services.referral_code_for(_member())
    url = reverse("referral_link:join", args=[code])
    bot = anon_client.post(url, {"name": "Bot", "email": "bot@spam.test", "website": "http://spam"})
    assert bot.status_code == 200 and not Referral.objects.exists()
    for index in range(views.JOIN_LIMIT_PER_IP):
        anon_client.post(url, {"name": f"Friend {index}", "email": f"friend{index}@a.test"})
    assert Referral.objects.count() == views.JOIN_LIMIT_PER_IP
    refused = anon_client.post(url, {"name": "One more", "email": "more@a.test"})
    assert refused.status_code == 429 and Referral.objects.count() == views.JOIN_LIMIT_PER_IP
    empty = anon_client.post(url, {"name": "No contact"})
    assert empty.status_code in (400, 429) and Referral.objects.count() == views.JOIN_LIMIT_PER_IP


def test_purging_a_customer_from_the_bin_takes_their_vouchers_and_referrals(programme):
    from datetime import timedelta

    from django.utils import timezone

    from customers.models import Customer
    from customers.services import customers_purge_expired
    from loyalty.rewards.models import Reward, Voucher
    from loyalty.rewards.services import voucher_issue

    ambassador = member_with_balance(500)
    referee = _member()
    services.referral_record(actor=None, referee=referee, code=services.referral_code_for(ambassador))
    voucher_issue(actor=None, member=ambassador, reward=Reward.objects.create(name="Mug", points_cost=10))
    Customer.objects.filter(pk=ambassador.customer_id).update(deleted_at=timezone.now() - timedelta(days=40))
    customers_purge_expired()
    assert not Customer.objects.filter(pk=ambassador.customer_id).exists()
    assert not Voucher.objects.exists() and not Referral.objects.exists()
    assert Customer.objects.filter(pk=referee.customer_id).exists()
