"""CQL compiled to one set-based SELECT per definition, in agreement with `backend.cql.evaluate`.

An audience compiles to `SELECT profile.id FROM profile LEFT JOIN … WHERE <condition>`; a computed
trait to `SELECT profile.id, <value as JSON text>`. Nothing is correlated, so the same statement runs
on SQLite, PostgreSQL and the analytic engines (DuckDB, ClickHouse), which cannot decorrelate
`LIMIT 1` picks or references from two scopes out:

- A reduction (`count`, `sum`, `first`, `mode`, …) over an event stream is a derived table of the
  stream's rows grouped by the rows of the scope it is read in, LEFT JOINed to that scope, so a
  profile with no events gets the empty reduction (0, NULL, `[]`) and `NOT`, `OR` and zero counts need
  no special case. First/last and mode pick with `row_number()`.
- At the top a scope row is a profile (or, under `ANY`/`ALL`, one of an account's users). Inside a
  stream's `where`, a scope row is one event of that stream together with the scope rows it belongs
  to, so a stream nested there (a funnel) is joined to its parent event by profile and time and
  grouped by the parent's row.
- Traits are LEFT JOINed by profile; an account's events are its own and its users' (by the link table).
- `expires_after` keeps the latest session with window functions (`lag`, `max … OVER`).

Restricting the statement to some profile ids (`Scope.profile_ids`) restricts every derived table
too: that is the incremental path. Unrestricted, the profile a stream's events are grouped by is
marked `unindexed` (unless the stream keeps a window of time), so SQLite scans the events in table
order rather than through the profile-and-time index, which it otherwise picks to group by and pays
for with a random read per event. Comparisons are two-valued (NULL becomes false) so `NOT` is exact.
The tables come from the caller (`Tables`), which keeps this module free of the store's models.
`entity()` (LINKED audiences) reads the warehouse's entity tables through the resolved Data Graph
in `Tables.graph` (`backend.cql.entities`); without one it is a `CompileError`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import (ColumnElement, FromClause, Select, Table, and_, case, false, func, literal, not_, or_, select,
                        union_all)
from sqlalchemy.sql.elements import BindParameter

from backend.clock import to_ms
from backend.cql import ast
from backend.cql.analysis import walk
from backend.cql.entities import EntityRows, entity_candidates, shown_columns
from backend.cql.matched import MatchedStream
from backend.cql.errors import CompileError
from backend.cql.dialects.functions import (binary, json_array_of, julian_day, nullable, position, spelled_number, text_length,
                                 text_part, unindexed)
from backend.cql.sqlvalues import (
    ColumnValue,
    ConstValue,
    JsonValue,
    ListValue,
    NumberValue,
    TextValue,
    TypedJsonValue,
    Value,
    equal,
    instant_day,
    iso,
    utc_date,
)
from backend.datagraph.linked import LinkedGraph, LinkedNode

UNIT_MS = {"seconds": 1000, "hours": 3_600_000, "days": 86_400_000}


class Tables(NamedTuple):
    """The tables a statement reads. With `merged_events`, an event may still name a profile merged
    since into another (the analytic store's copy), whose `merged_into` names the profile it is now.
    `typed` names the properties (by path) whose kind, number and string the event table also keeps
    in typed columns, `<prefix>_kind`, `<prefix>_number` and `<prefix>_string`, as (path, prefix).
    `identifier` (type, value and profile of each external id) and `graph` (the Data Graph resolved
    against the warehouse) are what `entity()` reads."""

    profile: Table
    event: Table
    trait: Table
    link: Table
    merged_events: bool = False
    typed: tuple[tuple[tuple[str, ...], str], ...] = ()
    identifier: Table | None = None
    graph: LinkedGraph | None = None


def span_ms(duration: ast.Duration) -> int:
    return duration.amount * UNIT_MS[duration.unit]


@dataclass(frozen=True)
class Scope:
    """Which profiles a statement covers and which events it may read.

    `profile_ids` restricts it to some profiles (the incremental path), given as values or as an
    expanding parameter bound when the statement runs (so one statement serves every batch);
    `conditions` are further conditions on the profile table (eligibility); `event_horizon(event)` is
    a condition every event read must meet (the audience's history options)."""

    space_id: str
    accounts: bool = False
    profile_ids: Collection[str] | BindParameter | None = None
    conditions: tuple[ColumnElement, ...] = ()
    event_horizon: Callable[[object], ColumnElement] | None = None


def audience_members(root: ast.Node, *, tables: Tables, scope: Scope, now: datetime) -> Select:
    """The ids of the live profiles (users, or accounts) that satisfy the audience definition at `now`."""
    compiler = Compiler(tables, now, scope)
    frame = compiler.top_frame()
    compiler.share_scan(root, frame)
    condition = compiler.boolean(root, frame)
    return compiler.profiles(select(tables.profile.c.id), frame).where(condition)


def matched_entity_rows(root: ast.Node, *, tables: Tables, scope: Scope, now: datetime,
                        columns: dict[str, Collection[str]] | None = None) -> list[MatchedStream]:
    """Each `entity()` stream of an audience definition that is not under a `NOT`, as a statement of
    the rows its `where`s keep for every profile (`backend.cql.matched` nests them per profile).
    `columns` names, per relationship slug, columns to read besides those the definition reads."""
    compiler = Compiler(tables, now, scope, columns or {})
    compiler.boolean(root, compiler.top_frame())
    return compiler.matched


def trait_values(root: ast.Node, *, tables: Tables, scope: Scope, now: datetime) -> Select:
    """Every live profile's id and computed-trait value at `now`, as JSON text (NULL for no value)."""
    compiler = Compiler(tables, now, scope)
    frame = compiler.top_frame()
    compiler.share_scan(root, frame)
    value = compiler.scalar(root, frame).json()
    return compiler.profiles(select(tables.profile.c.id, value.label("value")), frame)


@dataclass
class Frame:
    """The rows a condition is evaluated on, and the derived tables LEFT JOINed to them for it.

    A profile frame's rows are profiles (`keys` is the profile id); an event frame's rows are the
    events of a stream (`rows`, columns as `Compiler.candidates` names them) with the scope rows each
    belongs to (`keys` ends with the event id). `owner` is the profile whose traits and events are
    read; `account` says whether its events include its users'. `shared` holds reductions computed
    already (`Compiler.share_scan`), `traits` the trait values joined already, by key."""

    keys: tuple[ColumnElement, ...]
    owner: ColumnElement
    account: bool
    rows: FromClause | None = None
    restrict: Callable[[ColumnElement], list[ColumnElement]] = lambda owner: []
    joins: list[tuple[FromClause, ColumnElement]] = field(default_factory=list)
    shared: dict[ast.Reduction, object] = field(default_factory=dict)
    traits: dict[str, FromClause] = field(default_factory=dict)
    entity: EntityRows | None = None

    def joined(self, base: FromClause) -> FromClause:
        return _outer_joined(base, self.joins)

    def join_by_keys(self, derived: FromClause) -> None:
        self.joins.append((derived, and_(*(derived.c[f"k{i}"] == key for i, key in enumerate(self.keys)))))


@dataclass
class _Selection:
    """A stream's rows so far: `rows` (one per scope row and event, the scope keys first as k0…)
    narrowed by `conditions`, which may read derived tables in `joins`."""

    rows: FromClause
    width: int
    joins: list[tuple[FromClause, ColumnElement]] = field(default_factory=list)
    conditions: list[ColumnElement] = field(default_factory=list)

    @property
    def keys(self) -> list[ColumnElement]:
        return [self.rows.c[f"k{i}"] for i in range(self.width)]

    def select(self, *columns) -> Select:
        return select(*columns).select_from(_outer_joined(self.rows, self.joins)).where(*self.conditions)


def _outer_joined(base: FromClause, joins: list[tuple[FromClause, ColumnElement]]) -> FromClause:
    for table, on in joins:
        base = base.outerjoin(table, on)
    return base


class Compiler:
    """One definition compiled over `tables` for `scope` at `now`: each condition and value becomes
    an expression over a frame's rows, and the derived tables it reads are joined to that frame."""

    def __init__(self, tables: Tables, now: datetime, scope: Scope, columns: dict[str, Collection[str]] | None = None):
        self.tables = tables
        self.scope = scope
        self.now = now
        self.now_ms = to_ms(now)
        self.names = itertools.count(1)
        self.typed = dict(tables.typed)
        self.columns = columns or {}  # per relationship, entity columns read besides the definition's
        self.negations = 0  # how many NOTs enclose what is being compiled
        self.enclosing: list[tuple[int, str]] = []  # the entity() streams enclosing it: (number, relationship)
        self.matched: list[MatchedStream] = []

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(self.names)}"

    def chosen(self) -> list[str] | BindParameter:
        """The profile ids the statement is restricted to, as values or as a parameter bound later."""
        ids = self.scope.profile_ids
        return ids if isinstance(ids, BindParameter) else list(ids)

    # -- frames ----------------------------------------------------------------------------------

    def top_frame(self) -> Frame:
        profile, ids = self.tables.profile, self.scope.profile_ids
        restrict = (lambda owner: []) if ids is None else (lambda owner: [owner.in_(self.chosen())])
        return Frame((profile.c.id,), profile.c.id, self.scope.accounts, restrict=restrict)

    def profiles(self, statement: Select, frame: Frame) -> Select:
        profile, scope = self.tables.profile, self.scope
        statement = statement.select_from(frame.joined(profile)).where(
            profile.c.space_id == scope.space_id, profile.c.merged_into.is_(None),
            profile.c.collection == ("accounts" if scope.accounts else "users"), *scope.conditions)
        return statement if scope.profile_ids is None else statement.where(profile.c.id.in_(self.chosen()))

    def event_frame(self, rows: FromClause, width: int, account: bool) -> Frame:
        keys = tuple(rows.c[f"k{i}"] for i in range(width)) + (rows.c.id,)
        return Frame(keys, rows.c.owner, account, rows=rows)

    # -- booleans --------------------------------------------------------------------------------

    def boolean(self, node: ast.Node, frame: Frame) -> ColumnElement:
        if isinstance(node, ast.And):
            return and_(*(self.boolean(operand, frame) for operand in node.operands))
        if isinstance(node, ast.Or):
            return or_(*(self.boolean(operand, frame) for operand in node.operands))
        if isinstance(node, ast.Not):
            self.negations += 1
            try:
                return not_(self.boolean(node.operand, frame))
            finally:
                self.negations -= 1
        if isinstance(node, ast.Quantified):
            return self.quantified(node, frame)
        if isinstance(node, ast.Comparison):
            return func.coalesce(self.comparison(node, frame), false())
        raise CompileError(f"{type(node).__name__} is not a condition")

    def quantified(self, node: ast.Quantified, frame: Frame) -> ColumnElement:
        """Whether any (all) of an account's users satisfy the condition: the condition per link row,
        grouped by account (ALL is false for an account without users)."""
        link = self.tables.link.alias(self.name("l"))
        users = Frame((link.c.user_id,), link.c.user_id, account=False, restrict=self.users_restriction())
        holds = case((self.boolean(node.operand, users), 1), else_=0)
        grouped = select(link.c.account_id.label("k0"), func.max(holds).label("some"), func.min(holds).label("every"))
        grouped = grouped.select_from(users.joined(link)).where(link.c.space_id == self.scope.space_id,
                                                               *frame.restrict(link.c.account_id))
        derived = grouped.group_by(link.c.account_id).subquery(self.name("q"))
        frame.join_by_keys(derived)
        return func.coalesce(derived.c.some if node.quantifier == "ANY" else derived.c.every, 0) == 1

    def comparison(self, node: ast.Comparison, frame: Frame) -> ColumnElement:
        operands = iter([self.scalar(argument, frame) for argument in (node.subject, *node.arguments)
                         if not isinstance(argument, ast.Duration)])
        subject = next(operands)
        arguments = [argument if isinstance(argument, ast.Duration) else next(operands) for argument in node.arguments]
        return _COMPARATORS[node.comparator](self, subject, arguments)

    def users_restriction(self) -> Callable[[ColumnElement], list[ColumnElement]]:
        """Limits a user id to the users of the accounts computed (when the statement is restricted)."""
        ids = self.scope.profile_ids
        if ids is None:
            return lambda owner: []
        link = self.tables.link.alias(self.name("l"))
        chosen = select(link.c.user_id).where(link.c.account_id.in_(self.chosen()))
        return lambda owner: [owner.in_(chosen)]

    # -- scalars ---------------------------------------------------------------------------------

    def scalar(self, node: ast.Node, frame: Frame):
        if isinstance(node, ast.Literal):
            return ConstValue(node.value)
        if isinstance(node, ast.TraitRef):
            values = self.trait(node.path[0], frame).c
            if len(node.path) > 1:
                return JsonValue(values.value, node.path[1:])
            return TypedJsonValue(values.value, (), values.kind, values.number, values.string)
        if isinstance(node, ast.PropertyRef) and frame.entity is not None:
            return self.entity_property(node, frame)
        if isinstance(node, ast.PropertyRef):
            if frame.rows is None or (node.parent and "parent_properties" not in frame.rows.c):
                return ConstValue(None)
            return self.property(node, frame.rows)
        if isinstance(node, ast.ContextRef):
            if frame.rows is None or frame.entity is not None:
                return ConstValue(None)
            return JsonValue(frame.rows.c.context, node.path)
        if isinstance(node, ast.Reduction):
            return self.reduce(node, frame)
        raise CompileError(f"{type(node).__name__} is not a value")

    def trait(self, key: str, frame: Frame) -> FromClause:
        """The values of trait `key` (`k0` the profile, `value` its JSON, and its `kind`, `number` and
        `string` read once per trait row rather than once per use), joined to `frame` once."""
        values = frame.traits.get(key)
        if values is None:
            trait = self.tables.trait
            kind, number, string = JsonValue(trait.c.value).typed()
            values = select(trait.c.profile_id.label("k0"), trait.c.value, kind.label("kind"), number.label("number"),
                            string.label("string")).where(trait.c.key == key).subquery(self.name("t"))
            frame.joins.append((values, values.c.k0 == frame.owner))
            frame.traits[key] = values
        return values

    def property(self, node: ast.PropertyRef, rows: FromClause):
        """A property of the row's event (or its parent's), from its typed columns where it has them."""
        document = rows.c.parent_properties if node.parent else rows.c.properties
        prefix = self.typed.get(node.path)
        if prefix is None:
            return JsonValue(document, node.path)
        named = f"parent_{prefix}" if node.parent else prefix
        return TypedJsonValue(document, node.path, rows.c[f"{named}_kind"], rows.c[f"{named}_number"],
                              rows.c[f"{named}_string"])

    def reduce(self, node: ast.Reduction, frame: Frame):
        """The reduction of a stream per row of `frame`, as a column of a derived table joined to it."""
        if node in frame.shared:
            return frame.shared[node]
        stream = self.stream(node.stream, frame)
        keys = [key.label(f"k{i}") for i, key in enumerate(stream.keys)]
        reducer = node.reducer
        if reducer == "count":
            counted = func.count(stream.rows.c.pk.distinct()) if node.stream.source == "entity" else func.count()
            return NumberValue(func.coalesce(self.grouped(stream, keys, counted, frame), 0))
        if node.stream.source == "entity":
            raise CompileError(f"entity() streams are reduced with count() only, not {reducer}()")
        argument_frame = self.event_frame(stream.rows, stream.width, frame.account)
        argument = self.scalar(node.argument, argument_frame)
        stream.joins.extend(argument_frame.joins)
        if reducer in ("sum", "avg") or (reducer in ("min", "max") and node.as_type != "string"):
            value = self.grouped(stream, keys, getattr(func, reducer)(argument.plain_number()), frame)
            return NumberValue(func.coalesce(value, 0) if reducer == "sum" else value, real=True)
        text = argument.text()
        if reducer in ("min", "max"):
            return TextValue(self.grouped(stream, keys, getattr(func, reducer)(binary(text)), frame))
        if reducer in ("first", "last"):
            order = (stream.rows.c.ts, stream.rows.c.id) if reducer == "first" else (
                stream.rows.c.ts.desc(), stream.rows.c.id.desc())
            stream.conditions.append(not_(argument.missing()))
            return JsonValue(self.picked(stream.select(*keys, argument.json().label("v")), stream.keys, order, frame))
        stream.conditions.append(text.is_not(None))
        texts = stream.select(*keys, text.label("v")).subquery(self.name("s"))
        text_keys = [texts.c[f"k{i}"] for i in range(len(keys))]
        if reducer == "mode":
            count = func.count().label("c")
            often = select(*text_keys, texts.c.v, count).group_by(*text_keys, texts.c.v).having(
                func.count() >= (node.min_frequency or 1))
            best = often.subquery(self.name("m"))
            best_keys = [best.c[f"k{i}"] for i in range(len(keys))]
            picked = self.picked(select(*best_keys, best.c.v), best_keys, (best.c.c.desc(), binary(best.c.v)), frame)
            return NumberValue(spelled_number(picked), real=True) if node.as_type == "number" else TextValue(picked)
        if reducer == "unique_count":
            value = self.derived(select(*text_keys, func.count(texts.c.v.distinct()).label("v")).group_by(*text_keys),
                                 frame)
            return NumberValue(func.coalesce(value, 0))
        if reducer == "unique":
            distinct = select(*text_keys, texts.c.v).group_by(*text_keys, texts.c.v).order_by(*text_keys, binary(texts.c.v))
            ordered = distinct.subquery(self.name("u"))
            ordered_keys = [ordered.c[f"k{i}"] for i in range(len(keys))]
            value = self.derived(select(*ordered_keys, json_array_of(ordered.c.v).label("v")).group_by(*ordered_keys),
                                 frame)
            return ListValue(func.coalesce(value, "[]"))
        raise CompileError(f"unknown reducer {reducer}")

    def grouped(self, stream: _Selection, keys: list, aggregate: ColumnElement, frame: Frame) -> ColumnElement:
        return self.derived(stream.select(*keys, aggregate.label("v")).group_by(*stream.keys), frame)

    def derived(self, statement: Select, frame: Frame) -> ColumnElement:
        """`statement`'s `v` column for each row of `frame`, by a derived table joined on its keys."""
        derived = statement.subquery(self.name("d"))
        frame.join_by_keys(derived)
        return derived.c.v

    def picked(self, statement: Select, keys: list[ColumnElement], order, frame: Frame) -> ColumnElement:
        """The `v` of the first row of `statement` (keyed by `keys`, its k0… columns) in `order`, per
        row of `frame`. The first rows are grouped by their keys (one row each already): SQLite never
        indexes a subquery with a window function for a join, and would scan it once per frame row,
        but it does index a grouped one."""
        place = func.row_number().over(partition_by=keys, order_by=order).label("n")
        ranked = statement.add_columns(place).subquery(self.name("r"))
        ranked_keys = [ranked.c[f"k{i}"] for i in range(len(keys))]
        first = select(*ranked_keys, func.max(ranked.c.v).label("v")).where(ranked.c.n == 1).group_by(*ranked_keys)
        return self.derived(first, frame)

    # -- one scan for several reductions ----------------------------------------------------------

    def share_scan(self, root: ast.Node, frame: Frame) -> None:
        """Compute the definition's plain aggregates over event streams (`count`, `sum`, `avg`, `min`,
        `max` of streams whose filters each look at one event) in one grouped scan of the events,
        each a conditional aggregate, rather than one scan each. A lone one keeps its own."""
        found = list(dict.fromkeys(node for node in profile_level(root) if shareable(node)))
        if len(found) < 2:
            return
        rows = self.candidates(sorted({node.stream.name for node in found}), frame,
                               windowed=all(_windowed(node.stream) for node in found))
        events = self.event_frame(rows, 1, frame.account)
        aggregates = [self.conditional(node, rows, events) for node in found]
        derived = select(rows.c.k0.label("k0"), *(aggregate.label(f"v{index}") for index, aggregate in
                                                  enumerate(aggregates))).group_by(rows.c.k0).subquery(self.name("a"))
        frame.join_by_keys(derived)
        for index, node in enumerate(found):
            value = derived.c[f"v{index}"]
            if node.reducer == "count":
                frame.shared[node] = NumberValue(func.coalesce(value, 0))
            elif node.reducer in ("min", "max") and node.as_type == "string":
                frame.shared[node] = TextValue(value)
            else:
                frame.shared[node] = NumberValue(func.coalesce(value, 0) if node.reducer == "sum" else value, real=True)

    def conditional(self, node: ast.Reduction, rows: FromClause, events: Frame) -> ColumnElement:
        """`node`'s aggregate over the rows of its stream among `rows` (its name and filters)."""
        conditions = [rows.c.event == node.stream.name]
        for step in node.stream.filters:
            conditions.append(self.boolean(step.condition, events) if isinstance(step, ast.Where)
                              else self.row_step(step, rows))
        condition = and_(*conditions)
        if node.reducer == "count":
            return func.count(case((condition, 1)))
        argument = self.scalar(node.argument, events)
        if node.reducer in ("min", "max") and node.as_type == "string":
            return getattr(func, node.reducer)(binary(case((condition, argument.text()))))
        return getattr(func, node.reducer)(case((condition, argument.plain_number())))

    # -- streams ---------------------------------------------------------------------------------

    def stream(self, node: ast.Stream, frame: Frame) -> _Selection:
        """The stream's events for each row of `frame`, narrowed by its filters in order."""
        if node.source == "entity":
            return self.entity_stream(node, frame)
        pushed = _pushed_down(node.filters)
        candidates = self.candidates([node.name], frame, windowed=_windowed(node),
                                     steps=[node.filters[index] for index in sorted(pushed)])
        selection = _Selection(candidates, len(frame.keys))
        for index, step in enumerate(node.filters):
            if index in pushed:
                continue
            if isinstance(step, ast.ExpiresAfter):
                selection = _Selection(self.latest_session(selection, span_ms(step.duration)), selection.width)
            elif isinstance(step, ast.Where):
                inner = self.event_frame(selection.rows, selection.width, frame.account)
                selection.conditions.append(self.boolean(step.condition, inner))
                selection.joins.extend(inner.joins)
            else:
                selection.conditions.append(self.row_step(step, selection.rows))
        return selection

    def entity_stream(self, node: ast.Stream, frame: Frame) -> _Selection:
        """The entity rows linked to each row of `frame`, narrowed by the stream's `where`s."""
        linked = self.linked_node(node, frame)
        rows, entity = entity_candidates(self, linked, node, frame, frame.entity)
        selection = _Selection(rows, len(frame.keys))
        self.enclosing.append((next(self.names), linked.slug))
        try:
            for step in node.filters:
                if not isinstance(step, ast.Where):
                    raise CompileError("entity() streams take where(...) only")
                keys = tuple(rows.c[f"k{i}"] for i in range(selection.width)) + (rows.c.pk,)
                inner = Frame(keys, rows.c.owner, False, rows=rows, entity=entity)
                selection.conditions.append(self.boolean(step.condition, inner))
                selection.joins.extend(inner.joins)
            if not self.negations:
                self.matched.append(self.matched_stream(node, selection, entity))
        finally:
            self.enclosing.pop()
        return selection

    def matched_stream(self, node: ast.Stream, selection: _Selection, entity: EntityRows) -> MatchedStream:
        """The rows an entity() stream keeps: its scope's keys (the profile, then the primary keys of
        the enclosing streams' rows), its row's primary key and the columns shown for it."""
        shown = shown_columns(node, entity.node, self.columns.get(entity.node.slug, ()))
        rows = selection.rows
        statement = selection.select(*(key.label(f"k{index}") for index, key in enumerate(selection.keys)),
                                     rows.c.pk.label("pk"),
                                     *(rows.c[entity.columns[name.lower()][0]].label(f"v{index}")
                                       for index, name in enumerate(shown)))
        numbers = [number for number, _ in self.enclosing]
        return MatchedStream(tuple(slug for _, slug in self.enclosing), entity.node.primary_key, tuple(shown),
                             statement, numbers[-1], numbers[-2] if len(numbers) > 1 else None)

    def linked_node(self, node: ast.Stream, frame: Frame) -> LinkedNode:
        """The relationship an entity() names: one under the profile at the top, else a child of the
        enclosing entity's relationship."""
        graph = self.tables.graph
        if graph is None or self.tables.identifier is None:
            raise CompileError("entity() reads a Data Graph, and this space has none; set one with "
                               "segment_audiences_update_data_graph")
        if frame.rows is not None and frame.entity is None:
            raise CompileError("entity() cannot be read inside an event's where(...)")
        choices = graph.top if frame.entity is None else frame.entity.node.children
        if node.name not in choices:
            where = "under the profile" if frame.entity is None else f"under '{frame.entity.node.slug}'"
            raise CompileError(f"the Data Graph has no relationship '{node.name}' {where}; there: "
                               f"{', '.join(sorted(choices)) or 'none'}")
        return choices[node.name]

    def entity_property(self, node: ast.PropertyRef, frame: Frame) -> ColumnValue:
        """A column of the frame's entity row (or, with `parent:`, of its parent's row)."""
        columns = frame.entity.parent if node.parent else frame.entity.columns
        found = columns.get(node.path[0].lower())
        if found is None:
            raise CompileError(f"property('{node.path[0]}') is not a column this entity() reads")
        label, family = found
        return ColumnValue(frame.rows.c[label], family)

    def candidates(self, names: list[str], frame: Frame, *, windowed: bool = False, steps=()) -> FromClause:
        """The events of each row's owner with one of `names`, one row per (frame row, event): columns
        k0… (the frame's keys), owner, id, event, ts, properties, context, source_id, the typed property
        columns, and in an event frame the parent event's ts, properties and typed columns. `windowed`
        says the stream keeps only a time window of them (read through the profile-and-time index,
        whose entries already say which events are in it); `steps` (time and source filters) narrow
        them here already."""
        event = self.tables.event.alias(self.name("e"))
        named = event.c.event == names[0] if len(names) == 1 else event.c.event.in_(names)
        conditions = [named, event.c.space_id == self.scope.space_id]
        if self.scope.event_horizon is not None:
            conditions.append(self.scope.event_horizon(event))
        source, profile_of_event = self.event_profile(event)
        parent = frame.rows
        if frame.account:
            owners = self.owners()
            source, owner = source.join(owners, owners.c.member == profile_of_event), owners.c.owner
        else:
            owner = profile_of_event
        typed = [f"{prefix}_{part}" for prefix in self.typed.values() for part in ("kind", "number", "string")]
        conditions.extend(self.step(step, event.c.timestamp_ms, event.c.source_id,
                                    None if parent is None else parent.c.ts) for step in steps)
        if parent is None:
            keys, extra = [unindexed(owner) if self.scope.profile_ids is None and not windowed else owner], []
            conditions.extend(frame.restrict(owner))
        else:
            source = source.join(parent, parent.c.owner == owner)
            keys = list(frame.keys)
            extra = [parent.c.ts.label("parent_ts"), parent.c.properties.label("parent_properties"),
                     *(parent.c[name].label(f"parent_{name}") for name in typed)]
        columns = [key.label(f"k{i}") for i, key in enumerate(keys)] + [
            owner.label("owner"), event.c.id, event.c.event, event.c.timestamp_ms.label("ts"), event.c.properties,
            event.c.context, event.c.source_id, *(event.c[name] for name in typed), *extra]
        return select(*columns).select_from(source).where(*conditions).subquery(self.name("c"))

    def event_profile(self, event) -> tuple[FromClause, ColumnElement]:
        """The event table joined to what says whose an event is now, and that profile's id."""
        if not self.tables.merged_events:
            return event, event.c.profile_id
        profile = self.tables.profile
        merged = select(profile.c.id, profile.c.merged_into).where(profile.c.merged_into.is_not(None)).subquery(
            self.name("m"))
        return (event.outerjoin(merged, merged.c.id == event.c.profile_id),
                func.coalesce(merged.c.merged_into, event.c.profile_id))

    def owners(self) -> FromClause:
        """Each account of the space with its members: itself and its users."""
        profile, link, space = self.tables.profile, self.tables.link, self.scope.space_id
        accounts = select(profile.c.id.label("owner"), profile.c.id.label("member")).where(
            profile.c.space_id == space, profile.c.collection == "accounts", profile.c.merged_into.is_(None))
        users = select(link.c.account_id.label("owner"), link.c.user_id.label("member")).where(link.c.space_id == space)
        return union_all(accounts, users).subquery(self.name("o"))

    def row_step(self, step, rows: FromClause) -> ColumnElement:
        """A time or source filter on candidate rows (`candidates`' columns)."""
        return self.step(step, rows.c.ts, rows.c.source_id, rows.c.parent_ts if "parent_ts" in rows.c else None)

    def step(self, step, time: ColumnElement, source_id: ColumnElement,
             parent_time: ColumnElement | None) -> ColumnElement:
        """A time or source filter on an event with these columns (and its parent event's time)."""
        if isinstance(step, ast.Sources):
            return source_id.not_in(step.exclude)
        if isinstance(step, ast.Within):
            if not step.parent:
                return time >= self.now_ms - span_ms(step.duration)
            if parent_time is None:
                return false()
            return and_(time > parent_time, time <= parent_time + span_ms(step.duration))
        if isinstance(step, ast.Between):
            return and_(time >= self.now_ms - span_ms(step.end), time <= self.now_ms - span_ms(step.start))
        raise CompileError(f"unknown stream filter {type(step).__name__}")

    def latest_session(self, selection: _Selection, gap: int) -> FromClause:
        """The rows of the latest session per scope row: from the last event with no predecessor
        closer than `gap`, provided the last event is less than `gap` ago."""
        rows = selection.select(*selection.rows.c).subquery(self.name("x"))
        keys = [rows.c[f"k{i}"] for i in range(selection.width)]
        previous = func.lag(nullable(rows.c.ts)).over(partition_by=keys, order_by=(rows.c.ts, rows.c.id))
        timed = select(rows, previous.label("previous_ts"),
                       func.max(rows.c.ts).over(partition_by=keys).label("latest_ts")).subquery(self.name("x"))
        opens = case((or_(timed.c.previous_ts.is_(None), timed.c.ts - timed.c.previous_ts >= gap), timed.c.ts))
        keys = [timed.c[f"k{i}"] for i in range(selection.width)]
        sessions = select(timed, func.max(opens).over(partition_by=keys).label("session_ts")).subquery(self.name("x"))
        latest = select(*(sessions.c[column.name] for column in rows.c)).where(
            sessions.c.latest_ts > self.now_ms - gap, sessions.c.ts >= sessions.c.session_ts)
        return latest.subquery(self.name("x"))

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


def profile_level(node: ast.Node):
    """The reductions a definition reads per profile: not those inside a stream's `where` (read per
    event) or under `ANY`/`ALL` (read per user)."""
    if isinstance(node, ast.Reduction):
        yield node
    elif isinstance(node, (ast.And, ast.Or)):
        for operand in node.operands:
            yield from profile_level(operand)
    elif isinstance(node, ast.Not):
        yield from profile_level(node.operand)
    elif isinstance(node, ast.Comparison):
        for operand in (node.subject, *node.arguments):
            yield from profile_level(operand)


def _pushed_down(filters) -> set[int]:
    """The positions of a stream's time and source filters that can narrow its candidates: each
    decides on one event alone, as do the `where`s around them, so their order does not matter up to
    the first `expires_after` (which reads the events kept so far together)."""
    pushed = set()
    for index, step in enumerate(filters):
        if isinstance(step, ast.ExpiresAfter):
            break
        if isinstance(step, (ast.Sources, ast.Within, ast.Between)):
            pushed.add(index)
    return pushed


def _windowed(stream: ast.Stream) -> bool:
    """Whether the stream keeps only events in a window of time from now."""
    return any(isinstance(step, ast.Between) or (isinstance(step, ast.Within) and not step.parent)
               for step in stream.filters)


def shareable(node: ast.Reduction) -> bool:
    """A plain aggregate over a stream whose filters each decide on one event alone."""
    if node.reducer not in ("count", "sum", "avg", "min", "max") or node.stream.source != "event":
        return False
    for step in node.stream.filters:
        if isinstance(step, ast.ExpiresAfter) or (isinstance(step, ast.Within) and step.parent):
            return False
        if isinstance(step, ast.Where) and any(isinstance(inner, (ast.Reduction, ast.TraitRef))
                                               for inner in walk(step.condition)):
            return False
    return True


def _ordered(operator):
    return lambda compiler, subject, arguments: operator(subject.number(), arguments[0].number())


def _contains(compiler, subject: Value, arguments: list[Value]) -> ColumnElement:
    string = subject.string()
    return or_(*(position(string, part.text()) > 0 for part in arguments))


def _starts_with(compiler, subject: Value, arguments: list[Value]) -> ColumnElement:
    string, affix = subject.string(), arguments[0].text()
    return text_part(string, 1, text_length(affix)) == affix


def _ends_with(compiler, subject: Value, arguments: list[Value]) -> ColumnElement:
    string, affix = subject.string(), arguments[0].text()
    tail = text_part(string, text_length(string) - text_length(affix) + 1)
    return and_(text_length(string) >= text_length(affix), tail == affix)


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
