"""The SQL side of customer search: what the indexes on `search_text` hold and the conditions that use them.

`search_text LIKE '%needle%'` is served by the trigram GIN index (customer_search_trgm) when the needle
has at least one whole trigram, i.e. three characters. A Chinese surname (王) or a two-character
given name (小明) has none: PostgreSQL then reads every row. For those, the column `search_han_grams`
holds the Han characters of `search_text` and every pair of adjacent Han characters, under a GIN index
(customer_search_han_grams). For a needle of one or two Han characters, "the text contains the
needle" and "the needle is one of those grams" are the same statement, so the results do not change,
only the plan does.

The grams were an index expression until the import's costs were measured (docs/import-costs.md):
PostgreSQL's regular expressions spent 2.4 s of its CPU per 100,000 new customers on the two
expression indexes, against 0.9 s for the same indexes on columns. They are columns now, worked out in
Python by `search_columns` (about 6 us a customer) wherever search_text is written: `Customer.save`,
the import's COPY and UPDATE, the demo's COPY, erasure and `search_text_refresh`. The SQL expressions
stay below as their definition: migration 0016 filled the columns with them, and
tests/customers/test_search_index.py checks that Python gives the same sets.

Worked example, search_text "王小明 | wang xiao ming":
  Han runs, one space between them:           "王小明"
  pairs from each run's 1st character:        "王小 明"
  pairs from each run's 2nd character:        "小明"
  single characters:                          "王", "小", "明"
  grams: {王, 小, 明, 王小, 小明}
"""

import re

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.lookups import DataContains
from django.db.models import F, Func, TextField, Value

# The same ranges as customers.search._HAN (CJK Extension A, Unified Ideographs, Compatibility),
# written as the characters themselves: no escape sequences to differ between Python and SQL.
_HAN_RANGES = "\u3400-\u9fff\uf900-\ufaff"
HAN = f"[{_HAN_RANGES}]"
NOT_HAN_RUN = f"[^{_HAN_RANGES}]+"
_SHORT_HAN = re.compile(rf"^{HAN}{{1,2}}$")
_HAN_RUN = re.compile(f"{HAN}+")


def han_grams(search_text: str) -> list[str]:
    """The Han characters of `search_text` and every two adjacent ones, each once: what the column
    `search_han_grams` holds (the same set as `search_text_han_grams()` gives in SQL)."""
    return _grams(_HAN_RUN.findall(search_text or ""))


def inner_han(search_text: str, name: str) -> list[str]:
    """The Han characters of `search_text` but the first character of the name, each once: the column
    `search_inner_han` (the same set as `search_text_inner_han()` gives in SQL)."""
    text = search_text or ""
    return _inner(_HAN_RUN.findall(text), text, name or "")


def _grams(runs: list[str]) -> list[str]:
    grams: list[str] = []
    for run in runs:
        grams.extend(run)
        grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return list(dict.fromkeys(grams))


def _inner(runs: list[str], text: str, name: str) -> list[str]:
    # SQL takes the text's first character off when the name begins with it; that changes the Han
    # characters only when it is one of them, and then it is the first of them.
    chars = "".join(runs)
    if name[:1] == text[:1] == chars[:1]:
        chars = chars[1:]
    return list(dict.fromkeys(chars))


SEARCH_COLUMNS = ("search_han_grams", "search_inner_han")


def search_columns(search_text: str, name: str) -> dict[str, list[str]]:
    """The columns kept with a customer's `search_text`: every write of search_text or name writes these
    (Customer.save, the import's COPY and UPDATE, the demo's COPY, erasure, search_text_refresh)."""
    text = search_text or ""
    runs = _HAN_RUN.findall(text)
    return {"search_han_grams": _grams(runs), "search_inner_han": _inner(runs, text, name or "")}


def array_literal(items: list[str]) -> str:
    """A search column as PostgreSQL's array text (for COPY): its items are Han characters, which need
    no quotes or escapes."""
    return "{" + ",".join(items) + "}"


class ConcatOp(Func):
    """`a || b || ...` for text or arrays (Django's Concat adds COALESCE and casts we do not want here)."""

    template = "(%(expressions)s)"
    arg_joiner = " || "


