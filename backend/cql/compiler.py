"""CQL compiled to one SQLAlchemy Core SELECT per definition, in agreement with `backend.cql.evaluate`.

An audience compiles to `SELECT profile.id FROM profile WHERE <condition>`; a computed trait to
`SELECT profile.id, <value as JSON text>`. Every event condition is a correlated sub-select over the
profile's events (count, aggregate, or ordered pick), so `NOT`, `OR` and zero counts need no special
case, funnels nest one sub-select per parent event, and restricting the outer query to some profile
ids is the incremental path. Comparisons are two-valued (NULL becomes false) so `NOT` is exact.

The tables come from the caller (`Tables`), which keeps this module free of the store's models.
`entity()` (Linked Audiences) needs a warehouse's data graph, which this engine does not have, and is
rejected with `CompileError`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import ColumnElement, Select, Table, and_, exists, false, func, literal, not_, or_, select

from backend.clock import to_ms
from backend.cql import ast
from backend.cql.dialect import binary, json_array_of, julian_day, one_step, position, spelled_number
from backend.cql.sqlvalues import (
    ConstValue,
    JsonValue,
    ListValue,
    NumberValue,
    TextValue,
    Value,
    equal,
    instant_day,
    iso,
    let,
    utc_date,
)

UNIT_MS = {"seconds": 1000, "hours": 3_600_000, "days": 86_400_000}


class CompileError(ValueError):
    """A definition this engine cannot compute."""


class Tables(NamedTuple):
    profile: Table
    event: Table
    trait: Table
    link: Table


@dataclass(frozen=True)
class _Scope:
    """Whose traits and events a node reads, and which event rows are current (`event`) and parent."""

    profile_id: ColumnElement
    account: bool
    event: object = None
    parent: object = None


def span_ms(duration: ast.Duration) -> int:
    return duration.amount * UNIT_MS[duration.unit]


@dataclass(frozen=True)
class Scope:
    """Which profiles a statement covers and which events it may read.

    `profile_ids` restricts it to some profiles (the incremental path); `conditions` are further
    conditions on the profile table (eligibility); `event_horizon(event)` is a condition every event
    read must meet (the audience's history options)."""

    space_id: str
    accounts: bool = False
    profile_ids: Collection[str] | None = None
    conditions: tuple[ColumnElement, ...] = ()
    event_horizon: Callable[[object], ColumnElement] | None = None


def audience_members(root: ast.Node, *, tables: Tables, scope: Scope, now: datetime) -> Select:
    """The ids of the live profiles (users, or accounts) that satisfy the audience definition at `now`."""
    compiler = _Compiler(tables, now, scope.event_horizon)
    profile = tables.profile
    condition = compiler.boolean(root, _Scope(profile.c.id, scope.accounts))
    return _profiles(select(profile.c.id), tables, scope).where(condition)


def trait_values(root: ast.Node, *, tables: Tables, scope: Scope, now: datetime) -> Select:
    """Every live profile's id and computed-trait value at `now`, as JSON text (NULL for no value)."""
    compiler = _Compiler(tables, now, scope.event_horizon)
    profile = tables.profile
    value = compiler.scalar(root, _Scope(profile.c.id, scope.accounts)).json()
    return _profiles(select(profile.c.id, value.label("value")), tables, scope)


def _profiles(statement: Select, tables: Tables, scope: Scope) -> Select:
    profile = tables.profile
    statement = statement.where(profile.c.space_id == scope.space_id, profile.c.merged_into.is_(None),
                                profile.c.collection == ("accounts" if scope.accounts else "users"), *scope.conditions)
    return statement if scope.profile_ids is None else statement.where(profile.c.id.in_(list(scope.profile_ids)))


class _Compiler:
    def __init__(self, tables: Tables, now: datetime, event_horizon=None):
        self.tables = tables
        self.event_horizon = event_horizon
        self.now = now
        self.now_ms = to_ms(now)
        self.names = itertools.count(1)

    # -- booleans --------------------------------------------------------------------------------

    def boolean(self, node: ast.Node, scope: _Scope) -> ColumnElement:
        if isinstance(node, ast.And):
            return and_(*(self.boolean(operand, scope) for operand in node.operands))
        if isinstance(node, ast.Or):
            return or_(*(self.boolean(operand, scope) for operand in node.operands))
        if isinstance(node, ast.Not):
            return not_(self.boolean(node.operand, scope))
        if isinstance(node, ast.Quantified):
            return self.quantified(node, scope)
        if isinstance(node, ast.Comparison):
            return func.coalesce(self.comparison(node, scope), false())
        raise CompileError(f"{type(node).__name__} is not a condition")

    def quantified(self, node: ast.Quantified, scope: _Scope) -> ColumnElement:
        link = self.tables.link.alias(f"l{next(self.names)}")
        user = _Scope(link.c.user_id, account=False)
        of_account = link.c.account_id == scope.profile_id
        holds = self.boolean(node.operand, user)

        def some(*conditions):
            return exists(select(link.c.user_id).where(of_account, *conditions).correlate_except(link))

        if node.quantifier == "ANY":
            return some(holds)
        return and_(some(), not_(some(not_(holds))))

    def comparison(self, node: ast.Comparison, scope: _Scope) -> ColumnElement:
        """The comparator over its operands, each computed operand bound once in a one-row derived
        table: comparators read an operand several times, and a sub-select repeated is re-run."""
        operands = [self.scalar(operand, scope) for operand in (node.subject, *node.arguments)
                    if not isinstance(operand, ast.Duration)]
        computed = [operand for operand in operands if not isinstance(operand, ConstValue)
                    and not (isinstance(operand, JsonValue) and operand.column)]
        if not computed:
            return self.compare(node, operands)
        labels = {id(operand): f"b{index}" for index, operand in enumerate(computed)}
        bound = one_step(select(*(operand.expression.label(labels[id(operand)]) for operand in computed)
                                ).correlate_except(None)).subquery()
        rebound = [operand.over(bound.c[labels[id(operand)]]) if id(operand) in labels else operand
                   for operand in operands]
        return select(self.compare(node, rebound)).select_from(bound).correlate_except(bound).scalar_subquery()

    def compare(self, node: ast.Comparison, operands: list[Value]) -> ColumnElement:
        subject, values = operands[0], iter(operands[1:])
        arguments = [argument if isinstance(argument, ast.Duration) else next(values) for argument in node.arguments]
        return _COMPARATORS[node.comparator](self, subject, arguments)

    # -- scalars ---------------------------------------------------------------------------------

    def scalar(self, node: ast.Node, scope: _Scope):
        if isinstance(node, ast.Literal):
            return ConstValue(node.value)
        if isinstance(node, ast.TraitRef):
            trait = self.tables.trait.alias(f"t{next(self.names)}")
            document = select(trait.c.value).where(trait.c.profile_id == scope.profile_id,
                                                   trait.c.key == node.path[0]).correlate_except(trait)
            return JsonValue(document.scalar_subquery(), node.path[1:])
        if isinstance(node, ast.PropertyRef):
            event = scope.parent if node.parent else scope.event
            return ConstValue(None) if event is None else JsonValue(event.c.properties, node.path, column=True)
        if isinstance(node, ast.ContextRef):
            return ConstValue(None) if scope.event is None else JsonValue(scope.event.c.context, node.path,
                                                                          column=True)
        if isinstance(node, ast.Reduction):
            return self.reduce(node, scope)
        raise CompileError(f"{type(node).__name__} is not a value")

    def reduce(self, node: ast.Reduction, scope: _Scope):
        event, conditions = self.stream(node.stream, scope)
        rows = select().where(*conditions).correlate_except(event)
        if node.reducer == "count":
            return NumberValue(rows.with_only_columns(func.count()).scalar_subquery())
        argument = self.scalar(node.argument, replace(scope, event=event, parent=scope.event))
        reducer = node.reducer
        if reducer in ("sum", "avg") or (reducer in ("min", "max") and node.as_type != "string"):
            aggregate = getattr(func, reducer)(argument.plain_number())
            if reducer == "sum":
                aggregate = func.coalesce(aggregate, 0)
            return NumberValue(rows.with_only_columns(aggregate).scalar_subquery())
        text = argument.text()
        if reducer in ("min", "max"):
            return TextValue(rows.with_only_columns(getattr(func, reducer)(binary(text))).scalar_subquery())
        if reducer in ("first", "last"):
            order = (event.c.timestamp_ms, event.c.id) if reducer == "first" else (
                event.c.timestamp_ms.desc(), event.c.id.desc())
            picked = rows.with_only_columns(argument.json()).where(not_(argument.missing()))
            return JsonValue(picked.order_by(*order).limit(1).scalar_subquery())
        texts = rows.where(text.is_not(None))
        if reducer == "mode":
            often = texts.with_only_columns(text).group_by(text).having(func.count() >= (node.min_frequency or 1))
            best = TextValue(often.order_by(func.count().desc(), binary(text)).limit(1).scalar_subquery())
            return NumberValue(let(best.expression, spelled_number)) if node.as_type == "number" else best
        if reducer == "unique_count":
            return NumberValue(texts.with_only_columns(func.count(text.distinct())).scalar_subquery())
        if reducer == "unique":
            value = text.label("v")
            distinct = texts.with_only_columns(value).distinct().order_by(value).subquery()
            return ListValue(select(json_array_of(distinct.c.v)).correlate_except(distinct).scalar_subquery())
        raise CompileError(f"unknown reducer {reducer}")

    # -- streams ---------------------------------------------------------------------------------

    def stream(self, node: ast.Stream, scope: _Scope):
        """A fresh alias of the event table and the conditions that make its rows the stream."""
        if node.source == "entity":
            raise CompileError("entity() needs a Linked Audience data graph from a warehouse, which this "
                               "engine does not have; use event() and trait() conditions instead")
        event = self.tables.event.alias(f"e{next(self.names)}")
        return event, self.stream_conditions(node, len(node.filters), event, scope)

    def stream_conditions(self, node: ast.Stream, steps: int, event, scope: _Scope) -> list[ColumnElement]:
        conditions = [event.c.event == node.name, self.owned(event, scope)]
        if self.event_horizon is not None:
            conditions.append(self.event_horizon(event))
        for index, step in enumerate(node.filters[:steps]):
            conditions.append(self.step(node, index, step, event, scope))
        return conditions

    def owned(self, event, scope: _Scope) -> ColumnElement:
        if not scope.account:
            return event.c.profile_id == scope.profile_id
        link = self.tables.link.alias(f"l{next(self.names)}")
        users = select(link.c.user_id).where(link.c.account_id == scope.profile_id).correlate_except(link)
        return or_(event.c.profile_id == scope.profile_id, event.c.profile_id.in_(users))

    def step(self, node: ast.Stream, index: int, step, event, scope: _Scope) -> ColumnElement:
        time = event.c.timestamp_ms
        if isinstance(step, ast.Where):
            return self.boolean(step.condition, replace(scope, event=event, parent=scope.event))
        if isinstance(step, ast.Sources):
            return event.c.source_id.not_in(step.exclude)
        if isinstance(step, ast.Within):
            if not step.parent:
                return time >= self.now_ms - span_ms(step.duration)
            if scope.event is None:
                return false()
            parent_time = scope.event.c.timestamp_ms
            return and_(time > parent_time, time <= parent_time + span_ms(step.duration))
        if isinstance(step, ast.Between):
            return and_(time >= self.now_ms - span_ms(step.end), time <= self.now_ms - span_ms(step.start))
        if isinstance(step, ast.ExpiresAfter):
            return self.latest_session(node, index, span_ms(step.duration), event, scope)
        raise CompileError(f"unknown stream filter {type(step).__name__}")

    def latest_session(self, node: ast.Stream, index: int, gap: int, event, scope: _Scope) -> ColumnElement:
        """Events from the start of the latest session (the last event with no predecessor closer than
        `gap`), provided the stream's last event is less than `gap` ago."""
        def earlier_steps():
            alias = self.tables.event.alias(f"e{next(self.names)}")
            return alias, self.stream_conditions(node, index, alias, scope)

        last_event, last_conditions = earlier_steps()
        last = select(func.max(last_event.c.timestamp_ms)).where(*last_conditions).correlate_except(last_event)
        start_event, start_conditions = earlier_steps()
        before_event, before_conditions = earlier_steps()
        start_time, before_time = start_event.c.timestamp_ms, before_event.c.timestamp_ms
        joined = exists(select(before_time).where(*before_conditions, before_time < start_time,
                                                  before_time > start_time - gap).correlate_except(before_event))
        start = select(func.max(start_time)).where(*start_conditions, not_(joined)).correlate_except(start_event)
        return and_(last.scalar_subquery() > self.now_ms - gap, event.c.timestamp_ms >= start.scalar_subquery())

    # -- dates -----------------------------------------------------------------------------------

    def relative(self, kind: str, subject: Value, duration: ast.Duration) -> ColumnElement:
        if duration.unit == "days":
            value, today = utc_date(subject), self.now.date()
            span = timedelta(days=duration.amount)
            bound = {"within_last": today - span, "within_next": today + span,
                     "before_last": today - span, "after_next": today + span}[kind]
            low, high = literal(bound.isoformat()), literal(today.isoformat())
        else:
            value = instant_day(subject)
            span = timedelta(milliseconds=span_ms(duration))
            moment = self.now - span if kind in ("within_last", "before_last") else self.now + span
            low, high = julian_day(iso(moment)), julian_day(iso(self.now))
        if kind == "within_last":
            return and_(value >= low, value <= high)
        if kind == "within_next":
            return and_(value >= high, value <= low)
        return value <= low if kind == "before_last" else value >= low


def _ordered(operator):
    return lambda compiler, subject, arguments: operator(subject.number(), arguments[0].number())


def _contains(compiler, subject: Value, arguments: list[Value]) -> ColumnElement:
    string = subject.string()
    return or_(*(position(string, part.text()) > 0 for part in arguments))


def _starts_with(compiler, subject: Value, arguments: list[Value]) -> ColumnElement:
    string, affix = subject.string(), arguments[0].text()
    return func.substr(string, 1, func.length(affix)) == affix


def _ends_with(compiler, subject: Value, arguments: list[Value]) -> ColumnElement:
    string, affix = subject.string(), arguments[0].text()
    tail = func.substr(string, func.length(string) - func.length(affix) + 1)
    return and_(func.length(string) >= func.length(affix), tail == affix)


def _one_of(compiler, subject: Value, arguments: list[Value]) -> ColumnElement:
    return or_(*(func.coalesce(equal(subject, argument), false()) for argument in arguments))


def _relative(kind: str):
    return lambda compiler, subject, arguments: compiler.relative(kind, subject, arguments[0])


_COMPARATORS = {
    "equals": lambda c, s, a: equal(s, a[0]),
    "differs": lambda c, s, a: and_(not_(s.missing()), not_(a[0].missing()),
                                    not_(func.coalesce(equal(s, a[0]), false()))),
    "absent": lambda c, s, a: s.missing(),
    "exists": lambda c, s, a: not_(s.missing()),
    "greater_than": _ordered(lambda x, y: x > y),
    "at_least": _ordered(lambda x, y: x >= y),
    "less_than": _ordered(lambda x, y: x < y),
    "at_most": _ordered(lambda x, y: x <= y),
    "contains": _contains,
    "omits": lambda c, s, a: not_(func.coalesce(_contains(c, s, a), false())),
    "starts_with": _starts_with,
    "ends_with": _ends_with,
    "one_of": _one_of,
    "none_of": lambda c, s, a: and_(not_(s.missing()), not_(_one_of(c, s, a))),
    "before_date": lambda c, s, a: instant_day(s) < instant_day(a[0]),
    "after_date": lambda c, s, a: instant_day(s) > instant_day(a[0]),
    "within_last": _relative("within_last"),
    "within_next": _relative("within_next"),
    "before_last": _relative("before_last"),
    "after_next": _relative("after_next"),
}
