from django.db import connection
from django.test.utils import CaptureQueriesContext

from segmentation.pgcopy import copy_out_arrays
from tests.factories import CustomerFactory


def test_binary_copy_out_works_under_the_debug_cursor(tenant):
    """`make run` uses DEBUG=True, where Django wraps cursors in a debug wrapper whose copy() takes no
    parameters; capturing queries forces that same wrapper here."""
    customers = [CustomerFactory(name=f"Copy {i}") for i in range(3)]
    with CaptureQueriesContext(connection):
        (ids,) = copy_out_arrays(
            "SELECT id FROM customers_customer WHERE name LIKE %s ORDER BY id", ["Copy %"], ["int8"]
        )
    assert ids.tolist() == [c.pk for c in customers]
