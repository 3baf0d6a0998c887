"""How CQL sees a stored value: as a number, as text, as an instant. Shared by the reference evaluator
and the SQL compiler (which turns literals with these same functions), so both read data alike.

Values are JSON. A number is a JSON number, or a string spelled as a JSON number (`"30"`, `" 2.5"`).
Text is a string as it is, a boolean as `true`/`false`, a number as its JSON spelling; objects, arrays
and `null` have no text. An instant is an ISO-8601 string: a date `yyyy-mm-dd` (midnight UTC) or a
date and time with minutes, optional seconds and fraction, and a zone (`Z` or `±hh:mm`); anything
else, including a time without a zone, is not an instant.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time, timezone

import orjson

JSON_NUMBER = re.compile(r"[ \t\n\r]*-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[ \t\n\r]*")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ISO_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:[0-9]{2})")


def plain_number(value: object) -> int | float | None:
    """JSON numbers only (not numeric strings): what `sum`, `avg`, `min` and `max` aggregate."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def number(value: object) -> int | float | None:
    """The number a value stands for: a JSON number, or a string spelled as one."""
    if isinstance(value, str):
        if not JSON_NUMBER.fullmatch(value):
            return None
        parsed = float(value)
        return parsed if math.isfinite(parsed) else None
    return plain_number(value)


def text(value: object) -> str | None:
    """The text of a value for equality, substring tests and text reducers."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if plain_number(value) is not None:
        return orjson.dumps(value).decode()
    return None


def equal(left: object, right: object) -> bool:
    """Numbers compare numerically; everything else by text; `null`, objects and arrays equal nothing."""
    a, b = number(left), number(right)
    if a is not None and b is not None:
        return a == b
    left_text, right_text = text(left), text(right)
    return left_text is not None and right_text is not None and left_text == right_text


def instant(value: object) -> datetime | None:
    """An ISO-8601 date or zoned date-time as an aware UTC datetime; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        if ISO_DATE.fullmatch(value):
            return datetime.combine(date.fromisoformat(value), time(), timezone.utc)
        if ISO_TIME.fullmatch(value):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None
    return None
