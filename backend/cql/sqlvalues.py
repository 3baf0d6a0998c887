"""CQL values as SQL expressions, read the way `backend.cql.values` reads them in Python.

A compiled scalar is one of four shapes: a value inside a JSON document (`JsonValue`: a property, a
context field, a trait, a `first`/`last` result), a number (`NumberValue`: counts and aggregates), a
text (`TextValue`: `mode`, `min`/`max ... as string`) or a literal (`ConstValue`, turned by the Python
functions themselves so both sides agree). Each answers the same questions as SQL: is it missing,
what number, what text, what string, what JSON. The SQL is written for SQLite's JSON1 functions.
"""

from __future__ import annotations


import orjson
from sqlalchemy import ColumnElement, and_, case, false, func, literal, null, or_, select

from backend.clock import iso
from backend.cql import values

DIGIT2 = "[0-9][0-9]"
DATE_GLOB = "[0-9][0-9][0-9][0-9]-" + DIGIT2 + "-" + DIGIT2
MINUTE_GLOB = DATE_GLOB + "T" + DIGIT2 + ":" + DIGIT2
ZONE_GLOB = "*[+-]" + DIGIT2 + ":" + DIGIT2


def json_path(parts: tuple[str, ...]) -> str:
    """A JSON path with every key quoted, so keys holding dots address one level."""
    return "$" + "".join(f'."{part}"' for part in parts)


def numeric_text(text: ColumnElement) -> ColumnElement:
    """The number a text spells as a JSON number, else NULL."""
    number = func.json_extract(text, "$")
    kinds = case({"integer": number, "real": number}, value=func.json_type(text))
    return case((func.json_valid(text) == 1, kinds))


class JsonValue:
    """The value at `path` inside the JSON text `document`."""

    def __init__(self, document: ColumnElement, path: str = "$", *, column: bool = False):
        self.document, self.path, self.column = document, path, column
        self.type = func.json_type(document, path)
        self.extracted = func.json_extract(document, path)

    @property
    def expression(self) -> ColumnElement:
        return self.document

    def over(self, column: ColumnElement) -> JsonValue:
        return JsonValue(column, self.path, column=True)

    def missing(self) -> ColumnElement:
        return or_(self.type.is_(None), self.type == "null")

    def plain_number(self) -> ColumnElement:
        return case({"integer": self.extracted, "real": self.extracted}, value=self.type)

    def number(self) -> ColumnElement:
        return case({"integer": self.extracted, "real": self.extracted, "text": numeric_text(self.extracted)},
                    value=self.type)

    def text(self) -> ColumnElement:
        spelled = literal("").op("||")(self.document.op("->")(self.path))  # plain text, not JSON subtype
        return case({"text": self.extracted, "true": "true", "false": "false", "integer": spelled, "real": spelled},
                    value=self.type)

    def string(self) -> ColumnElement:
        return case((self.type == "text", self.extracted))

    def json(self) -> ColumnElement:
        return func.nullif(self.document.op("->")(self.path), "null")


class _Computed:
    """A value computed by an expression (a count, an aggregate, a picked text)."""

    def __init__(self, expression: ColumnElement):
        self.expression = expression

    def over(self, column: ColumnElement):
        return type(self)(column)

    def missing(self) -> ColumnElement:
        return self.expression.is_(None)

    def json(self) -> ColumnElement:
        return func.nullif(func.json_quote(self.expression), "null")


class NumberValue(_Computed):
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
        return numeric_text(self.expression)

    def text(self) -> ColumnElement:
        return self.expression

    def string(self) -> ColumnElement:
        return self.expression


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
        return null() if self.value is None else func.json(literal(orjson.dumps(self.value).decode()))


Value = JsonValue | NumberValue | TextValue | ConstValue


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
        return false() if text is None else right.text() == text
    both_numbers = and_(left.number().is_not(None), right.number().is_not(None))
    return case((both_numbers, left.number() == right.number()), else_=left.text() == right.text())


def instant_day(value: Value) -> ColumnElement:
    """The Julian day of an instant (see `values.instant`), else NULL."""
    if isinstance(value, ConstValue):
        moment = values.instant(value.value)
        return null() if moment is None else func.julianday(iso(moment))
    return let(value.string(), _instant_day)


def _instant_day(text: ColumnElement) -> ColumnElement:
    """SQLite reads more forms than `values.instant` accepts; the GLOBs and the day check narrow it to
    those (`T` separator, a zone on every time, no spaces, hours below 24, real calendar days)."""
    day = func.substr(text, 1, 10)
    valid_day = func.date(func.julianday(day)) == day
    is_date = text.op("GLOB")(DATE_GLOB)
    is_time = and_(text.op("GLOB")(MINUTE_GLOB + "*"), or_(text.op("GLOB")("*Z"), text.op("GLOB")(ZONE_GLOB)),
                   text.op("NOT GLOB")("* *"), func.substr(text, 12, 2) < "24")
    return case((and_(or_(is_date, is_time), valid_day), func.julianday(text)))


def let(expression: ColumnElement, body) -> ColumnElement:
    """`body(x)` with `x` bound once to `expression`: a one-row derived table, so a long expression
    that uses its input many times does not repeat (and re-evaluate) that input."""
    bound = select(expression.label("x")).correlate_except(None).subquery()
    return select(body(bound.c.x)).select_from(bound).correlate_except(bound).scalar_subquery()


def utc_date(value: Value) -> ColumnElement:
    """The UTC calendar date (`yyyy-mm-dd`) of an instant, else NULL."""
    if isinstance(value, ConstValue):
        moment = values.instant(value.value)
        return null() if moment is None else literal(moment.date().isoformat())
    return func.date(instant_day(value))


