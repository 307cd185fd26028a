"""The one rule for text a spreadsheet would run as a formula ("CSV injection"), for every export.

Excel and LibreOffice run a CSV cell as a formula when it starts with `=` or `@`, with a tab or a
carriage return, or with `+` / `-` followed by something that is not a number: `-2+3+cmd|' /C calc'!A0`
runs, `+8613912345679` (an E.164 phone number) or `-12.50` is just a number. Such text is prefixed with
an apostrophe in CSV; the import takes that apostrophe off again (`unescape_formula`). An XLSX cell is
written with the string type, so it is never run and needs no prefix at all.

`FORMULA_PATTERN` is written so that Python's `re` and PostgreSQL's regular expressions read it alike:
the COPY exports apply the same rule in SQL (`formula_escaped_sql`).
"""

import re
from typing import Any

# Safe after a sign: a digit, then only digits, spaces, brackets, dots and dashes (phone numbers,
# negative amounts). Anything else after a sign (a letter, an operator, a quote, `|`, `!`) may run.
FORMULA_PATTERN = r"\A([=@\t\r]|[-+](?![0-9][-0-9 ().]*\Z))"
_FORMULA = re.compile(FORMULA_PATTERN)
# Characters the import strips a leading apostrophe before: whatever the rule (this one or an earlier,
# stricter one) may have prefixed, so older exports round-trip too.
ESCAPED_STARTS = ("=", "+", "-", "@", "\t", "\r")


def is_formula(value: Any) -> bool:
    """True for text a spreadsheet would run as a formula."""
    return isinstance(value, str) and bool(_FORMULA.match(value))


def escape_formula(value: Any) -> Any:
    """Prefix text that a spreadsheet would run as a formula with "'"; other values pass unchanged."""
    return "'" + value if is_formula(value) else value


def unescape_formula(text: str) -> str:
    """Undo `escape_formula` on an imported cell."""
    if len(text) > 1 and text[0] == "'" and text[1] in ESCAPED_STARTS:
        return text[1:]
    return text


def formula_escaped_sql(column: str) -> str:
    """SQL selecting the text column `column` with the same rule applied (for COPY ... TO STDOUT)."""
    return f"CASE WHEN {column} ~ '{FORMULA_PATTERN}' THEN '''' || {column} ELSE {column} END AS {column}"
