"""CQL values as SQL expressions, read the way `backend.cql.values` reads them in Python.

A compiled scalar is one of four shapes: a value inside a JSON document (`JsonValue`: a property, a
context field, a trait, a `first`/`last` result; `TypedJsonValue` for a property with typed columns), a number (`NumberValue`: counts and aggregates), a
text (`TextValue`: `mode`, `min`/`max ... as string`) or a literal (`ConstValue`, turned by the Python
functions themselves so both sides agree). Each answers the same questions as SQL: is it missing,
what number, what text, what string, what JSON. The functions they use render for each database
(`backend.cql.dialects`).
"""

from __future__ import annotations

import orjson
from sqlalchemy import ColumnElement, and_, case, false, func, literal, not_, null, or_

from backend.clock import iso
from backend.cql import values
from backend.cql.dialects.functions import (
    date_text,
    day_of,
    json_at,
    json_kind,
    json_number,
    json_spelled,
    json_string,
    julian_day,
    matches_glob,
    parsed_json,
    path_arguments,
    real_to_json,
    spelled_number,
    text_part,
    timestamp_text,
    to_json,
)

DIGIT2 = "[0-9][0-9]"
DATE_GLOB = "[0-9][0-9][0-9][0-9]-" + DIGIT2 + "-" + DIGIT2
MINUTE_GLOB = DATE_GLOB + "T" + DIGIT2 + ":" + DIGIT2
ZONE_GLOB = "*[+-]" + DIGIT2 + ":" + DIGIT2


class JsonValue:
    """The value at the path of keys `parts` inside the JSON document `document`."""

    def __init__(self, document: ColumnElement, parts: tuple[str, ...] = ()):
        self.document, self.parts = document, parts
        path = path_arguments(parts)
        self.type = json_kind(document, *path)
        self._number, self._string = json_number(document, *path), json_string(document, *path)
        self._spelled, self._json = json_spelled(document, *path), json_at(document, *path)

    def missing(self) -> ColumnElement:
        return or_(self.type.is_(None), self.type == "null")

    def plain_number(self) -> ColumnElement:
        return case({"integer": self._number, "real": self._number}, value=self.type)

    def number(self) -> ColumnElement:
        return case({"integer": self._number, "real": self._number, "text": spelled_number(self._string)},
                    value=self.type)

    def text(self) -> ColumnElement:
        return case({"text": self._string, "true": "true", "false": "false", "integer": self._spelled,
                     "real": self._spelled}, value=self.type)

    def string(self) -> ColumnElement:
        return case((self.type == "text", self._string))

    def text_is(self, text: str) -> ColumnElement:
        """Whether its text is `text`, a text no JSON number spells: only a string, or the boolean
        of that name, can be. (`text() == text`, without computing every kind's text.)"""
        is_string = and_(self.type == "text", self._string == text)
        return or_(self.type == text, is_string) if text in ("true", "false") else is_string

    def json(self) -> ColumnElement:
        return func.nullif(self._json, "null")

    def typed(self) -> tuple[ColumnElement, ColumnElement, ColumnElement]:
        """Its kind, number and string: what a `TypedJsonValue` reads from columns of their own."""
        return self.type, self._number, self._string


class TypedJsonValue(JsonValue):
    """A JSON value whose kind, number and string are also kept in columns of their own (an analytic
    store's typed property columns, filled by the same functions): those are read from the columns,
    which is what makes them fast; its spelling and JSON text still come from the document."""

    def __init__(self, document: ColumnElement, parts: tuple[str, ...], kind: ColumnElement, number: ColumnElement,
                 string: ColumnElement):
        super().__init__(document, parts)
        self.type, self._number, self._string = kind, number, string


class _Computed:
    """A value computed by an expression (a count, an aggregate, a picked text)."""

    def __init__(self, expression: ColumnElement):
        self.expression = expression

    def missing(self) -> ColumnElement:
        return self.expression.is_(None)

    def json(self) -> ColumnElement:
        return to_json(self.expression)


class NumberValue(_Computed):
    """A count (an integer), or with `real` an aggregate or a number read from text."""

    def __init__(self, expression: ColumnElement, *, real: bool = False):
        super().__init__(expression)
        self.real = real

    def json(self) -> ColumnElement:
        return real_to_json(self.expression) if self.real else to_json(self.expression)

    def plain_number(self) -> ColumnElement:
        return self.expression

    def number(self) -> ColumnElement:
        return self.expression

    def text(self) -> ColumnElement:
        return null()

    def string(self) -> ColumnElement:
        return null()


