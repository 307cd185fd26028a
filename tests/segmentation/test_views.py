import pytest
from django.urls import reverse

from crm.jobs.models import BackgroundJob
from segmentation.models import ChurnAlert, Segment
from segmentation.recompute import recompute
from segmentation.services import RECOMPUTE_JOB_KIND, alert_create, segment_create

from .conftest import customer_with_orders

PAGES = ["index", "clv", "lifecycle", "alerts", "segments", "builder"]


@pytest.fixture
def scored(tenant, sales_user, sales_user2):
    mine = [customer_with_orders([5], owner=sales_user), customer_with_orders([100, 70, 40, 10], owner=sales_user)]
    theirs = [customer_with_orders([3, 2], owner=sales_user2), customer_with_orders([800, 700], owner=sales_user2)]
    recompute()
    return mine, theirs


@pytest.mark.parametrize("page", PAGES)
def test_every_role_can_open_the_pages(scored, client_for, users, page):
    for role in ("sales", "manager", "admin"):
        response = client_for(users[role]).get(reverse(f"segmentation:{page}"))
        assert response.status_code == 200, (role, page)


def test_history_is_for_managers_and_settings_for_admins(scored, client_for, users):
    assert client_for(users["sales"]).get(reverse("segmentation:history")).status_code == 403
    assert client_for(users["manager"]).get(reverse("segmentation:history")).status_code == 200
    assert client_for(users["manager"]).get(reverse("segmentation:settings")).status_code == 403
    assert client_for(users["sales"]).get(reverse("segmentation:settings")).status_code == 403
    assert client_for(users["admin"]).get(reverse("segmentation:settings")).status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in(anon_client):
    response = anon_client.get(reverse("segmentation:index"))
    assert response.status_code == 302 and "/accounts/login" in response["Location"]
