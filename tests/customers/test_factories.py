from decimal import Decimal

from tests.factories import (
    BehaviourEventFactory,
    CustomerFactory,
    CustomFieldDefinitionFactory,
    OrderLineFactory,
    TagFactory,
    UserFactory,
)


def test_factories_build_a_consistent_graph(tenant):
    owner = UserFactory(role="sales")
    tag = TagFactory(name="vip")
    customer = CustomerFactory(owner=owner, tags=[tag], name="王小明")
    line = OrderLineFactory(order__customer=customer, quantity=Decimal("2"), unit_price=Decimal("5"))
    event = BehaviourEventFactory(customer=customer)
    field = CustomFieldDefinitionFactory(field_type="choice")
    assert line.order.customer == customer and event.customer == customer
    assert list(customer.tags.all()) == [tag]
    assert field.choices == ["red", "green", "blue"]
    assert "王小明" in customer.search_text
    assert owner.check_password("factory-pass-123")