class TextValue(_Computed):
    def plain_number(self) -> ColumnElement:
        return null()

    def number(self) -> ColumnElement:
        return spelled_number(self.expression)

    def text(self) -> ColumnElement:
        return self.expression

    def string(self) -> ColumnElement:
        return self.expression


class ColumnValue(_Computed):
    """A warehouse column (an entity's), read as its family says (`backend.datagraph.types`): a
    number, a string, a boolean, or a date or timestamp as its ISO-8601 text."""

    def __init__(self, expression: ColumnElement, family: str):
        super().__init__(expression)
        self.family = family

    def plain_number(self) -> ColumnElement:
        return self.expression if self.family == "number" else null()

    def number(self) -> ColumnElement:
        if self.family == "number":
            return self.expression
        return spelled_number(self.expression) if self.family == "string" else null()

    def text(self) -> ColumnElement:
        if self.family == "boolean":
            return case((self.expression.is_(None), null()), (self.expression, "true"), else_="false")
        return self.string() if self.family != "number" else null()

    def string(self) -> ColumnElement:
        if self.family == "string":
            return self.expression
        if self.family == "date":
            return date_text(self.expression)
        return timestamp_text(self.expression) if self.family == "timestamp" else null()

    def json(self) -> ColumnElement:
        return to_json(self.expression)


class ListValue:
    """A JSON array (the result of `unique`); only ever stored, never compared."""

    def __init__(self, expression: ColumnElement):
        self.expression = expression

    def json(self) -> ColumnElement:
        return self.expression


class ConstValue:
    def __init__(self, value: object):
        self.value = value

    def missing(self) -> ColumnElement:
        return literal(self.value is None)

    def plain_number(self) -> ColumnElement:
        return _literal(values.plain_number(self.value))

    def number(self) -> ColumnElement:
        return _literal(values.number(self.value))

    def text(self) -> ColumnElement:
        return _literal(values.text(self.value))

    def string(self) -> ColumnElement:
        return _literal(self.value if isinstance(self.value, str) else None)

    def json(self) -> ColumnElement:
        return null() if self.value is None else parsed_json(literal(orjson.dumps(self.value).decode()))


Value = JsonValue | NumberValue | TextValue | ColumnValue | ConstValue


def _literal(value: object) -> ColumnElement:
    return null() if value is None else literal(value)


def equal(left: Value, right: Value) -> ColumnElement:
    """`values.equal` in SQL: numbers numerically, otherwise by text; NULL when undecided."""
    if isinstance(right, ConstValue):
        left, right = right, left
    if isinstance(left, ConstValue):
        number, text = values.number(left.value), values.text(left.value)
        if number is not None:
            return right.number() == number
        if text is None:
            return false()
        return right.text_is(text) if isinstance(right, JsonValue) else right.text() == text
    both_numbers = and_(left.number().is_not(None), right.number().is_not(None))
    return case((both_numbers, left.number() == right.number()), else_=left.text() == right.text())


def instant_day(value: Value) -> ColumnElement:
    """The Julian day of an instant (see `values.instant`), else NULL."""
    if isinstance(value, ConstValue):
        moment = values.instant(value.value)
        return null() if moment is None else julian_day(iso(moment))
    return _instant_day(value.string())


def _instant_day(text: ColumnElement) -> ColumnElement:
    """Databases read more forms than `values.instant` accepts; the patterns and the day check narrow
    it to those (`T` separator, a zone on every time, no spaces, hours below 24, real calendar days)."""
    day = text_part(text, 1, 10)
    valid_day = day_of(julian_day(day)) == day
    is_date = matches_glob(text, DATE_GLOB)
    is_time = and_(matches_glob(text, MINUTE_GLOB + "*"), or_(matches_glob(text, "*Z"), matches_glob(text, ZONE_GLOB)),
                   not_(matches_glob(text, "* *")), text_part(text, 12, 2) < "24")
    return case((and_(or_(is_date, is_time), valid_day), julian_day(text)))


def utc_date(value: Value) -> ColumnElement:
    """The UTC calendar date (`yyyy-mm-dd`) of an instant, else NULL."""
    if isinstance(value, ConstValue):
        moment = values.instant(value.value)
        return null() if moment is None else literal(moment.date().isoformat())
    return day_of(instant_day(value))


