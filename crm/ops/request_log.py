"""One structured log line per request: method, path (no query string: it may hold a search for a
person's name), status, duration, tenant schema and user id. Logged by the logger "crm.request",
formatted as JSON by JsonFormatter (settings.LOGGING), so a log collector can filter by tenant."""

from __future__ import annotations

import json
import logging
import time

from django.utils.functional import empty

logger = logging.getLogger("crm.request")


class JsonFormatter(logging.Formatter):
    """The record's message and its `fields` extra as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            tenant = getattr(request, "tenant", None)
            # The user only when the request already loaded it: logging must not cost a query.
            user = getattr(request, "user", None)
            if getattr(user, "_wrapped", None) is empty:
                user = None
            fields = {
                "method": request.method,
                "path": request.path[:500],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "tenant": getattr(tenant, "schema_name", None),
                "user_id": user.pk if user is not None and getattr(user, "is_authenticated", False) else None,
            }
            level = logging.ERROR if status >= 500 else logging.INFO
            logger.log(level, "request", extra={"fields": fields})
