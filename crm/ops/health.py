"""`/healthz` (the process answers) and `/readyz` (the database, Redis and a worker on every queue
answer within a bound), for load balancers and container health checks.

Answered by a middleware placed first, before the host check, the tenant lookup and the HTTPS
redirect: a probe reaches the process by its address over plain HTTP, whatever Host it sends. The
answers carry no addresses or error text, only which check failed.
"""

from __future__ import annotations

import json
import threading
import time

from django.conf import settings
from django.db import connection
from django.http import HttpResponse

PATHS = ("/healthz", "/readyz")
_worker_cache: dict[str, tuple[float, str]] = {}
_worker_lock = threading.Lock()


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return "unavailable"


def check_redis(*, timeout: float) -> str:
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            client.ping()
        finally:
            client.close()
        return "ok"
    except Exception:  # noqa: BLE001
        return "unavailable"


def consumed_queues(*, timeout: float) -> set[str] | None:
    """The queues some running worker consumes (None when the broker cannot be asked)."""
    from crm.celery import app

    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # noqa: BLE001
        return None
    return {queue["name"] for queues in replies.values() for queue in queues or []}


def expected_queues() -> dict[str, str]:
    """workload -> queue name, for every workload of settings.TASK_WORKLOADS."""
    from crm.celery import queue_name

    return {workload: queue_name(workload) for workload in settings.TASK_WORKLOADS}


def check_workers(*, timeout: float) -> str:
    """ "ok", or which workloads no worker takes. Cached briefly: asking the workers waits `timeout`."""
    now = time.monotonic()
    with _worker_lock:
        cached = _worker_cache.get("workers")
        if cached and now - cached[0] < settings.READYZ_WORKER_CACHE_SECONDS:
            return cached[1]
    consumed = consumed_queues(timeout=timeout)
    if consumed is None:
        result = "broker unavailable"
    elif not consumed:
        result = "no worker answers"
    else:
        missing = [workload for workload, queue in expected_queues().items() if queue not in consumed]
        result = "ok" if not missing else "no worker takes " + ", ".join(missing)
    with _worker_lock:
        _worker_cache["workers"] = (time.monotonic(), result)
    return result


def readiness() -> dict[str, str]:
    timeout = settings.READYZ_TIMEOUT_SECONDS
    return {
        "database": check_database(),
        "redis": check_redis(timeout=timeout),
        "workers": check_workers(timeout=timeout),
    }


def _json(payload: dict, status: int) -> HttpResponse:
    response = HttpResponse(json.dumps(payload), content_type="application/json", status=status)
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info.rstrip("/")
        if path not in PATHS or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        if path == "/healthz":
            return _json({"status": "ok"}, 200)
        checks = readiness()
        ready = all(value == "ok" for value in checks.values())
        return _json({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)