def _replace(expression, pattern: str, replacement: str) -> Func:
    return Func(
        expression,
        Value(pattern),
        Value(replacement),
        Value("g"),
        function="regexp_replace",
        output_field=TextField(),
    )


def _split(expression, pattern: str) -> Func:
    return Func(
        expression, Value(pattern), function="regexp_split_to_array", output_field=ArrayField(TextField())
    )


def _pairs(han_runs) -> Func:
    """'王小明' -> '王小 明': a space after every two Han characters, from the start of each run."""
    return _replace(han_runs, f"({HAN}{{2}})", r"\1 ")


def search_text_han_grams(field: str = "search_text") -> Func:
    """text[]: every Han character of `field` and every two adjacent Han characters (see module doc)."""
    han_runs = _replace(F(field), NOT_HAN_RUN, " ")
    without_first = _replace(han_runs, f"(^| ){HAN}", r"\1")
    singles = _split(_replace(F(field), NOT_HAN_RUN, ""), "")
    pairs = _split(
        ConcatOp(_pairs(han_runs), Value(" "), _pairs(without_first), output_field=TextField()), " +"
    )
    return Func(
        ConcatOp(singles, pairs, output_field=ArrayField(TextField())),
        Value(""),
        function="array_remove",
        output_field=ArrayField(TextField()),
    )


class InnerText(Func):
    """`search_text` without its first character when the customer's name begins with that same
    character, else all of it (for `search_text_inner_han`). The name is the first form in the
    search text, so this is "everything but the name's first character" unless the two differ (a
    name stored with a leading space, say); then nothing is taken off."""

    output_field = TextField()

    def __init__(self, text: str = "search_text", name: str = "name"):
        super().__init__(F(text), F(name))

    def as_sql(self, compiler, connection, **extra_context):
        text, text_params = compiler.compile(self.source_expressions[0])
        name, name_params = compiler.compile(self.source_expressions[1])
        # The integers are written into the SQL, not sent as parameters: the index's expression and
        # the query's must be spelled alike for PostgreSQL to use the index.
        sql = f"(CASE WHEN left({name}, 1) = left({text}, 1) THEN substr({text}, 2) ELSE {text} END)"
        return sql, (*name_params, *text_params, *text_params, *text_params)


def search_text_inner_han() -> Func:
    """text[]: the Han characters of `search_text` but the first character of the name.

    For a one-character search sorted by name (a surname: 王 matched 96,000 of 1,000,000 customers),
    the matches are the customers whose name begins with the character, side by side in the name
    index, and the others. Every other match has the character here: either its name begins
    with another character, which is what is taken off, or the search text does not begin like
    its name and nothing is taken off (customers.selectors, `han_prefix`)."""
    singles = _split(_replace(InnerText(), NOT_HAN_RUN, ""), "")
    return Func(singles, Value(""), function="array_remove", output_field=ArrayField(TextField()))


def inner_han_contain(needle: str) -> DataContains:
    """The customers with the Han character `needle` in their search text other than as the first
    character of their name (a superset of the matches whose name does not begin with it)."""
    if not (len(needle) == 1 and is_short_han(needle)):
        raise ValueError("inner_han_contain takes one Han character")
    return DataContains(F("search_inner_han"), Value([needle], output_field=ArrayField(TextField())))


def is_short_han(needle: str) -> bool:
    """One or two Han characters: too short for trigrams, answered by the grams index instead."""
    return bool(_SHORT_HAN.match(needle or ""))


# pg_trgm splits text into words of letters and digits (Han characters included) and indexes their
# trigrams; a LIKE needle without three such characters in a row gives it nothing to look up.
_TRIGRAM = re.compile(r"[^\W_]{3}")


def served_by_an_index(needle: str) -> bool:
    """Whether `customer_search` finds the customers containing `needle` through an index (trigrams,
    or the grams for one or two Han characters) rather than by reading every customer ("li")."""
    return is_short_han(needle) or bool(_TRIGRAM.search(needle or ""))


def han_grams_contain(needle: str) -> DataContains:
    """The condition `search_text LIKE '%needle%'` for a one- or two-character Han needle, on the index."""
    if not is_short_han(needle):
        raise ValueError("han_grams_contain takes one or two Han characters")
    return DataContains(F("search_han_grams"), Value([needle], output_field=ArrayField(TextField())))
