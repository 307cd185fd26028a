"""The development server as `make run` starts it (dev settings, `runserver --nostatic`), on the test
database: friendly error pages instead of Django's debug pages, no 500 for a path that climbs out of
/static/, the security headers, and no idle database connection kept per request thread."""

import http.client
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import REPO_ROOT, _test_database_url, wait_until_listening


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def dev_server(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        database_url = _test_database_url()
    port = _free_port()
    application_name = f"crm-dev-probe-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("devserver")
    drop = {"SECRET_KEY", "DEBUG", "CONN_MAX_AGE", "DJANGO_ALLOW_ASYNC_UNSAFE", "CSRF_TRUSTED_ORIGINS"}
    env = {
        **{k: v for k, v in os.environ.items() if k not in drop},
        "DJANGO_SETTINGS_MODULE": "crm.settings.dev",
        "DATABASE_URL": f"{database_url}?application_name={application_name}",
        "BASE_DOMAIN": settings.BASE_DOMAIN,
        "SITE_PORT": str(port),
        "SECRET_KEY_FILE": str(folder / "secret_key"),
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],  # removed after each test
        "MEDIA_ROOT": str(folder / "media"),
    }
    log = folder / "server.log"
    with open(log, "w") as log_file:
        # The same command as scripts/devrun.py (without the autoreloader's second process).
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--nostatic", "--noreload", f"127.0.0.1:{port}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, log, what="development server")
        yield {"port": port, "application_name": application_name, "log": log}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def get(server, path: str, host: str = f"alpha.{settings.BASE_DOMAIN}"):
    """GET `path` exactly as written (no client-side clean-up of `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", f"{host}:{server['port']}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_a_missing_page_shows_the_friendly_404_not_the_url_patterns(dev_server):
    for host in (f"alpha.{settings.BASE_DOMAIN}", settings.BASE_DOMAIN):
        status, headers, body = get(dev_server, "/no-such-page/", host)
        assert status == 404, host
        assert "bi-signpost-split" in body, host  # templates/404.html, whatever the language
        assert "URLconf" not in body and "customers/" not in body, host
        assert "Content-Security-Policy" in headers


@pytest.mark.parametrize(
    "path",
    ["/static/../media/x.csv", "/static/../manage.py", "/static/..%2f..%2fmanage.py", "/static/%2e%2e/x"],
)
def test_a_path_climbing_out_of_static_is_not_found(dev_server, path):
    status, _headers, body = get(dev_server, path)
    assert status == 404, (path, body[:500])
    assert "import" not in body  # manage.py is never served


def test_static_files_are_served_with_the_security_headers(dev_server):
    status, headers, body = get(dev_server, "/static/js/app.js")
    assert status == 200 and "data-confirm" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "same-origin" and "camera=()" in headers["Permissions-Policy"]


def test_request_threads_do_not_keep_database_connections(dev_server, django_db_blocker):
    """The development server runs each request in a new thread; with persistent connections each
    thread left one open (45-53 per instance seen). Twelve requests that read the database must leave
    at most the server's start-up connection."""
    for index in range(12):
        status, _headers, _body = get(dev_server, f"/accounts/login/?n={index}")
        assert status == 200
    time.sleep(0.5)
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [dev_server["application_name"]],
        )
        (open_connections,) = cursor.fetchone()
    assert open_connections <= 1, f"{open_connections} connections left open by 12 requests"
