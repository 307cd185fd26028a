from django.core.management.base import BaseCommand

from crm.ops.checks import run_all


class Command(BaseCommand):
    help = (
        "Check the installation: settings, migrations of every schema (public, template, each tenant), "
        "beat schedules and a worker on every queue; print what to fix. "
        "Exit status 1 when something is wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--worker-timeout", type=float, default=5.0, help="Seconds to wait for a worker on each queue"
        )

    def handle(self, *args, worker_timeout: float, **options):
        findings = run_all(worker_timeout=max(0.5, min(worker_timeout, 120.0)))
        for finding in findings:
            if finding.ok:
                self.stdout.write(f"ok    {finding.area}: {finding.message}")
            else:
                self.stdout.write(self.style.ERROR(f"FIX   {finding.area}: {finding.message}"))
                self.stdout.write(f"      -> {finding.fix}")
        problems = sum(not finding.ok for finding in findings)
        if problems:
            self.stdout.write(self.style.ERROR(f"{problems} problem(s) to fix."))
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS("Everything checked is fine."))
