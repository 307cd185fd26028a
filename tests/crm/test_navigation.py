"""The top navigation: every app adds its own entry (crm.navigation.register in its AppConfig.ready());
the rendered result is the same order, the same roles and the same badge as the hand-written list it
replaced."""

import re

from segmentation.services import alert_create
from tests.factories import CustomerFactory

ALL = [
    "my_day",
    "dashboard",
    "customers",
    "interactions",
    "service",
    "surveys",
    "segments",
    "loyalty",
    "reports",
]


def _nav(client) -> list[str]:
    return re.findall(r'data-nav="([a-z_]+)"', client.get("/").content.decode())


def test_entries_in_order_and_by_role(admin_client, manager_client, sales_client):
    assert _nav(admin_client) == [*ALL, "settings"]
    assert _nav(manager_client) == [*ALL, "settings"]  # the settings they manage: tags (issue 15)
    assert _nav(sales_client) == ALL


def test_links_point_to_each_apps_page(admin_client):
    html = admin_client.get("/").content.decode()
    for url, key in (
        ("/my-day/", "my_day"),
        ("/", "dashboard"),
        ("/customers/", "customers"),
        ("/interactions/", "interactions"),
        ("/service/", "service"),
        ("/surveys/", "surveys"),
        ("/segments/", "segments"),
        ("/loyalty/", "loyalty"),
        ("/dashboards/", "reports"),
        ("/accounts/settings/", "settings"),
    ):
        assert f'href="{url}" data-nav="{key}"' in html


def _segments_link(client) -> str:
    return re.search(r'data-nav="segments">(.*?)</a>', client.get("/").content.decode(), re.S).group(1)


def test_the_segments_entry_shows_the_open_alerts_badge(
    manager_client, sales_user, django_capture_on_commit_callbacks
):
    assert "badge" not in _segments_link(manager_client)
    with django_capture_on_commit_callbacks(execute=True):  # a new alert bumps the badge's cache key
        alert_create(customer=CustomerFactory(owner=sales_user), reason="entered_at_risk")
    assert re.search(r'<span class="badge[^"]*">1</span>', _segments_link(manager_client))
