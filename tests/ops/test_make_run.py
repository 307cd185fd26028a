"""`make run` with a DATABASE_URL of its own (issue 16, item 1): the database is created when it is
missing and its user may create it; otherwise one line says what to do, never a traceback. And a
second start does not seed (nor recompute) the demo tenant again."""

import os
import subprocess
import sys
import uuid
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from crm.audit.models import AuditEvent
from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import services  # noqa: E402  (scripts/services.py, what `make run` and `make test` use)

SERVER = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.fixture
def database_name():
    name = f"crm_mkrun_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def role_without_createdb():
    role = f"crm_nocreate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    yield role
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _exists(name: str) -> bool:
    with psycopg.connect(SERVER) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def test_a_missing_database_named_by_database_url_is_created_once(database_name):
    url = f"postgres://postgres@127.0.0.1:5432/{database_name}"
    assert not _exists(database_name)
    assert services.ensure_database_at(url) is True
    assert _exists(database_name)
    assert services.ensure_database_at(url) is False  # a second start finds it


def _make_run(database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": "redis://127.0.0.1:6379/7"}
    return subprocess.run(
        [sys.executable, "scripts/devrun.py"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_run_says_in_one_line_what_to_do_when_the_user_may_not_create_the_database(
    database_name, role_without_createdb
):
    result = _make_run(f"postgres://{role_without_createdb}@127.0.0.1:5432/{database_name}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert f'"{database_name}" does not exist' in lines[0]
    assert "createdb" in lines[0] and "CREATEDB" in lines[0]
    assert not _exists(database_name)


def test_make_run_says_in_one_line_when_the_server_does_not_answer(database_name):
    result = _make_run(f"postgres://postgres@127.0.0.1:1/{database_name}")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Cannot connect to PostgreSQL at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_make_run_refuses_a_database_url_that_is_not_postgres():
    result = _make_run("mysql://root@127.0.0.1/crm")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "make run: DATABASE_URL must start with postgres:// (it starts with mysql://)."
    )


def test_seeding_the_demo_once_skips_every_later_start(tenant):
    call_command("seed_demo", tenant="alpha", customers=20, seed=3, once=True, stdout=StringIO())
    assert AuditEvent.objects.filter(action="demo.seeded").count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM segmentation_recomputerun")
        runs = cursor.fetchone()[0]
    out = StringIO()
    call_command("seed_demo", tenant="alpha", customers=20, seed=3, once=True, stdout=out)
    assert "seeded before" in out.getvalue()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM segmentation_recomputerun")
        assert cursor.fetchone()[0] == runs  # nothing recomputed
    assert AuditEvent.objects.filter(action="demo.seeded").count() == 1
