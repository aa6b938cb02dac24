"""Dates for date_qa: find the first date a completion gives, score it by distance.

Written forms understood: ISO (2027-01-11, 2027/1/11), day-month (11 January 2027,
11th of Jan. 2027), month-day (January 11, 2027; Sept. 3rd), numeric 11/01/2027 and
01.11.27 (both day-first and month-first readings are tried; the closer one counts),
each with an optional weekday. A date without a year takes the reference's year: the
question names the year.
"""

from __future__ import annotations

import math
import re
from datetime import date

MONTHS = {
    name: i + 1
    for i, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        )
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})"
_PATTERNS = (
    re.compile(rf"\b{_YEAR}[-/.](?P<m>\d{{1,2}})[-/.](?P<d>\d{{1,2}})\b"),
    re.compile(rf"\b{_DAY}(?:\s+of)?\s+{_MONTH}(?:,?\s+{_YEAR})?\b", re.IGNORECASE),
    re.compile(rf"\b{_MONTH}\s+(?:the\s+)?{_DAY}(?:,?\s+{_YEAR})?\b", re.IGNORECASE),
    re.compile(r"\b(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<y>\d{4}|\d{2})\b"),
)
SCALE_DAYS = 3.0  # reward exp(-(days off beyond the tolerance) / SCALE_DAYS)
TOLERANCE_DAYS = 0  # days off that still earn the full reward


def _make(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _readings(match: re.Match, default_year: int) -> list[date]:
    g = match.groupdict()
    if g.get("m"):
        found = _make(int(g["year"]), int(g["m"]), int(g["d"]))
        return [found] if found else []
    if g.get("month"):
        year = int(g["year"]) if g.get("year") else default_year
        found = _make(year, MONTHS[g["month"].lower()], int(g["day"]))
        return [found] if found else []
    year = int(g["y"]) + (2000 if len(g["y"]) == 2 else 0)
    a, b = int(g["a"]), int(g["b"])
    return [d for d in (_make(year, b, a), _make(year, a, b)) if d]


def date_mentions(text: str, default_year: int) -> list[tuple[int, list[date]]]:
    """Every date written in ``text``, in order: (position, its readings), where a
    numeric date such as 03/04/2027 has two readings. Overlapping matches of later
    patterns are dropped (``11 January 2027`` is one date, not also ``January 2027``)."""
    found: list[tuple[int, int, list[date]]] = []
    for pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e, _ in found):
                continue
            readings = _readings(match, default_year)
            if readings:
                found.append((start, end, readings))
    return [(start, readings) for start, _, readings in sorted(found, key=lambda f: f[0])]


def parse_dates(text: str, default_year: int) -> list[date]:
    """Every reading of the first date written in ``text`` (two for 03/04/2027)."""
    mentions = date_mentions(text, default_year)
    return mentions[0][1] if mentions else []


def date_reward(completion: str, reference: str, tolerance_days: int = TOLERANCE_DAYS) -> float:
    """1 within ``tolerance_days`` of the reference (ISO), decaying with each day beyond.

    The question asks for one date: a completion that writes two different dates (a
    copied list, a hedge) gives no answer and earns 0."""
    truth = date.fromisoformat(reference)
    mentions = date_mentions(completion, truth.year)
    if len({frozenset(readings) for _, readings in mentions}) != 1:
        return 0.0
    off = min(abs((d - truth).days) for d in mentions[0][1])
    return math.exp(-max(0, off - tolerance_days) / SCALE_DAYS)
