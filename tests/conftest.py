"""Shared fixtures: real PostgreSQL schemas for two tenants, users of every role, tenant clients,
and (for the tests that need them) committed throw-away tenants and a real Celery worker process.

Layout of the test database, created once per session (and per xdist worker):
- public: the platform (Tenant/Domain rows, a platform admin)
- tenant_template: the migrated template every tenant is cloned from
- alpha, beta: two tenants with admin / manager / sales / sales2 users each

Each ordinary test runs inside a transaction that is rolled back, with the connection pointed at
tenant "alpha" (fixture `tenant`). Tests that need a Celery worker to see their data use
`committed_tenant`, which creates a real committed tenant and drops it afterwards.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.test import Client
from django.utils import translation
from django_tenants.utils import schema_context

from crm.accounts.models import Role, User
from crm.tenancy.models import Tenant
from crm.tenancy.services import ensure_public_tenant, ensure_template_schema, tenant_create, tenant_provision

PASSWORD = "correct-horse-battery-9"
ROLE_EMAILS = {
    "admin": "admin@{slug}.test",
    "manager": "manager@{slug}.test",
    "sales": "sales@{slug}.test",
    "sales2": "sales2@{slug}.test",
}
PLATFORM_ADMIN_EMAIL = "operator@platform.test"
REPO_ROOT = Path(__file__).resolve().parent.parent


LONG_TEST_MARKERS = ("slow", "browser", "celery_worker")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """The long tests (a browser, a real worker, marked slow) first. `make test` runs two processes
    (xdist), which take the tests in this order: with a 90-second test among the last ones, one process
    ran it while the other had finished. Runs before pytest-django's own (stable) ordering, which
    still puts transactional tests after the others."""
    items.sort(key=lambda item: not any(item.get_closest_marker(name) for name in LONG_TEST_MARKERS))


def wait_until_listening(process, port: int, log, *, what: str, seconds: int = 60) -> None:
    """Wait until a server process we started accepts connections on `port`; fail with its log if it
    exits or does not start in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The {what} exited early:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"The {what} did not start in {seconds} s:\n{log.read_text()}")


