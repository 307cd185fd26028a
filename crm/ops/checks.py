"""The checks of `manage.py doctor`: settings, migrations of every schema, beat schedules, workers.

Each check returns Findings; a finding with `fix` set is a problem and says what to do about it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader


@dataclass(frozen=True)
class Finding:
    area: str
    message: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return not self.fix


def check_settings() -> list[Finding]:
    from django.core import checks

    from crm.settings.keyfile import secret_key_problem

    found: list[Finding] = []
    problem = secret_key_problem(settings.SECRET_KEY)
    if problem:
        found.append(
            Finding("settings", problem, "set SECRET_KEY (50+ random characters) or SECRET_KEY_FILE")
        )
    if settings.DEBUG:
        found.append(Finding("settings", "DEBUG is on", "set DEBUG=false outside development"))
    if not any(host in settings.ALLOWED_HOSTS for host in (settings.BASE_DOMAIN, f".{settings.BASE_DOMAIN}")):
        found.append(
            Finding(
                "settings",
                f"ALLOWED_HOSTS {settings.ALLOWED_HOSTS} does not admit BASE_DOMAIN {settings.BASE_DOMAIN}",
                "leave ALLOWED_HOSTS unset or add BASE_DOMAIN and .BASE_DOMAIN to it",
            )
        )
    secure_cookies = getattr(settings, "SESSION_COOKIE_SECURE", False)
    if settings.SITE_SCHEME == "http" and secure_cookies:
        found.append(
            Finding(
                "settings",
                "SITE_SCHEME is http but cookies are HTTPS-only: browsers drop them and sign-in fails",
                "serve over HTTPS and set SITE_SCHEME=https, or keep SITE_SCHEME=http for a local trial",
            )
        )
    if settings.SITE_SCHEME == "https" and not secure_cookies:
        found.append(
            Finding(
                "settings",
                "SITE_SCHEME is https but session cookies may travel over plain HTTP",
                "use the production settings (DJANGO_SETTINGS_MODULE=crm.settings.production)",
            )
        )
    errors = [
        message
        for message in checks.run_checks(include_deployment_checks=settings.SITE_SCHEME == "https")
        if message.level >= checks.WARNING and not message.is_silenced()
    ]
    for message in errors:
        found.append(Finding("settings", f"{message.id}: {message.msg}", message.hint or "see the message"))
    if not found:
        found.append(Finding("settings", f"{settings.SETTINGS_MODULE}: no problems found"))
    return found


def _unapplied(schema_name: str, on_disk: set[tuple[str, str]]) -> int | None:
    """How many migrations on disk the schema has not recorded (None when it has no migration table)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = 'django_migrations'",
            [schema_name],
        )
        if cursor.fetchone() is None:
            return None
        cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(schema_name)}.django_migrations")
        return len(on_disk - set(cursor.fetchall()))


def check_migrations() -> list[Finding]:
    from crm.tenancy.models import Tenant

    connection.set_schema_to_public()
    loader = MigrationLoader(None, ignore_no_migrations=True)
    on_disk = {key for key in loader.disk_migrations if key not in loader.replacements}
    found: list[Finding] = []
    fix = "run `manage.py setup_platform` (docker-compose: `docker-compose run --rm setup`)"
    public = _unapplied("public", on_disk)
    if public is None or public:
        found.append(Finding("migrations", f"the public schema lacks {public or 'all'} migrations", fix))
    template = settings.TENANT_BASE_SCHEMA
    missing = _unapplied(template, on_disk) if public is not None else None
    if missing is None or missing:
        found.append(
            Finding("migrations", f"the template schema {template} lacks {missing or 'all'} migrations", fix)
        )
    checked = 0
    if public is not None:
        tenants = Tenant.objects.exclude(schema_name="public").exclude(status=Tenant.Status.PROVISIONING)
        for schema_name, status in tenants.values_list("schema_name", "status").order_by("schema_name"):
            missing = _unapplied(schema_name, on_disk)
            checked += 1
            if missing is None and status in (Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED):
                found.append(Finding("migrations", f"tenant schema {schema_name} is missing", fix))
            elif missing:
                found.append(
                    Finding("migrations", f"tenant schema {schema_name} lacks {missing} migrations", fix)
                )
    if not found:
        found.append(Finding("migrations", f"public, {template} and {checked} tenant schemas are current"))
    return found


def check_beat() -> list[Finding]:
    from crm.celery import app

    app.loader.import_default_modules()
    found: list[Finding] = []
    for entry, spec in settings.CELERY_BEAT_SCHEDULE.items():
        if spec["task"] not in app.tasks:
            found.append(
                Finding(
                    "beat",
                    f"schedule {entry} names task {spec['task']}, which no installed app defines",
                    "correct or remove it in CELERY_BEAT_SCHEDULE",
                )
            )
    try:
        from django_celery_beat.models import PeriodicTask

        connection.set_schema_to_public()
        stale = [
            (name, task)
            for name, task in PeriodicTask.objects.filter(enabled=True).values_list("name", "task")
            if task not in app.tasks
        ]
    except Exception as exc:  # noqa: BLE001 - the beat tables are missing before the first migrate
        return [
            *found,
            Finding(
                "beat",
                f"the beat schedule tables cannot be read ({type(exc).__name__})",
                "run `manage.py setup_platform`",
            ),
        ]
    for name, task in stale:
        found.append(
            Finding(
                "beat",
                f"enabled schedule {name!r} in the database names unknown task {task}",
                "disable or delete it in the Django admin (Periodic tasks)",
            )
        )
    if not found:
        found.append(Finding("beat", f"{len(settings.CELERY_BEAT_SCHEDULE)} schedules, every task is known"))
    return found


def check_workers(*, timeout: float) -> list[Finding]:
    """A ping task sent to every queue must come back within `timeout` seconds."""
    from crm.celery import queue_name

    from .tasks import ping_task

    try:
        sent = {
            workload: ping_task.apply_async(args=[workload], queue=queue_name(workload))
            for workload in settings.TASK_WORKLOADS
        }
    except Exception as exc:  # noqa: BLE001
        return [Finding("workers", f"the broker cannot be reached ({type(exc).__name__})", "check REDIS_URL")]
    deadline = time.monotonic() + timeout
    found: list[Finding] = []
    for workload, result in sent.items():
        try:
            result.get(timeout=max(0.1, deadline - time.monotonic()))
            found.append(Finding("workers", f"queue {queue_name(workload)} ({workload}): a worker answered"))
        except Exception:  # noqa: BLE001 - a timeout: nobody took it
            result.forget()
            found.append(
                Finding(
                    "workers",
                    f"no worker took queue {queue_name(workload)} ({workload}) within {timeout:g} s",
                    f"start a worker for it: `celery -A crm worker` with WORKER_WORKLOADS including "
                    f"{workload} (or unset, for all)",
                )
            )
    return found


def run_all(*, worker_timeout: float) -> list[Finding]:
    return [*check_settings(), *check_migrations(), *check_beat(), *check_workers(timeout=worker_timeout)]
