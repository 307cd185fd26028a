"""`make mutants`: plant the faults the suite must catch, one at a time, in a copy of the tree.

Each mutant is one of:
- scope      a `visible_to(queryset, user)` call replaced by `queryset` (the user's scope dropped);
- role       a role check made to allow everyone: `@role_required(ROLES)` -> `@role_required()`,
             `@role_required()` / `@platform_admin_required` removed, `user_has_role(...)` -> True,
             `_require_roles(...)` -> None, `user.is_manager_or_admin` / `.sees_all_customers` -> True;
- atomic     a `@transaction.atomic` removed, a `with transaction.atomic():` made a no-op context,
             a `transaction.set_rollback(True)` -> None;
- tenant     the tenant scoping of a cache key or a file path dropped (listed in TENANT_MUTANTS).

The tree is copied to a temporary folder once per job slot (the working tree is never touched);
each mutant is written into a copy, the tests that cover its file (TEST_MAP) run with `pytest -x`
against that slot's test database (created by the slot's first run and reused while its schemas stay
as they were: a mutant that leaves a schema behind makes the next run recreate it), and the file is
put back. `--jobs` mutants run at once (default 2). A mutant the tests catch is "killed"; one they do
not is a "survivor", listed with file:line; one whose tests exceed `--timeout` is reported apart
(on a busy machine more likely slow than hung) and fails the run like a survivor. Mutants that
cannot change behaviour are listed in EQUIVALENT with the reason and are not planted.

The test that killed each mutant is remembered in .data/mutants-killers.json and runs first next
time (a stale entry only costs its one test), so a repeated run pays little more than pytest's start
per mutant.

    python scripts/mutants.py            # all mutants
    python scripts/mutants.py --list     # list them, run nothing
    python scripts/mutants.py --only customers/dedupe --kind atomic
    python scripts/mutants.py --match 'bin_list|customer_count'   # path:line, function or description
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from services import DATA, ROOT, service_environment, stop_servers

SOURCE_DIRS = ("crm", "customers", "segmentation", "interactions", "loyalty", "dashboards")
SKIP_PARTS = ("migrations", "management", "tests")
# The mechanism itself (mutating the decorator's own body is not what we want to measure).
SKIP_FILES = {"crm/accounts/permissions.py"}

# Source folder or file (longest prefix wins) -> the tests that cover it, fastest first.
ACCESS = [
    "tests/crm/test_access_matrix.py",
    "tests/crm/test_access_effects.py",
    "tests/test_service_roles.py",
    "tests/test_role_offers.py",
]
CUSTOMERS_TESTS = [
    *ACCESS,
    "tests/customers/test_rollbacks.py",
    "tests/customers/test_services.py",
    "tests/customers/test_selectors.py",
    "tests/customers/test_views.py",
    "tests/customers/test_bin.py",
    "tests/customers/test_export.py",
    "tests/dashboards/test_reports.py",  # the scopes the reports read (purchase_orders, customer_scope)
]
TEST_MAP: dict[str, list[str]] = {
    "crm/accounts": [
        *ACCESS,
        "tests/test_scoped_content.py",
        "tests/crm/test_accounts_views.py",
        "tests/crm/test_accounts_services.py",
        "tests/crm/test_company_profile.py",
    ],
    "crm/audit": [*ACCESS, "tests/crm/test_accounts_views.py"],
    "crm/jobs": [*ACCESS, "tests/crm/test_jobs_views.py", "tests/crm/test_job_retention.py"],
    "crm/tenancy": [
        "tests/crm/test_provisioning_faults.py",
        *ACCESS,
        "tests/crm/test_tenancy_services.py",
        "tests/crm/test_tenancy_views.py",
        "tests/crm/test_tenancy_cloning.py",
        "tests/crm/test_tenancy_console.py",
        "tests/crm/test_company_profile.py",
    ],
    "crm/settings_registry.py": [*ACCESS, "tests/crm/test_company_profile.py"],
    "crm/storage.py": ["tests/crm/test_tenant_scoping.py", *ACCESS],
    "crm/settings": ["tests/crm/test_tenant_scoping.py"],
    "crm": [*ACCESS, "tests/crm"],
    "customers/imports": [
        "tests/customers/test_rollbacks.py",
        *ACCESS,
        "tests/customers/test_import_chunks.py",
        "tests/customers/test_import_services.py",
        "tests/customers/test_import_views.py",
    ],
    "customers/imports/kinds.py": [
        "tests/customers/test_import_kinds.py",
        *ACCESS,
        "tests/interactions/test_imports.py",
    ],
    "customers/exports": [*ACCESS, "tests/customers/test_export.py"],
    "customers/privacy": [*ACCESS, "tests/customers/test_privacy.py"],
    "customers/tags": [*ACCESS, "tests/customers/test_tags.py"],
    "customers/dedupe": [
        "tests/customers/test_rollbacks.py",
        *ACCESS,
        "tests/customers/test_merge.py",
        "tests/customers/test_duplicates.py",
        "tests/customers/test_duplicates_background.py",
    ],
    "customers": CUSTOMERS_TESTS,
    # the dashboard's figures (customer_figures, period_figures, monthly_revenue) are read here too
    "customers/selectors.py": [
        *CUSTOMERS_TESTS,
        "tests/customers/test_search_index.py",  # the list totals: estimated or counted, by role
        "tests/dashboards/test_dashboard.py",
        "tests/dashboards/test_start_page_cache.py",
    ],
    # a new owner or a share makes the cached figures stale (customers_changed, reason "owners")
    "customers/services.py": [*CUSTOMERS_TESTS, "tests/dashboards/test_start_page_cache.py"],
    "segmentation": [
        "tests/test_scoped_content.py",
        *ACCESS,
        "tests/segmentation/test_recompute_faults.py",
        "tests/segmentation",
        "tests/dashboards/test_reports.py",  # stage and segment changes as the reports read them
    ],
    "dashboards": [
        "tests/dashboards/test_audit_fault_dashboards.py",
        "tests/test_scoped_content.py",
        *ACCESS,
        "tests/dashboards",
    ],
    "crm/notifications": [*ACCESS, "tests/notifications"],
    "interactions/followups": ["tests/followups/test_audit_fault_followups.py", *ACCESS, "tests/followups"],
    "interactions/service": [
        "tests/interactions/service/test_audit_fault_service.py",
        "tests/interactions/service/test_service_scope.py",
        *ACCESS,
        "tests/interactions/service",
        "tests/dashboards/test_reports.py",
    ],
    "interactions/surveys": [
        "tests/interactions/surveys/test_audit_fault_surveys.py",
        *ACCESS,
        "tests/interactions/surveys",
    ],
    "interactions": ["tests/interactions/test_audit_fault_interactions.py", *ACCESS, "tests/interactions"],
    "loyalty": ["tests/loyalty/test_audit_fault_loyalty.py", *ACCESS, "tests/loyalty"],
    # the points outstanding the reports sum (points_outstanding)
    "loyalty/selectors.py": [
        "tests/loyalty/test_audit_fault_loyalty.py",
        *ACCESS,
        "tests/loyalty",
        "tests/dashboards/test_reports.py",
    ],
}

# The access matrix is filtered to the URLs a mutant can affect (ACCESS_MATRIX_FILTER: namespaces,
# view function names or view modules, see tests/crm/test_access_matrix.py): a mutant in a view runs
# the rows of that view; one elsewhere the rows of these namespaces (none listed: every row).
MATRIX_FILTER: dict[str, str] = {
    "crm/accounts": "accounts,home,jobs,segmentation",
    "crm/jobs": "jobs,export_job,import_preview,import_status,import_mapping,import_confirm,import_cancel",
    "crm/tenancy": "tenancy",
    "dashboards": "home,dashboards",
    "customers": "customers",
    "segmentation": "segmentation",
    "crm/notifications": "notifications",
    "interactions/followups": "followups",
    "interactions/service": "service",
    "interactions/surveys": "surveys",
    "interactions": "interactions,followups,service,surveys",
    "loyalty": "loyalty",
}
VIEW_FILES = "views"  # views.py, views_two_factor.py, ...

# Tenant scoping of cache keys and file paths: (file, text to replace, replacement, what it drops).
TENANT_MUTANTS = [
    (
        "crm/settings/base.py",
        '"KEY_FUNCTION": "django_tenants.cache.make_key",',
        '"KEY_FUNCTION": "django.core.cache.backends.base.default_key_func",',
        "cache keys no longer carry the tenant's schema",
    ),
    (
        "crm/storage.py",
        'return connection.schema_name or "public"',
        'return "public"',
        "stored files no longer go under the tenant's folder",
    ),
]

# Harmless mutants, not planted: (file, enclosing function, description) -> why it cannot change
# what the code does (checked by reading the code; keep the reason to one line).
NO_OP = "with transaction.atomic() made a no-op"
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("crm/accounts/services.py", "invitation_create", NO_OP): "the savepoint around save() only turns an "
    "IntegrityError into a ValidationError; the function's own @transaction.atomic rolls back either way",
    ("customers/tags/services.py", "tag_update", NO_OP): "the savepoint around save() only turns an "
    "IntegrityError into a ValidationError; the function's own @transaction.atomic rolls back either way",
    ("crm/jobs/services.py", "job_get_or_create_active", NO_OP): "it wraps a select_for_update, which "
    "raises at once outside a transaction (the browser tests' live server runs in autocommit); inside "
    "a test transaction the lock is taken all the same",
    ("customers/dedupe/scan.py", "_similar_name_pairs", NO_OP): "the temporary table is ON COMMIT DROP: "
    "outside a transaction the scan fails at once; inside a test transaction it is the same",
    (
        "customers/imports/services.py",
        "_import",
        "transaction.set_rollback(True) -> None",
    ): "set_rollback(True) follows import_rows() returning on errors with nothing written (an order "
    "list checks before it writes; a customer list, written in chunks, has rolled back its savepoint): "
    "nothing is in the transaction to undo (kept as a guard for future writes before the check)",
    (
        "crm/tenancy/services.py",
        "tenant_open",
        "@transaction.atomic removed from tenant_open",
    ): "its one write is tenant_create(), atomic itself; the provisioning task is sent on commit either way",
    (
        "crm/tenancy/usage.py",
        "tenant_usage_record",
        "@transaction.atomic removed from tenant_usage_record",
    ): "its one write is a single INSERT ... ON CONFLICT DO UPDATE statement, all or nothing by itself; "
    "the reads before it only measure",
    (
        "crm/notifications/services.py",
        "notify",
        "@transaction.atomic removed from notify",
    ): "its one write is notify_many(), atomic itself; what follows is a read of the row",
    ("crm/notifications/mailing.py", "_claim_run", NO_OP): "get_or_create() makes its own savepoint "
    "around the INSERT and reads the row again on a conflict: the outer block adds nothing",
    (
        "segmentation/evaluation.py",
        "alert_evaluation_for_tenant",
        "@transaction.atomic removed from alert_evaluation_for_tenant",
    ): "its one write is _store(), a single INSERT; the rest reads (each read its own snapshot under READ "
    "COMMITTED, in a transaction or not) and computes; settings_get() may add the default settings row, "
    "which any reader adds alike",
    (
        "segmentation/evaluation.py",
        "alert_evaluation_simulated",
        "@transaction.atomic removed from alert_evaluation_simulated",
    ): "its one write is _store(), a single INSERT; the rest simulates in memory",
    (
        "interactions/service/services.py",
        "ticket_open_from_contact_form",
        "@transaction.atomic removed from ticket_open_from_contact_form",
    ): "its one write is ticket_open(), atomic itself (settings_get() after it reads the row ticket_open "
    "made or read); the acknowledgement is sent on commit either way",
    (
        "interactions/followups/digest.py",
        "new_churn_alerts",
        "user_has_role(...) -> True",
    ): "alert_list() is visible_to-scoped and a ChurnAlert is seen by its owner only (no shares): "
    "a rep's alerts are already theirs, so the owner filter removes none",
    ("interactions/followups/services.py", "followup_create_for_source", NO_OP): "the save is the "
    "function's first write: on the caught IntegrityError (save() marks the block for rollback) its own "
    "@transaction.atomic rolls back to where it began: None, and the caller's transaction still usable",
    ("crm/tenancy/cloning.py", "spares_prepare", NO_OP): "clone_schema_fast() sends its script as one "
    "multi-statement query, which PostgreSQL runs as one implicit transaction: all or nothing without it",
    ("interactions/surveys/services.py", "bulk_send_run", NO_OP): "the block holds one bulk_create(), "
    "which wraps its INSERT in transaction.atomic() itself; the job body runs in autocommit (run_job)",
    (
        "interactions/surveys/services.py",
        "scores_rebuild_all",
        "@transaction.atomic removed from scores_rebuild_all",
    ): "its one write is a single INSERT ... ON CONFLICT DO UPDATE statement, all or nothing by itself",
    ("loyalty/rewards/services.py", "voucher_issue", NO_OP): "the savepoint around save() only turns an "
    "IntegrityError into an ApplicationError, which leaves the function: its own @transaction.atomic "
    "rolls back either way",
    (
        "loyalty/imports.py",
        "_import",
        "transaction.set_rollback(True) -> None",
    ): "set_rollback(True) follows _check_rows() finding problems, before any write (its progress "
    "writes are overwritten by _refuse's): nothing is in the transaction to undo",
}

# A dropped transaction in these modules shows in their own tests too (a savepoint that lets a
# retry go on after a refused lock, ...): run them before the fault tests.
ATOMIC_TESTS: dict[str, list[str]] = {
    "segmentation/tableswap.py": ["tests/segmentation/test_tableswap.py"],
    # the split read's two transactions hold its one snapshot (both halves read the same rows)
    "segmentation/pgcopy.py": ["tests/segmentation/test_pgcopy_split.py"],
    # a customer list written in chunks: the savepoint that takes them back when a late row fails
    "customers/imports/services.py": ["tests/customers/test_import_chunks.py"],
    # the reports' transaction: its settings hold for its own statements only
    "dashboards": ["tests/dashboards/test_audit_fault_dashboards.py"],
    # the newer apps keep their all-or-nothing tests with their other tests
    "crm/notifications": ["tests/notifications"],
    "interactions/followups": ["tests/followups/test_audit_fault_followups.py", "tests/followups"],
    "interactions/service": [
        "tests/interactions/service/test_audit_fault_service.py",
        "tests/interactions/service",
    ],
    "interactions": [
        "tests/interactions/test_audit_fault_interactions.py",
        "tests/interactions/surveys/test_audit_fault_surveys.py",
        "tests/interactions",
    ],
    "loyalty": ["tests/loyalty"],
    "customers/imports/kinds.py": ["tests/customers/test_import_kinds.py"],
    # committed tenants: a purge or a restore that fails part-way (pg_dump and DROP SCHEMA need them)
    "crm/tenancy/backup.py": ["tests/ops/test_tenant_backup.py"],
    "crm/tenancy/deletion.py": ["tests/ops/test_tenant_backup.py"],
    # the console's resend sends its e-mail inside the transaction: a mail failure must undo the new link
    "crm/tenancy/editing.py": ["tests/crm/test_tenancy_console.py"],
}


@dataclass
class Mutant:
    path: str  # relative to the tree
    line: int
    kind: str
    description: str
    function: str
    original: str
    mutated: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    occurrence: int = 0  # among mutants of the same file, function and description

    @property
    def key(self) -> str:
        # stable across edits elsewhere in the file (no line number)
        return f"{self.path}|{self.function}|{self.description}|{self.occurrence}"

    @property
    def text(self) -> str:
        return f"{self.where} {self.function} {self.description}"


def _segment(lines: list[str], node: ast.AST) -> str:
    return ast.get_source_segment("".join(lines), node) or ""


def _replace(source: str, node: ast.AST, replacement: str) -> str:
    lines = source.splitlines(keepends=True)
    # col offsets are in UTF-8 bytes: convert through the encoded line.
    start = sum(len(line) for line in lines[: node.lineno - 1]) + len(
        lines[node.lineno - 1].encode("utf-8")[: node.col_offset].decode("utf-8")
    )
    end = sum(len(line) for line in lines[: node.end_lineno - 1]) + len(
        lines[node.end_lineno - 1].encode("utf-8")[: node.end_col_offset].decode("utf-8")
    )
    return source[:start] + replacement + source[end:]


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str, source: str):
        self.path, self.source = path, source
        self.stack: list[str] = []
        self.found: list[Mutant] = []

    def _add(self, node, kind, description, mutated):
        try:
            compile(mutated, self.path, "exec")
        except SyntaxError:
            return
        function = ".".join(self.stack) or "<module>"
        self.found.append(Mutant(self.path, node.lineno, kind, description, function, self.source, mutated))

    def _function(self, node):
        self.stack.append(node.name)
        for decorator in node.decorator_list:
            name = _name(decorator)
            if name == "role_required":
                every_role = (
                    not isinstance(decorator, ast.Call)
                    or not decorator.args
                    or (_segment(self.source.splitlines(keepends=True), decorator.args[0]) == "*ALL_ROLES")
                )
                if not every_role:
                    text = _segment(self.source.splitlines(keepends=True), decorator)
                    self._add(
                        decorator,
                        "role",
                        f"{text} -> role_required() on {node.name}",
                        _replace(self.source, decorator, "role_required()"),
                    )
                else:
                    self._add(
                        decorator, "role", f"@role_required() removed from {node.name}", self._drop(decorator)
                    )
            elif name == "platform_admin_required":
                self._add(
                    decorator,
                    "role",
                    f"@platform_admin_required removed from {node.name}",
                    self._drop(decorator),
                )
            elif name == "transaction.atomic":
                self._add(
                    decorator,
                    "atomic",
                    f"@transaction.atomic removed from {node.name}",
                    self._drop(decorator),
                )
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node):
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    def _drop(self, decorator) -> str:
        # "@decorator" -> "@(lambda f: f)": the line numbers stay, the function is undecorated.
        return _replace(self.source, decorator, "(lambda f: f)")

    def visit_With(self, node):
        for item in node.items:
            if _name(item.context_expr) == "transaction.atomic":
                self._add(
                    item.context_expr,
                    "atomic",
                    "with transaction.atomic() made a no-op",
                    _replace(self.source, item.context_expr, '__import__("contextlib").nullcontext()'),
                )
        self.generic_visit(node)

    def visit_Call(self, node):
        name = _name(node.func)
        lines = self.source.splitlines(keepends=True)
        if name.endswith("visible_to") and node.args:
            argument = _segment(lines, node.args[0])
            self._add(
                node,
                "scope",
                f"visible_to({argument}, ...) -> {argument}",
                _replace(self.source, node, f"({argument})"),
            )
        elif name.endswith("user_has_role"):
            self._add(node, "role", "user_has_role(...) -> True", _replace(self.source, node, "True"))
        elif name.endswith("_require_roles"):
            self._add(node, "role", "_require_roles(...) -> None", _replace(self.source, node, "None"))
        elif name == "transaction.set_rollback":
            self._add(
                node, "atomic", "transaction.set_rollback(True) -> None", _replace(self.source, node, "None")
            )
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if node.attr in ("is_manager_or_admin", "sees_all_customers") and isinstance(node.ctx, ast.Load):
            self._add(node, "role", f".{node.attr} -> True", _replace(self.source, node, "True"))
        self.generic_visit(node)


def find_mutants(root: Path) -> list[Mutant]:
    mutants: list[Mutant] = []
    for folder in SOURCE_DIRS:
        for file in sorted((root / folder).rglob("*.py")) if (root / folder).exists() else []:
            relative = file.relative_to(root).as_posix()
            if relative in SKIP_FILES or any(part in SKIP_PARTS for part in file.parts):
                continue
            source = file.read_text()
            finder = _Finder(relative, source)
            finder.visit(ast.parse(source))
            mutants.extend(finder.found)
    for relative, old, new, description in TENANT_MUTANTS:
        source = (root / relative).read_text()
        if old not in source:
            raise SystemExit(f"{relative}: the tenant-scoping text {old!r} is gone; update TENANT_MUTANTS")
        line = source[: source.index(old)].count("\n") + 1
        mutants.append(
            Mutant(relative, line, "tenant", description, "<module>", source, source.replace(old, new, 1))
        )
    seen: dict[tuple[str, str, str], int] = {}
    for mutant in mutants:
        same = (mutant.path, mutant.function, mutant.description)
        mutant.occurrence = seen[same] = seen.get(same, -1) + 1
    return mutants


# A dropped transaction can only show when something fails part-way: these tests inject the failures.
FAULT_TESTS = [
    "tests/test_audit_fault.py",
    "tests/customers/test_rollbacks.py",
    "tests/segmentation/test_recompute_faults.py",
    "tests/crm/test_provisioning_faults.py",
]


def tests_for_mutant(mutant: Mutant) -> list[str]:
    if mutant.kind == "atomic":
        return [*_longest_prefix(ATOMIC_TESTS, mutant.path, []), *FAULT_TESTS]
    return tests_for(mutant.path)


def _longest_prefix(table: dict, path: str, default):
    best = max(
        (prefix for prefix in table if path == prefix or path.startswith(prefix.rstrip("/") + "/")),
        key=len,
        default=None,
    )
    return default if best is None else table[best]


def tests_for(path: str) -> list[str]:
    return _longest_prefix(TEST_MAP, path, [*ACCESS])


def matrix_filter(mutant: Mutant) -> str:
    if mutant.path.rpartition("/")[2].startswith(VIEW_FILES) and mutant.function != "<module>":
        function = mutant.function.split(".")[0]
        if function.startswith("_"):  # a helper of the module's views: all of them
            return mutant.path.removesuffix(".py").replace("/", ".")
        return function
    best = max((p for p in MATRIX_FILTER if mutant.path.startswith(p)), key=len, default=None)
    return MATRIX_FILTER[best] if best else ""


def copy_tree(target: Path) -> None:
    ignore = shutil.ignore_patterns(
        ".git",
        ".venv",
        ".data",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        "node_modules",
        "test-artifacts",
    )
    shutil.copytree(ROOT, target, ignore=ignore, dirs_exist_ok=True)


KILLERS = DATA / "mutants-killers.json"


def _schemas(database_url: str) -> list[str] | None:
    """The schemas of a slot's test database (None when it does not exist yet)."""
    import psycopg

    base, _, name = database_url.rpartition("/")
    try:
        with psycopg.connect(f"{base}/test_{name}", autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                "AND nspname <> 'information_schema' ORDER BY 1"
            ).fetchall()
    except psycopg.OperationalError:
        return None
    return [row[0] for row in rows]


