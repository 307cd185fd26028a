"""Imports go one way, and no import cycle appears between the project's modules.

Read from the source with `ast` (nothing is imported, no extra dependency). Every `import` and
`from ... import` statement counts, at module level and inside functions, plus
`importlib.import_module("literal")`. Dotted strings in settings (INSTALLED_APPS, CELERY_IMPORTS) and
`include("app.urls")` in crm/urls_tenant.py are wiring, not imports, and are not read.

1. Floors (docs/architecture.md). Nothing may import an app on a floor above its own, not even inside
   a function:
       crm (the ground floor)  <  customers  <  segmentation, interactions, loyalty  <  dashboards
   Apps on the same floor may use each other's selectors.
2. No cycle among module-level imports: they run when a module is first imported, so a cycle there
   is an import-order bug waiting to happen.
3. Function-local imports run later, so a cycle through them does not break an import, but it still
   means two modules that can only be understood together; they are checked and reported
   separately, with one accepted pattern: a module may import the `tasks` module of its own package
   inside a function (a service queueing its own Celery task, which calls the service back; the
   worker imports tasks modules on its own).
4. Reads never depend on writes: no `selectors` module imports a `services` module.
5. segmentation.analytics is plain numpy/pandas maths: it imports neither Django nor the project
   outside itself.

The checks run first against a small planted tree (so each can be seen failing), then the project.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {
    "crm": 0,
    "customers": 1,
    "segmentation": 2,
    "interactions": 2,
    "loyalty": 2,
    "dashboards": 3,
}
# may import neither Django nor other project modules
PURE = ("segmentation.analytics", "loyalty.rules", "interactions.service.business_hours")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    local: bool  # inside a function
    line: int

    def __str__(self) -> str:
        where = "in a function" if self.local else "module level"
        return f"{self.source} -> {self.target} (line {self.line}, {where})"


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in FLOORS:
        for path in sorted((root / package).rglob("*.py")) if (root / package).is_dir() else []:
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> list[tuple[str, bool, int]]:
    """(imported dotted name, inside a function, line) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, local, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    prefix = ".".join(base + ([child.module] if child.module else []))
                else:
                    prefix = child.module or ""
                found.append((prefix, local, child.lineno))
                found.extend((f"{prefix}.{alias.name}", local, child.lineno) for alias in child.names)
            elif (
                isinstance(child, ast.Call)
                and getattr(child.func, "attr", getattr(child.func, "id", "")) == "import_module"
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                found.append((child.args[0].value, local, child.lineno))
            visit(child, inner)

    visit(tree, False)
    return found


def _edges(root: Path) -> tuple[list[Edge], list[tuple[str, str, int]]]:
    """Edges between project modules, and every (module, imported name, line) for rule 4."""
    modules = _modules(root)
    edges: dict[tuple[str, str, bool], Edge] = {}
    raw = []
    for module, path in modules.items():
        for name, local, line in _imports(module, path):
            raw.append((module, name, line))
            target = name
            while target and target not in modules:  # `from a.b import c`: module a.b.c, else a.b
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.setdefault((module, target, local), Edge(module, target, local, line))
    return list(edges.values()), raw


def _app(module: str) -> str:
    return module.split(".")[0]


def floor_violations(edges: list[Edge]) -> list[str]:
    return [
        f"{edge}: {_app(edge.source)} (floor {FLOORS[_app(edge.source)]}) must not import "
        f"{_app(edge.target)} (floor {FLOORS[_app(edge.target)]})"
        for edge in edges
        if FLOORS[_app(edge.target)] > FLOORS[_app(edge.source)]
    ]


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def _describe(cycles: list[list[str]], edges: list[Edge]) -> list[str]:
    described = []
    for members in cycles:
        inside = [str(e) for e in edges if e.source in members and e.target in members]
        described.append(" <-> ".join(members) + ": " + "; ".join(sorted(inside)))
    return described


def _own_tasks(edge: Edge) -> bool:
    return edge.target.endswith(".tasks") and edge.target.rpartition(".")[0] == edge.source.rpartition(".")[0]


def module_level_cycles(edges: list[Edge]) -> list[str]:
    module_level = [e for e in edges if not e.local]
    return _describe(_cycles(module_level), module_level)


def function_local_cycles(edges: list[Edge]) -> list[str]:
    kept = [e for e in edges if not (e.local and _own_tasks(e))]
    return _describe(_cycles(kept), kept)


def selectors_importing_services(edges: list[Edge]) -> list[str]:
    return [
        str(edge)
        for edge in edges
        if edge.source.rpartition(".")[2] == "selectors" and edge.target.rpartition(".")[2] == "services"
    ]


def impurities(raw: list[tuple[str, str, int]]) -> list[str]:
    return [
        f"{module} imports {name} (line {line})"
        for module, name, line in raw
        for pure in PURE
        if (module == pure or module.startswith(pure + "."))
        and (
            _app(name) == "django"
            or (_app(name) in FLOORS and not (name == pure or name.startswith(pure + ".")))
        )
    ]


# --- the checks see a planted fault ------------------------------------------------------------------


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_checks_catch_planted_faults(tmp_path):
    root = _plant(
        tmp_path,
        {
            "crm/__init__.py": "",
            "crm/navigation.py": "def badge(user):\n    from segmentation.selectors import alert_badge\n",
            "customers/__init__.py": "",
            "customers/models.py": "",
            "customers/services.py": "from . import selectors\nfrom .models import Customer\n",
            "customers/selectors.py": "import importlib\nimportlib.import_module('customers.services')\n",
            "customers/tasks.py": "def run():\n    from .services import x\n",
            "customers/jobs.py": "def later():\n    from segmentation import services\n",
            "customers/exports.py": "def enqueue():\n    from .tasks import run\n",
            "customers/timeline.py": "def f():\n    from .labels import x\n",
            "customers/labels.py": "def g():\n    from customers.timeline import f\n",
            "segmentation/__init__.py": "",
            "segmentation/selectors.py": "from customers.models import Customer\n",
            "segmentation/analytics/__init__.py": "",
            "segmentation/analytics/rfm.py": "import pandas\nfrom django.db import models\n",
            "segmentation/analytics/clv.py": "from . import rfm\nfrom segmentation.selectors import x\n",
            "dashboards/__init__.py": "",
            "dashboards/views.py": "from customers.selectors import figures\n",
        },
    )
    edges, raw = _edges(root)
    assert [v.split(":")[0] for v in floor_violations(edges)] == [
        "crm.navigation -> segmentation.selectors (line 2, in a function)",
        "customers.jobs -> segmentation (line 2, in a function)",
    ]
    assert module_level_cycles(edges) == [
        "customers.selectors <-> customers.services: customers.selectors -> customers.services (line 2, "
        "module level); customers.services -> customers.selectors (line 1, module level)"
    ]
    assert selectors_importing_services(edges) == [
        "customers.selectors -> customers.services (line 2, module level)"
    ]
    local = function_local_cycles(edges)
    assert len(local) == 2 and local[0].startswith("customers.labels <-> customers.timeline:")
    assert not any("customers.exports" in cycle for cycle in local), "a service may queue its own task"
    assert sorted(impurities(raw)) == [
        "segmentation.analytics.clv imports segmentation.selectors (line 2)",
        "segmentation.analytics.clv imports segmentation.selectors.x (line 2)",
        "segmentation.analytics.rfm imports django.db (line 2)",
        "segmentation.analytics.rfm imports django.db.models (line 2)",
    ]


# --- the project ---------------------------------------------------------------------------------------


def test_the_checker_sees_the_whole_project():
    edges, _raw = _edges(ROOT)
    sources = {_app(edge.source) for edge in edges}
    assert {"crm", "customers", "segmentation", "dashboards"} <= sources
    assert any(e.local for e in edges) and len(edges) > 100


def test_imports_never_go_up_a_floor():
    edges, _raw = _edges(ROOT)
    assert floor_violations(edges) == []


def test_no_cycle_among_module_level_imports():
    edges, _raw = _edges(ROOT)
    assert module_level_cycles(edges) == []


def test_no_cycle_through_function_local_imports_except_a_service_queueing_its_own_task():
    edges, _raw = _edges(ROOT)
    assert function_local_cycles(edges) == []


def test_selectors_never_import_services():
    edges, _raw = _edges(ROOT)
    assert selectors_importing_services(edges) == []


def test_analytics_stays_free_of_django_and_the_project():
    _edges_found, raw = _edges(ROOT)
    assert any(module.startswith("segmentation.analytics") for module, _name, _line in raw)
    assert impurities(raw) == []
