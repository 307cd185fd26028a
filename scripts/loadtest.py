"""`make load`: many signed-in users at once against the app as it runs in production, on this machine.

1. Prepares a tenant (LOAD_TENANT, default "load") with LOAD_CUSTOMERS demo customers (default 10,000;
   100,000 is the documented size, docs/scaling.md) and LOAD_ACCOUNTS accounts (default 50: four sales
   reps to one manager; each rep owns an equal share of the customers). Run again, it reuses them.
2. Starts, bound to 127.0.0.1 only, gunicorn with the production settings and the flags of
   docker-compose.yml (2 workers x 4 threads, gthread), and one Celery worker for every queue.
3. Runs Locust headless (scripts/loadtest_locustfile.py): LOAD_USERS users (default 50) sign in and
   browse (list, search, 360 page, log an interaction, dashboard) for LOAD_DURATION (default 60s).
   Once they are all signed in, a recompute and an import of LOAD_IMPORT_ROWS new customers (default
   2,000) are started through the app's own job machinery and run on the worker meanwhile.
4. Reports throughput, p50/p95/p99 per page, failures and the machine's load, writes them to
   LOAD_RESULTS (default load-results.json) and exits 1 on any 5xx (or a background job that failed).

Services: DATABASE_URL / REDIS_URL as `make run` finds them (scripts/services.py). Other settings:
LOAD_PORT (default: a free port), LOAD_SPAWN_RATE (users started per second, default 5).
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from services import ROOT, ServiceError, service_environment, stop_processes, stop_servers

PYTHON = sys.executable
BIN = Path(PYTHON).parent
WORK = ROOT / ".data" / "loadtest"
ACCOUNT_PASSWORD = "load-pass-2026"


def setting(name: str, default: str) -> str:
    return os.environ.get(name) or default


TENANT = setting("LOAD_TENANT", "load")
CUSTOMERS = int(setting("LOAD_CUSTOMERS", "10000"))
ACCOUNTS = int(setting("LOAD_ACCOUNTS", "50"))
USERS = int(setting("LOAD_USERS", "50"))
DURATION = setting("LOAD_DURATION", "60s")
SPAWN_RATE = setting("LOAD_SPAWN_RATE", "5")
IMPORT_ROWS = int(setting("LOAD_IMPORT_ROWS", "2000"))
RESULTS = Path(setting("LOAD_RESULTS", str(ROOT / "load-results.json")))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def production_environment(port: int) -> tuple[dict[str, str], list]:
    env, servers = service_environment()
    env.update(
        DJANGO_SETTINGS_MODULE="crm.settings.production",
        SITE_SCHEME="http",  # plain HTTP on 127.0.0.1: cookies without the Secure flag
        SITE_PORT=str(port),
        BASE_DOMAIN=env.get("BASE_DOMAIN") or "localhost",
        STATIC_ROOT=str(WORK / "static"),
        MEDIA_ROOT=str(WORK / "media"),
        EMAIL_URL=env.get("EMAIL_URL") or "consolemail://",
        PYTHONUNBUFFERED="1",
    )
    if not env.get("SECRET_KEY") and not env.get("SECRET_KEY_FILE"):
        env["SECRET_KEY"] = secrets.token_urlsafe(64)  # this run only: sessions die with it
    return env, servers


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def prepare_data(env: dict[str, str]) -> None:
    started = time.perf_counter()
    manage(env, "setup_platform", "-v0")
    manage(
        env,
        "provision_tenant",
        TENANT,
        "--name",
        "Load Test 压测",
        "--admin-email",
        f"admin@{TENANT}.example",
        "--admin-password",
        ACCOUNT_PASSWORD,
        "--if-missing",
    )
    manage(env, "seed_demo", "--tenant", TENANT, "--customers", str(CUSTOMERS), "--once")
    manage(env, "collectstatic", "--noinput", "-v0")
    print(f"load: data and static files ready in {time.perf_counter() - started:.1f} s", flush=True)


def prepare_accounts() -> list[dict[str, str]]:
    """LOAD_ACCOUNTS sales reps and managers (one password hash for all: signing in is what costs)."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django_tenants.utils import schema_context

    from crm.accounts.models import Role, User
    from crm.tenancy.models import Tenant
    from customers.models import Customer

    tenant = Tenant.objects.get(slug=TENANT)
    accounts = []
    with schema_context(tenant.schema_name), transaction.atomic():
        password = make_password(ACCOUNT_PASSWORD)
        for number in range(ACCOUNTS):
            role = Role.MANAGER if number % 5 == 4 else Role.SALES
            email = f"{role}{number:03d}@{TENANT}.example"
            User.objects.update_or_create(
                email=email,
                defaults={"role": role, "full_name": f"Load {role} {number}", "password": password},
            )
            accounts.append({"email": email, "password": ACCOUNT_PASSWORD, "role": str(role)})
        reps = list(
            User.objects.filter(email__startswith="sales", email__endswith=f"@{TENANT}.example")
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if reps and not Customer.objects.filter(owner_id__in=reps).exists():
            from django.db import connection

            with connection.cursor() as cursor:  # an equal share of the customers for every rep
                cursor.execute(
                    "UPDATE customers_customer SET owner_id = (%s::bigint[])[1 + id %% %s]", [reps, len(reps)]
                )
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE customers_customer")
    return accounts


def start(name: str, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    print(f"load: starting {name}", flush=True)
    handle = open(log, "w")  # noqa: SIM115 - closed with the process at the end
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz")
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the app on 127.0.0.1:{port} did not become ready in {timeout:.0f} s")


def import_csv(rows: int) -> bytes:
    """New customers with Chinese names, mobile numbers and addresses (as a shop's export would be)."""
    surnames, given = "王李张刘陈杨黄赵吴周", "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["姓名", "手机号", "邮箱", "城市"])
    stamp = int(time.time()) % 100_000
    for number in range(rows):
        name = surnames[number % 10] + given[number % 17] + given[(number // 17) % 17]
        phone = f"139{stamp % 1000:03d}{number:05d}"
        writer.writerow([name, phone, f"load{stamp}.{number}@example.cn", "上海"])
    return out.getvalue().encode("utf-8")


class BackgroundJobs(threading.Thread):
    """A recompute and an import, started through the services the pages call, on the real worker."""

    def __init__(self, start_after: float):
        super().__init__(daemon=True)
        self.start_after = start_after
        self.report: dict[str, dict] = {}

    def run(self) -> None:
        time.sleep(self.start_after)
        try:
            self._run()
        except Exception as error:  # reported, and the run fails
            self.report["error"] = {"status": "error", "message": repr(error)}

    def _run(self) -> None:
        from django.core.files.uploadedfile import SimpleUploadedFile
        from django_tenants.utils import schema_context

        from crm.accounts.models import User
        from crm.jobs.models import BackgroundJob
        from crm.tenancy.models import Tenant
        from customers.imports import services as imports
        from segmentation.services import recompute_request

        tenant = Tenant.objects.get(slug=TENANT)
        with schema_context(tenant.schema_name):
            manager = User.objects.filter(role="manager", is_active=True).order_by("pk").first()
            began = time.monotonic()
            recompute = recompute_request(user=manager)
            upload = SimpleUploadedFile("load.csv", import_csv(IMPORT_ROWS), content_type="text/csv")
            job = imports.import_upload(actor=manager, uploaded_file=upload)
            imports.import_set_mapping(actor=manager, job=job, mapping=job.params["mapping"], policy="update")
            job = self._wait(BackgroundJob, job.pk, lambda j: j.params.get("stage") == "preview")
            if job.status != BackgroundJob.Status.FAILED:
                imports.import_confirm(actor=manager, job=job, skip_invalid=True)
                job = self._wait(BackgroundJob, job.pk, lambda j: j.params.get("stage") == "done")
            self.report["import"] = self._describe(job, began)
            recompute.refresh_from_db()
            self.report["recompute"] = self._describe(recompute, began)

    @staticmethod
    def _wait(model, pk: int, reached, timeout: float = 900):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = model.objects.get(pk=pk)
            if job.status == model.Status.FAILED or (reached(job) and not job.is_active):
                return job
            time.sleep(0.5)
        return model.objects.get(pk=pk)

    @staticmethod
    def _describe(job, began: float) -> dict:
        seconds = None
        if job.started_at and job.finished_at:
            seconds = round((job.finished_at - job.started_at).total_seconds(), 1)
        return {
            "status": job.status,
            "seconds_running": seconds,
            "message": job.message,
            "written": (job.result or {}).get("written"),
        }

    def wait_for_jobs(self, timeout: float = 600) -> None:
        """Wait until the jobs this run started (and the recompute the import asks for) are done."""
        self.join(timeout)
        from django_tenants.utils import schema_context

        from crm.jobs.models import BackgroundJob
        from crm.tenancy.models import Tenant

        deadline = time.monotonic() + timeout
        with schema_context(Tenant.objects.get(slug=TENANT).schema_name):
            while BackgroundJob.objects.filter(status__in=BackgroundJob.ACTIVE_STATUSES).exists():
                if time.monotonic() > deadline:
                    self.report["error"] = {"status": "error", "message": "jobs still running at the end"}
                    return
                time.sleep(1)


def read_stats(prefix: Path) -> dict:
    pages, total = {}, {}
    with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            figures = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "per_second": round(float(row["Requests/s"]), 2),
                "p50_ms": _ms(row["50%"]),
                "p95_ms": _ms(row["95%"]),
                "p99_ms": _ms(row["99%"]),
                "max_ms": _ms(row["Max Response Time"]),
            }
            if row["Name"] == "Aggregated":
                total = figures
            else:
                pages[f"{row['Type']} {row['Name']}"] = figures
    failures = []
    with open(f"{prefix}_failures.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            request = f"{row['Method']} {row['Name']}"
            failures.append({"request": request, "error": row["Error"], "count": row["Occurrences"]})
    return {"pages": pages, "total": total, "failures": failures}


def _ms(value: str) -> float | None:
    try:
        return round(float(value), 1)
    except ValueError:
        return None


def print_report(results: dict) -> None:
    print(f"\nload: {results['users']} users for {results['duration']}, machine load {results['load_after']}")
    print(f"{'request':32} {'count':>6} {'fail':>5} {'req/s':>6} {'p50':>7} {'p95':>7} {'p99':>7}")
    for name, row in sorted(results["pages"].items()) + [("all", results["total"])]:
        print(
            f"{name:32} {row['requests']:6} {row['failures']:5} {row['per_second']:6} "
            f"{row['p50_ms']!s:>7} {row['p95_ms']!s:>7} {row['p99_ms']!s:>7}"
        )
    print(f"5xx answers: {len(results['server_errors'])}; failures: {results['failures']}")
    print(f"background jobs: {json.dumps(results['background_jobs'], ensure_ascii=False)}")


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    port = int(setting("LOAD_PORT", "0")) or free_port()
    try:
        env, servers = production_environment(port)
    except ServiceError as exc:
        print(f"make load: {exc}", file=sys.stderr)
        return 1
    processes: list[subprocess.Popen] = []
    try:
        prepare_data(env)
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        credentials = WORK / "accounts.json"
        credentials.write_text(json.dumps(prepare_accounts()))
        processes.append(
            start(
                "the Celery worker",
                [str(BIN / "celery"), "-A", "crm", "worker", "--loglevel=WARNING", "--concurrency=2"],
                env,
                WORK / "worker.log",
            )
        )
        processes.append(
            start(
                f"gunicorn on 127.0.0.1:{port}",
                [
                    str(BIN / "gunicorn"),
                    "crm.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
                    *("--workers", "2", "--threads", "4", "--worker-class", "gthread"),
                    *("--keep-alive", "75", "--timeout", "60"),
                ],
                env,
                WORK / "gunicorn.log",
            )
        )
        wait_ready(port)
        base = env["BASE_DOMAIN"]
        prefix = WORK / "locust"
        server_errors = WORK / "server-errors.json"
        server_errors.unlink(missing_ok=True)
        locust_env = {
            **env,
            "LOAD_CREDENTIALS": str(credentials),
            "LOAD_TENANT_HOST": f"{TENANT}.{base}:{port}",
            "LOAD_5XX_FILE": str(server_errors),
        }
        jobs = BackgroundJobs(start_after=USERS / float(SPAWN_RATE) + 2)
        load_before = load_average()
        print(f"load: {USERS} users for {DURATION}, machine load {load_before}", flush=True)
        started = time.monotonic()
        jobs.start()
        subprocess.run(
            [
                str(BIN / "locust"),
                *("-f", str(ROOT / "scripts" / "loadtest_locustfile.py")),
                "--headless",
                *("-u", str(USERS), "-r", SPAWN_RATE, "-t", DURATION),
                *("--host", f"http://127.0.0.1:{port}"),
                *("--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"),
                "--stop-timeout",
                "10",
            ],
            cwd=ROOT,
            env=locust_env,
            check=False,
        )
        wall = time.monotonic() - started
        load_after = load_average()
        jobs.wait_for_jobs()
        stats = read_stats(prefix)
        errors = json.loads(server_errors.read_text()) if server_errors.exists() else []
        results = {
            "tenant": TENANT,
            "customers": CUSTOMERS,
            "users": USERS,
            "duration": DURATION,
            "wall_seconds": round(wall, 1),
            "load_before": load_before,
            "load_after": load_after,
            "gunicorn": "2 workers x 4 threads (gthread), production settings, 127.0.0.1",
            **stats,
            "server_errors": errors,
            "background_jobs": jobs.report,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        print_report(results)
        print(f"load: results in {RESULTS}")
        failed_jobs = [k for k, v in jobs.report.items() if v.get("status") != "succeeded"]
        if errors:
            print(f"make load: FAILED, {len(errors)} answers with a 5xx status", file=sys.stderr)
            return 1
        if failed_jobs:
            print(f"make load: FAILED, background jobs did not succeed: {failed_jobs}", file=sys.stderr)
            return 1
        return 0
    finally:
        stop_processes(processes, timeout=20)
        stop_servers(servers)


if __name__ == "__main__":
    sys.exit(main())
