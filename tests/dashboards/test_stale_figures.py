"""After a change, a report whose last computation was slow is served as it was, labelled "as of" and
polling, while one background refresh computes it again (dashboards.caching); a quick one is computed
again at once. Refreshes stay in their tenant and their user's scope, run in the figures' time zone,
do nothing twice, release their lock when they fail, and the team page is never older than its
clock timeout."""

import html
import re
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.accounts.models import Role, User
from crm.celery import workload_for
from customers.services import order_create
from dashboards import caching
from dashboards.caching import CLOCK_TIMEOUT, Report
from dashboards.reports import REPORTS
from dashboards.tasks import report_refresh_task
from tests.factories import CustomerFactory, OrderFactory
from tests.worker_kill import wait_until

YEAR_2024 = {"range": "custom", "from": "2024-01-01", "to": "2024-12-31"}
SLOW = 5.0  # seconds a planted "last computation" took: over the default threshold (1.0)
AS_OF = 'data-testid="figures-as-of"'


# --- helpers ------------------------------------------------------------------------------------


def _entry_keys(name: str) -> list[str]:
    """The cache keys (as `cache.get` takes them) of report `name`'s entries in the current tenant."""
    client = cache._cache.get_client()
    found = [raw.decode() for raw in client.scan_iter(match=cache.make_key(f"dashboards:figures:{name}:*"))]
    return [raw[raw.index("dashboards:figures:") :] for raw in found]


def _entries(name: str) -> list[caching.Entry]:
    return [cache.get(key) for key in _entry_keys(name)]


def _stamps(name: str) -> list[tuple]:
    """When and at which version each entry of report `name` was computed (the values themselves do
    not compare equal once unpickled)."""
    return sorted((e.computed_at, e.version) for e in _entries(name))


def _rewrite(name: str, **changes) -> None:
    """Change every entry of report `name` in the current tenant (keeping its cache lifetime)."""
    for key in _entry_keys(name):
        cache.set(key, replace(cache.get(key), **changes), caching.TIMEOUT)


def _order(actor, customer, number: str, month: int = 6):
    """An order through the service: the data version is replaced when it commits."""
    return order_create(
        actor=actor,
        customer=customer,
        number=number,
        placed_at=timezone.now().replace(year=2024, month=month, day=1),
        lines=[{"product_name": "茶叶", "quantity": Decimal("1"), "unit_price": Decimal("10")}],
    )


def _page(client, url="/dashboards/", params=YEAR_2024) -> str:
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


def _stale_overview(client, actor, capture) -> None:
    """The overview viewed (its 2024 figures cached), marked slow to compute, then made stale by an
    order of 2024 (the change's on-commit callbacks run)."""
    _page(client)
    _rewrite("overview-and-chart", seconds=SLOW)
    with capture(execute=True):
        _order(actor, CustomerFactory(), "SO-1")


def _orders(page: str) -> str:
    return re.search(r'data-figure="orders">\s*([^<\s]+)', page).group(1)


def _poll_url(page: str) -> str:
    return html.unescape(re.search(r'id="figures-as-of"[^>]*hx-get="([^"]+)"', page).group(1))


def _poll(client, url: str):
    return client.get(url, headers={"HX-Request": "true", "HX-Trigger": "figures-as-of"})


# --- the rule -----------------------------------------------------------------------------------


