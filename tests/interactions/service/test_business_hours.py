"""interactions.service.business_hours against hand-computed cases (no Django, no database).

Calendars of 2026 used below: 2026-12-04 is a Friday. China's Spring Festival 2026: Mon 16 - Fri 20
February and Mon 23 February are days off, Saturdays 14 and 28 February are make-up working days.
Europe/Berlin moves to summer time on Sunday 29 March 2026 (02:00 -> 03:00) and back on Sunday
25 October 2026; Good Friday is 3 April and Easter Monday 6 April.
"""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from interactions.service.business_hours import (
    BusinessCalendar,
    NoWorkingTime,
    add_business_seconds,
    business_seconds,
    format_hhmm,
    normalise_intervals,
    parse_hhmm,
    signed_business_seconds,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600
ALWAYS = dict.fromkeys(range(7), ((0, 1440),))


def sh(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def be(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def shanghai() -> BusinessCalendar:
    return BusinessCalendar(time_zone="Asia/Shanghai")  # Mon-Fri 09:00-18:00


# --- weekends ------------------------------------------------------------------------------------


def test_a_deadline_over_the_weekend_continues_on_monday_morning(shanghai):
    # Friday 17:00 + 2 h: one hour on Friday, one on Monday from 09:00.
    due = add_business_seconds(shanghai, sh(2026, 12, 4, 17, 0), 2 * HOUR)
    assert due == sh(2026, 12, 7, 10, 0) == utc(2026, 12, 7, 2, 0)
    assert due.tzinfo == UTC


def test_elapsed_time_over_the_weekend_counts_only_open_hours(shanghai):
    assert business_seconds(shanghai, sh(2026, 12, 4, 17, 0), sh(2026, 12, 7, 10, 0)) == 2 * HOUR
    # a whole week: five days of nine hours
    assert business_seconds(shanghai, sh(2026, 11, 30, 0, 0), sh(2026, 12, 7, 0, 0)) == 45 * HOUR


def test_a_start_outside_opening_hours_begins_at_the_next_opening(shanghai):
    assert add_business_seconds(shanghai, sh(2026, 12, 5, 3, 0), HOUR) == sh(2026, 12, 7, 10, 0)
    assert add_business_seconds(shanghai, sh(2026, 12, 7, 19, 0), 30 * 60) == sh(2026, 12, 8, 9, 30)


def test_a_deadline_ending_exactly_at_closing_time_is_closing_time(shanghai):
    assert add_business_seconds(shanghai, sh(2026, 12, 7, 9, 0), 9 * HOUR) == sh(2026, 12, 7, 18, 0)


def test_zero_time_is_the_start_itself(shanghai):
    assert add_business_seconds(shanghai, sh(2026, 12, 5, 3, 0), 0) == sh(2026, 12, 5, 3, 0)


def test_a_lunch_break_is_not_working_time():
    calendar = BusinessCalendar(
        time_zone="Asia/Shanghai", weekly=dict.fromkeys(range(5), ((540, 720), (780, 1080)))
    )
    assert add_business_seconds(calendar, sh(2026, 12, 3, 11, 30), HOUR) == sh(2026, 12, 3, 13, 30)
    assert business_seconds(calendar, sh(2026, 12, 3, 11, 0), sh(2026, 12, 3, 14, 0)) == 2 * HOUR


# --- holidays ------------------------------------------------------------------------------------


def test_china_spring_festival_make_up_saturday_is_a_working_day():
    calendar = BusinessCalendar(time_zone="Asia/Shanghai", holiday_country="CN")
    # Friday 13 Feb 17:00 + 3 h: 1 h on Friday, then 2 h on the make-up Saturday 14 Feb.
    assert add_business_seconds(calendar, sh(2026, 2, 13, 17, 0), 3 * HOUR) == sh(2026, 2, 14, 11, 0)
    assert calendar.is_working_day(date(2026, 2, 14))
    assert calendar.is_working_day(date(2026, 2, 28))


def test_china_spring_festival_days_off_are_skipped():
    calendar = BusinessCalendar(time_zone="Asia/Shanghai", holiday_country="CN")
    # Saturday 14 Feb 17:00 + 2 h: 1 h that Saturday, then nothing until Tuesday 24 Feb
    # (Sunday, the holiday week 16-20, the weekend, and Monday 23 off).
    assert add_business_seconds(calendar, sh(2026, 2, 14, 17, 0), 2 * HOUR) == sh(2026, 2, 24, 10, 0)
    assert business_seconds(calendar, sh(2026, 2, 14, 17, 0), sh(2026, 2, 24, 10, 0)) == 2 * HOUR
    assert not calendar.is_working_day(date(2026, 2, 16))
    assert not calendar.is_working_day(date(2026, 2, 23))


def test_without_a_holiday_country_the_plain_week_applies(shanghai):
    assert shanghai.is_working_day(date(2026, 2, 16))
    assert not shanghai.is_working_day(date(2026, 2, 14))


def test_tenant_closed_days_and_extra_working_days():
    closed = BusinessCalendar(time_zone="Asia/Shanghai", closed_days=frozenset({date(2026, 12, 7)}))
    assert add_business_seconds(closed, sh(2026, 12, 4, 17, 0), 2 * HOUR) == sh(2026, 12, 8, 10, 0)
    extra = BusinessCalendar(time_zone="Asia/Shanghai", extra_working_days=frozenset({date(2026, 12, 5)}))
    assert add_business_seconds(extra, sh(2026, 12, 4, 17, 0), 2 * HOUR) == sh(2026, 12, 5, 10, 0)


def test_a_tenant_closed_day_wins_over_a_make_up_working_day():
    calendar = BusinessCalendar(
        time_zone="Asia/Shanghai", holiday_country="CN", closed_days=frozenset({date(2026, 2, 14)})
    )
    assert not calendar.is_working_day(date(2026, 2, 14))


# --- pauses --------------------------------------------------------------------------------------


def test_pauses_are_taken_out_of_elapsed_time(shanghai):
    start, end = sh(2026, 12, 7, 9, 0), sh(2026, 12, 7, 18, 0)
    assert business_seconds(shanghai, start, end) == 9 * HOUR
    assert business_seconds(shanghai, start, end, [(sh(2026, 12, 7, 10), sh(2026, 12, 7, 12))]) == 7 * HOUR
    # overlapping pauses count once: 10:00-13:00
    overlapping = [(sh(2026, 12, 7, 10), sh(2026, 12, 7, 12)), (sh(2026, 12, 7, 11), sh(2026, 12, 7, 13))]
    assert business_seconds(shanghai, start, end, overlapping) == 6 * HOUR
    # a pause still running (no end) runs to the end of the span
    assert business_seconds(shanghai, start, end, [(sh(2026, 12, 7, 16), None)]) == 7 * HOUR


def test_a_pause_over_the_weekend_takes_out_only_its_open_hours(shanghai):
    # Friday 09:00 -> Monday 18:00 is 18 open hours; a pause Friday 17:00 -> Monday 10:00 holds 2 of them.
    pauses = [(sh(2026, 12, 4, 17), sh(2026, 12, 7, 10))]
    assert business_seconds(shanghai, sh(2026, 12, 4, 9), sh(2026, 12, 7, 18), pauses) == 16 * HOUR


def test_a_pause_outside_the_span_changes_nothing(shanghai):
    pauses = [(sh(2026, 12, 1, 10), sh(2026, 12, 1, 12))]
    assert business_seconds(shanghai, sh(2026, 12, 7, 9), sh(2026, 12, 7, 18), pauses) == 9 * HOUR


# --- a DST zone ------------------------------------------------------------------------------------


def test_berlin_spring_forward_day_has_23_hours():
    calendar = BusinessCalendar(time_zone="Europe/Berlin", weekly=ALWAYS)
    assert business_seconds(calendar, be(2026, 3, 28, 12), be(2026, 3, 29, 12)) == 23 * HOUR
    # 24 open hours after Saturday noon (CET, 11:00 UTC) end on Sunday at 13:00 summer time (11:00 UTC)
    assert add_business_seconds(calendar, be(2026, 3, 28, 12), 24 * HOUR) == utc(2026, 3, 29, 11, 0)


def test_berlin_fall_back_day_has_25_hours():
    calendar = BusinessCalendar(time_zone="Europe/Berlin", weekly=ALWAYS)
    assert business_seconds(calendar, be(2026, 10, 24, 12), be(2026, 10, 25, 12)) == 25 * HOUR


def test_berlin_office_hours_follow_the_wall_clock_across_the_change():
    calendar = BusinessCalendar(time_zone="Europe/Berlin")
    # Friday 27 March 17:00 CET (16:00 UTC) + 2 h: one hour on Friday, then Monday 09:00-10:00 CEST,
    # which is 08:00 UTC (a fixed +01:00 offset would wrongly give 09:00 UTC).
    assert add_business_seconds(calendar, be(2026, 3, 27, 17), 2 * HOUR) == utc(2026, 3, 30, 8, 0)
    assert business_seconds(calendar, utc(2026, 3, 27, 16), utc(2026, 3, 30, 8)) == 2 * HOUR


def test_berlin_easter_holidays():
    calendar = BusinessCalendar(time_zone="Europe/Berlin", holiday_country="DE")
    # Thursday 2 April 17:00 + 2 h: Good Friday, the weekend and Easter Monday are off.
    assert add_business_seconds(calendar, be(2026, 4, 2, 17), 2 * HOUR) == be(2026, 4, 7, 10)


# --- signs, bounds, input ------------------------------------------------------------------------


def test_signed_time_left_is_negative_once_overdue(shanghai):
    due = sh(2026, 12, 7, 10, 0)
    assert signed_business_seconds(shanghai, sh(2026, 12, 4, 17, 0), due) == 2 * HOUR
    assert signed_business_seconds(shanghai, sh(2026, 12, 7, 12, 30), due) == -int(2.5 * HOUR)


def test_a_calendar_without_open_time_refuses_a_deadline():
    calendar = BusinessCalendar(time_zone="Asia/Shanghai", weekly={})
    with pytest.raises(NoWorkingTime):
        add_business_seconds(calendar, sh(2026, 12, 4, 17, 0), 60)
    assert business_seconds(calendar, sh(2026, 12, 4), sh(2026, 12, 20)) == 0


def test_naive_datetimes_and_bad_zones_are_refused(shanghai):
    with pytest.raises(ValueError):
        business_seconds(shanghai, datetime(2026, 12, 4, 9), sh(2026, 12, 4, 10))
    with pytest.raises(Exception):  # noqa: B017 - zoneinfo raises its own ZoneInfoNotFoundError
        BusinessCalendar(time_zone="Mars/Olympus")


def test_time_of_day_parsing_and_intervals():
    assert parse_hhmm("09:30") == 570
    assert parse_hhmm("24:00") == 1440
    assert format_hhmm(570) == "09:30"
    for bad in ("9", "25:00", "09:60", "ab:cd", "24:01"):
        with pytest.raises(ValueError):
            parse_hhmm(bad)
    assert normalise_intervals([(780, 1080), (540, 720), (700, 800)]) == ((540, 1080),)
    with pytest.raises(ValueError):
        normalise_intervals([(600, 540)])
