"""Recompute every member's balance from the points ledger (and from the open lots) and report the
members whose stored balance differs. Exit status 1 when any differs, so it can run from cron/CI."""

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from crm.tenancy.dispatch import active_tenants


class Command(BaseCommand):
    help = "Check every loyalty balance against its ledger, in one tenant (--schema) or in all active ones."

    def add_arguments(self, parser):
        parser.add_argument("--schema", help="Only this tenant schema (default: every active tenant)")

    def handle(self, *args, schema=None, **options):
        from loyalty.services import member_balances_check

        schemas = [schema] if schema else [t.schema_name for t in active_tenants()]
        total = 0
        for name in schemas:
            with schema_context(name):
                differences = member_balances_check()
            total += len(differences)
            for d in differences:
                self.stdout.write(
                    f"{name}: member {d.number} (id {d.member_id}): balance {d.balance}, "
                    f"ledger {d.ledger}, open lots {d.lots}"
                )
            self.stdout.write(f"{name}: {len(differences)} difference(s)")
        if total:
            raise CommandError(f"{total} balance(s) differ from the ledger")
