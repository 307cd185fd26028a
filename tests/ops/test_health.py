"""/healthz, /readyz, the request log and `manage.py doctor`'s failures (issue 16, item 3). The happy
paths over gunicorn with real workers are in test_compose.py."""

import json
import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from crm.ops import health
from crm.ops.request_log import JsonFormatter
from tests.conftest import unconsumed_queue


@pytest.fixture(autouse=True)
def _fresh_worker_answer():
    health._worker_cache.clear()
    yield
    health._worker_cache.clear()


def test_healthz_answers_any_host_over_http_without_touching_the_database():
    # No `db` fixture: any database query here would raise.
    client = Client(HTTP_HOST="10.0.0.7")  # not an allowed host: probes come by address
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_readyz_says_which_workload_has_no_worker(db, settings):
    settings.READYZ_TIMEOUT_SECONDS = 0.3
    settings.TASK_QUEUE_PREFIX = f"{unconsumed_queue()}-"  # no worker anywhere takes these queues
    response = Client(HTTP_HOST="10.0.0.7").get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"] == "ok"
    assert body["checks"]["workers"].startswith("no worker")


def test_readyz_reports_redis_down_without_its_address(db, settings):
    settings.READYZ_TIMEOUT_SECONDS = 0.3
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client(HTTP_HOST="10.0.0.7").get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "unavailable"
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.celery_worker
def test_readyz_is_ready_with_a_worker_on_every_queue(db, celery_worker, settings):
    settings.READYZ_TIMEOUT_SECONDS = 2.0
    response = Client(HTTP_HOST="10.0.0.7").get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "workers": "ok"}


def test_one_json_line_per_request_with_tenant_user_status_and_duration(admin_client, admin_user, tenant):
    logger = logging.getLogger("crm.request")
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        admin_client.get("/customers/?q=Wang")
        admin_client.get("/no-such-page/")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["path"], line["status"]) for line in lines] == [
        ("/customers/", 200),
        ("/no-such-page/", 404),
    ]
    first = lines[0]
    assert first["event"] == "request" and first["method"] == "GET"
    assert first["tenant"] == tenant.schema_name and first["user_id"] == admin_user.pk
    assert first["duration_ms"] > 0
    assert "Wang" not in stream.getvalue()  # no query string: it may hold a person's name


def test_doctor_prints_what_to_fix_and_fails_when_no_worker_answers(db, settings):
    settings.TASK_QUEUE_PREFIX = f"{unconsumed_queue()}-"  # no worker anywhere takes these queues
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("doctor", "--worker-timeout", "0.5", stdout=out)
    assert exit_info.value.code == 1
    text = out.getvalue()
    assert f"FIX   workers: no worker took queue {unconsumed_queue()}-imports (imports)" in text
    assert "-> start a worker for it" in text
    assert "ok    migrations:" in text  # the test database's schemas are all migrated
    assert "ok    beat:" in text


def test_doctor_names_a_tenant_schema_that_lacks_migrations(tenant, settings):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {tenant.schema_name}.django_migrations "
            "WHERE app = 'customers' AND name LIKE '0001%%'"
        )
    out = StringIO()
    settings.TASK_QUEUE_PREFIX = f"{unconsumed_queue()}-"  # no worker anywhere takes these queues
    with pytest.raises(SystemExit):
        call_command("doctor", "--worker-timeout", "0.5", stdout=out)
    assert f"FIX   migrations: tenant schema {tenant.schema_name} lacks 1 migrations" in out.getvalue()
    assert "manage.py setup_platform" in out.getvalue()
