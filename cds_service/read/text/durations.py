"""Turn a duration phrase into the onset date it implies.

Role in the data flow: the reader finds duration phrases with the regular expressions of
rules/text/durations.json (group 'duration'); for each match it calls `onset_of(kind, match, written_on,
config)` with that entry's `kind` and the regular-expression match, and puts the result in
`TextFinding.onset`. Pure functions, no I/O; `written_on=None` gives no onset.

Rules (durations.json holds the tables):
- relative ('x 3 days', 'for 2 weeks', '3-month history', '10 days ago'): onset = written_on minus
  the amount; months and years are calendar months (day clamped to the month's length), weeks are
  7 days, hours count whole days. A range ('2-3 weeks') takes its lower bound. A missing count
  ('for years', 'for the past week') is 1 for a singular unit and `vague_count` (2) for a plural.
- relative-day ('started yesterday', 'since this morning'): `relative_days`.
- since-date / since-month / since-numeric ('since 15 Oct', 'since March', 'since 6/1'): without a
  year, the latest such date not after written_on; a month alone means its first day.
- since-year ('since 2019'): 1 January; since-iso: the date itself.
- since-weekday ('since Tuesday', 'since last Tuesday'): the latest such weekday strictly before
  written_on. since-last ('since last week'): one unit back.
A date after written_on (a typo or a future plan) gives no onset.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from typing import Any

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def minus_months(day: date, months: int) -> date:
    total = day.year * 12 + (day.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _number(text: str | None, numbers: dict[str, float]) -> float | None:
    if text is None:
        return None
    text = re.sub(r"\s+", " ", text.strip().lower())
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    return numbers.get(text)


def _unit(text: str) -> str:
    text = text.lower().replace(" ", "")
    if text.startswith("/"):  # UK notation: 3/7 days, 2/52 weeks, 6/12 months
        return {"/7": "day", "/52": "week", "/12": "month"}[text]
    if text.startswith("fortnight"):
        return "fortnight"
    if text.startswith("decade"):
        return "decade"
    if text.startswith("weekend"):
        return "weekend"
    if text.startswith("mo"):
        return "month"
    return {"h": "hour", "d": "day", "w": "week", "y": "year"}[text[0]]


def _is_plural(text: str) -> bool:
    return text.lower().endswith("s")


def subtract(written_on: date, amount: float, unit: str) -> date:
    if unit == "hour":
        return written_on - timedelta(days=int(amount // 24))
    if unit == "day":
        return written_on - timedelta(days=round(amount))
    if unit == "week":
        return written_on - timedelta(days=round(amount * 7))
    if unit == "fortnight":
        return written_on - timedelta(days=round(amount * 14))
    if unit == "month":
        whole = int(amount)
        result = minus_months(written_on, whole)
        return result - timedelta(days=round((amount - whole) * 30.44))
    if unit in ("year", "decade"):
        months = amount * 12 * (10 if unit == "decade" else 1)
        whole = int(months)
        result = minus_months(written_on, whole)
        return result - timedelta(days=round((months - whole) * 30.44))
    raise ValueError(unit)


def _latest_not_after(written_on: date, month: int, day: int) -> date | None:
    for year in (written_on.year, written_on.year - 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= written_on:
            return candidate
    return None


def _month(text: str) -> int | None:
    return _MONTHS.get(text.lower().rstrip(".")[:3])


def _relative(g: dict, written_on: date, config: dict[str, Any]) -> date | None:
    unit_text = g.get("unit") or ""
    if not unit_text:
        return None
    numbers = config.get("numbers", {})
    amount = _number(g.get("num"), numbers)
    if amount is None:
        amount = float(config.get("vague_count", 2)) if _is_plural(unit_text) else 1.0
    second = _number(g.get("num2"), numbers)
    if second is not None:
        amount = min(amount, second)
    return subtract(written_on, amount, _unit(unit_text))


def _relative_day(g: dict, written_on: date, config: dict[str, Any]) -> date | None:
    days = config.get("relative_days", {}).get(re.sub(r"\s+", " ", (g.get("rel") or "").lower()))
    return None if days is None else written_on - timedelta(days=int(days))


def _since_date(g: dict, written_on: date, config: dict[str, Any]) -> date | None:
    month, day = _month(g["month"]), int(g["day"])
    if month is None:
        return None
    return date(int(g["year"]), month, day) if g.get("year") else _latest_not_after(written_on, month, day)


def _since_month(g: dict, written_on: date, config: dict[str, Any]) -> date | None:
    month = _month(g["month"])
    if month is None:
        return None
    return date(int(g["year"]), month, 1) if g.get("year") else _latest_not_after(written_on, month, 1)


def _since_numeric(g: dict, written_on: date, config: dict[str, Any]) -> date | None:
    month, day = int(g["m"]), int(g["d"])
    if not g.get("y"):
        return _latest_not_after(written_on, month, day)
    year = int(g["y"])
    return date(year + 2000 if year < 100 else year, month, day)


def _since_weekday(g: dict, written_on: date, config: dict[str, Any]) -> date | None:
    back = (written_on.weekday() - _WEEKDAYS[g["weekday"].lower()[:3]]) % 7 or 7
    return written_on - timedelta(days=back)


def _since_last(g: dict, written_on: date, config: dict[str, Any]) -> date | None:
    unit = _unit(g["unit"])
    if unit == "weekend":
        return written_on - timedelta(days=(written_on.weekday() - 5) % 7 or 7)
    return subtract(written_on, 1, unit)


_PARSERS = {
    "relative": _relative,
    "relative-day": _relative_day,
    "since-date": _since_date,
    "since-month": _since_month,
    "since-year": lambda g, written_on, config: date(int(g["year"]), 1, 1),
    "since-numeric": _since_numeric,
    "since-iso": lambda g, written_on, config: date.fromisoformat(g["iso"]),
    "since-weekday": _since_weekday,
    "since-last": _since_last,
}


def onset_of(kind: str, match: re.Match, written_on: date | None, config: dict[str, Any]) -> date | None:
    """The onset a duration match implies, or None (no note date, unknown kind, unparsable or in the future)."""
    parser = _PARSERS.get(kind)
    if written_on is None or parser is None:
        return None
    try:
        result = parser(match.groupdict(), written_on, config)
    except (ValueError, KeyError, OverflowError):
        return None
    if result is None or result > written_on:
        return None
    return result
