"""Task modules are found by autodiscovery (no hand-kept list), and beat names registered tasks that
follow the one naming rule: the per-tenant task `<thing>_task`, its dispatcher `<thing>_all_tenants`."""

import ast

import pytest
from django.conf import settings

from tests.conftest import REPO_ROOT


def _task_modules() -> dict[str, list[str]]:
    """module name -> the Celery task functions it defines, for every tasks.py of the project."""
    found = {}
    for path in sorted(REPO_ROOT.glob("*/**/tasks.py")):
        relative = path.relative_to(REPO_ROOT)
        if relative.parts[0] in ("tests", "scripts") or relative.parts[0].startswith("."):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef)
            and any("shared_task" in ast.unparse(decorator) for decorator in node.decorator_list)
        ]
        found[".".join(relative.with_suffix("").parts)] = names
    return found


@pytest.mark.django_db
def test_every_task_module_is_found_by_autodiscovery():
    from crm.celery import app

    app.loader.import_default_modules()
    modules = _task_modules()
    assert {"customers.imports.tasks", "customers.exports.tasks", "customers.dedupe.tasks"} <= set(modules)
    missing = [f"{module}.{name}" for module, names in modules.items() for name in names]
    missing = [name for name in missing if name not in app.tasks]
    assert missing == []
    assert not getattr(settings, "CELERY_IMPORTS", ())  # nothing listed by hand


@pytest.mark.django_db
def test_beat_entries_are_per_tenant_dispatchers_named_one_way():
    from crm.celery import app

    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry["task"]
        assert entry["task"].endswith("_all_tenants"), entry["task"]
    for module, names in _task_modules().items():
        for name in names:
            assert name.endswith(("_task", "_all_tenants")), f"{module}.{name}"
