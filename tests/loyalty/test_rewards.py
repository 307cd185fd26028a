"""Rewards and vouchers: the catalogue (managers), redemption at the counter in one transaction,
cancelling (points and stock back, once), marking used by code; bad input refused with nothing
written; two tenants' vouchers never cross."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.audit.models import AuditEvent
from crm.errors import ApplicationError
from loyalty import services as loyalty_services
from loyalty.models import Member, PointsEntry, Tier
from loyalty.rewards import services
from loyalty.rewards.models import Reward, Voucher

from .conftest import member_with_balance

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def _english(users):
    for user in users.values():
        type(user).objects.filter(pk=user.pk).update(language="en")


def reward(**fields) -> Reward:
    values = {"name": "Coffee mug", "points_cost": 100, "stock": None, "voucher_days": 30}
    values.update(fields)
    tiers = values.pop("tiers", [])
    item = Reward.objects.create(**values)
    item.tiers.set(tiers)
    return item


def _state(member):
    member.refresh_from_db()
    return (
        member.balance,
        PointsEntry.objects.filter(member=member).count(),
        Voucher.objects.count(),
        list(Reward.objects.order_by("pk").values_list("stock", flat=True)),
    )


# --- catalogue ----------------------------------------------------------------------------------


def test_managers_keep_the_catalogue_with_an_image_and_it_is_audited(
    programme, manager_user, sales_user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    image = SimpleUploadedFile("mug.png", PNG, "image/png")
    saved = services.reward_save(
        actor=manager_user,
        data={"name": " Tea  set ", "points_cost": 500, "stock": 3, "voucher_days": 14, "is_active": True},
        tiers=list(Tier.objects.filter(rank__gte=1)),
        image=image,
    )
    assert saved.name == "Tea set" and saved.image.name.startswith(f"{connection.schema_name}/rewards/")
    assert saved.tiers.count() == 3
    assert AuditEvent.objects.filter(action="loyalty.reward_created", target_id=str(saved.pk)).exists()
    with pytest.raises(PermissionDenied):
        services.reward_save(actor=sales_user, data={"name": "x", "points_cost": 1})
    services.reward_deactivate(actor=manager_user, reward=saved)
    saved.refresh_from_db()
    assert not saved.is_active
    assert AuditEvent.objects.filter(action="loyalty.reward_deactivated").count() == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("mug.exe", PNG, "cannot be used as an image"),
        ("mug.png", b"MZ not an image at all", "is not an image"),
        ("mug.png", PNG + b"\x00" * (3 * 1024 * 1024), "too large"),
    ],
)
def test_a_bad_image_is_refused_and_nothing_is_written(
    programme, manager_user, settings, tmp_path, name, content, message
):
    settings.MEDIA_ROOT = tmp_path
    with pytest.raises(ValidationError) as caught:
        services.reward_save(
            actor=manager_user,
            data={"name": "Mug", "points_cost": 10, "voucher_days": 30, "is_active": True},
            image=SimpleUploadedFile(name, content),
        )
    assert message in str(caught.value.message_dict["image"])
    assert not Reward.objects.exists()
    assert not any(tmp_path.rglob("*.*"))


def test_the_reward_form_bounds_cost_and_dates(programme, manager_client):
    response = manager_client.post(
        reverse("loyalty:rewards:reward_new"),
        {
            "name": "Mug",
            "points_cost": "0",
            "voucher_days": "30",
            "valid_from": "2026-05-02",
            "valid_until": "2026-05-01",
        },
    )
    assert response.status_code == 400
    assert "points_cost" in response.context["form"].errors
    response = manager_client.post(
        reverse("loyalty:rewards:reward_new"),
        {"name": "Mug", "points_cost": "99999999999999999999999", "voucher_days": "30"},
    )
    assert response.status_code == 400 and not Reward.objects.exists()


# --- redemption ---------------------------------------------------------------------------------


def test_a_redemption_issues_a_voucher_spends_points_and_stock_once(programme, sales_user):
    member = member_with_balance(250, owner=sales_user)
    mug = reward(stock=2)
    voucher = services.voucher_issue(actor=sales_user, member=member, reward=mug, request_key="k1")
    again = services.voucher_issue(actor=sales_user, member=member, reward=mug, request_key="k1")
    assert again.pk == voucher.pk  # a double click spends once
    member.refresh_from_db()
    mug.refresh_from_db()
    assert (member.balance, mug.stock, voucher.points, voucher.status) == (150, 1, 100, "issued")
    assert len(voucher.code) == 10 and set(voucher.code) <= set("ABCDEFGHJKMNPQRSTUVWXYZ23456789")
    entry = PointsEntry.objects.get(member=member, kind="redeem")
    assert (entry.source, entry.source_key, entry.points) == ("redemption", f"voucher:{voucher.code}", -100)
    assert voucher.expires_on == timezone.localdate() + timedelta(days=30)
    assert loyalty_services.member_balances_check() == []


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda m: reward(stock=0), "out of stock"),
        (lambda m: reward(valid_until=timezone.localdate() - timedelta(days=1)), "expired"),
        (lambda m: reward(valid_from=timezone.localdate() + timedelta(days=1)), "can be redeemed from"),
        (lambda m: reward(is_active=False), "no longer offered"),
        (lambda m: reward(tiers=list(Tier.objects.filter(rank=3))), "not offered to the member's tier"),
        (lambda m: reward(points_cost=1000), "Only 500 points are available"),
        (lambda m: reward(points_cost=1000, stock=3), "Only 500 points are available"),
    ],
)
def test_a_refused_redemption_writes_nothing(programme, sales_user, setup, message):
    member = member_with_balance(500, owner=sales_user)
    item = setup(member)
    before = _state(member)
    audits = AuditEvent.objects.count()
    with pytest.raises(ApplicationError) as caught:
        services.voucher_issue(actor=sales_user, member=member, reward=item, request_key="x")
    assert message in str(caught.value)
    assert _state(member) == before and AuditEvent.objects.count() == audits


def test_sales_cannot_redeem_for_another_reps_member(programme, sales_user, sales_user2):
    member = member_with_balance(500, owner=sales_user2)
    with pytest.raises(PermissionDenied):
        services.voucher_issue(actor=sales_user, member=member, reward=reward())
    assert not Voucher.objects.exists()


# --- cancel and use ----------------------------------------------------------------------------


def test_cancel_returns_points_and_stock_once(programme, sales_user, manager_user):
    member = member_with_balance(300, owner=sales_user)
    mug = reward(stock=1)
    voucher = services.voucher_issue(actor=sales_user, member=member, reward=mug)
    services.voucher_cancel(actor=sales_user, voucher=voucher)  # the issuer, within the limit
    member.refresh_from_db()
    mug.refresh_from_db()
    assert (member.balance, mug.stock) == (300, 1)
    back = PointsEntry.objects.get(member=member, source_key=f"voucher-cancel:{voucher.pk}")
    assert (back.kind, back.points, back.source) == ("adjust", 100, "redemption")
    before = _state(member)
    with pytest.raises(ApplicationError, match="cannot be cancelled"):
        services.voucher_cancel(actor=manager_user, voucher=voucher)
    assert _state(member) == before
    assert loyalty_services.member_balances_check() == []


def test_only_a_manager_cancels_after_the_issuers_window(programme, sales_user, manager_user):
    member = member_with_balance(300, owner=sales_user)
    voucher = services.voucher_issue(actor=sales_user, member=member, reward=reward())
    Voucher.objects.filter(pk=voucher.pk).update(issued_at=timezone.now() - timedelta(hours=25))
    with pytest.raises(ApplicationError, match="Only a manager"):
        services.voucher_cancel(actor=sales_user, voucher=voucher)
    assert Voucher.objects.get(pk=voucher.pk).status == "issued"
    services.voucher_cancel(actor=manager_user, voucher=voucher)
    assert Voucher.objects.get(pk=voucher.pk).status == "cancelled"


def test_use_by_code_once_and_not_after_expiry(programme, sales_user, sales_user2):
    member = member_with_balance(300, owner=sales_user)
    voucher = services.voucher_issue(actor=sales_user, member=member, reward=reward())
    typed = f" {voucher.display_code.lower()} "
    used = services.voucher_use(actor=sales_user2, code=typed)  # any rep at the counter
    assert used.status == "used" and used.used_by == sales_user2
    with pytest.raises(ValidationError, match="used"):
        services.voucher_use(actor=sales_user, code=voucher.code)
    with pytest.raises(ApplicationError, match="cannot be cancelled"):
        services.voucher_cancel(actor=None, voucher=voucher)
    late = services.voucher_issue(actor=sales_user, member=member, reward=reward(name="Bag"))
    Voucher.objects.filter(pk=late.pk).update(expires_on=timezone.localdate() - timedelta(days=1))
    with pytest.raises(ValidationError, match="expired"):
        services.voucher_use(actor=sales_user, code=late.code)
    assert Voucher.objects.get(pk=late.pk).status == "issued"
    assert services.vouchers_expire() == 1 and services.vouchers_expire() == 0


def test_vouchers_of_another_tenant_are_not_found(programme, tenant, tenant_b, sales_user):
    member = member_with_balance(300, owner=sales_user)
    voucher = services.voucher_issue(actor=sales_user, member=member, reward=reward())
    with schema_context(tenant_b.schema_name):
        with pytest.raises(ValidationError, match="No voucher has this code"):
            services.voucher_use(actor=None, code=voucher.code)
        assert not Voucher.objects.filter(code=voucher.code).exists()
    connection.set_tenant(tenant)
    assert Voucher.objects.get(pk=voucher.pk).status == "issued"


# --- pages ---------------------------------------------------------------------------------------


def test_three_clicks_from_the_customer_page(programme, sales_client, sales_user):
    member = member_with_balance(300, owner=sales_user)
    mug = reward()
    page = sales_client.get(reverse("customers:detail", args=[member.customer_id]))
    confirm_url = reverse("loyalty:rewards:redeem_confirm", args=[member.pk, mug.pk])
    assert confirm_url in page.content.decode()  # click 1: the reward in the panel
    confirm = sales_client.get(confirm_url)  # click 2: confirm
    key = confirm.context["form"].initial["request_key"]
    done = sales_client.post(confirm_url, {"request_key": key})  # click 3
    voucher = Voucher.objects.get()
    assert done.status_code == 302 and done["Location"] == reverse(
        "loyalty:rewards:voucher", args=[voucher.pk]
    )
    shown = sales_client.get(done["Location"]).content.decode()
    assert voucher.display_code in shown and "Coffee mug" in shown
    again = sales_client.post(confirm_url, {"request_key": key})
    assert again.status_code == 302 and Voucher.objects.count() == 1


def test_the_member_page_lists_rewards_and_vouchers_without_n_plus_one(programme, sales_client, sales_user):
    member = member_with_balance(5000, owner=sales_user)
    url = reverse("loyalty:member", args=[member.pk])

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert sales_client.get(url).status_code == 200
        return len(queries)

    reward()
    services.voucher_issue(actor=sales_user, member=member, reward=Reward.objects.get())
    count()  # the first request fills per-user caches
    few = count()
    for index in range(5):
        services.voucher_issue(actor=sales_user, member=member, reward=reward(name=f"R{index}"))
    assert count() == few


def test_a_refused_confirm_shows_the_reason(programme, sales_client, sales_user):
    member = member_with_balance(50, owner=sales_user)
    mug = reward()
    response = sales_client.post(
        reverse("loyalty:rewards:redeem_confirm", args=[member.pk, mug.pk]), {"request_key": "abc"}
    )
    assert response.status_code == 400
    assert "Only 50 points are available" in response.content.decode()
    assert not Voucher.objects.exists() and Member.objects.get(pk=member.pk).balance == 50


def test_the_counter_finds_and_marks_a_voucher(programme, sales_client, sales_user, sales_user2):
    member = member_with_balance(300, owner=sales_user2)
    voucher = services.voucher_issue(actor=None, member=member, reward=reward())
    url = reverse("loyalty:rewards:counter")
    found = sales_client.get(url, {"code": voucher.display_code})
    assert found.status_code == 200 and found.context["voucher"] == voucher
    missing = sales_client.post(url, {"code": "ZZZZ-ZZZZ-ZZ"})
    assert missing.status_code == 400 and "No voucher has this code" in missing.content.decode()
    assert sales_client.post(url, {"code": voucher.code}).status_code == 302
    assert Voucher.objects.get(pk=voucher.pk).status == "used"
    # the voucher page itself stays scoped: sales sees only their own customers' vouchers
    assert sales_client.get(reverse("loyalty:rewards:voucher", args=[voucher.pk])).status_code == 404


def test_the_image_is_served_to_staff_of_its_own_tenant_only(
    programme, manager_user, sales_client, tenant, tenant_b, settings, tmp_path, client_for
):
    settings.MEDIA_ROOT = tmp_path
    saved = services.reward_save(
        actor=manager_user,
        data={"name": "Mug", "points_cost": 10, "voucher_days": 30, "is_active": True},
        image=SimpleUploadedFile("mug.png", PNG, "image/png"),
    )
    response = sales_client.get(reverse("loyalty:rewards:reward_image", args=[saved.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff" and b"".join(response.streaming_content) == PNG
    from crm.accounts.models import User

    with schema_context(tenant_b.schema_name):
        other_admin = User.objects.filter(role="admin").first()
    other = client_for(other_admin, tenant_b)  # beta's admin on beta's site: alpha's reward is not there
    assert other.get(reverse("loyalty:rewards:reward_image", args=[saved.pk])).status_code == 404
    connection.set_tenant(tenant)


def test_the_customer_page_panels_do_not_grow_with_vouchers_or_referrals(programme, sales_client, sales_user):
    from loyalty.referrals.services import referral_code_for, referral_record

    member = member_with_balance(5000, owner=sales_user)
    url = reverse("customers:detail", args=[member.customer_id])

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert sales_client.get(url).status_code == 200
        return len(queries)

    services.voucher_issue(actor=sales_user, member=member, reward=reward())
    count()  # the first request fills per-user caches and makes the referral code
    few = count()
    for index in range(5):
        services.voucher_issue(actor=sales_user, member=member, reward=reward(name=f"R{index}"))
        referral_record(actor=None, referee=member_with_balance(0), code=referral_code_for(member))
    assert count() == few
