"""FHIR date/dateTime values (full, partial or timestamped) as the calendar days the record and rules compare."""
from __future__ import annotations

import calendar
from datetime import date, datetime
from typing import Any


def first_day(value: Any) -> date | None:
    """The earliest calendar day a FHIR date or dateTime can mean ("2026-03" -> 2026-03-01)."""
    return _bounds(value)[0]


def last_day(value: Any) -> date | None:
    """The latest calendar day a FHIR date or dateTime can mean ("2026-03" -> 2026-03-31)."""
    return _bounds(value)[1]


def add_months(day: date, months: int) -> date:
    """The same day `months` calendar months later, or that month's last day (31 Jan + 1 month = end of February)."""
    year, month = divmod(day.month - 1 + months, 12)
    later_year, later_month = day.year + year, month + 1
    return date(later_year, later_month, min(day.day, calendar.monthrange(later_year, later_month)[1]))


def _bounds(value: Any) -> tuple[date | None, date | None]:
    if value is None:
        return None, None
    if isinstance(value, datetime):
        return value.date(), value.date()
    if isinstance(value, date):
        return value, value
    text = str(value)
    try:
        if len(text) == 4:
            year = int(text)
            return date(year, 1, 1), date(year, 12, 31)
        if len(text) == 7:
            year, month = int(text[:4]), int(text[5:7])
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        day = date.fromisoformat(text[:10])
        return day, day
    except ValueError:
        return None, None
