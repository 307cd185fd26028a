"""The reports' own transaction (dashboards.caching.report_transaction): each case is named after the
function it fails (the mutants tool selects them by that name)."""

from django.db import connection

from dashboards.caching import WORK_MEM, report_transaction


def _setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        return cursor.fetchone()[0]


def test_report_transaction_tunes_the_reports_statements_and_ends_with_them(
    django_db_setup, django_db_blocker
):
    """Outside any transaction (a page's request runs in autocommit), the reports' statements get
    the larger work_mem and no JIT, and the statements after them the server's settings again: the
    settings are SET LOCAL, which only a transaction of the report's own keeps."""
    with django_db_blocker.unblock():
        assert not connection.in_atomic_block
        default_memory, default_jit = _setting("work_mem"), _setting("jit")
        assert default_memory != WORK_MEM  # else this test shows nothing
        with report_transaction():
            assert (_setting("work_mem"), _setting("jit")) == (WORK_MEM, "off")
        assert (_setting("work_mem"), _setting("jit")) == (default_memory, default_jit)
