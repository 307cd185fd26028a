"""Browser tests: Debian's Chromium driven by Playwright against a real server process.

- `live_server_url`: `manage.py runserver` in a subprocess on the test database, with the session's
  Celery worker queue, so pages that enqueue work are served by a real worker; e-mail is written to
  files that `sent_emails()` reads.
- Chromium resolves every host to 127.0.0.1 (`--host-resolver-rules`), so tenant hosts such as
  `http://alpha.testserver.local:PORT/` reach the live server.
- Data must be committed for the server process to see it: use the `committed_tenant` fixture.
- On failure a screenshot is saved under test-artifacts/.
- Every page fails its test when the browser reports a Content-Security-Policy violation (a blocked
  inline script, handler, style or foreign resource) on its console.
"""

import os
import shutil
import socket
import subprocess
import sys
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from tests.conftest import PASSWORD, REPO_ROOT, _test_database_url, wait_until_listening

# Playwright's sync API runs an event loop in this thread; Django's ORM calls made by the test
# itself between browser steps are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = REPO_ROOT / "test-artifacts"
# The in-place profile form once htmx has taken it over: htmx binds swapped-in content when the swap
# settles (and then drops "htmx-added"); a click before that is the browser's own submit.
SETTLED_FORM = "#profile-card:not(.htmx-added) form"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * 127.0.0.1",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mail_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mail")


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker, celery_worker_process, mail_dir, tmp_path_factory):
    """Base URL template: format with a host, e.g. live_server_url.format(host="alpha.testserver.local")."""
    with django_db_blocker.unblock():
        database_url = _test_database_url()
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm.settings.test",
        "DATABASE_URL": database_url,
        "CONN_MAX_AGE": "0",
        "CELERY_TASK_DEFAULT_QUEUE": celery_worker_process["queue"],
        "TASK_QUEUE_PREFIX": f"{celery_worker_process['queue']}-",  # the routed workloads too
        "TEST_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
        "SITE_PORT": str(port),
        # The server reads and writes this run's cache keys, removed with them after each test.
        "TEST_CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
    }
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, log, what="live server")
        yield f"http://{{host}}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def tenant_url(live_server_url):
    """tenant_url(tenant, path="/") -> the absolute URL of a page on the tenant's site."""

    def make(tenant, path: str = "/") -> str:
        return live_server_url.format(host=f"{tenant.slug}.{settings.BASE_DOMAIN}") + path

    return make


@pytest.fixture
def public_url(live_server_url):
    def make(path: str = "/") -> str:
        return live_server_url.format(host=settings.BASE_DOMAIN) + path

    return make


@pytest.fixture
def sent_emails(mail_dir):
    """sent_emails() -> the e-mail messages the live server has written, oldest first."""

    def read():
        messages = []
        for path in sorted(mail_dir.glob("*.log"), key=lambda p: p.stat().st_mtime):
            for chunk in path.read_bytes().split(b"-" * 79):
                if chunk.strip():
                    messages.append(message_from_bytes(chunk.strip(), policy=default_policy))
        return messages

    return read


@pytest.fixture(scope="session")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("Chromium is not installed: `apt-get install chromium` (.ci/run does this).")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    violations: list[str] = []

    def on_console(message):
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            violations.append(f"{page.url}: {text}")

    page.on("console", on_console)
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = request.node.nodeid.replace("/", "_").replace("::", "__")
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # the page may already be gone; the test failure matters more
            print(f"screenshot failed: {exc}")
    context.close()
    assert not violations, "Content-Security-Policy violations in the browser console:\n" + "\n".join(
        violations
    )


@pytest.fixture
def login(tenant_url):
    """login(page, tenant, email, password=PASSWORD): sign in through the real login form."""

    def do_login(page, tenant, email: str, password: str = PASSWORD) -> None:
        page.goto(tenant_url(tenant, "/accounts/login/"))
        page.fill("input[name=username]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")

    return do_login


# --- stale figures ("as of" label, crm.reportcache) --------------------------------------------------

STALE_LABEL = {"en": "Figures as of {} (being updated)", "zh-hans": "数据截至 {}（正在更新）"}
SHANGHAI = ZoneInfo("Asia/Shanghai")  # the time zone the stale-figure tests give their viewer


def hold_stale(report: str, **changes):
    """Make the one entry of report `report` in the current tenant look slow to compute ("5 s", and
    `changes`, e.g. computed_at) and hold its refresh lock as if a refresh were under way: after the
    next change the page is served stale, labelled, and the label can be looked at. Returns the entry
    and the lock's key; deleting the key lets the page's poll send the refresh to the real worker."""
    from dataclasses import replace

    from django.core.cache import cache

    from tests.dashboards.test_stale_figures import SLOW, _entry_keys

    (key,) = _entry_keys(report)
    entry = replace(cache.get(key), seconds=SLOW, **changes)
    cache.set(key, entry, 3600)
    lock = key.replace("dashboards:figures:", "dashboards:refreshing:")
    cache.set(lock, "held by the test", 300)
    return entry, lock


def stale_label(language: str, computed_at) -> str:
    """The label of figures computed at `computed_at`, as a viewer in Shanghai reads it: the time
    alone when computed today, else the date and the time."""
    from django.utils import timezone, translation

    from crm.templatetags.crm_format import clock, localdt

    with translation.override(language), timezone.override(SHANGHAI):
        today = timezone.localdate(computed_at) == timezone.localdate()
        when = clock(computed_at) if today else localdt(computed_at)
    return STALE_LABEL[language].format(when)


def sized_page(browser, width: int):
    """A new browser context at `width` (390: a phone, touch and all) and its page."""
    context = browser.new_context(
        viewport={"width": width, "height": 900 if width > 400 else 844}, is_mobile=width < 400
    )
    context.set_default_timeout(15_000)
    return context, context.new_page()


def stale_viewer(tenant, language: str):
    """The tenant's manager, reading in `language` in Shanghai's time zone (call in its schema)."""
    from crm.accounts.models import User

    manager = User.objects.get(email=f"manager@{tenant.slug}.test")
    User.objects.filter(pk=manager.pk).update(language=language, time_zone="Asia/Shanghai")
    return manager


def let_the_refresh_land(page, lock: str, *, tenant, django_db_blocker) -> None:
    """End the refresh `hold_stale` pretended was under way, without a result: the page's next poll
    sends one to the real worker, and the poll after it lands reloads the page (its label gone)."""
    from django.core.cache import cache
    from django_tenants.utils import schema_context

    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        cache.delete(lock)
    page.locator('[data-testid="figures-as-of"]').wait_for(state="detached", timeout=90_000)
    page.wait_for_load_state("load")
