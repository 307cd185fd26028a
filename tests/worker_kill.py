"""Helpers of the tests that kill a Celery worker mid-write: a second database connection of our own
that holds a lock the worker's statement then waits on, and a wait for a condition that shows the
worker's log when it never comes."""

import time

import psycopg
from django.db import connection


def raw_connection():
    """A connection outside Django's (and the test's) transaction, to the test database."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        dbname=db["NAME"],
        autocommit=False,
    )


def waiting_on_lock(query_like: str) -> bool:
    """Whether a statement LIKE `query_like` waits on a lock in this database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [query_like],
        )
        return cursor.fetchone()[0] > 0


def wait_until(check, log, timeout: float = 120):
    """`check()`'s first true value within `timeout` seconds (a loaded machine takes its time), or
    AssertionError with the end of the worker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not done in {timeout} s:\n{log.read_text()[-2000:]}")
