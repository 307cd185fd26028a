"""Every URL of the tenant site x every role -> the expected status (table in role_matrix.py)."""

import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.crm import role_matrix
from tests.crm.role_matrix import ANON, EXPECTATIONS, ROLES, SAMPLE_KWARGS, MatrixContext

TENANT_URLCONF = "crm.urls_tenant"
GENERIC_VALUES = {
    "int": 999999,
    "str": "sample",
    "slug": "sample",
    "uuid": str(uuid.UUID(int=0)),
    "path": "sample",
}


def _walk(patterns, namespace=None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = entry.namespace
            full = f"{namespace}:{inner}" if namespace and inner else (inner or namespace)
            yield from _walk(entry.url_patterns, full)
        elif isinstance(entry, URLPattern) and entry.name:
            name = f"{namespace}:{entry.name}" if namespace else entry.name
            yield name, entry


def tenant_url_patterns() -> dict[str, URLPattern]:
    found: dict[str, URLPattern] = {}
    for name, pattern in _walk(get_resolver(TENANT_URLCONF).url_patterns):
        if name.split(":", 1)[0] in role_matrix.SKIPPED_NAMESPACES:
            continue
        found.setdefault(name, pattern)
    return found


def _converter_kind(converter) -> str:
    name = type(converter).__name__.lower()
    for kind in ("int", "slug", "uuid", "path"):
        if name.startswith(kind):
            return kind
    return "str"


def _generic_kwargs(pattern: URLPattern) -> dict:
    converters = getattr(pattern.pattern, "converters", {}) or {}
    if converters:
        return {key: GENERIC_VALUES[_converter_kind(conv)] for key, conv in converters.items()}
    regex = getattr(pattern.pattern, "regex", None)
    return dict.fromkeys(regex.groupindex if regex is not None else {}, "1")


URL_NAMES = sorted(tenant_url_patterns())


def test_the_walk_finds_the_tenant_urls():
    assert {"home", "accounts:login", "accounts:user_list"} <= set(URL_NAMES)
    assert not any(name.startswith("admin:") for name in URL_NAMES)


def test_every_expectation_names_a_url_that_exists_and_every_role():
    stale = sorted(set(EXPECTATIONS) - set(URL_NAMES))
    assert not stale, f"tests/crm/role_matrix.py EXPECTATIONS lists URLs that no longer exist: {stale}"
    for name, row in EXPECTATIONS.items():
        assert set(row) == set(ROLES), f"{name}: give a status for each of {ROLES}"


@pytest.fixture
def matrix_clients(client_for, users, tenant):
    clients = {ANON: Client(HTTP_HOST=f"{tenant.slug}.testserver.local")}
    for role in ROLES[1:]:
        clients[role] = client_for(users[role], tenant)
    return clients


@pytest.mark.parametrize("name", URL_NAMES)
def test_role_matrix(name, matrix_clients, users, tenant):
    if name not in EXPECTATIONS:
        if role_matrix.is_pending(name):
            pytest.skip(f"{name}: pending review (PENDING_REVIEW in tests/crm/role_matrix.py)")
        pytest.fail(
            f"URL {name!r} has no role expectation. Add it to EXPECTATIONS in tests/crm/role_matrix.py "
            f"with the status each role ({', '.join(ROLES)}) should get on GET."
        )
    pattern = tenant_url_patterns()[name]
    sample = SAMPLE_KWARGS.get(name)
    kwargs = sample(MatrixContext(tenant=tenant, users=users)) if sample else _generic_kwargs(pattern)
    url = reverse(name, kwargs=kwargs or None, urlconf=TENANT_URLCONF)
    tolerate_404 = sample is None and bool(kwargs)

    problems = []
    for role in ROLES:
        expected = EXPECTATIONS[name][role]
        response = matrix_clients[role].get(url)
        actual = response.status_code
        if actual != expected and not (tolerate_404 and actual == 404 and expected in (200, 403)):
            problems.append(f"{role}: expected {expected}, got {actual}")
        elif role == ANON and expected == 302:
            location = response["Location"]
            if not location.startswith("/accounts/login/"):
                problems.append(f"anonymous: redirected to {location}, not to the login page")
    assert not problems, f"GET {url} ({name}):\n  " + "\n  ".join(problems)
