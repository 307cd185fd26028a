import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_production_settings_pass_the_deploy_check():
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},  # set by browser tests
        "DJANGO_SETTINGS_MODULE": "crm.settings.production",
        "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-9f8e7d6c5b4a",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose binary not installed")
def test_docker_compose_file_is_valid():
    result = subprocess.run(["docker-compose", "config", "-q"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services = subprocess.run(
        ["docker-compose", "config", "--services"], cwd=REPO, capture_output=True, text=True
    )
    assert set(services.stdout.split()) == {"db", "redis", "setup", "web", "worker", "worker-bulk", "beat"}


def _settings_read_from_the_environment() -> dict[str, bool]:
    """Every name the settings read with env(...), and whether it has a default."""
    import re

    names: dict[str, bool] = {}
    for module in ("base.py", "production.py"):
        source = (REPO / "crm" / "settings" / module).read_text()
        for match in re.finditer(r'env(?:\.\w+)?\(\s*"([A-Z0-9_]+)"([^)]*)\)', source):
            names[match.group(1)] = names.get(match.group(1), False) or "default" in match.group(2)
    return names


def test_env_example_names_every_required_setting_and_nothing_the_settings_do_not_read():
    import re

    example = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    read = _settings_read_from_the_environment()
    assert {"SECRET_KEY", "DATABASE_URL"} <= set(read)  # the parsing finds what it should
    required = {name for name, has_default in read.items() if not has_default}
    assert required <= example, f"required settings missing from .env.example: {required - example}"
    stale = example - set(read) - {"DJANGO_SETTINGS_MODULE"}
    assert not stale, f".env.example names settings nothing reads: {stale}"


def test_a_unix_socket_database_url_reaches_django_unquoted():
    """`make run`'s embedded PostgreSQL listens on a socket directory, passed percent-encoded."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm.settings.dev",
        "DATABASE_URL": "postgres://postgres@%2Fsrv%2Fdata%2Fpg/crm",
    }
    code = "from django.conf import settings; print(settings.DATABASES['default']['HOST'])"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/srv/data/pg"


@pytest.mark.django_db
def test_the_apps_connections_run_without_jit_compilation():
    """PostgreSQL's JIT took 50-80 ms of a 300 ms customer search at 1,000,000 customers and gained
    nothing on the dashboards' heaviest queries (crm/settings/base.py); options from the database
    URL are kept beside it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm.settings.dev",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/crm?options=-c%20work_mem%3D8MB",
    }
    code = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS']['options'])"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "-c work_mem=8MB -c jit=off"


def test_a_web_process_hides_what_it_loaded_from_the_garbage_collector():
    """crm/wsgi.py (gunicorn's and runserver's entry point) freezes the objects the loaded application
    holds for good, the pinyin dictionaries among them: a full collection then walks only what requests
    made since, instead of some 375,000 objects (200-240 ms, once in a few dozen requests)."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DJANGO_SETTINGS_MODULE": "crm.settings.test",
    }
    code = (
        "import gc, sys; import crm.wsgi; "
        "print(gc.get_freeze_count(), len(gc.get_objects()), 'pypinyin' in sys.modules, "
        "'customers.views' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    frozen, still_tracked, pinyin_loaded, views_loaded = result.stdout.split()
    assert pinyin_loaded == "True" and views_loaded == "True"
    assert int(frozen) > 100_000  # the dictionaries alone are some 200,000 lists
    assert int(still_tracked) < int(frozen) / 100
