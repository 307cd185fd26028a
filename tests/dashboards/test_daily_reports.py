"""A report of a preset period ("last 30 days", the reports' default) keeps one entry from day to day
(its parameters name the preset, resolved when the figures are computed): on a big company's first
visit of a day the day before's figures are served at once, labelled "as of", while one background
refresh computes the period as of today. A custom range is keyed by its dates. The cohorts likewise,
without a "today" in their parameters."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from dashboards.tasks import report_refresh_task
from tests.dashboards.test_stale_figures import SLOW, _entry_keys, _rewrite
from tests.factories import CustomerFactory, OrderFactory

AS_OF = 'data-testid="figures-as-of"'


def _page(client, url: str, params: dict | None = None) -> str:
    response = client.get(url, params or {})
    assert response.status_code == 200
    return response.content.decode()


def _orders(page: str) -> str:
    return re.search(r'data-figure="orders">\s*([^<\s]+)', page).group(1)


def _buy(days_ago: int = 0, total: str = "10.00"):
    """An order written without a signal: only the day can make the kept figures stale."""
    return OrderFactory(
        customer=CustomerFactory(), total=Decimal(total), placed_at=timezone.now() - timedelta(days=days_ago)
    )


def test_the_default_period_gets_the_day_befores_figures_at_once_then_todays(
    tenant, manager_user, client_for, sent, django_capture_on_commit_callbacks
):
    manager = client_for(manager_user)
    _buy(days_ago=3)
    assert _orders(_page(manager, "/dashboards/")) == "1"
    assert len(_entry_keys("overview-and-chart")) == 1
    # Computed yesterday (slowly), at today's data version: stale by its day alone.
    _rewrite("overview-and-chart", computed_at=timezone.now() - timedelta(days=1), seconds=SLOW)
    _buy()
    with django_capture_on_commit_callbacks(execute=True):
        page = _page(manager, "/dashboards/")
    assert _orders(page) == "1" and AS_OF in page and "(being updated)" in page
    assert [(m["name"], m["params"]["range"], "period" in m["params"]) for m in sent] == [
        ("overview-and-chart", "30d", False)
    ], "one refresh of the preset's entry, which names no date"
    assert report_refresh_task(**sent[0]) == "refreshed"
    page = _page(manager, "/dashboards/")
    assert _orders(page) == "2" and AS_OF not in page
    assert len(_entry_keys("overview-and-chart")) == 1, "the same entry, brought up to date"

    # Past the week an entry may be served: computed while the page waits.
    _rewrite("overview-and-chart", computed_at=timezone.now() - timedelta(days=8), seconds=SLOW)
    _buy()
    with django_capture_on_commit_callbacks(execute=True):
        page = _page(manager, "/dashboards/")
    assert _orders(page) == "3" and AS_OF not in page and len(sent) == 1


def test_a_custom_range_is_keyed_by_its_dates(
    tenant, manager_user, client_for, sent, django_capture_on_commit_callbacks
):
    manager = client_for(manager_user)
    _buy(days_ago=2)
    today = timezone.localdate()
    custom = {"range": "custom", "from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
    assert _orders(_page(manager, "/dashboards/", custom)) == "1"
    assert _orders(_page(manager, "/dashboards/", {"range": "90d"})) == "1"
    assert len(_entry_keys("overview-and-chart")) == 2
    _rewrite("overview-and-chart", computed_at=timezone.now() - timedelta(days=1), seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        _page(manager, "/dashboards/", custom)
    assert len(sent) == 1
    assert sent[0]["params"]["period"] == [custom["from"], custom["to"]]
    assert "range" not in sent[0]["params"]


@pytest.mark.parametrize(
    ("report", "url"), [("cohorts", "/dashboards/cohorts/"), ("funnel", "/dashboards/funnel/")]
)
def test_cohorts_and_funnel_keep_one_entry_from_day_to_day(
    report, url, tenant, manager_user, client_for, sent, django_capture_on_commit_callbacks
):
    manager = client_for(manager_user)
    _buy(days_ago=5)
    first = _page(manager, url)
    _rewrite(report, computed_at=timezone.now() - timedelta(days=1), seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        page = _page(manager, url)
    assert AS_OF in page, "the day before's figures, labelled"
    assert len(sent) == 1 and sent[0]["name"] == report
    assert not {"today", "period"} & set(sent[0]["params"]), "no date in the entry's parameters"
    assert report_refresh_task(**sent[0]) == "refreshed"
    page = _page(manager, url)
    assert AS_OF not in page and first.count("data-") == page.count("data-")
