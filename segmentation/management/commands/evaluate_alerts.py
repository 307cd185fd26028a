"""`manage.py evaluate_alerts --tenant SLUG [--cutoff DATE]` or `--simulated --seed N [--tenant SLUG]`:
how far the churn alerts can be trusted (precision and recall against the naive 90-day rule)."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from crm.errors import ApplicationError
from crm.tenancy.models import Tenant


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"


class Command(BaseCommand):
    help = (
        "Replay the at-risk rule at a past cut-off and compare it with what customers did in the 90 days "
        "after it (precision, recall, against the naive 'no purchase for 90 days' rule). The figures "
        "are stored for the tenant's lifecycle page."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="The tenant's slug (required unless --simulated)")
        parser.add_argument(
            "--cutoff", help="Cut-off date YYYY-MM-DD (default: the latest one whose 90 days are over)"
        )
        parser.add_argument("--simulated", action="store_true", help="Use simulated purchase histories")
        parser.add_argument("--seed", type=int, default=7, help="Random seed of the simulation")
        parser.add_argument("--customers", type=int, default=5000, help="Simulated customers")

    def handle(self, *args, tenant=None, cutoff=None, simulated=False, seed=7, customers=5000, **options):
        from segmentation import evaluation

        if not simulated and not tenant:
            raise CommandError("Give --tenant SLUG, or --simulated --seed N.")
        if simulated and cutoff:
            raise CommandError("--cutoff applies to a tenant's purchases; a simulation picks its own.")
        if not 0 <= seed < 2**32:
            raise CommandError("--seed must be between 0 and 4294967295.")
        cutoff_date = None
        if cutoff:
            try:
                cutoff_date = date.fromisoformat(cutoff.strip())
            except ValueError:
                raise CommandError(f"--cutoff {cutoff!r} is not a date like 2026-09-01.") from None
        tenant_obj = None
        if tenant:
            tenant_obj = Tenant.objects.filter(slug=tenant.strip().lower()).first()
            if tenant_obj is None:
                raise CommandError(f"No tenant with slug {tenant!r}.")
        try:
            if tenant_obj is None:
                result = evaluation.evaluate_simulated(seed=seed, customers=customers).to_dict()
                stored = None
            else:
                with schema_context(tenant_obj.schema_name):
                    if simulated:
                        row = evaluation.alert_evaluation_simulated(seed=seed, customers=customers)
                    else:
                        row = evaluation.alert_evaluation_for_tenant(cutoff=cutoff_date)
                result, stored = row.figures, row.pk
        except ApplicationError as exc:
            raise CommandError(str(exc)) from None
        rules, naive = result["rules"], result["naive"]
        source = f"simulated (seed {seed})" if simulated else f"tenant {tenant}"
        self.stdout.write(
            f"{source}: cut-off {result['cutoff']}, {result['customers']:,} customers, "
            f"{rules['lapsed']:,} bought nothing in the next {result['outcome_days']} days "
            f"(model: {result['model_used']}, typical interval {result['typical_interval_days']} days)"
        )
        self.stdout.write(
            f"  alerts:      precision {_percent(rules['precision'])}, recall {_percent(rules['recall'])} "
            f"({rules['flagged']:,} flagged)"
        )
        self.stdout.write(
            f"  naive rule:  precision {_percent(naive['precision'])}, recall {_percent(naive['recall'])} "
            f"({naive['flagged']:,} flagged)"
        )
        verdict = "beat" if result["beats_naive"] else "do not beat"
        self.stdout.write(f"  the alerts {verdict} the naive rule on both precision and recall")
        if stored:
            self.stdout.write(self.style.SUCCESS(f"Stored as evaluation #{stored} in tenant {tenant}."))
