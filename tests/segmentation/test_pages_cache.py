"""The segment, CLV and lifecycle pages keep their figures like reports (crm.reportcache, the reports
"segments-rfm", "segments-clv" and "segments-lifecycle"): the same page again reads no score; a
recompute, the bin and a new owner show at once; a slow company's stale figures are served at once,
labelled "as of", with one background refresh; the kept figures are numbers, so a page in another
language than the one that computed them reads in its viewer's language."""

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from customers.services import customer_delete, customers_bulk_assign_owner
from dashboards.tasks import report_refresh_task
from segmentation.labels import segment_label
from segmentation.models import CustomerScore
from segmentation.recompute import recompute
from tests.dashboards.test_stale_figures import SLOW, _rewrite
from tests.factories import CustomerFactory

from .conftest import buy, customer_with_orders, english

AS_OF = 'data-testid="figures-as-of"'
PAGES = {
    "segments-rfm": ("segmentation:index", lambda context: context["totals"]["customers"]),
    "segments-clv": ("segmentation:clv", lambda context: context["distribution"]["n"]),
    "segments-lifecycle": (
        "segmentation:lifecycle",
        lambda context: sum(stage["count"] for stage in context["funnel"]),
    ),
}


def _shown(client, report: str) -> tuple[int, str]:
    """How many customers the page counts, and its HTML."""
    url_name, count = PAGES[report]
    response = client.get(reverse(url_name))
    assert response.status_code == 200
    return count(response.context), response.content.decode()


def _counted(captured) -> list[str]:
    """The statements that counted scores (the kept figures; the pages' short lists of the top
    customers and the latest stage changes are read on each visit, with the customers' current names)."""
    scores = [q["sql"] for q in captured if "segmentation_customerscore" in q["sql"]]
    return [sql for sql in scores if "COUNT(" in sql or "PERCENTILE_CONT" in sql]


def _score(customer, segment: str = "loyal", clv: str = "100.00") -> CustomerScore:
    now = timezone.now()
    return CustomerScore.objects.create(
        customer=customer,
        predicted_clv=Decimal(clv),
        rfm_segment=segment,
        r_score=4,
        f_score=4,
        m_score=4,
        lifecycle_stage="loyal",
        window_revenue=Decimal(clv),
        stage_since=now,
        computed_at=now,
    )


def test_the_pages_are_kept_until_a_recompute_then_right_at_once(
    tenant, manager_client, manager_user, django_capture_on_commit_callbacks
):
    customer_with_orders([3, 40, 90])
    customer_with_orders([10, 200])
    with django_capture_on_commit_callbacks(execute=True):  # recompute_finished, as when it commits
        recompute()
    for report in PAGES:
        assert _shown(manager_client, report)[0] == 2, report
        with CaptureQueriesContext(connection) as captured:
            assert _shown(manager_client, report)[0] == 2
        assert not _counted(captured), f"{report}: no score counted again"

    buy(CustomerFactory(), 5)
    for report in PAGES:
        assert _shown(manager_client, report)[0] == 2, f"{report}: kept until the scores change"
    with django_capture_on_commit_callbacks(execute=True):
        recompute()
    for report in PAGES:
        assert _shown(manager_client, report)[0] == 3, f"{report}: right at once after the recompute"


def test_the_bin_and_a_new_owner_show_at_once_in_each_scope(
    tenant,
    manager_client,
    manager_user,
    sales_client,
    sales_user,
    sales_user2,
    django_capture_on_commit_callbacks,
):
    mine, also_mine, theirs = (CustomerFactory(owner=owner) for owner in (sales_user, sales_user, None))
    for customer in (mine, also_mine, theirs):
        _score(customer)
    for report in PAGES:
        assert _shown(manager_client, report)[0] == 3, report
        assert _shown(sales_client, report)[0] == 2, f"{report}: the rep's own entry"

    with django_capture_on_commit_callbacks(execute=True):
        customers_bulk_assign_owner(actor=manager_user, customer_ids=[also_mine.pk], owner=sales_user2)
    for report in PAGES:
        assert _shown(sales_client, report)[0] == 1, f"{report}: a customer given to another rep"
        assert _shown(manager_client, report)[0] == 3

    with django_capture_on_commit_callbacks(execute=True):
        customer_delete(actor=manager_user, customer=theirs)
    for report in PAGES:
        assert _shown(manager_client, report)[0] == 2, f"{report}: a customer in the bin"
        assert _shown(sales_client, report)[0] == 1


@pytest.mark.parametrize("report", list(PAGES))
def test_a_slow_page_is_served_stale_with_one_refresh(
    report, tenant, manager_client, manager_user, sent, django_capture_on_commit_callbacks
):
    kept, binned = CustomerFactory(), CustomerFactory()
    _score(kept)
    _score(binned)
    assert _shown(manager_client, report)[0] == 2
    _rewrite(report, seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        customer_delete(actor=manager_user, customer=binned)
    with django_capture_on_commit_callbacks(execute=True):
        count, html = _shown(manager_client, report)
    assert count == 2 and AS_OF in html, "the figures kept, labelled, served at once"
    assert [(m["name"], m["scope"]) for m in sent] == [(report, "all")]
    poll = re.search(r'id="figures-as-of"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    polled = manager_client.get(poll, headers={"HX-Request": "true", "HX-Trigger": "figures-as-of"})
    assert polled.status_code == 204, "nothing newer yet: the poll goes on"
    assert report_refresh_task(**sent[0]) == "refreshed"
    count, html = _shown(manager_client, report)
    assert count == 1 and AS_OF not in html


def test_kept_figures_read_in_the_viewers_language(tenant, client_for, manager_user, admin_user):
    _score(CustomerFactory(), segment="loyal")
    english_page = _shown(client_for(english(manager_user)), "segments-rfm")[1]
    with translation.override("en"):
        assert str(segment_label("loyal")) in english_page
    type(admin_user).objects.filter(pk=admin_user.pk).update(language="zh-hans")
    chinese = client_for(admin_user)  # the same scope (the whole company) as the entry computed in English
    with CaptureQueriesContext(connection) as captured:
        chinese_page = _shown(chinese, "segments-rfm")[1]
    assert not _counted(captured)
    with translation.override("zh-hans"):
        label = str(segment_label("loyal"))
    assert label != "Loyal" and label in chinese_page