def _first_failure(output: str) -> str | None:
    match = re.search(r"^(?:FAILED|ERROR) (\S+::\S+)", output, re.MULTILINE)
    return match.group(1) if match else None


# --- a fork server per slot ------------------------------------------------------------------------
# Most of pytest's start is importing libraries (scipy, pandas, numpy, pypinyin, celery, django...)
# that no mutant changes. Each slot keeps one process that has imported them (and nothing of the
# project, nor the settings) and forks a child per mutant, which imports the project from the
# slot's tree, so it sees the mutated file, and runs pytest there.

PROJECT_PACKAGES = {*SOURCE_DIRS, "tests", "scripts", "manage"}
# Django and its apps read settings when imported; pytest's plugins must be imported by pytest.
NOT_PREIMPORTED = ("django", "pytest", "_pytest", "xdist", "pluggy", "factory", "faker.contrib")
DISCOVER = """
import json, sys, django
django.setup()
import crm.urls_tenant, crm.urls_public, factory, faker
print(json.dumps([
    name for name, module in list(sys.modules.items())
    if name.split(".")[0] not in json.loads(sys.argv[1])
    and not str(getattr(module, "__file__", "") or "").startswith(sys.argv[2])
]))
"""


def preimport_list(env: dict[str, str]) -> list[str]:
    """The modules a test run imports that are not the project's (in import order)."""
    result = subprocess.run(
        [sys.executable, "-c", DISCOVER, json.dumps(sorted(PROJECT_PACKAGES)), str(ROOT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    names = json.loads(result.stdout.strip().splitlines()[-1])
    return [n for n in names if not n.startswith(NOT_PREIMPORTED) and n != "__main__"]


def zygote_main(tree: str) -> int:
    """Runs in the slot's tree: import the libraries, then fork one pytest per request on stdin."""
    import contextlib
    import importlib

    sys.path[0] = tree  # the tree copy, not this script's folder
    sys.dont_write_bytecode = True
    for name in json.loads(sys.stdin.readline()):
        # a module that needs the settings fails here and is imported by the child
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    leaked = sorted(n for n in sys.modules if n.split(".")[0] in PROJECT_PACKAGES)
    print(json.dumps({"ready": not leaked, "leaked": leaked}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: one pytest run
            code = 3
            try:
                os.setsid()
                null = os.open(os.devnull, os.O_RDONLY)
                log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(null, 0)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.environ.clear()
                os.environ.update(request["env"])
                import pytest

                code = pytest.main(request["args"])
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(int(code))
        print(json.dumps({"pid": pid}), flush=True)
        _pid, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
    return 0


class Zygote:
    def __init__(self, tree: Path, env: dict[str, str], modules: list[str]):
        # one BLAS thread: a process that forks must not have threads
        zygote_env = {**env, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        zygote_env.pop("DJANGO_SETTINGS_MODULE", None)  # the settings are the project's: not here
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--zygote", str(tree)],
            cwd=tree,
            env=zygote_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self._buffer = b""
        self._send(modules)
        ready = self._receive(None)
        if not ready.get("ready"):
            raise SystemExit(f"the fork server imported project modules: {ready.get('leaked')}")
        self.child: int | None = None

    def _send(self, value) -> None:
        self.process.stdin.write((json.dumps(value) + "\n").encode())

    def _receive(self, deadline: float | None) -> dict:
        import contextlib
        import select

        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _w, _x = select.select([fd], [], [], wait)
            if readable:
                data = os.read(fd, 65536)
                if not data:
                    raise RuntimeError("the fork server stopped")
                self._buffer += data
            elif self.child is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.child, signal.SIGKILL)  # over time: end it, then read its code
                self.child, deadline = None, None
        line, _newline, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def run(self, args: list[str], env: dict[str, str], log: Path, timeout: int) -> tuple[int, bool]:
        """pytest's exit code, and whether it was ended for taking too long."""
        self._send({"args": args, "env": env, "log": str(log)})
        self.child = self._receive(None)["pid"]
        started = time.monotonic()
        code = self._receive(started + timeout)["code"]
        timed_out = self.child is None
        self.child = None
        return code, timed_out

    def stop(self) -> None:
        import contextlib

        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child, signal.SIGKILL)
        self.process.kill()


class Slot:
    """One tree copy and one test database; runs one mutant at a time."""

    def __init__(self, number: int, workdir: Path, env: dict[str, str], suffix: str):
        self.number, self.tree = number, workdir / str(number)
        self.log = workdir / f"{number}.log"
        self.env = {**env, "DATABASE_URL": env["DATABASE_URL"].rstrip("/") + f"{suffix}{number}"}
        self.schemas: list[str] | None = None  # what the database held after the previous run
        self.process: subprocess.Popen | None = None
        self.zygote: Zygote | None = None

    def start_zygote(self, modules: list[str]) -> None:
        self.zygote = Zygote(self.tree, self.env, modules)

    def stop(self) -> None:
        if self.zygote is not None:
            self.zygote.stop()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)

    def _pytest(self, args: list[str], env: dict[str, str], timeout: int) -> tuple[int, str, bool]:
        if self.zygote is not None:
            code, timed_out = self.zygote.run(args, env, self.log, timeout)
            return code, self.log.read_text(errors="replace"), timed_out
        # its own process group: a timeout ends pytest and whatever it started (worker, server)
        self.process = process = subprocess.Popen(
            [sys.executable, "-m", "pytest", *args],
            cwd=self.tree,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return process.returncode, output, True
        return process.returncode, output, False

    def run(self, mutant: Mutant, killer: str | None, timeout: int) -> tuple[str, str, str | None]:
        target = self.tree / mutant.path
        target.write_text(mutant.mutated)
        try:
            tests = [t for t in tests_for_mutant(mutant) if (self.tree / t).exists()]
            if killer and (self.tree / killer.split("::")[0]).exists():
                tests = [killer, *tests]
            fresh = self.schemas is None or _schemas(self.env["DATABASE_URL"]) != self.schemas
            command = ["-x", "-q", "-p", "no:cacheprovider", "--no-header"]
            # --create-db alone would also drop the database at the end
            command += ["--reuse-db", "--create-db"] if fresh else ["--reuse-db"]
            if mutant.kind == "atomic" and mutant.function != "<module>":
                # the fault tests name their cases after the service (test_audit_fault.py), or
                # exercise the module's operation as a whole
                function = mutant.function.split(".")[-1]
                command += ["-k", f"{function} or not test_audit_fault"]
            run_env = {**self.env, "ACCESS_MATRIX_FILTER": matrix_filter(mutant)}
            code, output, timed_out = self._pytest([*command, *tests], run_env, timeout)
            if timed_out:
                self.schemas = None  # a run cut off may have left anything behind
                # on a busy machine a slow run is more likely than a hang: not counted as killed
                return f"TIMEOUT ({timeout} s)", output, None
        finally:
            target.write_text(mutant.original)
        self.schemas = _schemas(self.env["DATABASE_URL"])
        if code == 0:
            return "SURVIVED", " ".join(command + tests) + "\n" + output, None
        if code == 1:
            killer = _first_failure(output)
            if killer and "test_a_filter_selects_rows" in killer:
                return "UNTESTED (no matrix row selected: fix matrix_filter)", output, None
            return "killed", output, killer
        # 2 interrupted/collection error, 3 internal error, 4 usage, 5 nothing collected
        return f"killed (pytest exit {code})", output, _first_failure(output)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", default="", help="only mutants in files whose path contains this")
    parser.add_argument("--exclude", default=None, help="no mutants in files whose path contains this")
    parser.add_argument(
        "--match",
        default=None,
        help="only mutants whose 'path:line function description' matches this regular expression",
    )
    parser.add_argument("--kind", choices=["scope", "role", "atomic", "tenant"], help="only this kind")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds one mutant's tests may take")
    parser.add_argument("--no-killers", action="store_true", help="ignore the remembered killing tests")
    parser.add_argument("--no-fork", action="store_true", help="start pytest afresh for every mutant")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument("--database-suffix", default="_mutants", help="appended to the database name")
    parser.add_argument("--verbose", action="store_true", help="show the test output of survivors")
    args = parser.parse_args(argv)

    pattern = re.compile(args.match) if args.match else None
    selected = [
        m
        for m in find_mutants(ROOT)
        if args.only in m.path
        and (args.exclude is None or args.exclude not in m.path)
        and (not args.kind or m.kind == args.kind)
        and (pattern is None or pattern.search(m.text))
    ]
    harmless = [
        (m, EQUIVALENT[(m.path, m.function, m.description)])
        for m in selected
        if (m.path, m.function, m.description) in EQUIVALENT
    ]
    mutants = [m for m in selected if (m.path, m.function, m.description) not in EQUIVALENT]
    if args.list:
        for m in mutants:
            tests = " ".join(tests_for_mutant(m))
            print(f"{m.where:38} {m.kind:6} {m.function}: {m.description} [{matrix_filter(m)}] {tests}")
        for m, reason in harmless:
            print(f"{m.where:38} {m.kind:6} not planted ({m.function}: {m.description}): {reason}")
        print(f"{len(mutants)} mutants ({len(harmless)} more not planted as harmless)")
        return 0

    env, servers = service_environment()
    env["DJANGO_SETTINGS_MODULE"] = "crm.settings.test"
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant and its original may share size and mtime
    killers: dict[str, str] = {}
    if KILLERS.exists() and not args.no_killers:
        killers = json.loads(KILLERS.read_text())
    workdir = Path(tempfile.mkdtemp(prefix="crm-mutants-"))
    started = time.monotonic()
    killed, survivors, timeouts = [], [], []
    lock = threading.Lock()
    free: queue.Queue[Slot] = queue.Queue()
    slots: list[Slot] = []
    stopping = threading.Event()

    def stop(*_args) -> None:
        # stopped (Ctrl-C, kill): no new mutant, end the running tests, then clean up the copies
        stopping.set()
        for slot in slots:
            slot.stop()
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def run_one(numbered: tuple[int, Mutant]) -> None:
        number, mutant = numbered
        if stopping.is_set():
            return
        slot = free.get()
        try:
            status, output, killer = slot.run(mutant, killers.get(mutant.key), args.timeout)
        finally:
            free.put(slot)
        with lock:
            elapsed = time.monotonic() - started
            print(f"[{number}/{len(mutants)} {elapsed:5.0f}s] {status:8} {mutant.where} ", end="")
            print(f"{mutant.kind} in {mutant.function}: {mutant.description}", flush=True)
            if status.startswith("killed (pytest exit"):
                print(output[-2000:])
            if status.startswith("TIMEOUT"):
                timeouts.append(mutant)
            elif status.startswith(("SURVIVED", "UNTESTED")):
                survivors.append(mutant)
                killers.pop(mutant.key, None)
                if args.verbose:
                    print(output[-3000:])
            else:
                killed.append(mutant)
                if killer:
                    killers[mutant.key] = killer

    try:
        for number in range(max(1, args.jobs)):
            slot = Slot(number, workdir, env, args.database_suffix)
            copy_tree(slot.tree)
            slots.append(slot)
            free.put(slot)
        if not args.no_fork:
            modules = preimport_list(env)
            for slot in slots:
                slot.start_zygote(modules)
        pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
        try:
            list(pool.map(run_one, enumerate(mutants, 1)))
        finally:
            stopping.set()
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        for slot in slots:
            slot.stop()
        stop_servers(servers)
        DATA.mkdir(exist_ok=True)
        KILLERS.write_text(json.dumps(dict(sorted(killers.items())), indent=1, ensure_ascii=False))
        if args.keep:
            print(f"copies kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(f"\n{len(mutants)} planted, {len(killed)} killed, {len(survivors)} survived, ", end="")
    print(f"{len(timeouts)} timed out ", end="")
    print(f"({elapsed:.0f} s, {args.jobs} at once); {len(harmless)} not planted as harmless")
    for mutant, reason in harmless:
        print(f"  harmless   {mutant.where} {mutant.kind} in {mutant.function}: ", end="")
        print(f"{mutant.description} -- {reason}")
    for mutant in sorted(survivors, key=lambda m: (m.path, m.line)):
        print(f"  SURVIVOR   {mutant.where} {mutant.kind} in {mutant.function}: {mutant.description}")
    for mutant in sorted(timeouts, key=lambda m: (m.path, m.line)):
        print(f"  TIMEOUT    {mutant.where} {mutant.kind} in {mutant.function}: {mutant.description}")
    return 1 if survivors or timeouts else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--zygote"]:
        sys.exit(zygote_main(sys.argv[2]))
    sys.exit(main(sys.argv[1:]))