def test_a_slow_report_is_served_stale_at_once_with_one_refresh_then_fresh(
    tenant, manager_user, admin_user, client_for, sent, django_capture_on_commit_callbacks
):
    manager = client_for(manager_user)
    assert AS_OF not in (page := _page(manager)) and _orders(page) == "0"
    _rewrite("overview-and-chart", seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        _order(manager_user, CustomerFactory(), "SO-1")

    with django_capture_on_commit_callbacks(execute=True):
        pages = [_page(manager) for _ in range(3)] + [_page(client_for(admin_user))]  # the same scope
    assert [_orders(p) for p in pages] == ["0"] * 4, "the figures as they were, at once"
    assert all(AS_OF in p and "Figures as of" in p and "(being updated)" in p for p in pages)
    assert len(sent) == 1, "one refresh for the entry, however many pages asked"
    assert sent[0]["name"] == "overview-and-chart" and sent[0]["scope"] == "all"

    poll = _poll_url(pages[0])
    assert _poll(manager, poll).status_code == 204  # nothing newer yet: the page keeps polling
    assert report_refresh_task(**sent[0]) == "refreshed"
    answer = _poll(manager, poll)
    assert answer.headers.get("HX-Refresh") == "true", "newer figures landed: the page reloads"
    page = _page(manager)
    assert _orders(page) == "1" and AS_OF not in page

    # The refresh released its lock: the next change and view send a new one.
    _rewrite("overview-and-chart", seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        _order(manager_user, CustomerFactory(), "SO-2")
    with django_capture_on_commit_callbacks(execute=True):
        assert _orders(_page(manager)) == "1"
    assert len(sent) == 2


def test_a_quick_report_is_fresh_at_once(
    tenant, manager_user, client_for, sent, django_capture_on_commit_callbacks
):
    manager = client_for(manager_user)
    assert _orders(_page(manager)) == "0"
    _rewrite("overview-and-chart", seconds=0.5)  # under the threshold (1.0 s)
    with django_capture_on_commit_callbacks(execute=True):
        _order(manager_user, CustomerFactory(), "SO-1")
    with django_capture_on_commit_callbacks(execute=True):
        page = _page(manager)
    assert _orders(page) == "1" and AS_OF not in page and sent == []


def test_an_export_waits_for_fresh_figures(
    tenant, manager_user, client_for, sent, django_capture_on_commit_callbacks
):
    manager = client_for(manager_user)
    _stale_overview(manager, manager_user, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.get("/dashboards/", {**YEAR_2024, "export": "csv"})
    csv = b"".join(response.streaming_content).decode("utf-8-sig")
    orders_line = next(line for line in csv.splitlines() if line.startswith("Orders,"))
    assert orders_line.split(",")[1] == "1" and sent == []


def test_the_label_is_in_the_viewers_language_and_time_zone(
    tenant, manager_user, client_for, sent, django_capture_on_commit_callbacks
):
    User.objects.filter(pk=manager_user.pk).update(language="zh-hans", time_zone="Asia/Shanghai")
    manager = client_for(User.objects.get(pk=manager_user.pk))
    _page(manager)
    _rewrite("overview-and-chart", seconds=SLOW)
    [entry] = _entries("overview-and-chart")
    with django_capture_on_commit_callbacks(execute=True):
        _order(manager_user, CustomerFactory(), "SO-1")
    page = _page(manager)
    shanghai = entry.computed_at.astimezone(ZoneInfo("Asia/Shanghai"))
    today = shanghai.date() == timezone.now().astimezone(ZoneInfo("Asia/Shanghai")).date()
    when = shanghai.strftime("%H:%M" if today else "%Y-%m-%d %H:%M")
    assert f"数据截至 {when}（正在更新）" in page


def test_the_refresh_runs_in_the_time_zone_the_figures_are_cut_in(
    tenant, manager_user, client_for, sent, django_capture_on_commit_callbacks
):
    # 20:00 UTC on 31 December 2024 is 04:00 on 1 January 2025 in Shanghai: not in 2024 there.
    OrderFactory(customer=CustomerFactory(), placed_at=datetime(2024, 12, 31, 20, tzinfo=ZoneInfo("UTC")))
    User.objects.filter(pk=manager_user.pk).update(time_zone="Asia/Shanghai")
    manager = client_for(User.objects.get(pk=manager_user.pk))
    assert _orders(_page(manager)) == "0"
    _rewrite("overview-and-chart", seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        _order(manager_user, CustomerFactory(), "SO-JAN", month=3)
    with django_capture_on_commit_callbacks(execute=True):
        assert _orders(_page(manager)) == "0"  # stale
    assert sent[0]["params"]["_zone"] == "Asia/Shanghai"
    with timezone.override("UTC"):  # a worker's own zone
        assert report_refresh_task(**sent[0]) == "refreshed"
    page = _page(manager)
    assert _orders(page) == "1" and AS_OF not in page, "the March order; not the one of 31 December UTC"


def test_a_refresh_in_one_tenant_never_writes_or_serves_anothers_entry(
    tenant, tenant_b, manager_user, client_for, sent, django_capture_on_commit_callbacks
):
    connection.set_tenant(tenant_b)
    beta_manager = User.objects.get(email=f"manager@{tenant_b.slug}.test")
    OrderFactory.create_batch(2, customer=CustomerFactory(), placed_at=timezone.now().replace(year=2024))
    beta = client_for(beta_manager, tenant_b)
    assert _orders(_page(beta)) == "2"
    connection.set_tenant(tenant_b)
    _rewrite("overview-and-chart", seconds=SLOW)
    beta_entry = _stamps("overview-and-chart")

    alpha = client_for(manager_user)
    assert _orders(_page(alpha)) == "0"
    _rewrite("overview-and-chart", seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        _order(manager_user, CustomerFactory(), "SO-1")
    with django_capture_on_commit_callbacks(execute=True):
        assert _orders(page := _page(alpha)) == "0" and AS_OF in page
    assert len(sent) == 1 and connection.schema_name == tenant.schema_name
    # Beta's data did not change: its page is fresh, and alpha's refresh lock does not hold it back.
    assert AS_OF not in (page := _page(beta)) and _orders(page) == "2"
    connection.set_tenant(tenant_b)
    caching.data_changed()
    with django_capture_on_commit_callbacks(execute=True):
        assert _orders(page := _page(beta)) == "2" and AS_OF in page
    assert len(sent) == 2, "beta's own refresh, though alpha's is still on its way"

    connection.set_tenant(tenant)
    assert report_refresh_task(**sent[0]) == "refreshed"
    connection.set_tenant(tenant_b)
    assert _stamps("overview-and-chart") == beta_entry, "alpha's refresh left beta's entry alone"
    assert _orders(_page(beta)) == "2"
    assert _orders(_page(alpha)) == "1"
    connection.set_tenant(tenant_b)
    assert report_refresh_task(**sent[1]) == "refreshed"
    assert _orders(_page(beta)) == "2" and AS_OF not in _page(beta)
    connection.set_tenant(tenant)
    assert _orders(_page(alpha)) == "1"


def test_a_sales_users_refresh_keeps_their_scope_and_a_demoted_managers_is_skipped(
    tenant, manager_user, sales_user, client_for, sent, django_capture_on_commit_callbacks
):
    mine, other = CustomerFactory(owner=sales_user), CustomerFactory(owner=None)
    OrderFactory(customer=mine, placed_at=timezone.now().replace(year=2024, month=3))
    OrderFactory(customer=other, placed_at=timezone.now().replace(year=2024, month=3))
    sales, manager = client_for(sales_user), client_for(manager_user)
    assert _orders(_page(sales)) == "1" and _orders(_page(manager)) == "2"
    _rewrite("overview-and-chart", seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        _order(manager_user, mine, "SO-MINE")
    with django_capture_on_commit_callbacks(execute=True):
        assert _orders(_page(sales)) == "1"
        assert _orders(_page(manager)) == "2"
    by_scope = {message["scope"]: message for message in sent}
    assert set(by_scope) == {f"user-{sales_user.pk}", "all"}

    assert report_refresh_task(**by_scope[f"user-{sales_user.pk}"]) == "refreshed"
    assert _orders(_page(sales)) == "2", "their own customers' orders only (3 in all)"

    # The manager is demoted before their refresh runs: it must not write "all" with a sales scope.
    User.objects.filter(pk=manager_user.pk).update(role=Role.SALES)
    before = _stamps("overview-and-chart")
    assert report_refresh_task(**by_scope["all"]) == "skipped"
    assert _stamps("overview-and-chart") == before
    lock = caching._keys("overview-and-chart", "all", by_scope["all"]["params"])[1]
    assert cache.get(lock) is None, "a skipped refresh releases its lock"

    # Promoted back, then deactivated: skipped too.
    User.objects.filter(pk=manager_user.pk).update(role=Role.MANAGER, is_active=False)
    assert report_refresh_task(**by_scope["all"]) == "skipped"
    # A sales user promoted to manager: their own scope's refresh is not theirs any more.
    User.objects.filter(pk=sales_user.pk).update(role=Role.MANAGER)
    assert report_refresh_task(**by_scope[f"user-{sales_user.pk}"]) == "skipped"


def test_a_second_delivery_does_nothing_and_a_failed_refresh_releases_its_lock(
    tenant, manager_user, client_for, sent, django_capture_on_commit_callbacks, monkeypatch
):
    manager = client_for(manager_user)
    _stale_overview(manager, manager_user, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        _page(manager)
    assert report_refresh_task(**sent[0]) == "refreshed"
    entry = _stamps("overview-and-chart")
    assert report_refresh_task(**sent[0]) == "fresh", "the message again: nothing to do"
    assert _stamps("overview-and-chart") == entry

    _rewrite("overview-and-chart", seconds=SLOW)
    entry = _stamps("overview-and-chart")
    with django_capture_on_commit_callbacks(execute=True):
        _order(manager_user, CustomerFactory(), "SO-2")
    with django_capture_on_commit_callbacks(execute=True):
        _page(manager)
    assert len(sent) == 2

    def broken(user, params):
        raise RuntimeError("the database went away")

    working = REPORTS["overview-and-chart"]
    monkeypatch.setitem(REPORTS, "overview-and-chart", Report(broken))
    with pytest.raises(RuntimeError):
        report_refresh_task(**sent[1])
    lock = caching._keys("overview-and-chart", "all", sent[1]["params"])[1]
    assert cache.get(lock) is None, "released though the refresh failed"
    assert _stamps("overview-and-chart") == entry, "a failed refresh writes nothing"
    REPORTS["overview-and-chart"] = working
    with django_capture_on_commit_callbacks(execute=True):
        page = _page(manager)
    assert AS_OF in page and len(sent) == 3, "the next view sends the refresh again"


def test_a_refresh_finishing_just_before_a_view_takes_the_lock_is_not_sent_again(
    tenant, manager_user, client_for, sent, django_capture_on_commit_callbacks, monkeypatch
):
    """A view reads the stale entry; the worker then stores the fresh one and releases its lock; the
    view takes the lock. It must read again rather than send a second refresh of fresh figures."""
    manager = client_for(manager_user)
    _stale_overview(manager, manager_user, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        _page(manager)
    assert len(sent) == 1

    class WorkerFinishesFirst:
        """The cache, but the refresh completes just before a refresh lock is taken."""

        def __getattr__(self, name):
            return getattr(cache, name)

        def add(self, key, *args, **kwargs):
            if "dashboards:refreshing:" in key:
                assert report_refresh_task(**sent[0]) == "refreshed"
            return cache.add(key, *args, **kwargs)

    monkeypatch.setattr(caching, "cache", WorkerFinishesFirst())
    with django_capture_on_commit_callbacks(execute=True):
        page = _page(manager)
    assert len(sent) == 1, "no second refresh of figures that are fresh already"
    assert _orders(page) == "1" and AS_OF not in page, "the fresh figures, read after the lock"
    lock = caching._keys("overview-and-chart", "all", sent[0]["params"])[1]
    assert cache.get(lock) is None, "the lock taken for nothing is released"


def test_the_team_page_is_never_served_older_than_its_clock_timeout(
    tenant, manager_user, sales_user, client_for, sent, django_capture_on_commit_callbacks
):
    from interactions.services import interaction_log

    def interactions(page: str) -> str:
        pattern = rf'data-rep="{sales_user.pk}">.*?data-cell="interactions">\s*([^<\s]+)'
        return re.search(pattern, page, re.DOTALL).group(1)

    manager = client_for(manager_user)
    customer = CustomerFactory(owner=sales_user)
    assert interactions(_page(manager, "/dashboards/team/", {"range": "30d"})) == "0"
    _rewrite("team", seconds=SLOW)
    with django_capture_on_commit_callbacks(execute=True):
        interaction_log(
            actor=sales_user,
            customer=customer,
            channel="phone",
            direction="out",
            occurred_at=timezone.now() - timedelta(hours=1),
        )
    _rewrite("team", computed_at=timezone.now() - timedelta(seconds=CLOCK_TIMEOUT - 30))
    with django_capture_on_commit_callbacks(execute=True):
        page = _page(manager, "/dashboards/team/", {"range": "30d"})
    assert interactions(page) == "0" and AS_OF in page, "stale, but younger than the clock timeout"

    # Older than the clock timeout ("overdue now" would be wrong by then): computed while it waits,
    # even though the cache still holds it.
    _rewrite("team", computed_at=timezone.now() - timedelta(seconds=CLOCK_TIMEOUT + 1))
    page = _page(manager, "/dashboards/team/", {"range": "30d"})
    assert interactions(page) == "1" and AS_OF not in page
    # The other reports keep theirs longer: the overview as old is still served while it refreshes.
    _page(manager)
    _rewrite(
        "overview-and-chart", seconds=SLOW, computed_at=timezone.now() - timedelta(seconds=CLOCK_TIMEOUT + 1)
    )
    caching.data_changed()
    assert AS_OF in _page(manager)


def test_a_refresh_computes_in_the_reports_transaction(tenant, manager_user, monkeypatch):
    def settings_seen(user, params):
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('work_mem'), current_setting('jit')")
            return cursor.fetchone()

    monkeypatch.setitem(REPORTS, "probe", Report(settings_seen))
    params = {"_zone": "UTC"}
    assert (
        caching.report_refresh(name="probe", user_id=manager_user.pk, scope="all", params=params)
        == "refreshed"
    )
    assert [entry.value for entry in _entries("probe")] == [(caching.WORK_MEM, "off")]


def test_refreshes_go_to_the_recompute_queue_not_the_reminders():
    assert workload_for("dashboards.tasks.report_refresh_task") == "recompute"
    assert workload_for("dashboards.tasks.weekly_summary_task") == "reminders"


# --- through a real worker ------------------------------------------------------------------------


@pytest.mark.celery_worker
@pytest.mark.slow
def test_a_real_worker_refreshes_a_stale_report_once(
    celery_worker, committed_tenant, django_db_blocker, client_for
):
    tenant = committed_tenant()
    with django_db_blocker.unblock():
        try:
            with schema_context(tenant.schema_name):
                manager_user = User.objects.get(email=f"manager@{tenant.slug}.test")
                OrderFactory(customer=CustomerFactory(), placed_at=timezone.now().replace(year=2024, month=2))
            manager = client_for(manager_user, tenant)
            assert _orders(_page(manager)) == "1"
            # The worker is the session's: only what it logs from here on is this test's (a browser
            # test in the same process may have had a report refreshed by it before).
            log_start = len(celery_worker["log"].read_text())
            with schema_context(tenant.schema_name):
                _rewrite("overview-and-chart", seconds=SLOW)
                _order(manager_user, CustomerFactory(), "SO-1")  # autocommit: the version changes now
            pages = [_page(manager) for _ in range(3)]  # autocommit: the refresh is sent at once
            assert all(AS_OF in p for p in pages if _orders(p) == "1")

            def fresh():
                page = _page(manager)
                return _orders(page) == "2" and AS_OF not in page

            wait_until(fresh, celery_worker["log"], timeout=60)
            log = celery_worker["log"].read_text()[log_start:]
            assert (
                len(re.findall(r"Task dashboards\.tasks\.report_refresh_task\[[^\]]+\] received", log)) == 1
            )
        finally:
            connection.set_schema_to_public()
