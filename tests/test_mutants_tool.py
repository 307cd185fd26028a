"""`make mutants` (scripts/mutants.py) plants what it says, names only tests that exist, explains only
mutants that still exist, and points every mutant of a view at access-matrix rows (a filter that
selects no row would leave the mutant unexamined)."""

import ast
import importlib.util
import sys

from tests.conftest import REPO_ROOT


def _load_tool():
    sys.path.insert(0, str(REPO_ROOT / "scripts"))  # the tool imports its sibling `services`
    try:
        spec = importlib.util.spec_from_file_location("mutants_tool", REPO_ROOT / "scripts" / "mutants.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["mutants_tool"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))


tool = _load_tool()
MUTANTS = tool.find_mutants(REPO_ROOT)

SAMPLE = """
from django.db import transaction
from crm.accounts.permissions import MANAGERS, role_required, user_has_role, visible_to


@role_required(*MANAGERS)
def page(request):
    return visible_to(Thing.objects.all(), request.user)


@transaction.atomic
def write(*, actor):
    with transaction.atomic():
        if not user_has_role(actor, MANAGERS):
            transaction.set_rollback(True)
"""


def test_the_finder_plants_each_kind_of_fault_once():
    finder = tool._Finder("app/views.py", SAMPLE)
    finder.visit(ast.parse(SAMPLE))
    planted = {(m.kind, m.function, m.description) for m in finder.found}
    assert planted == {
        ("role", "page", "role_required(*MANAGERS) -> role_required() on page"),
        ("scope", "page", "visible_to(Thing.objects.all(), ...) -> Thing.objects.all()"),
        ("atomic", "write", "@transaction.atomic removed from write"),
        ("atomic", "write", "with transaction.atomic() made a no-op"),
        ("role", "write", "user_has_role(...) -> True"),
        ("atomic", "write", "transaction.set_rollback(True) -> None"),
    }
    for mutant in finder.found:
        assert mutant.mutated != SAMPLE
        compile(mutant.mutated, mutant.path, "exec")
        # one fault each: the rest of the text is untouched
        assert len(mutant.mutated.splitlines()) == len(SAMPLE.splitlines())


def test_the_tree_has_mutants_of_every_kind():
    kinds = {m.kind for m in MUTANTS}
    assert kinds == {"scope", "role", "atomic", "tenant"}
    assert len(MUTANTS) > 150


def test_every_harmless_mutant_named_in_the_tool_still_exists():
    found = {(m.path, m.function, m.description) for m in MUTANTS}
    stale = [key for key in tool.EQUIVALENT if key not in found]
    assert not stale, f"EQUIVALENT explains mutants the tree no longer has: {stale}"


def test_every_test_the_tool_runs_exists():
    named = {t for tests in tool.TEST_MAP.values() for t in tests}
    named |= {t for tests in tool.ATOMIC_TESTS.values() for t in tests}
    named |= set(tool.FAULT_TESTS)
    missing = sorted(t for t in named if not (REPO_ROOT / t).exists())
    assert not missing, missing
    sources = {*tool.TEST_MAP, *tool.MATRIX_FILTER, *tool.ATOMIC_TESTS}
    assert not sorted(s for s in sources if not (REPO_ROOT / s).exists()), "source paths that are gone"


def test_each_view_mutant_selects_access_matrix_rows(monkeypatch):
    from tests.crm import test_access_matrix as matrix

    unexamined = []
    for mutant in MUTANTS:
        if mutant.kind not in ("role", "scope"):
            continue
        monkeypatch.setenv("ACCESS_MATRIX_FILTER", tool.matrix_filter(mutant))
        rows = [
            *matrix._selected(matrix.TENANT_URLCONF, matrix.TENANT_URLS),
            *matrix._selected(matrix.PUBLIC_URLCONF, matrix.PUBLIC_URLS),
        ]
        if not rows:
            unexamined.append(mutant.text)
    assert not unexamined, unexamined


def test_a_dropped_transaction_runs_the_modules_own_tests_then_the_fault_tests():
    mutant = next(m for m in MUTANTS if m.path == "segmentation/tableswap.py" and m.kind == "atomic")
    assert tool.tests_for_mutant(mutant) == ["tests/segmentation/test_tableswap.py", *tool.FAULT_TESTS]
