"""The Celery application. Tasks carry the tenant schema in a message header (tenant-schemas-celery).

Task modules are found by autodiscovery: `<app>/tasks.py` of every installed app and
`<app>/<package>/tasks.py` of its sub-packages (`customers/imports/tasks.py`, `customers/dedupe/
tasks.py`), so a new app or package is not listed anywhere by hand.
"""

import fnmatch
import os
import pkgutil
from pathlib import Path

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings.dev")

# Tasks re-read a tenant whose profile changed instead of keeping its row for the cache's lifetime.
app = CeleryApp("crm", task_cls="crm.tenancy.worker_cache:FreshSettingsTenantTask")
app.config_from_object("django.conf:settings", namespace="CELERY")


def task_packages() -> list[str]:
    """Installed apps, and the direct sub-packages of this project's apps that have a tasks module."""
    from django.apps import apps
    from django.conf import settings

    packages: list[str] = []
    for config in apps.get_app_configs():
        packages.append(config.name)
        if not Path(config.path).resolve().is_relative_to(settings.BASE_DIR / config.name.split(".")[0]):
            continue  # a third-party app: its own tasks.py only
        for module in pkgutil.iter_modules([config.path]):
            if module.ispkg and os.path.exists(os.path.join(config.path, module.name, "tasks.py")):
                packages.append(f"{config.name}.{module.name}")
    return list(dict.fromkeys(packages))


app.autodiscover_tasks(task_packages)


def queue_name(workload: str) -> str:
    """The queue of a workload (settings.TASK_WORKLOADS), read at call time."""
    from django.conf import settings

    if workload == "default":
        return app.conf.task_default_queue
    return f"{settings.TASK_QUEUE_PREFIX}{workload}"


def workload_for(task_name: str) -> str:
    """The workload a task is routed to by settings.TASK_ROUTES_BY_NAME (first matching pattern)."""
    from django.conf import settings

    for pattern, workload in settings.TASK_ROUTES_BY_NAME.items():
        if fnmatch.fnmatchcase(task_name, pattern):
            return workload
    return "default"


def route_task(name, args, kwargs, options, task=None, **kw):
    """Celery's router (CELERY_TASK_ROUTES): an explicit queue= given when sending still wins."""
    workload = workload_for(name)
    return None if workload == "default" else {"queue": queue_name(workload)}
