"""Customer data (客户数据): one record per customer, their orders and their behaviour events.

Lifecycle stage, RFM, CLV, tier and points are shown with a customer but stored and written by
their own apps (segmentation, loyalty), in tables keyed by customer.
"""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower, Upper
from django.utils.translation import gettext_lazy as _

from .search_index import SEARCH_COLUMNS, search_columns


class TagColor(models.TextChoices):
    """The fixed palette of tag colours: Bootstrap's badge colours, readable on light and dark text."""

    GREY = "secondary", _("Grey")
    BLUE = "primary", _("Blue")
    GREEN = "success", _("Green")
    RED = "danger", _("Red")
    YELLOW = "warning", _("Yellow")
    CYAN = "info", _("Cyan")
    BLACK = "dark", _("Black")


class TagQuerySet(models.QuerySet):
    def live(self):
        """Tags not in the recycle bin: the ones filters, pickers and segment rules offer."""
        return self.filter(deleted_at__isnull=True)


class Tag(models.Model):
    # Unique among live tags, ignoring case (the constraint below); a binned tag keeps its name and its
    # customer links until it is restored or purged.
    name = models.CharField(_("name"), max_length=60)
    color = models.CharField(_("colour"), max_length=20, choices=TagColor.choices, default=TagColor.GREY)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("deleted by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    objects = TagQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                condition=models.Q(deleted_at__isnull=True),
                name="customers_tag_live_name_ci_uniq",
            ),
            models.CheckConstraint(
                condition=models.Q(color__in=[value for value, _label in TagColor.choices]),
                name="customers_tag_color_in_palette",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CustomFieldDefinition(models.Model):
    """A tenant-defined customer field; values live in Customer.custom_fields[key]."""

    class FieldType(models.TextChoices):
        TEXT = "text", _("Text")
        NUMBER = "number", _("Number")
        DATE = "date", _("Date")
        CHOICE = "choice", _("Single choice")
        MULTI_CHOICE = "multi_choice", _("Multiple choice")
        BOOLEAN = "boolean", _("Yes/no")

    key = models.SlugField(_("key"), max_length=50, unique=True, allow_unicode=False)
    label = models.CharField(_("label"), max_length=100)
    field_type = models.CharField(_("type"), max_length=20, choices=FieldType.choices)
    required = models.BooleanField(_("required"), default=False)
    choices = models.JSONField(_("choices"), default=list, blank=True)
    help_text = models.CharField(_("help text"), max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "label"]
        verbose_name = _("custom field")
        verbose_name_plural = _("custom fields")

    def __str__(self) -> str:
        return self.label


class Customer(models.Model):
    class Kind(models.TextChoices):
        PERSON = "person", _("Person")
        COMPANY = "company", _("Company")

    class Gender(models.TextChoices):
        FEMALE = "female", _("Female")
        MALE = "male", _("Male")
        OTHER = "other", _("Other")
        UNKNOWN = "unknown", _("Not given")

    class IncomeBand(models.TextChoices):
        LOW = "low", _("Low")
        LOWER_MIDDLE = "lower_middle", _("Lower middle")
        MIDDLE = "middle", _("Middle")
        UPPER_MIDDLE = "upper_middle", _("Upper middle")
        HIGH = "high", _("High")

    class Source(models.TextChoices):
        WEBSITE = "website", _("Website sign-up")
        FORM = "form", _("Form")
        STORE = "store", _("Store")
        PHONE = "phone", _("Phone")
        REFERRAL = "referral", _("Referral")
        SOCIAL = "social", _("Social media")
        IMPORT = "import", _("Import")
        API = "api", _("API")

    # How the visibility helper (crm.accounts.permissions.visible_to) finds who may see a customer.
    VISIBILITY_OWNER_FIELD = "owner"
    VISIBILITY_SHARED_WITH_FIELD = "shared_with"

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.PERSON)
    name = models.CharField(_("name"), max_length=200)
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True, help_text=_("Stored in E.164 form"))
    country = models.CharField(_("country"), max_length=2, blank=True)
    province = models.CharField(_("province/state"), max_length=100, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    street = models.CharField(_("street"), max_length=300, blank=True)
    postcode = models.CharField(_("postcode"), max_length=20, blank=True)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    gender = models.CharField(_("gender"), max_length=10, choices=Gender.choices, default=Gender.UNKNOWN)
    income_band = models.CharField(_("income band"), max_length=20, choices=IncomeBand.choices, blank=True)
    occupation = models.CharField(_("occupation"), max_length=100, blank=True)
    # The language the customer is written to in (survey invitations, their answer page); blank: the
    # company's default language.
    language = models.CharField(
        _("language"), max_length=10, choices=settings.LANGUAGES, blank=True, default="", db_default=""
    )
    source = models.CharField(
        _("source channel"), max_length=20, choices=Source.choices, default=Source.STORE
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_customers",
        db_index=False,  # customer_owner_created_idx (owner, -created_at) serves owner lookups
    )
    shared_with = models.ManyToManyField(
        settings.AUTH_USER_MODEL, verbose_name=_("shared with"), blank=True, related_name="shared_customers"
    )
    tags = models.ManyToManyField(Tag, verbose_name=_("tags"), blank=True, related_name="customers")
    email_consent = models.BooleanField(_("email consent"), default=False)
    email_consent_at = models.DateTimeField(_("email consent given"), null=True, blank=True)
    sms_consent = models.BooleanField(_("SMS consent"), default=False)
    sms_consent_at = models.DateTimeField(_("SMS consent given"), null=True, blank=True)
    external_id = models.CharField(_("external id"), max_length=100, blank=True)
    custom_fields = models.JSONField(_("custom fields"), default=dict, blank=True)
    # Lower-cased name, email, phone digits, external id and pinyin of the name: what search matches.
    search_text = models.TextField(blank=True, default="")
    # Its Han characters and pairs of them, and its Han characters but the name's first: for one- and
    # two-character Chinese searches, which have no trigram (customers.search_index). Columns worked
    # out in Python, not index expressions: PostgreSQL's regular expressions cost an import 1.5 s of
    # its CPU per 100,000 new customers. Written with search_text, by save() and every bulk writer.
    search_han_grams = ArrayField(models.TextField(), default=list, blank=True, editable=False)
    search_inner_han = ArrayField(models.TextField(), default=list, blank=True, editable=False)

    # Order figures kept current by customers.services (one UPDATE ... FROM aggregate), so the list
    # can filter and sort on them without aggregating a million orders per request.
    total_spent = models.DecimalField(_("total spent"), max_digits=14, decimal_places=2, default=Decimal("0"))
    orders_count = models.PositiveIntegerField(_("orders"), default=0)
    first_order_at = models.DateTimeField(_("first purchase"), null=True, blank=True)
    last_order_at = models.DateTimeField(_("last purchase"), null=True, blank=True)

    # Recycle bin: a deleted customer keeps its rows and is hidden until restored or purged.
    # Indexes: only the few binned / merged rows are indexed (partial indexes in Meta), and the list's
    # keyset indexes cover created_at; every index here slows imports of 100,000 rows.
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    merged_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="merged_from", db_index=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        indexes = [
            models.Index(fields=["email"], name="customer_email_idx"),
            models.Index(fields=["phone"], name="customer_phone_idx"),
            models.Index(fields=["owner", "-created_at"], name="customer_owner_created_idx"),
            models.Index(fields=["source"], name="customer_source_idx"),
            models.Index(
                fields=["deleted_at"],
                name="customer_binned_idx",
                condition=models.Q(deleted_at__isnull=False),
            ),
            models.Index(
                fields=["merged_into"],
                name="customer_merged_into_idx",
                condition=models.Q(merged_into__isnull=False),
            ),
            # Keyset pagination of the live list: (sort value, id) in the list's default directions,
            # partial on "not in the bin" because every list query has that condition.
            models.Index(
                fields=["-created_at", "-id"],
                name="customer_live_created_idx",
                condition=models.Q(deleted_at=None),
            ),
            models.Index(
                fields=["name", "id"], name="customer_live_name_idx", condition=models.Q(deleted_at=None)
            ),
            models.Index(
                fields=["-total_spent", "-id"],
                name="customer_live_spent_idx",
                condition=models.Q(deleted_at=None),
            ),
            models.Index(
                fields=["-orders_count", "-id"],
                name="customer_live_orders_idx",
                condition=models.Q(deleted_at=None),
            ),
            models.Index(
                fields=["-last_order_at", "-id"],
                name="customer_live_last_order_idx",
                condition=models.Q(deleted_at=None),
            ),
            # The list's city filter is case-insensitive (city__iexact -> UPPER(city) = UPPER(%s)).
            models.Index(Upper("city"), name="customer_city_upper_idx", condition=models.Q(deleted_at=None)),
            GinIndex(fields=["custom_fields"], name="customer_custom_fields_gin"),
            GinIndex(fields=["search_text"], name="customer_search_trgm", opclasses=["gin_trgm_ops"]),
            # One- and two-character Chinese searches (no trigram to use): customers.search_index.
            GinIndex(fields=["search_han_grams"], name="customer_search_han_grams"),
            # The Han characters but the name's first: a surname sorted by name (customers.selectors,
            # `han_prefix`).
            GinIndex(fields=["search_inner_han"], name="customer_search_inner_han"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~models.Q(external_id=""),
                name="customer_external_id_unique",
            ),
            models.CheckConstraint(condition=models.Q(total_spent__gte=0), name="customer_total_spent_gte_0"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        """The search columns follow search_text and name (customers.search_index.search_columns)."""
        for field, value in search_columns(self.search_text, self.name).items():
            setattr(self, field, value)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and {"search_text", "name"} & set(update_fields):
            kwargs["update_fields"] = {*update_fields, *SEARCH_COLUMNS}
        super().save(*args, **kwargs)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def average_order_value(self) -> Decimal | None:
        if not self.orders_count:
            return None
        return (self.total_spent / self.orders_count).quantize(Decimal("0.01"))


class SecondaryContact(models.Model):
    """Another e-mail address or phone number of a customer, kept when a merge chose the other record's
    (issue 15): shown on the customer's page and found by the customer search. A merge undo removes the
    ones it added."""

    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        PHONE = "phone", _("Phone")

    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"

    customer = models.ForeignKey(
        Customer, verbose_name=_("customer"), on_delete=models.CASCADE, related_name="secondary_contacts"
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    value = models.CharField(_("email or phone"), max_length=254)
    # What the customer search looks for: the lower-cased address, or the number's digits.
    search_value = models.CharField(max_length=254, editable=False)
    # The customer record the value came from (a merged record, in the bin), for the page's note.
    source_label = models.CharField(_("merged from"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["kind", "id"]
        verbose_name = _("secondary contact")
        verbose_name_plural = _("secondary contacts")
        constraints = [
            models.UniqueConstraint(fields=["customer", "kind", "value"], name="secondary_contact_unique"),
            models.CheckConstraint(condition=~models.Q(value=""), name="secondary_contact_not_blank"),
        ]
        indexes = [
            GinIndex(
                fields=["search_value"], name="secondary_contact_search_trgm", opclasses=["gin_trgm_ops"]
            ),
        ]

    def __str__(self) -> str:
        return self.value


class Order(models.Model):
    class Status(models.TextChoices):
        PAID = "paid", _("Paid")
        PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
        REFUNDED = "refunded", _("Refunded")
        CANCELLED = "cancelled", _("Cancelled")

    class Channel(models.TextChoices):
        ONLINE = "online", _("Online")
        STORE = "store", _("Store")
        PHONE = "phone", _("Phone")
        MARKETPLACE = "marketplace", _("Marketplace")

    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"
    # Statuses whose money counts as a purchase (net of refunds) in figures and analytics.
    PURCHASE_STATUSES = (Status.PAID, Status.PARTIALLY_REFUNDED)

    # Unique through Meta's constraint: a `unique=True` CharField also gets a varchar_pattern_ops index
    # for LIKE 'prefix%', which no query here makes (314 MB at 8,000,000 orders, and kept on every
    # order written).
    number = models.CharField(_("order number"), max_length=64)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.PROTECT,
        related_name="orders",
        db_index=False,  # order_customer_placed_idx (customer, -placed_at) serves every lookup by customer
    )
    placed_at = models.DateTimeField(_("placed at"))
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PAID)
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices, default=Channel.STORE)
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    total = models.DecimalField(
        _("total"), max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    refunded_total = models.DecimalField(_("refunded"), max_digits=12, decimal_places=2, default=Decimal("0"))
    external_id = models.CharField(_("external id"), max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        indexes = [
            models.Index(fields=["customer", "-placed_at"], name="order_customer_placed_idx"),
            models.Index(fields=["placed_at"], name="order_placed_idx"),
            models.Index(fields=["status", "placed_at"], name="order_status_placed_idx"),
        ]
        constraints = [
            # (the name PostgreSQL gave the unique=True column's constraint, which this is)
            models.UniqueConstraint(fields=["number"], name="customers_order_number_key"),
            models.CheckConstraint(condition=models.Q(total__gte=0), name="order_total_gte_0"),
            models.CheckConstraint(
                condition=models.Q(refunded_total__gte=0) & models.Q(refunded_total__lte=models.F("total")),
                name="order_refund_within_total",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def net_total(self) -> Decimal:
        return self.total - self.refunded_total


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(_("SKU"), max_length=64, blank=True)
    product_name = models.CharField(_("product"), max_length=200)
    category = models.CharField(_("category"), max_length=100, blank=True)
    quantity = models.DecimalField(_("quantity"), max_digits=10, decimal_places=2, default=Decimal("1"))
    unit_price = models.DecimalField(_("unit price"), max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["id"]
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        indexes = [models.Index(fields=["sku"], name="orderline_sku_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="orderline_quantity_gt_0"),
            models.CheckConstraint(condition=models.Q(unit_price__gte=0), name="orderline_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_name}"

    @property
    def line_total(self) -> Decimal:
        return self.quantity * self.unit_price


class Refund(models.Model):
    """A refund is recorded as its own row; the order's refunded_total and status follow from them."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="refunds")
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    refunded_at = models.DateTimeField(_("refunded at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-refunded_at"]
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_gt_0")]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.amount}"


class BehaviourEvent(models.Model):
    """Page views, product views, cart adds, searches, email opens... The largest table: kept narrow."""

    class EventType(models.TextChoices):
        PAGE_VIEW = "page_view", _("Page view")
        PRODUCT_VIEW = "product_view", _("Product view")
        ADD_TO_CART = "add_to_cart", _("Add to cart")
        REMOVE_FROM_CART = "remove_from_cart", _("Remove from cart")
        CHECKOUT = "checkout", _("Checkout started")
        SEARCH = "search", _("Search")
        EMAIL_OPEN = "email_open", _("Email opened")
        EMAIL_CLICK = "email_click", _("Email link clicked")
        LOGIN = "login", _("Login")

    VISIBILITY_OWNER_FIELD = "customer__owner"
    VISIBILITY_SHARED_WITH_FIELD = "customer__shared_with"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events", db_index=False)
    event_type = models.CharField(_("type"), max_length=30, choices=EventType.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    properties = models.JSONField(_("properties"), default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        verbose_name = _("behaviour event")
        verbose_name_plural = _("behaviour events")
        indexes = [
            models.Index(fields=["customer", "-occurred_at"], name="event_customer_time_idx"),
            models.Index(fields=["event_type", "occurred_at"], name="event_type_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} @ {self.occurred_at:%Y-%m-%d}"


class OrderChange(models.Model):
    """A journal of the customers whose orders changed, read and emptied by the segmentation
    recompute: an incremental recompute re-reads only these customers' orders. Written by triggers on
    the order table (migration 0010), so no way of changing an order (a service, an import's COPY, a
    queryset update, a shell) can leave it out: one row per customer per statement. Triggers on the
    customer table (migration 0012) add a row for customer 0 per INSERT statement ("customers were
    added") and one per customer restored from the bin; migration 0013 one for customer -1 per
    customer who enters or leaves the bin ("the bin changed").

    `txid` is the writing transaction's id (`pg_current_xact_id()`): a recompute deletes exactly the
    rows that were visible in the snapshot it read the orders with, so a change committed while it
    was reading stays for the next run."""

    customer_id = models.BigIntegerField()
    txid = models.TextField(editable=False)  # xid8 in the database (see migration 0010)

    class Meta:
        verbose_name = _("order change")
        verbose_name_plural = _("order changes")

    def __str__(self) -> str:
        return f"{self.customer_id or 'all'}"
