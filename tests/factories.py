"""Shared factory_boy factories. They write to whatever schema the connection points at (the `tenant`
fixture points it at tenant "alpha"), so use them inside a test that has a tenant set.

Factories create rows directly (no services): use them to arrange data; call services to test behaviour.
After creating orders with factories, call `customers.services.customer_refresh_order_stats()` if the
test reads the stored figures (total_spent, orders_count, first/last order).
"""

from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from crm.accounts.models import Role, User
from customers.models import (
    BehaviourEvent,
    Customer,
    CustomFieldDefinition,
    Order,
    OrderLine,
    Refund,
    Tag,
)
from customers.services import customer_refresh_order_stats


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"user{n}@factory.test")
    full_name = factory.Sequence(lambda n: f"User {n}")
    role = Role.SALES
    password = factory.django.Password("factory-pass-123")


class TagFactory(DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag-{n}")
    color = "secondary"


class CustomFieldDefinitionFactory(DjangoModelFactory):
    class Meta:
        model = CustomFieldDefinition
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"field_{n}")
    label = factory.LazyAttribute(lambda o: o.key.replace("_", " ").title())
    field_type = CustomFieldDefinition.FieldType.TEXT
    required = False
    choices = factory.LazyAttribute(
        lambda o: (
            ["red", "green", "blue"]
            if o.field_type
            in (CustomFieldDefinition.FieldType.CHOICE, CustomFieldDefinition.FieldType.MULTI_CHOICE)
            else []
        )
    )
    position = factory.Sequence(lambda n: n % 1000)
    is_active = True


class CustomerFactory(DjangoModelFactory):
    """A customer with a unique name, email and +86 mobile; `search_text` is filled like the service does."""

    class Meta:
        model = Customer
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    phone = factory.Sequence(lambda n: f"+86138{n:08d}")
    city = "Shanghai"
    province = "Shanghai"
    country = "CN"
    source = Customer.Source.STORE
    owner = None
    search_text = factory.LazyAttribute(lambda o: _search_text(o))

    @factory.post_generation
    def tags(self, create, extracted, **kwargs):
        if create and extracted:
            self.tags.add(*extracted)

    @factory.post_generation
    def shared_with(self, create, extracted, **kwargs):
        if create and extracted:
            self.shared_with.add(*extracted)


def _search_text(stub) -> str:
    try:
        from customers.services import build_search_text
    except ImportError:  # pragma: no cover - services not importable yet
        return f"{stub.name} {stub.email} {stub.phone}".lower()
    return build_search_text(
        name=stub.name, email=stub.email, phone=stub.phone, external_id=getattr(stub, "external_id", "")
    )


class OrderFactory(DjangoModelFactory):
    class Meta:
        model = Order
        skip_postgeneration_save = True

    number = factory.Sequence(lambda n: f"F{n:08d}")
    customer = factory.SubFactory(CustomerFactory)
    placed_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=10))
    status = Order.Status.PAID
    channel = Order.Channel.STORE
    currency = "CNY"
    total = Decimal("100.00")
    refunded_total = Decimal("0")

    @factory.post_generation
    def stats(obj, create, extracted, **kwargs):
        """Keep the customer's order figures (total spent, first/last purchase) as every order write
        in the app does (`customer_refresh_order_stats` in the same transaction). `stats=False` leaves
        them stale, for the tests of that refresh itself."""
        if create and extracted is not False:
            customer_refresh_order_stats(customer_ids=[obj.customer_id])


class OrderLineFactory(DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    product_name = factory.Sequence(lambda n: f"Product {n}")
    category = "General"
    quantity = Decimal("1")
    unit_price = Decimal("100.00")


class RefundFactory(DjangoModelFactory):
    class Meta:
        model = Refund

    order = factory.SubFactory(OrderFactory)
    amount = Decimal("10.00")
    reason = "Damaged"
    refunded_at = factory.LazyFunction(timezone.now)


class BehaviourEventFactory(DjangoModelFactory):
    class Meta:
        model = BehaviourEvent

    customer = factory.SubFactory(CustomerFactory)
    event_type = BehaviourEvent.EventType.PAGE_VIEW
    occurred_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    properties = factory.LazyFunction(lambda: {"path": "/"})
