"""Settings that decide what an attacker can forge or exhaust: the secret key (refused when weak,
generated once and kept for `make run` and the Docker image), CSRF origins, cookies and the lifetime
of database connections, per environment. Each environment is loaded in its own process, as it is
when the server starts."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from crm.settings.keyfile import KNOWN_KEYS, secret_key_problem

REPO = Path(__file__).resolve().parents[2]
STRONG_KEY = "q7Vd2-" + "Zr9xK3pLw8NcT5bYh1Ge6UfJ4sMa0RnQ" * 2  # 70 characters, many different ones
PRINT_SETTINGS = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps({'key': s.SECRET_KEY, 'origins': s.CSRF_TRUSTED_ORIGINS, "
    "'conn_max_age': s.DATABASES['default']['CONN_MAX_AGE'], 'debug': s.DEBUG, "
    "'language_cookie': [s.LANGUAGE_COOKIE_SECURE, s.LANGUAGE_COOKIE_SAMESITE]}))"
)


def _clean_environment(**extra: str) -> dict[str, str]:
    drop = {"SECRET_KEY", "SECRET_KEY_FILE", "CONN_MAX_AGE", "DEBUG", "SITE_PORT", "CSRF_TRUSTED_ORIGINS"}
    env = {k: v for k, v in os.environ.items() if k not in drop and k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(extra)
    return env


def load_settings(module: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=REPO,
        env=_clean_environment(DJANGO_SETTINGS_MODULE=f"crm.settings.{module}", **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def loaded(module: str, **extra: str) -> dict:
    result = load_settings(module, **extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the secret key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "",
        "change-me",
        "change-me-to-a-long-random-string",  # the old .env.example value
        "dev-only-insecure-key-change-me",  # the old built-in development key
        "test-secret-key-not-for-production",
        "django-insecure-" + "k8#x2!p@9z$w4&m7^q1*r5(t3)y6_u0+v-b=n" * 2,
        "short-but-random-Zr9xK3pLw8",
        "ab" * 40,  # long, but two different characters
    ],
)
def test_weak_secret_keys_are_named(key):
    assert secret_key_problem(key)


def test_a_long_random_key_is_accepted():
    assert secret_key_problem(STRONG_KEY) is None
    assert all(secret_key_problem(key) for key in KNOWN_KEYS)


@pytest.mark.parametrize(
    "key, message",
    [
        (None, "SECRET_KEY is not set"),
        ("change-me", "published example value"),
        ("tooshort-Zr9xK3pLw8", "too short"),
    ],
)
def test_production_refuses_to_start_with_a_weak_key(key, message):
    extra = {} if key is None else {"SECRET_KEY": key}
    result = load_settings("production", **extra)
    assert result.returncode != 0
    assert "ImproperlyConfigured: Refusing to start" in result.stderr and message in result.stderr


def test_production_starts_with_a_strong_key():
    assert loaded("production", SECRET_KEY=STRONG_KEY)["key"] == STRONG_KEY


def test_make_run_generates_a_key_once_and_reuses_it(tmp_path):
    """Dev settings without SECRET_KEY: a random key in a file only its owner can read, the same one
    on every start."""
    key_file = tmp_path / "data" / "secret_key"
    first = loaded("dev", SECRET_KEY_FILE=str(key_file))["key"]
    assert secret_key_problem(first) is None
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == first
    assert loaded("dev", SECRET_KEY_FILE=str(key_file))["key"] == first
    # another checkout (another file) gets another key: nothing is built in
    assert loaded("dev", SECRET_KEY_FILE=str(tmp_path / "other"))["key"] != first


def test_make_run_refuses_a_published_key_from_the_environment(tmp_path):
    result = load_settings("dev", SECRET_KEY="change-me-to-a-long-random-string")
    assert result.returncode != 0 and "published example value" in result.stderr


def test_the_docker_entry_point_generates_the_key_once_into_the_volume(tmp_path):
    """docker-compose gives no SECRET_KEY: the entry point writes one into SECRET_KEY_FILE (a volume)
    on the first start, and production settings read it, the same on every start."""
    key_file = tmp_path / "secrets" / "secret_key"
    env = _clean_environment(SECRET_KEY_FILE=str(key_file), DJANGO_SETTINGS_MODULE="crm.settings.production")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the image's `python`
    keys = []
    for _ in range(2):
        result = subprocess.run(
            ["sh", "scripts/docker-entrypoint.sh", sys.executable, "-c", PRINT_SETTINGS],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        keys.append(json.loads(result.stdout.strip().splitlines()[-1])["key"])
    assert keys[0] == keys[1] == key_file.read_text().strip()
    assert secret_key_problem(keys[0]) is None
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Neither a key nor a file: the container refuses to start, with the reason.
    refused = subprocess.run(
        ["sh", "scripts/docker-entrypoint.sh", "true"],
        cwd=REPO,
        env=_clean_environment(),
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "Refusing to start" in refused.stderr


def test_no_file_of_the_repository_sets_a_default_key():
    compose = (REPO / "docker-compose.yml").read_text()
    assert "change-me" not in compose and "SECRET_KEY_FILE: /data/secrets/secret_key" in compose
    for line in (REPO / ".env.example").read_text().splitlines():
        assert not line.startswith("SECRET_KEY="), line
    assert "SECRET_KEY=build-only" not in (REPO / "Dockerfile").read_text()


# --- origins, cookies, connections -------------------------------------------------------------


def test_production_trusts_exactly_its_https_origins():
    settings = loaded("production", SECRET_KEY=STRONG_KEY, BASE_DOMAIN="crm.example.com")
    assert settings["origins"] == ["https://crm.example.com", "https://*.crm.example.com"]
    with_port = loaded("production", SECRET_KEY=STRONG_KEY, BASE_DOMAIN="crm.example.com", SITE_PORT="8443")
    assert with_port["origins"] == ["https://crm.example.com:8443", "https://*.crm.example.com:8443"]
    assert settings["language_cookie"] == [True, "Lax"]


def test_database_connections_are_kept_only_by_production(tmp_path):
    """gunicorn's long-lived workers keep a connection; the development server (a thread per request)
    and the tests close it after each request."""
    assert loaded("production", SECRET_KEY=STRONG_KEY)["conn_max_age"] == 60
    dev = loaded("dev", SECRET_KEY_FILE=str(tmp_path / "key"))
    assert dev["conn_max_age"] == 0 and dev["debug"] is False
    assert dev["language_cookie"] == [False, "Lax"]
    assert loaded("test")["conn_max_age"] == 0
