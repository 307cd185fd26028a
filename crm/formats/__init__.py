"""The one date, time and number format of each interface language (Django's FORMAT_MODULE_PATH).

Every way a value reaches a page reads these: a bare `{{ value }}` in a template (Django localizes it
with DATE_FORMAT / DATETIME_FORMAT in the viewer's time zone) and the filters in
`crm/templatetags/crm_format.py` (`localdate`, `localdt`, `clock`, `yearmonth`, `number`, `money`,
`percent`), which templates use instead of `|date:"..."` literals (tests/crm/test_formats.py greps for
strays).

Dates are written year-month-day in both languages: unambiguous (no 10/08/1980: October or
August?), the order a Chinese reader expects, and short enough for a phone's table cell.
Numbers are grouped in threes with a comma in both languages ("200,000 行"), as Chinese business
documents write them; Django's zh-Hans module groups nothing.
"""
