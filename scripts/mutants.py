"""`make mutants`: plant the faults the suite must catch, one at a time, in a copy of the tree.

Each mutant is one of:
- scope      a `visible_to(queryset, user)` call replaced by `queryset` (the user's scope dropped);
- role       a role check made to allow everyone: `@role_required(ROLES)` -> `@role_required()`,
             `@role_required()` / `@platform_admin_required` removed, `user_has_role(...)` -> True,
             `_require_roles(...)` -> None, `user.is_manager_or_admin` / `.sees_all_customers` -> True;
- atomic     a `@transaction.atomic` removed, a `with transaction.atomic():` made a no-op context,
             a `transaction.set_rollback(True)` -> None;
- tenant     the tenant scoping of a cache key or a file path dropped (listed in TENANT_MUTANTS).

The tree is copied once to a temporary folder (the working tree is never touched); each mutant is
written into the copy, the tests that cover its file (TEST_MAP) run with `pytest -x` against a test
database created once and reused (`<name>_mutants`), and the file is put back. A mutant the tests
catch is "killed"; one they do not is a "survivor", listed with file:line. Survivors that cannot
change behaviour are listed in EQUIVALENT with the reason, and reported apart.

    python scripts/mutants.py            # all mutants
    python scripts/mutants.py --list     # list them, run nothing
    python scripts/mutants.py --only customers/merge.py --kind atomic
"""

from __future__ import annotations

import argparse
import ast
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from services import ROOT, service_environment, stop_servers

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
TEST_MAP: dict[str, list[str]] = {
    "crm/accounts": [
        *ACCESS,
        "tests/test_scoped_content.py",
        "tests/crm/test_accounts_views.py",
        "tests/crm/test_accounts_services.py",
    ],
    "crm/audit": [*ACCESS, "tests/crm/test_accounts_views.py"],
    "crm/jobs": [*ACCESS, "tests/crm/test_jobs_views.py", "tests/crm/test_job_retention.py"],
    "crm/tenancy": [
        "tests/crm/test_provisioning_faults.py",
        *ACCESS,
        "tests/crm/test_tenancy_services.py",
        "tests/crm/test_tenancy_views.py",
        "tests/crm/test_tenancy_cloning.py",
    ],
    "crm/dashboard.py": [
        "tests/test_scoped_content.py",
        "tests/crm/test_tenant_scoping.py",
        "tests/crm/test_dashboard.py",
        *ACCESS,
    ],
    "crm/storage.py": ["tests/crm/test_tenant_scoping.py", *ACCESS],
    "crm/settings": ["tests/crm/test_tenant_scoping.py"],
    "crm": [*ACCESS, "tests/crm"],
    "customers/imports": [
        "tests/customers/test_rollbacks.py",
        *ACCESS,
        "tests/customers/test_import_services.py",
        "tests/customers/test_import_views.py",
    ],
    "customers/exports": [*ACCESS, "tests/customers/test_export.py"],
    "customers/merge.py": ["tests/customers/test_rollbacks.py", *ACCESS, "tests/customers/test_merge.py"],
    "customers/views_merge.py": [
        *ACCESS,
        "tests/customers/test_merge.py",
        "tests/customers/test_duplicates.py",
    ],
    "customers/duplicates.py": [
        *ACCESS,
        "tests/customers/test_duplicates.py",
        "tests/customers/test_duplicates_background.py",
    ],
    "customers/dedupe": [
        "tests/customers/test_rollbacks.py",
        *ACCESS,
        "tests/customers/test_merge.py",
        "tests/customers/test_duplicates.py",
        "tests/customers/test_duplicates_background.py",
    ],
    "customers": [
        *ACCESS,
        "tests/customers/test_rollbacks.py",
        "tests/customers/test_services.py",
        "tests/customers/test_selectors.py",
        "tests/customers/test_views.py",
        "tests/customers/test_bin.py",
        "tests/customers/test_export.py",
    ],
    "segmentation": [
        "tests/test_scoped_content.py",
        *ACCESS,
        "tests/segmentation/test_recompute_faults.py",
        "tests/segmentation",
    ],
    "dashboards": ["tests/test_scoped_content.py", *ACCESS, "tests/crm/test_dashboard.py"],
}

# The access matrix is filtered to the URLs a mutant can affect (ACCESS_MATRIX_FILTER: namespaces,
# view function names or view modules, see tests/crm/test_access_matrix.py): a mutant in a view runs
# the rows of that view; one elsewhere the rows of these namespaces (none listed: every row).
MATRIX_FILTER: dict[str, str] = {
    "crm/accounts": "accounts,home,jobs,segmentation",
    "crm/jobs": "jobs,export_job,import_preview,import_status,import_mapping,import_confirm,import_cancel",
    "crm/tenancy": "tenancy",
    "crm/dashboard.py": "home",
    "dashboards": "home",
    "customers": "customers",
    "segmentation": "segmentation",
}
VIEW_FILES = ("views.py", "views_merge.py")

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

