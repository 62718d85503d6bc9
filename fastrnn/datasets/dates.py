"""Synthetic date translation pairs: human-written dates -> ISO 8601 ``YYYY-MM-DD``.

Dates are drawn uniformly between 1969-01-01 and 2068-12-31, the century that two-digit years cover
under the POSIX convention Python's ``strptime("%y")`` uses (69-99 -> 19xx, 00-68 -> 20xx), so every
source names exactly one date. Each source uses one of :data:`FORMATS`, drawn uniformly; weekday
names always match the date. Month and weekday names are English whatever the locale.
"""
import datetime

import numpy as np

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FIRST, LAST = datetime.date(1969, 1, 1), datetime.date(2068, 12, 31)


def _ordinal(day):
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _fields(date):
    month, weekday = MONTHS[date.month - 1], WEEKDAYS[date.weekday()]
    return dict(d=date.day, dd=f"{date.day:02d}", m=date.month, mm=f"{date.month:02d}", yyyy=f"{date.year:04d}",
                yy=f"{date.year % 100:02d}", month=month, mon=month[:3], weekday=weekday, wkd=weekday[:3],
                nth=_ordinal(date.day))


# name -> template over the fields above; the example is 2026-11-25 (a Wednesday).
FORMATS = {
    "day month year": "{d} {month} {yyyy}",                 # 25 November 2026
    "day mon year": "{d} {mon} {yyyy}",                     # 25 Nov 2026
    "mon day, year": "{mon} {d}, {yyyy}",                   # Nov 25, 2026
    "month day, year": "{month} {d}, {yyyy}",               # November 25, 2026
    "us numeric": "{mm}/{dd}/{yyyy}",                       # 11/25/2026
    "european dotted": "{dd}.{mm}.{yy}",                    # 25.11.26
    "weekday, month day, year": "{weekday}, {month} {d}, {yyyy}",  # Wednesday, November 25, 2026
    "year mon day": "{yyyy} {mon} {d}",                     # 2026 Nov 25
    "wkd, dd mon year": "{wkd}, {dd} {mon} {yyyy}",         # Wed, 25 Nov 2026
    "the nth of month, year": "the {nth} of {month}, {yyyy}",  # the 25th of November, 2026
    "upper mon day year": "{MON} {d} {yyyy}",               # NOV 25 2026
    "lower day month year": "{d} {lmonth} {yyyy}",          # 25 november 2026
}


def format_date(date, name):
    """Write ``date`` (a :class:`datetime.date`) in the format ``name`` (a key of :data:`FORMATS`)."""
    if name not in FORMATS:
        raise ValueError(f"unknown date format {name!r}; choose from {sorted(FORMATS)}")
    fields = _fields(date)
    fields.update(MON=fields["mon"].upper(), lmonth=fields["month"].lower())
    return FORMATS[name].format(**fields)


def make_dates(n_samples, random_state=None):
    """``n_samples`` pairs ``(sources, targets)``: two lists of strings, e.g. ``"Nov 25, 2026"`` ->
    ``"2026-11-25"``.

    Dates are uniform over 1969-01-01 .. 2068-12-31 and formats uniform over :data:`FORMATS`;
    ``random_state`` (None, an int or a :class:`numpy.random.Generator`) makes the draw repeatable.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}")
    rng = np.random.default_rng(random_state)
    span = (LAST - FIRST).days + 1
    days = rng.integers(0, span, size=n_samples)
    names = sorted(FORMATS)
    formats = rng.integers(0, len(names), size=n_samples)
    sources, targets = [], []
    for offset, index in zip(days, formats):
        date = FIRST + datetime.timedelta(days=int(offset))
        sources.append(format_date(date, names[index]))
        targets.append(date.isoformat())
    return sources, targets
