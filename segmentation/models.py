"""Stored results of customer value analysis (RFM, CLV, lifecycle), their history, saved rule-based
segments and churn alerts. All tables live in the tenant's schema.

The numbers are computed by `segmentation.recompute` (pandas, in bulk) and written back in bulk; the
customer list filters and sorts on `CustomerScore` through indexed columns.
"""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from .labels import ClvModel, LifecycleStage, RfmSegment


class SegmentationSettings(models.Model):
    """The tenant's analysis settings: one row per tenant (primary key 1)."""

    class MonetaryMode(models.TextChoices):
        TOTAL = "total", _("Total spend in the window")
        AVERAGE = "average", _("Average spend per purchase day")

    class ScoringMethod(models.TextChoices):
        # xgettext:no-python-format
        QUINTILES = "quintiles", _("Quintiles (20% of customers per score)")
        THRESHOLDS = "thresholds", _("Fixed thresholds")

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    rfm_window_days = models.PositiveIntegerField(
        _("RFM window (days)"),
        default=365,
        validators=[MinValueValidator(7), MaxValueValidator(3650)],
        help_text=_("Only purchases in this many days before the computation count for RFM scores."),
    )
    monetary_mode = models.CharField(
        _("monetary value"), max_length=10, choices=MonetaryMode.choices, default=MonetaryMode.TOTAL
    )
    scoring_method = models.CharField(
        _("scoring"), max_length=12, choices=ScoringMethod.choices, default=ScoringMethod.QUINTILES
    )
    # {"recency": [30, 90, 180, 365], "frequency": [1, 2, 4, 8], "monetary": [100, 300, 1000, 3000]}:
    # four ascending inclusive upper bounds per metric (see segmentation.analytics.rfm).
    score_thresholds = models.JSONField(_("score thresholds"), default=dict, blank=True)
    clv_horizon_days = models.PositiveIntegerField(
        _("CLV horizon (days)"), default=365, validators=[MinValueValidator(30), MaxValueValidator(3650)]
    )
    annual_discount_rate = models.DecimalField(
        _("annual discount rate"),
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.10"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("e.g. 0.10 for 10% a year"),
    )
    margin = models.DecimalField(
        _("gross margin"),
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.30"),
        validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal("1"))],
        help_text=_("Share of revenue kept as profit, e.g. 0.30; CLV is expressed in margin."),
    )
    new_days = models.PositiveIntegerField(
        _("new customer period (days)"), default=30, validators=[MaxValueValidator(3650)]
    )
    at_risk_multiplier = models.DecimalField(
        _("at risk after (× usual interval)"),
        max_digits=5,
        decimal_places=2,
        default=Decimal("1.5"),
        validators=[MinValueValidator(Decimal("0.1")), MaxValueValidator(Decimal("100"))],
    )
    churn_multiplier = models.DecimalField(
        _("churned after (× usual interval)"),
        max_digits=5,
        decimal_places=2,
        default=Decimal("3"),
        validators=[MinValueValidator(Decimal("0.1")), MaxValueValidator(Decimal("100"))],
    )
    at_risk_min_days = models.PositiveIntegerField(
        _("at risk after at least (days)"), default=0, validators=[MaxValueValidator(3650)]
    )
    churn_min_days = models.PositiveIntegerField(
        _("churned after at least (days)"), default=365, validators=[MaxValueValidator(3650)]
    )
    loyal_min_orders = models.PositiveIntegerField(
        _("loyal from (purchase days)"), default=5, validators=[MinValueValidator(2), MaxValueValidator(1000)]
    )
    at_risk_alive_threshold = models.DecimalField(
        _("at risk when P(alive) below"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.3"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("A customer whose probability of being active is below this is at risk."),
    )
    alert_alive_threshold = models.DecimalField(
        _("alert when P(alive) falls below"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.5"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("An early warning for the owner, usually above the at-risk threshold."),
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("segmentation settings")
        verbose_name_plural = _("segmentation settings")
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="segsettings_singleton"),
            models.CheckConstraint(
                condition=Q(churn_multiplier__gte=F("at_risk_multiplier")),
                name="segsettings_churn_after_at_risk",
            ),
            models.CheckConstraint(condition=Q(margin__gt=0, margin__lte=1), name="segsettings_margin_0_1"),
            models.CheckConstraint(
                condition=Q(annual_discount_rate__gte=0, annual_discount_rate__lte=1),
                name="segsettings_discount_0_1",
            ),
            models.CheckConstraint(
                condition=Q(alert_alive_threshold__gte=0, alert_alive_threshold__lte=1)
                & Q(at_risk_alive_threshold__gte=0, at_risk_alive_threshold__lte=1),
                name="segsettings_alive_thresholds_0_1",
            ),
            models.CheckConstraint(
                condition=Q(monetary_mode__in=["total", "average"])
                & Q(scoring_method__in=["quintiles", "thresholds"]),
                name="segsettings_choices_valid",
            ),
        ]

    def __str__(self) -> str:
        return str(_("Segmentation settings"))

    def clean(self):
        from segmentation.analytics.rfm import validate_thresholds

        errors = {}
        if (
            self.churn_multiplier is not None
            and self.at_risk_multiplier is not None
            and self.churn_multiplier < self.at_risk_multiplier
        ):
            errors["churn_multiplier"] = _("Churned must come after at risk: use a larger multiplier.")
        if self.scoring_method == self.ScoringMethod.THRESHOLDS:
            try:
                clean = validate_thresholds(self.score_thresholds or {})
            except ValueError as exc:
                errors["scoring_method"] = _("Invalid thresholds: %(error)s") % {"error": exc}
            else:
                if not clean:
                    errors["scoring_method"] = _("Fixed thresholds need cut points for at least one measure.")
        if errors:
            raise ValidationError(errors)


class CustomerScore(models.Model):
    """Latest RFM / CLV / lifecycle figures of one customer, rewritten in bulk by every recompute."""

    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"

    customer = models.OneToOneField(
        "customers.Customer", on_delete=models.CASCADE, primary_key=True, related_name="score"
    )
    # RFM over the tenant's window; NULL when the customer has no purchase in the window.
    recency_days = models.PositiveIntegerField(_("recency (days)"), null=True, blank=True)
    frequency = models.PositiveIntegerField(_("frequency (purchase days)"), default=0)
    monetary = models.DecimalField(_("monetary value"), max_digits=14, decimal_places=2, default=Decimal("0"))
    window_revenue = models.DecimalField(
        _("revenue in the RFM window"), max_digits=14, decimal_places=2, default=Decimal("0")
    )
    r_score = models.PositiveSmallIntegerField(_("R score"), null=True, blank=True)
    f_score = models.PositiveSmallIntegerField(_("F score"), null=True, blank=True)
    m_score = models.PositiveSmallIntegerField(_("M score"), null=True, blank=True)
    rfm_segment = models.CharField(_("RFM segment"), max_length=30, choices=RfmSegment.choices, blank=True)
    # CLV (BG/NBD + Gamma-Gamma, or the historical fallback when the fit is unusable)
    expected_purchases_90d = models.FloatField(_("expected purchases (90 days)"), null=True, blank=True)
    probability_alive = models.FloatField(_("probability alive"), null=True, blank=True)
    expected_order_value = models.DecimalField(
        _("expected order value"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    predicted_clv = models.DecimalField(
        _("predicted CLV"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    clv_model = models.CharField(_("CLV model"), max_length=20, choices=ClvModel.choices, blank=True)
    lifecycle_stage = models.CharField(
        _("lifecycle stage"), max_length=20, choices=LifecycleStage.choices, default=LifecycleStage.PROSPECT
    )
    stage_since = models.DateTimeField(_("in this stage since"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("customer score")
        verbose_name_plural = _("customer scores")
        indexes = [
            models.Index(fields=["rfm_segment"], name="score_segment_idx"),
            models.Index(fields=["lifecycle_stage"], name="score_stage_idx"),
            models.Index(fields=["-predicted_clv"], name="score_clv_idx"),
            models.Index(fields=["probability_alive"], name="score_alive_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(r_score__isnull=True) | Q(r_score__gte=1, r_score__lte=5))
                & (Q(f_score__isnull=True) | Q(f_score__gte=1, f_score__lte=5))
                & (Q(m_score__isnull=True) | Q(m_score__gte=1, m_score__lte=5)),
                name="score_rfm_scores_1_5",
            ),
            models.CheckConstraint(
                condition=Q(probability_alive__isnull=True)
                | Q(probability_alive__gte=0, probability_alive__lte=1),
                name="score_alive_0_1",
            ),
            models.CheckConstraint(
                condition=Q(lifecycle_stage__in=LifecycleStage.values), name="score_stage_valid"
            ),
            models.CheckConstraint(
                condition=Q(rfm_segment="") | Q(rfm_segment__in=RfmSegment.values), name="score_segment_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.rfm_segment or '-'} / {self.lifecycle_stage}"

    @property
    def is_historical_estimate(self) -> bool:
        return self.clv_model == ClvModel.HISTORICAL

    @property
    def rfm_code(self) -> str:
        if self.r_score is None:
            return ""
        return f"{self.r_score}{self.f_score}{self.m_score}"


class RecomputeRun(models.Model):
    """One recompute of a tenant: what it did, how long each phase took and how honest the model was."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Finished")
        FAILED = "failed", _("Failed")

    class Kind(models.TextChoices):
        FULL = "full", _("Full")
        INCREMENTAL = "incremental", _("Incremental")

    class Trigger(models.TextChoices):
        MANUAL = "manual", _("On demand")
        NIGHTLY = "nightly", _("Nightly")
        IMPORT = "import", _("After an import")
        DEMO = "demo", _("Demo data")

    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(_("trigger"), max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    job = models.ForeignKey(
        "jobs.BackgroundJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    as_of = models.DateTimeField(_("as of"))
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    customers_count = models.PositiveIntegerField(_("customers"), default=0)
    orders_count = models.PositiveIntegerField(_("purchases"), default=0)
    scored_count = models.PositiveIntegerField(_("customers with RFM scores"), default=0)
    stage_changes = models.PositiveIntegerField(_("stage changes"), default=0)
    segment_changes = models.PositiveIntegerField(_("segment changes"), default=0)
    alerts_created = models.PositiveIntegerField(_("alerts raised"), default=0)
    clv_model = models.CharField(_("CLV model"), max_length=20, choices=ClvModel.choices, blank=True)
    # {"read": 0.8, "rfm": 0.1, ...} seconds per phase
    timings = models.JSONField(default=dict, blank=True)
    # predict_clv's ModelReport: fitted parameters, log-likelihoods, converged/boundary, fallback reason
    model_report = models.JSONField(default=dict, blank=True)
    # holdout validation: totals and predicted vs actual by calibration frequency (or why it was skipped)
    holdout = models.JSONField(default=dict, blank=True)
    settings_used = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # "full": every customer's orders read; "incremental": only the customers whose orders changed
    # since the previous run (see segmentation.recompute), the others from their stored features.
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.FULL)
    changed_customers = models.PositiveIntegerField(_("customers re-read"), default=0)
    # Customers re-read by the incremental runs since the CLV model was last fitted (0 after a fit).
    changed_since_fit = models.PositiveIntegerField(default=0)
    # The run left every customer's features in CustomerFeatures: the next one may be incremental.
    features_written = models.BooleanField(default=False)
    # The population parameters the scores were computed with (segmentation.recompute,
    # "Incremental runs"): RFM quintile cut points, the lifecycle rule's typical interval, the run that
    # computed them; an incremental run adds how many customers each reason made it score.
    population = models.JSONField(default=dict, blank=True)
    # The run's counts in whole cents (customers, scored, purchases and the snapshot's sums per segment
    # and stage): the next incremental run adds its customers' changes to them instead of aggregating
    # every stored score again (segmentation.recompute, "Incremental runs").
    totals = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("recompute run")
        verbose_name_plural = _("recompute runs")
        indexes = [models.Index(fields=["status", "-started_at"], name="recompute_status_started_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["running", "succeeded", "failed"]), name="recompute_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.as_of:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if not self.finished_at:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class CustomerFeatures(models.Model):
    """What the recompute derives from a customer's purchases, kept so that the next run can re-read
    only the customers whose orders changed (segmentation.recompute, "incremental"). One row per
    customer scored by the last run; days are UTC day numbers, money is net of refunds.

    Lifetime: first/last purchase day, number of purchase days, total, total of the first day.
    Window (the RFM window ending on the run's UTC day): the same five measures, zeros when none.
    And the last purchase's instant and the number of purchases.
    Written in bulk by every run; never read by a page."""

    customer_id = models.BigIntegerField(primary_key=True)
    first_day = models.IntegerField(default=0)
    last_day = models.IntegerField(default=0)
    day_count = models.IntegerField(default=0)
    total = models.FloatField(default=0.0)
    first_day_total = models.FloatField(default=0.0)
    w_first_day = models.IntegerField(default=0)
    w_last_day = models.IntegerField(default=0)
    w_day_count = models.IntegerField(default=0)
    w_total = models.FloatField(default=0.0)
    w_first_day_total = models.FloatField(default=0.0)
    last_purchase_us = models.BigIntegerField(default=0)  # last purchase instant, µs since 1970 (UTC)
    order_count = models.IntegerField(default=0)  # purchases (orders) counted

    class Meta:
        verbose_name = _("customer features")
        verbose_name_plural = _("customer features")

    def __str__(self) -> str:
        return f"features of {self.customer_id}"


class LifecycleTransition(models.Model):
    """A customer's stage changed (from "" for the first stage ever assigned)."""

    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="stage_transitions"
    )
    from_stage = models.CharField(_("from"), max_length=20, choices=LifecycleStage.choices, blank=True)
    to_stage = models.CharField(_("to"), max_length=20, choices=LifecycleStage.choices)
    at = models.DateTimeField(_("at"))
    run = models.ForeignKey(RecomputeRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("lifecycle stage change")
        verbose_name_plural = _("lifecycle stage changes")
        indexes = [
            models.Index(fields=["customer", "-at"], name="stagechange_customer_at_idx"),
            models.Index(fields=["-at"], name="stagechange_at_idx"),
            models.Index(fields=["run"], name="stagechange_run_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(from_stage=F("to_stage")), name="stagechange_changes"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.from_stage or '-'} → {self.to_stage}"


class SegmentTransition(models.Model):
    """A customer's RFM segment changed ("" = no segment: no purchase in the RFM window)."""

    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="segment_transitions"
    )
    from_segment = models.CharField(_("from"), max_length=30, choices=RfmSegment.choices, blank=True)
    to_segment = models.CharField(_("to"), max_length=30, choices=RfmSegment.choices, blank=True)
    at = models.DateTimeField(_("at"))
    run = models.ForeignKey(RecomputeRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("segment change")
        verbose_name_plural = _("segment changes")
        indexes = [
            models.Index(fields=["customer", "-at"], name="segchange_customer_at_idx"),
            models.Index(fields=["run"], name="segchange_run_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(from_segment=F("to_segment")), name="segchange_changes"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.from_segment or '-'} → {self.to_segment or '-'}"


class SegmentSnapshot(models.Model):
    """Counts per RFM segment or lifecycle stage at one recompute: the history behind the charts."""

    class Dimension(models.TextChoices):
        RFM = "rfm", _("RFM segment")
        STAGE = "stage", _("Lifecycle stage")

    run = models.ForeignKey(RecomputeRun, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField(_("taken at"))
    dimension = models.CharField(max_length=10, choices=Dimension.choices)
    key = models.CharField(max_length=30)  # segment or stage key; "" = no RFM segment
    customers = models.PositiveIntegerField(_("customers"), default=0)
    revenue = models.DecimalField(_("revenue in the RFM window"), max_digits=16, decimal_places=2, default=0)
    revenue_share = models.FloatField(_("share of revenue"), default=0)
    average_clv = models.DecimalField(
        _("average CLV"), max_digits=14, decimal_places=2, null=True, blank=True
    )

    class Meta:
        ordering = ["taken_at", "dimension", "key"]
        verbose_name = _("segment snapshot")
        verbose_name_plural = _("segment snapshots")
        indexes = [models.Index(fields=["dimension", "taken_at"], name="snapshot_dim_taken_idx")]
        constraints = [
            models.UniqueConstraint(fields=["run", "dimension", "key"], name="snapshot_run_dim_key_unique"),
            models.CheckConstraint(condition=Q(dimension__in=["rfm", "stage"]), name="snapshot_dim_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.taken_at:%Y-%m-%d} {self.dimension}:{self.key}={self.customers}"


class Segment(models.Model):
    """A saved rule-based segment; `rules` is compiled to a customer filter by `segmentation.rules`."""

    name = models.CharField(_("name"), max_length=120)
    description = models.TextField(_("description"), blank=True)
    rules = models.JSONField(_("rules"), default=dict)
    is_shared = models.BooleanField(
        _("shared with the team"), default=True, help_text=_("Everyone in the company can use it.")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="segments",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = [Lower("name"), "id"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        constraints = [
            models.UniqueConstraint(Lower("name"), "created_by", name="segment_name_per_creator_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        from .rules import RuleError, validate_rules

        try:
            self.rules = validate_rules(self.rules)
        except RuleError as exc:
            raise ValidationError({"rules": exc.messages})


class ChurnAlert(models.Model):
    """Early warning (预警): a customer moved into At Risk / Cannot Lose Them or P(alive) fell below the
    tenant's threshold. One alert per transition; the owner acknowledges or dismisses it."""

    class Reason(models.TextChoices):
        ENTERED_AT_RISK = "entered_at_risk", _("Moved into At risk")
        ENTERED_CANNOT_LOSE = "entered_cannot_lose", _("Moved into Cannot Lose Them")
        PROBABILITY_ALIVE_BELOW = "probability_alive_below", _("Probability of being active fell")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        DISMISSED = "dismissed", _("Dismissed")

    # "Owner sees own": an alert belongs to whoever owned the customer when it was raised.
    VISIBILITY_OWNER_FIELD = "owner"

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="churn_alerts")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="churn_alerts",
    )
    reason = models.CharField(_("reason"), max_length=30, choices=Reason.choices)
    details = models.JSONField(_("details"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.OPEN)
    run = models.ForeignKey(RecomputeRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("raised"), auto_now_add=True)
    acted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acted_at = models.DateTimeField(_("handled at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("churn alert")
        verbose_name_plural = _("churn alerts")
        indexes = [
            models.Index(fields=["owner", "status"], name="alert_owner_status_idx"),
            models.Index(fields=["status", "-created_at"], name="alert_status_created_idx"),
            models.Index(fields=["customer", "-created_at"], name="alert_customer_created_idx"),
        ]
        constraints = [
            # A recompute that finds the same state never raises a second alert: at most one open
            # alert per customer and reason.
            models.UniqueConstraint(
                fields=["customer", "reason"], condition=Q(status="open"), name="alert_one_open_per_reason"
            ),
            models.CheckConstraint(
                condition=Q(reason__in=["entered_at_risk", "entered_cannot_lose", "probability_alive_below"]),
                name="alert_reason_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "acknowledged", "dismissed"]), name="alert_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="open") | Q(acted_at__isnull=False), name="alert_handled_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.reason} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class AlertEvaluation(models.Model):
    """One replay of the at-risk rule at a past cut-off against what customers did in the 90 days after
    it (`segmentation.analytics.evaluate`), next to the naive "no purchase for 90 days" rule. The
    lifecycle page shows the latest, so a manager knows how far to trust the alerts."""

    class Source(models.TextChoices):
        TENANT = "tenant", _("This company's purchases")
        SIMULATED = "simulated", _("Simulated purchase histories")

    source = models.CharField(_("data"), max_length=20, choices=Source.choices, default=Source.TENANT)
    seed = models.PositiveIntegerField(_("random seed"), null=True, blank=True)
    cutoff = models.DateField(_("cut-off"))
    outcome_days = models.PositiveSmallIntegerField(_("outcome window (days)"), default=90)
    customers = models.PositiveIntegerField(_("customers"), default=0)
    flagged = models.PositiveIntegerField(_("flagged by the rules"), default=0)
    lapsed = models.PositiveIntegerField(_("bought nothing in the window"), default=0)
    precision = models.FloatField(_("precision"), null=True, blank=True)
    recall = models.FloatField(_("recall"), null=True, blank=True)
    naive_flagged = models.PositiveIntegerField(_("flagged by the naive rule"), default=0)
    naive_precision = models.FloatField(_("naive precision"), null=True, blank=True)
    naive_recall = models.FloatField(_("naive recall"), null=True, blank=True)
    model_used = models.CharField(_("model"), max_length=20, choices=ClvModel.choices, blank=True)
    figures = models.JSONField(_("figures"), default=dict, blank=True)  # AlertEvaluation.to_dict()
    created_at = models.DateTimeField(_("evaluated at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("alert evaluation")
        verbose_name_plural = _("alert evaluations")
        constraints = [
            models.CheckConstraint(
                condition=Q(source__in=["tenant", "simulated"]), name="alerteval_source_valid"
            ),
            models.CheckConstraint(
                condition=(Q(precision__isnull=True) | Q(precision__gte=0, precision__lte=1))
                & (Q(recall__isnull=True) | Q(recall__gte=0, recall__lte=1))
                & (Q(naive_precision__isnull=True) | Q(naive_precision__gte=0, naive_precision__lte=1))
                & (Q(naive_recall__isnull=True) | Q(naive_recall__gte=0, naive_recall__lte=1)),
                name="alerteval_rates_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.cutoff}: P={self.precision} R={self.recall}"

    @property
    def beats_naive(self) -> bool:
        values = (self.precision, self.recall, self.naive_precision, self.naive_recall)
        if any(v is None for v in values):
            return False
        return self.precision >= self.naive_precision and self.recall >= self.naive_recall


class AlertQueueVisit(models.Model):
    """When a user last opened the alerts queue: the navigation badge counts the alerts raised since."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    seen_at = models.DateTimeField(_("last opened"))

    class Meta:
        verbose_name = _("alerts queue visit")
        verbose_name_plural = _("alerts queue visits")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.seen_at:%Y-%m-%d %H:%M}"
