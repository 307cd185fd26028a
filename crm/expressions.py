"""Query expressions shared by the apps."""

from collections.abc import Iterable

from django.db.models import BooleanField, F, Func
from django.db.models.expressions import Combinable


class InArray(Func):
    """`expression = ANY(ARRAY(subquery))`. Unlike `IN (subquery)`, which PostgreSQL turns into a
    hashed sub-plan it can only test row by row, this is evaluated once (an InitPlan) and can be one
    arm of a BitmapOr on the primary key next to other indexed conditions. The planner also counts
    it as a few rows, where it guesses half the table for `IN (subquery)`.

    Meant for a short list (a customer's merged-in contacts, the customers shared with one user, a
    page of ids): where PostgreSQL tests it row by row instead, it reads the array for every row."""

    template = "%(expressions)s)"
    arg_joiner = " = ANY("
    output_field = BooleanField()
    conditional = True

    def __init__(self, expression: Combinable | str, array: Combinable):
        super().__init__(F(expression) if isinstance(expression, str) else expression, array)


def id_array(ids: Iterable[int]) -> str:
    """Ids as one PostgreSQL array literal ('{1,2,3}', cast with ::bigint[] in the statement).
    psycopg would quote each element of a list in Python: about 20 ms per 20,000 ids, paid again
    for every statement that takes the list (310,000 candidate pairs of the duplicate scan: 2 s)."""
    return "{" + ",".join(str(int(pk)) for pk in ids) + "}"