# Survivors explained: (file, enclosing function, description) -> why no test here can or need catch it.
NO_OP = "with transaction.atomic() made a no-op"
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("crm/accounts/services.py", "invitation_create", NO_OP): "the savepoint around save() only turns an "
    "IntegrityError into a ValidationError; the function's own @transaction.atomic rolls back either way",
    ("crm/jobs/services.py", "job_get_or_create_active", NO_OP): "it wraps a select_for_update, which "
    "raises at once outside a transaction (the browser tests' live server runs in autocommit); inside "
    "a test transaction the lock is taken all the same",
    ("customers/duplicates.py", "_similar_name_pairs", NO_OP): "the temporary table is ON COMMIT DROP: "
    "outside a transaction the scan fails at once; inside a test transaction it is the same",
    ("customers/dedupe/duplicates.py", "_similar_name_pairs", NO_OP): "as customers/duplicates.py",
    (
        "customers/imports/services.py",
        "import_run",
        "transaction.set_rollback(True) -> None",
    ): "set_rollback(True) follows import_rows() returning early on errors, before any write: "
    "nothing is in the transaction to undo (kept as a guard for future writes before the check)",
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
        return FAULT_TESTS
    return tests_for(mutant.path)


def tests_for(path: str) -> list[str]:
    best = max(
        (prefix for prefix in TEST_MAP if path == prefix or path.startswith(prefix.rstrip("/") + "/")),
        key=len,
        default=None,
    )
    if best is None:
        return [*ACCESS]
    return TEST_MAP[best]


def matrix_filter(mutant: Mutant) -> str:
    if mutant.path.endswith(VIEW_FILES) and mutant.function != "<module>":
        return mutant.function.split(".")[0]
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", default="", help="only mutants in files whose path contains this")
    parser.add_argument("--exclude", default=None, help="no mutants in files whose path contains this")
    parser.add_argument("--kind", choices=["scope", "role", "atomic", "tenant"], help="only this kind")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--database-suffix", default="_mutants", help="appended to the database name")
    parser.add_argument("--verbose", action="store_true", help="show the test output of survivors")
    args = parser.parse_args(argv)

    mutants = [
        m
        for m in find_mutants(ROOT)
        if args.only in m.path
        and (args.exclude is None or args.exclude not in m.path)
        and (not args.kind or m.kind == args.kind)
    ]
    if args.list:
        for m in mutants:
            tests = " ".join(tests_for_mutant(m))
            print(f"{m.where:38} {m.kind:6} {m.description} [{matrix_filter(m)}] {tests}")
        print(f"{len(mutants)} mutants")
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the copy when stopped
    env, servers = service_environment()
    base_url = env["DATABASE_URL"].rstrip("/")
    env["DATABASE_URL"] = (
        base_url + args.database_suffix
    )  # pytest-django prefixes "test_"; created once, reused
    env["DJANGO_SETTINGS_MODULE"] = "crm.settings.test"
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant and its original may share size and mtime
    workdir = Path(tempfile.mkdtemp(prefix="crm-mutants-"))
    started = time.monotonic()
    killed, survivors, equivalent = [], [], []
    try:
        copy_tree(workdir)
        first = True
        for number, mutant in enumerate(mutants, 1):
            target = workdir / mutant.path
            target.write_text(mutant.mutated)
            try:
                tests = [t for t in tests_for_mutant(mutant) if (workdir / t).exists()]
                command = [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-x",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "--no-header",
                ]
                command += ["--create-db"] if first else ["--reuse-db"]
                first = False
                if mutant.kind == "atomic" and mutant.function != "<module>":
                    # the fault tests name their cases after the service (test_audit_fault.py), or
                    # exercise the module's operation as a whole
                    function = mutant.function.split(".")[-1]
                    command += ["-k", f"{function} or not test_audit_fault"]
                run_env = {**env, "ACCESS_MATRIX_FILTER": matrix_filter(mutant)}
                result = subprocess.run(
                    [*command, *tests], cwd=workdir, env=run_env, capture_output=True, text=True, timeout=1200
                )
            finally:
                target.write_text(mutant.original)
            status = {0: "SURVIVED", 1: "killed"}.get(
                result.returncode, f"killed (pytest exit {result.returncode})"
            )
            if result.returncode not in (0, 1):
                print(result.stdout[-2000:], result.stderr[-2000:])
            elapsed = time.monotonic() - started
            print(f"[{number}/{len(mutants)} {elapsed:5.0f}s] {status:8} {mutant.where} ", end="")
            print(f"{mutant.kind}: {mutant.description}", flush=True)
            if result.returncode == 0 and args.verbose:
                print(" ".join(command + tests), result.stdout[-3000:])
            if result.returncode == 0:
                reason = EQUIVALENT.get((mutant.path, mutant.function, mutant.description))
                (equivalent if reason else survivors).append((mutant, reason))
            else:
                killed.append(mutant)
    finally:
        stop_servers(servers)
        if args.keep:
            print(f"copy kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(f"\n{len(mutants)} planted, {len(killed)} killed, {len(equivalent)} equivalent, ", end="")
    print(f"{len(survivors)} survived ({elapsed:.0f} s)")
    for mutant, reason in equivalent:
        print(f"  equivalent {mutant.where} {mutant.kind}: {mutant.description} -- {reason}")
    for mutant, _reason in survivors:
        print(f"  SURVIVOR   {mutant.where} {mutant.kind} in {mutant.function}: {mutant.description}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
