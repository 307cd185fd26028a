"""docker-compose works on the first `up` (issue 16, item 2). There is no container engine on these
machines, so this test does what `docker-compose up` would: it reads docker-compose.yml, starts each
service's command (through the image's entry point) in dependency order with the service's own
environment, with the addresses of the local PostgreSQL (a new, empty database) and Redis in place of
the `db` and `redis` containers. `setup` must finish successfully before the others start; then the
web service (gunicorn) must pass its health check, /readyz must see the database, Redis and a worker
on every queue, beat must stay up, and the platform admin and the demo company's admin must sign in
over plain http."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from django.conf import settings

from tests.conftest import REPO_ROOT
from tests.ops import compose

pytestmark = [pytest.mark.slow, pytest.mark.celery_worker]
SERVER = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """Just enough of a browser over http.client: one host, cookies, CSRF tokens from forms."""

    def __init__(self, port: int, host: str):
        self.port, self.host, self.cookies = port, host, {}

    def request(self, method: str, path: str, form: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Host": f"{self.host}:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = f"http://{self.host}:{self.port}"
            headers["Referer"] = f"http://{self.host}:{self.port}{path}"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    cookie = value.split(";", 1)[0]
                    key, _, val = cookie.partition("=")
                    assert "secure" not in value.lower(), f"a Secure cookie over http: {value}"
                    self.cookies[key.strip()] = val.strip()
            return response.status, dict(response.getheaders()), response.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def post_form(self, path: str, fields: dict):
        status, _headers, html = self.request("GET", path)
        assert status == 200, html[:500]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
        return self.request("POST", path, {"csrfmiddlewaretoken": token, **fields})


def _wait_for(condition, processes, logs, *, seconds: int) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        for name, process in processes.items():
            assert process.poll() is None, f"{name} exited:\n{logs[name].read_text()[-4000:]}"
        assert time.monotonic() < deadline, "\n".join(
            f"{n}: {logs[n].read_text()[-2000:]}" for n in processes
        )
        time.sleep(0.5)


@pytest.fixture(scope="module")
def compose_up(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compose")
    database = f"crm_compose_{uuid.uuid4().hex[:10]}"
    port = _free_port()
    run_id = f"compose-{uuid.uuid4().hex[:8]}"
    services = compose.load(REPO_ROOT / "docker-compose.yml", {})["services"]
    order = compose.start_order(services)
    # What stands in for the containers: the local servers, a folder per volume, a free port.
    replacements = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY_FILE": str(folder / "secrets" / "secret_key"),
        "MEDIA_ROOT": str(folder / "media"),
        "BACKUP_ROOT": str(folder / "backups"),
        "SITE_PORT": str(port),
        "PORT": str(port),
        "DEMO_CUSTOMERS": "40",  # the demo company, small
        # This run's queues and cache keys only, on the shared Redis.
        "CELERY_TASK_DEFAULT_QUEUE": run_id,
        "TASK_QUEUE_PREFIX": f"{run_id}-",
        "CACHE_KEY_PREFIX": run_id,
    }
    (folder / "secrets").mkdir()
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "TASK_", "SECRET_KEY", "TEST_", "PYTEST", "REQUEST_LOG"))
        and key not in ("DATABASE_URL", "REDIS_URL", "CONN_MAX_AGE", "DEBUG", "CSRF_TRUSTED_ORIGINS")
    }
    base_env["PATH"] = f"{BIN}:{base_env.get('PATH', '')}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    processes: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    replacements["STATIC_ROOT"] = str(folder / "static")  # the image's /app/staticfiles

    def environment(spec: dict) -> dict[str, str]:
        env = {**base_env, **{k: str(v) for k, v in (spec.get("environment") or {}).items()}}
        always = ("PORT", "CACHE_KEY_PREFIX", "STATIC_ROOT")
        env.update({k: v for k, v in replacements.items() if k in env or k in always})
        env["CELERY_TASK_DEFAULT_QUEUE"] = replacements["CELERY_TASK_DEFAULT_QUEUE"]
        env["TASK_QUEUE_PREFIX"] = replacements["TASK_QUEUE_PREFIX"]
        return env

    try:
        # The image's build step (Dockerfile): static files collected with the production settings.
        build = subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=REPO_ROOT,
            env={**environment(services["web"]), "SECRET_KEY": "build-" + uuid.uuid4().hex * 2},
            capture_output=True,
            text=True,
        )
        assert build.returncode == 0, build.stderr
        for name in order:
            spec = services[name]
            if "image" in spec and "build" not in spec:
                continue  # db, redis: the local servers (the test database server and settings.REDIS_URL)
            argv = ["sh", "scripts/docker-entrypoint.sh", *compose.command(spec)]
            logs[name] = folder / f"{name}.log"
            with open(logs[name], "w") as log:
                process = subprocess.Popen(
                    argv, cwd=REPO_ROOT, env=environment(spec), stdout=log, stderr=subprocess.STDOUT
                )
            if spec.get("restart") == "no":  # a one-shot service that the others wait for
                assert process.wait(timeout=600) == 0, logs[name].read_text()[-4000:]
            else:
                processes[name] = process
        for name in list(processes):  # the workers take a while to start on 2 busy cores
            if "worker" in name:
                _wait_for(lambda name=name: "ready." in logs[name].read_text(), processes, logs, seconds=400)
        healthcheck = services["web"]["healthcheck"]["test"][1:]
        healthcheck = [part.replace(":8000/", f":{port}/") for part in healthcheck]
        deadline = time.monotonic() + 300
        while True:
            for name, process in processes.items():
                assert process.poll() is None, f"{name} exited:\n{logs[name].read_text()[-4000:]}"
            if subprocess.run(healthcheck, capture_output=True, env=base_env).returncode == 0:
                break
            assert time.monotonic() < deadline, logs["web"].read_text()[-4000:]
            time.sleep(0.5)
        yield {
            "port": port,
            "processes": processes,
            "logs": logs,
            "services": services,
            "environment": environment,
            "database": database,
        }
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)


def test_compose_file_orders_setup_before_everything_that_needs_the_database():
    services = compose.load(REPO_ROOT / "docker-compose.yml")["services"]
    order = compose.start_order(services)
    assert services["setup"]["restart"] == "no"
    for name in ("web", "worker", "worker-bulk", "beat"):
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
        assert services[name]["restart"] == "unless-stopped"
        assert order.index("setup") < order.index(name)
    assert services["setup"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    for name in ("db", "redis", "web"):
        assert services[name]["healthcheck"]["test"]


def test_every_service_starts_and_stays_up_and_web_is_ready(compose_up):
    time.sleep(3)  # beat's first tick reads its schedule tables
    for name, process in compose_up["processes"].items():
        assert process.poll() is None, f"{name} exited:\n{compose_up['logs'][name].read_text()[-4000:]}"
    assert "does not exist" not in compose_up["logs"]["beat"].read_text()
    browser = Browser(compose_up["port"], "10.1.2.3")  # a probe by address: any Host is answered
    deadline = time.monotonic() + 30
    while True:
        status, headers, body = browser.request("GET", "/readyz")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status == 200, body
    assert json.loads(body) == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "workers": "ok"},
    }


def test_the_platform_admin_signs_in_over_http_and_reaches_the_console(compose_up):
    from django_otp.oath import TOTP

    services = compose_up["services"]
    env = services["setup"]["environment"]
    browser = Browser(compose_up["port"], "localhost")
    status, headers, body = browser.post_form(
        "/accounts/login/",
        {"username": env["PLATFORM_ADMIN_EMAIL"], "password": env["PLATFORM_ADMIN_PASSWORD"]},
    )
    assert status == 302, body[:2000]  # not a CSRF 403: the cookies work over http
    assert headers["Location"] == "/accounts/login/two-factor-setup/"
    status, _headers, html = browser.request("GET", headers["Location"])
    secret = re.search(r'data-secret="([A-Z2-7]+)"', html).group(1)
    code = f"{TOTP(base64.b32decode(secret)).token():06d}"
    status, headers, body = browser.post_form("/accounts/login/two-factor-setup/", {"code": code})
    assert status == 302, body[:2000]
    status, _headers, html = browser.request("GET", "/console/")
    assert status == 200
    assert "demo" in html  # the demo company the setup service created is listed


def test_the_demo_company_admin_signs_in_over_http_and_the_request_is_logged(compose_up):
    env = compose_up["services"]["setup"]["environment"]
    browser = Browser(compose_up["port"], f"{env['DEMO_TENANT']}.localhost")
    status, headers, body = browser.post_form(
        "/accounts/login/", {"username": env["DEMO_ADMIN_EMAIL"], "password": env["DEMO_ADMIN_PASSWORD"]}
    )
    assert status == 302 and headers["Location"] == "/", body[:2000]
    status, _headers, html = browser.request("GET", "/customers/")
    assert status == 200
    # gunicorn's output: one JSON line per request with the tenant, the user and the status.
    time.sleep(0.5)
    lines = [
        json.loads(line)
        for line in compose_up["logs"]["web"].read_text().splitlines()
        if line.startswith("{") and '"event": "request"' in line
    ]
    visit = [line for line in lines if line["path"] == "/customers/" and line["tenant"] == env["DEMO_TENANT"]]
    assert visit and visit[-1]["status"] == 200 and isinstance(visit[-1]["user_id"], int)
    assert visit[-1]["duration_ms"] > 0 and visit[-1]["method"] == "GET"


def test_doctor_finds_nothing_to_fix_in_the_compose_installation(compose_up):
    env = compose_up["environment"](compose_up["services"]["web"])
    result = subprocess.run(
        ["sh", "scripts/docker-entrypoint.sh", "python", "manage.py", "doctor", "--worker-timeout", "20"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FIX" not in result.stdout
    for workload in ("default", "imports", "recompute", "reminders"):
        assert f"({workload}): a worker answered" in result.stdout
    assert "tenant schemas are current" in result.stdout