def _ensure_tenant(slug: str, name: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        # English by default so assertions read the English messages; tests of the Chinese
        # interface switch language explicitly.
        tenant = tenant_create(
            name=name, slug=slug, admin_email=ROLE_EMAILS["admin"].format(slug=slug), default_language="en"
        )
    elif tenant.default_language != "en":
        Tenant.objects.filter(pk=tenant.pk).update(default_language="en")
        tenant.refresh_from_db()
    if tenant.status != Tenant.Status.ACTIVE:
        tenant = tenant_provision(tenant_id=tenant.pk, admin_password=PASSWORD)
    with schema_context(tenant.schema_name):
        for key, template in ROLE_EMAILS.items():
            email = template.format(slug=slug)
            role = Role.SALES if key.startswith("sales") else key
            user = User.objects.filter(email=email).first()
            if user is None:
                User.objects.create_user(
                    email=email, password=PASSWORD, role=role, full_name=f"{key.title()} {slug}"
                )
            elif user.role != role:
                User.objects.filter(pk=user.pk).update(role=role, full_name=f"{key.title()} {slug}")
    return tenant


@pytest.fixture(scope="session")
def django_db_setup(
    request,
    django_test_environment,
    django_db_blocker,
    django_db_keepdb,
    django_db_createdb,
    django_db_modify_db_settings,  # applies the per-xdist-worker database name suffix
):
    """Create the test database ALWAYS (not only when some collected test asks for `db`, as
    pytest-django's own fixture does): tests that commit data through `committed_tenant`, a worker or
    a browser must never fall through to the database named in DATABASE_URL. Then build the platform,
    the template schema and the two session tenants."""
    from django.test.utils import setup_databases, teardown_databases

    keepdb = django_db_keepdb and not django_db_createdb
    with django_db_blocker.unblock():
        db_cfg = setup_databases(
            verbosity=request.config.option.verbose, interactive=False, aliases={"default"}, keepdb=keepdb
        )
        assert connection.settings_dict["NAME"].startswith("test_"), (
            "refusing to run tests outside a test database"
        )
        connection.set_schema_to_public()
        ensure_public_tenant()
        ensure_template_schema()
        _ensure_tenant("alpha", "Alpha Trading 阿尔法")
        _ensure_tenant("beta", "Beta Salon")
        if not User.objects.filter(email=PLATFORM_ADMIN_EMAIL).exists():
            User.objects.create_superuser(email=PLATFORM_ADMIN_EMAIL, password=PASSWORD, full_name="Operator")
        connection.set_schema_to_public()
    yield
    with django_db_blocker.unblock():
        # Worker and server processes started by fixtures may still be disconnecting.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        if not django_db_keepdb:
            teardown_databases(db_cfg, verbosity=request.config.option.verbose)


@pytest.fixture(autouse=True)
def _english_unless_asked():
    """Each test starts in English: a request in an earlier test may have activated another language
    in this thread (the locale middleware does not reset it afterwards)."""
    translation.activate("en")
    yield
    translation.deactivate()


def clear_run_cache() -> None:
    """Remove the cache keys this test run wrote. Never `cache.clear()`: that flushes the whole
    Redis database, which other runs, workers and a developer's `make run` share."""
    from django.core.cache import cache

    client = cache._cache.get_client(write=True)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    # A cache key is "<schema>:<prefix>:<version>:<key>" (django_tenants.cache.make_key), a Celery
    # result "<prefix>:celery:…": both patterns are anchored at a colon or the start, so run 123's
    # cleanup never matches run 4123's keys ("*crm-test-123:*" would).
    keys = {
        key
        for pattern in (f"{prefix}:*", f"*:{prefix}:*")
        for key in client.scan_iter(match=pattern, count=1000)
    }
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _clear_this_runs_cache():
    """Each test starts and ends with none of this run's cached values."""
    clear_run_cache()
    yield
    clear_run_cache()


@pytest.fixture
def tenant_a(db) -> Tenant:
    return Tenant.objects.get(slug="alpha")


@pytest.fixture
def tenant_b(db) -> Tenant:
    return Tenant.objects.get(slug="beta")


@pytest.fixture
def tenant(tenant_a):
    """Tenant "alpha", with the connection pointed at its schema for the test."""
    connection.set_tenant(tenant_a)
    yield tenant_a
    connection.set_schema_to_public()


def _user(tenant: Tenant, key: str) -> User:
    with schema_context(tenant.schema_name):
        return User.objects.get(email=ROLE_EMAILS[key].format(slug=tenant.slug))


@pytest.fixture
def admin_user(tenant) -> User:
    return _user(tenant, "admin")


@pytest.fixture
def manager_user(tenant) -> User:
    return _user(tenant, "manager")


@pytest.fixture
def sales_user(tenant) -> User:
    return _user(tenant, "sales")


@pytest.fixture
def sales_user2(tenant) -> User:
    return _user(tenant, "sales2")


@pytest.fixture
def users(tenant) -> dict[str, User]:
    return {key: _user(tenant, key) for key in ROLE_EMAILS}


def tenant_host(tenant: Tenant) -> str:
    return f"{tenant.slug}.{settings.BASE_DOMAIN}"


@pytest.fixture
def client_for():
    """client_for(user, tenant=None) -> a test Client signed in as `user` at the tenant's host."""

    def make(user: User | None, tenant: Tenant | None = None) -> Client:
        tenant = tenant or Tenant.objects.get(slug="alpha")
        client = Client(HTTP_HOST=tenant_host(tenant))
        if user is not None:
            with schema_context(tenant.schema_name):
                client.force_login(user)
        connection.set_tenant(tenant)
        return client

    return make


@pytest.fixture
def anon_client(tenant) -> Client:
    return Client(HTTP_HOST=tenant_host(tenant))


@pytest.fixture
def admin_client(client_for, admin_user):
    return client_for(admin_user)


@pytest.fixture
def manager_client(client_for, manager_user):
    return client_for(manager_user)


@pytest.fixture
def sales_client(client_for, sales_user):
    return client_for(sales_user)


@pytest.fixture
def platform_admin(db) -> User:
    connection.set_schema_to_public()
    return User.objects.get(email=PLATFORM_ADMIN_EMAIL)


@pytest.fixture
def public_client(db) -> Client:
    return Client(HTTP_HOST=settings.BASE_DOMAIN)


@pytest.fixture
def platform_client(platform_admin, public_client) -> Client:
    connection.set_schema_to_public()
    public_client.force_login(platform_admin)
    return public_client


# --- Committed data, for tests that need another process (Celery worker, browser) to see it ------


@pytest.fixture
def committed_tenant(django_db_setup, django_db_blocker):
    """make(slug) -> a freshly provisioned, committed tenant; its schema and rows are dropped afterwards."""
    created: list[Tenant] = []

    def make(slug: str | None = None, name: str = "Committed Co") -> Tenant:
        slug = slug or f"t{uuid.uuid4().hex[:10]}"
        with django_db_blocker.unblock():
            connection.set_schema_to_public()
            tenant = _ensure_tenant(slug, name)
            connection.set_schema_to_public()
        created.append(tenant)
        return tenant

    yield make
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        for tenant in created:
            _drop_schema(tenant.schema_name)
            Tenant.objects.filter(pk=tenant.pk).delete()


def _drop_schema(schema: str, attempts: int = 5) -> None:
    """DROP SCHEMA ... CASCADE, again after a deadlock: a request a browser test's page still had in
    flight (the live server answers in its own thread) may hold a lock on one of the schema's tables
    while waiting for another, and PostgreSQL then cancels the DROP instead."""
    for attempt in range(attempts):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            return
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


def _test_database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def worker_queues(queue: str) -> list[str]:
    """A test worker's queues: `queue` and its copy of every routed workload's queue."""
    return [queue, *(f"{queue}-{workload}" for workload in settings.TASK_WORKLOADS if workload != "default")]


@contextmanager
def tasks_sent_to(queue: str):
    """Tasks sent by this process go to `queue` and its workload copies (see worker_queues)."""
    from crm.celery import app as celery_app

    previous = celery_app.conf.task_default_queue, settings.TASK_QUEUE_PREFIX
    celery_app.conf.task_default_queue = queue
    settings.TASK_QUEUE_PREFIX = f"{queue}-"  # crm.celery.route_task reads it when a task is sent
    try:
        yield
    finally:
        celery_app.conf.task_default_queue, settings.TASK_QUEUE_PREFIX = previous


def start_celery_worker(queue: str, log: Path, *, extra_env: dict | None = None) -> subprocess.Popen:
    """Start a real `celery worker` process on `queue` against the test database and this run's Redis
    prefix; returns once it is ready (fails with its log otherwise). The caller stops it."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm.settings.test",
        "DATABASE_URL": _test_database_url(),
        "CONN_MAX_AGE": "0",
        # Tasks the worker enqueues itself (dispatchers) stay on this queue, and the routed workloads
        # (imports, recompute, reminders: crm.celery.route_task) on "<queue>-<workload>".
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "TASK_QUEUE_PREFIX": f"{queue}-",
        "WORKER_WORKLOADS": ",".join(settings.TASK_WORKLOADS),
        # The worker reads and writes this run's cache keys (and they are cleaned up with them).
        "TEST_CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        **(extra_env or {}),
    }
    celery_bin = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    with open(log, "a") as log_file:
        process = subprocess.Popen(
            [
                celery_bin,
                "-A",
                "crm",
                "worker",
                "--pool=solo",
                "-Q",
                ",".join(worker_queues(queue)),
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"{queue}-{uuid.uuid4().hex[:4]}@%h",
                "--loglevel=INFO",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    offset = log.stat().st_size if log.exists() else 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Celery worker exited early:\n{log.read_text()}")
        if "ready." in log.read_text()[offset:]:
            return process
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"Celery worker did not start in 60 s:\n{log.read_text()}")


def stop_celery_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def _delete_queues(queues: list[str]) -> None:
    """Remove these queues from the broker: their messages and bindings. By key, as kombu lays them
    out in Redis: `queue_delete` only removes the bindings its own channel declared, which a new
    connection has none of (queues of earlier runs were left behind)."""
    from crm.celery import app as celery_app

    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        keys = []
        for name in queues:
            keys += [channel._q_for_pri(name, step) for step in channel.priority_steps]
            keys += [channel.keyprefix_queue % name, channel.keyprefix_binding_permanent % name]
        channel.client.delete(*keys)


def unconsumed_queue() -> str:
    """This run's queue that no worker takes (its workloads' queues are "<it>-<workload>")."""
    return f"{settings.CACHES['default']['KEY_PREFIX']}-unconsumed"


@pytest.fixture(scope="session", autouse=True)
def _tasks_of_this_run_to_its_own_queue():
    """A test without a worker sends its tasks to this run's own queues, which nothing consumes and
    which are deleted at the end: not to the default queue, where a worker of another run, or of a
    developer's `make run` on the same Redis, would run them against its own database."""
    queue = unconsumed_queue()
    with tasks_sent_to(queue):
        yield
    _delete_queues(worker_queues(queue))


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real `celery worker` process on a queue of its own, using the test database and Redis,
    started once per test process; only the tests that ask for `celery_worker` (and the browser
    tests' live server) send it tasks."""

    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with django_db_blocker.unblock():
        process = start_celery_worker(queue, log)
    try:
        yield {"queue": queue, "log": log, "process": process}
    finally:
        stop_celery_worker(process)
        _delete_queues(worker_queues(queue))


@pytest.fixture
def celery_worker(celery_worker_process):
    """The shared worker, for this test: the tasks it sends go to the worker's queues. Only for the
    test: a later test of the same process that sends a task (an import queues a recompute) must not
    have it run by the worker, which would change that test's data and cached figures under it."""
    with tasks_sent_to(celery_worker_process["queue"]):
        yield celery_worker_process
        _wait_until_worked_off(celery_worker_process)


def _wait_until_worked_off(worker: dict, timeout: float = 120) -> None:
    """Wait until the worker has run every task this test queued: a task still queued or running
    (a recompute, or the sweep an order sets off) would write and change cached figures under the
    next test of this process. One no-op task per queue, behind the test's own (each queue is first
    in, first out, and the worker runs one task at a time)."""
    from crm.celery import app as celery_app

    markers = [
        celery_app.tasks["celery.accumulate"].apply_async(args=("worked off",), queue=name)
        for name in worker_queues(worker["queue"])
    ]
    for marker in markers:
        try:
            marker.get(timeout=timeout)
        except Exception as exc:
            log = worker["log"].read_text()[-3000:]
            raise AssertionError(f"the test worker did not work off its queue ({exc!r}):\n{log}") from exc
        marker.forget()


@pytest.fixture
def celery_worker_factory(django_db_setup, django_db_blocker, tmp_path):
    """start(extra_env=None) -> a worker process of this test on a queue of its own (tasks sent by the
    test go there), which the test may kill and start again; every one is stopped afterwards."""

    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    started: list[subprocess.Popen] = []

    def start(extra_env: dict | None = None) -> subprocess.Popen:
        with django_db_blocker.unblock():
            process = start_celery_worker(queue, log, extra_env=extra_env)
        started.append(process)
        return process

    start.queue, start.log = queue, log
    try:
        with tasks_sent_to(queue):
            yield start
    finally:
        for process in started:
            if process.poll() is None:
                stop_celery_worker(process)
        # Messages left on this test's queues (e.g. by a killed worker) are dropped with them.
        _delete_queues(worker_queues(queue))


# --- A real SMTP server, for tests where sending mail is the point ----------------------------------


class SmtpSink:
    """What an aiosmtpd server received: `messages` (email.message.Message), in arrival order.
    `delay` (seconds) holds each "250 OK" back after the message is stored, like a slow server: a
    sender killed in that window has delivered a message it never saw accepted."""

    def __init__(self) -> None:
        import threading

        self.raw: list[bytes] = []
        self._parsed: list = []
        self.sessions: set = set()  # the client (host, port) of each SMTP session that sent mail
        self.delay = 0.0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        # Stored as received and parsed when a test reads `messages`, as a mail server queues bytes:
        # parsing 10,000 messages in the server's loop would make the sink the benchmark's bottleneck.
        with self._lock:
            self.raw.append(envelope.original_content or envelope.content)
            self.sessions.add(session.peer)
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list:
        from email import message_from_bytes
        from email.policy import default

        with self._lock:
            raw = list(self.raw)
        self._parsed.extend(message_from_bytes(data, policy=default) for data in raw[len(self._parsed) :])
        return list(self._parsed)

    def wait_for(self, count: int, seconds: float = 60) -> list:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(self.raw) < count:
            time.sleep(0.1)
        return self.messages


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server (aiosmtpd) on a free port, with Django's SMTP backend pointed at it in this
    process. `.port`, `.messages`, `.wait_for(n)`, and `.worker_env` for a Celery worker to send there."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    sink.port = port
    sink.worker_env = {
        "TEST_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_URL": f"smtp://127.0.0.1:{port}",
    }
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
def sent(monkeypatch):
    """The background refreshes of stale report figures sent (their kwargs; dashboards.caching and
    crm.reportcache), recorded instead of sent to a broker."""
    from dashboards.tasks import report_refresh_task

    messages = []

    def record(*, kwargs):
        messages.append(kwargs)

    monkeypatch.setattr(report_refresh_task, "apply_async", record)
    return messages
