"""The reference evaluator: a CQL definition evaluated directly over one profile's events and traits.

It is the oracle the SQL compiler is checked against, so it favours plain, literal code over speed.
Where Segment's documents are silent it decides as follows (the compiler must agree):

- Time windows use the event `timestamp`. `within(N unit)` keeps events with `now - N <= timestamp`;
  `between(a, b)` keeps `now - b <= timestamp <= now - a`; `within(parent: N)` keeps events strictly
  after the parent event and at most N after it.
- A nested `event(...)` inside `where` is evaluated once per outer event, which is its parent for
  `within(parent: ...)` and `property(parent: ...)`; without those it looks at the whole profile.
- Values are read as `backend.cql.values` says (numbers, text, instants). Ordering comparators need
  two numbers. `null` never equals, differs, contains, starts or ends with anything, and is neither
  `one_of` nor `none_of` a list; `omits` is `NOT contains`, so it is true for `null`. `absent`/`exists`
  test for `null`.
- Reducers skip `null`s. `count` counts events; `sum` adds JSON numbers (0 for none); `avg` is `null`
  for none; `min`/`max` compare JSON numbers, or text with `as string`; `mode` is the most frequent
  text seen at least `minFrequency` times (default 1), ties to the alphabetically first, as a number
  with `as number`; `first`/`last` take the earliest/latest non-null value by timestamp (ties: arrival
  order); `unique` is the distinct texts, sorted.
- Dates: `before_date`/`after_date` compare instants; `within_last`, `within_next`, `before_last`,
  `after_next` with days compare UTC calendar days, inclusive, and with hours or seconds compare
  instants. A value that is not an instant matches none.
- `expires_after(d)` keeps the latest session: the events after the last gap of at least `d`, and
  none once `d` has passed since the last event.
- ACCOUNTS: `ANY`/`ALL` apply the user-level condition to the account's users; `ALL` is false for an
  account without users. Unquantified conditions read the account's traits, and its events are all
  of its users' events.
- LINKED: `entity('<slug>')` is the profile's linked rows of that relationship (`ProfileData.entities`),
  or inside an entity's `where` the current row's children of that relationship; `count()` counts
  distinct primary keys. `property('COL')` reads the current row's column (any case), `property(parent:
  'COL')` its parent row's. A date column reads as `yyyy-mm-dd`, a timestamp as `yyyy-mm-ddThh:mm:ssZ`
  in UTC, as the compiler renders them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from backend.cql import ast
from backend.cql.analysis import children
from backend.cql.matched import json_value
from backend.cql.values import equal, instant, number, plain_number, text


class EvaluationError(ValueError):
    """A definition this evaluator cannot evaluate on the data given (e.g. entities without a
    linked data graph)."""


@dataclass(frozen=True)
class EventRecord:
    name: str
    timestamp: datetime
    properties: dict
    context: dict = field(default_factory=dict)
    source_id: str = ""


@dataclass(frozen=True)
class EntityRecord:
    """One entity row linked to a profile (or to its parent row): its primary key, its columns, and
    the rows linked to it, by relationship slug."""

    key: object
    columns: dict
    children: dict = field(default_factory=dict)  # slug -> Sequence[EntityRecord]


@dataclass(frozen=True)
class ProfileData:
    """One user (or, for ACCOUNTS, one account with `users`) as the evaluator sees it; `entities` are
    its linked rows per top-level relationship (LINKED)."""

    events: Sequence[EventRecord] = ()
    traits: dict = field(default_factory=dict)
    users: Sequence[ProfileData] = ()
    entities: dict = field(default_factory=dict)  # slug -> Sequence[EntityRecord]


def is_member(definition: ast.Node, profile: ProfileData, now: datetime) -> bool:
    """Whether the profile satisfies an audience definition at `now`."""
    return _Evaluator(now).boolean(definition, _Scope(profile, _all_events(profile), None)) is True


def trait_value(definition: ast.Node, profile: ProfileData, now: datetime) -> object:
    """The value of a computed-trait definition for the profile at `now` (None when it has none)."""
    return _Evaluator(now).scalar(definition, _Scope(profile, _all_events(profile), None))


def matched_paths(definition: ast.Node, profile: ProfileData, now: datetime) -> set[tuple[tuple[str, str], ...]]:
    """The profile's matched entity rows (`backend.cql.matched`), each as its path of (relationship,
    primary key as text) from the profile: the rows every entity() condition not under a NOT keeps,
    and under each the rows its nested conditions keep for it."""
    evaluator, found = _Evaluator(now), set()

    def visit(node: object, scope: _Scope, above: tuple, negated: bool) -> None:
        if isinstance(node, ast.Not):
            negated = True
        if isinstance(node, ast.Stream) and node.source == "entity":
            for row in evaluator.entities(node, scope):
                path = (*above, (node.name, str(row.key)))
                if not negated:
                    found.add(path)
                inner = _Scope(scope.profile, scope.events, None, entity=row, parent_entity=scope.entity)
                for step in node.filters:
                    visit(step, inner, path, negated)
            return
        for child in children(node):
            visit(child, scope, above, negated)

    visit(definition, _Scope(profile, _all_events(profile), None), (), False)
    return found


@dataclass(frozen=True)
class _Scope:
    profile: ProfileData
    events: Sequence[EventRecord]
    event: EventRecord | None
    parent: EventRecord | None = None
    entity: EntityRecord | None = None
    parent_entity: EntityRecord | None = None


def _all_events(profile: ProfileData) -> list[EventRecord]:
    events = list(profile.events)
    for user in profile.users:
        events.extend(user.events)
    return events


class _Evaluator:
    def __init__(self, now: datetime):
        self.now = now.astimezone(timezone.utc)

    # -- booleans --------------------------------------------------------------------------------

    def boolean(self, node: ast.Node, scope: _Scope) -> bool:
        if isinstance(node, ast.And):
            return all(self.boolean(operand, scope) for operand in node.operands)
        if isinstance(node, ast.Or):
            return any(self.boolean(operand, scope) for operand in node.operands)
        if isinstance(node, ast.Not):
            return not self.boolean(node.operand, scope)
        if isinstance(node, ast.Quantified):
            users = scope.profile.users
            results = [self.boolean(node.operand, _Scope(user, list(user.events), None)) for user in users]
            return any(results) if node.quantifier == "ANY" else bool(results) and all(results)
        if isinstance(node, ast.Comparison):
            return self.comparison(node, scope)
        raise EvaluationError(f"{type(node).__name__} is not a condition")

    def comparison(self, node: ast.Comparison, scope: _Scope) -> bool:
        subject = self.scalar(node.subject, scope)
        arguments = [argument if isinstance(argument, ast.Duration) else self.scalar(argument, scope)
                     for argument in node.arguments]
        return _COMPARATORS[node.comparator](self, subject, arguments)

    # -- scalars ---------------------------------------------------------------------------------

    def scalar(self, node: ast.Node, scope: _Scope) -> object:
        if isinstance(node, ast.Literal):
            return node.value
        if isinstance(node, ast.TraitRef):
            return _lookup(scope.profile.traits, node.path)
        if isinstance(node, ast.PropertyRef) and scope.entity is not None:
            row = scope.parent_entity if node.parent else scope.entity
            return None if row is None else _column(row, node.path[0])
        if isinstance(node, ast.PropertyRef):
            event = scope.parent if node.parent else scope.event
            return None if event is None else _lookup(event.properties, node.path)
        if isinstance(node, ast.ContextRef):
            return None if scope.event is None else _lookup(scope.event.context, node.path)
        if isinstance(node, ast.Reduction):
            return self.reduce(node, scope)
        raise EvaluationError(f"{type(node).__name__} is not a value")

    def entities(self, node: ast.Stream, scope: _Scope) -> list[EntityRecord]:
        linked = scope.entity.children if scope.entity is not None else scope.profile.entities
        rows = list(linked.get(node.name, ()))
        for step in node.filters:
            if not isinstance(step, ast.Where):
                raise EvaluationError("entity() streams take where(...) only")
            rows = [row for row in rows if self.boolean(step.condition, _Scope(
                scope.profile, scope.events, None, entity=row, parent_entity=scope.entity))]
        return rows

    def stream(self, node: ast.Stream, scope: _Scope) -> list[EventRecord]:
        parent = scope.event
        events = [e for e in scope.events if e.name == node.name]
        for step in node.filters:
            events = self.filter(step, events, scope, parent)
        return sorted(events, key=lambda e: e.timestamp)

    def filter(self, step, events: list[EventRecord], scope: _Scope, parent: EventRecord | None) -> list[EventRecord]:
        if isinstance(step, ast.Where):
            return [e for e in events
                    if self.boolean(step.condition, _Scope(scope.profile, scope.events, e, parent))]
        if isinstance(step, ast.Sources):
            return [e for e in events if e.source_id not in step.exclude]
        if isinstance(step, ast.Within):
            span = _span(step.duration)
            if step.parent:
                if parent is None:
                    return []
                return [e for e in events if parent.timestamp < e.timestamp <= parent.timestamp + span]
            return [e for e in events if self.now - span <= e.timestamp]
        if isinstance(step, ast.Between):
            return [e for e in events if self.now - _span(step.end) <= e.timestamp <= self.now - _span(step.start)]
        if isinstance(step, ast.ExpiresAfter):
            return self.latest_session(events, _span(step.duration))
        raise EvaluationError(f"unknown stream filter {type(step).__name__}")

    def latest_session(self, events: list[EventRecord], gap: timedelta) -> list[EventRecord]:
        ordered = sorted(events, key=lambda e: e.timestamp)
        if not ordered or self.now - ordered[-1].timestamp >= gap:
            return []
        start = len(ordered) - 1
        while start > 0 and ordered[start].timestamp - ordered[start - 1].timestamp < gap:
            start -= 1
        return ordered[start:]

    def reduce(self, node: ast.Reduction, scope: _Scope) -> object:
        if node.stream.source == "entity":
            if node.reducer != "count":
                raise EvaluationError("entity() streams are reduced with count() only")
            return len({row.key for row in self.entities(node.stream, scope)})
        events = self.stream(node.stream, scope)
        if node.reducer == "count":
            return len(events)
        values = [value for e in events
                  if (value := self.scalar(node.argument, _Scope(scope.profile, scope.events, e, scope.event))) is not None]
        return _REDUCERS[node.reducer](values, node)


# -- values ----------------------------------------------------------------------------------------


def _lookup(data: object, path: tuple[str, ...]) -> object:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _column(row: EntityRecord, name: str) -> object:
    """A column of an entity row, matched case-insensitively, dates and times as ISO-8601 text."""
    wanted = name.lower()
    return json_value(next((value for column, value in row.columns.items() if column.lower() == wanted), None))


def _span(duration: ast.Duration) -> timedelta:
    return timedelta(hours=duration.hours)


def _ordered(op):
    def compare(_, subject: object, arguments: list) -> bool:
        a, b = number(subject), number(arguments[0])
        return a is not None and b is not None and op(a, b)

    return compare


def _relative(kind: str):
    """`within_last`, `within_next`, `before_last`, `after_next`: days compare UTC dates inclusively."""

    def compare(evaluator: _Evaluator, subject: object, arguments: list) -> bool:
        moment = instant(subject)
        if moment is None:
            return False
        duration: ast.Duration = arguments[0]
        if duration.unit == "days":
            value, today = moment.date(), evaluator.now.date()
            span = timedelta(days=duration.amount)
        else:
            value, today, span = moment, evaluator.now, _span(duration)
        return {
            "within_last": today - span <= value <= today,
            "within_next": today <= value <= today + span,
            "before_last": value <= today - span,
            "after_next": value >= today + span,
        }[kind]

    return compare


def _dated(before: bool):
    def compare(_, subject: object, arguments: list) -> bool:
        moment, bound = instant(subject), instant(arguments[0])
        if moment is None or bound is None:
            return False
        return moment < bound if before else moment > bound

    return compare


def _contains(_, subject: object, arguments: list) -> bool:
    return isinstance(subject, str) and any((part := text(argument)) is not None and part in subject
                                            for argument in arguments)


def _affix(check):
    def compare(_, subject: object, arguments: list) -> bool:
        affix = text(arguments[0])
        return isinstance(subject, str) and affix is not None and check(subject, affix)

    return compare


_COMPARATORS = {
    "equals": lambda _, s, a: equal(s, a[0]),
    "differs": lambda _, s, a: s is not None and a[0] is not None and not equal(s, a[0]),
    "absent": lambda _, s, a: s is None,
    "exists": lambda _, s, a: s is not None,
    "greater_than": _ordered(lambda x, y: x > y),
    "at_least": _ordered(lambda x, y: x >= y),
    "less_than": _ordered(lambda x, y: x < y),
    "at_most": _ordered(lambda x, y: x <= y),
    "contains": _contains,
    "omits": lambda e, s, a: not _contains(e, s, a),
    "starts_with": _affix(str.startswith),
    "ends_with": _affix(str.endswith),
    "one_of": lambda _, s, a: any(equal(s, value) for value in a),
    "none_of": lambda _, s, a: s is not None and not any(equal(s, value) for value in a),
    "before_date": _dated(before=True),
    "after_date": _dated(before=False),
    "within_last": _relative("within_last"),
    "within_next": _relative("within_next"),
    "before_last": _relative("before_last"),
    "after_next": _relative("after_next"),
}


# -- reducers --------------------------------------------------------------------------------------


def _numbers(values: list) -> list:
    return [n for value in values if (n := plain_number(value)) is not None]


def _texts(values: list) -> list[str]:
    return [t for value in values if (t := text(value)) is not None]


def _sum(values: list, node: ast.Reduction) -> float:
    return sum(_numbers(values))


def _avg(values: list, node: ast.Reduction) -> float | None:
    numbers = _numbers(values)
    return sum(numbers) / len(numbers) if numbers else None


def _extreme(pick):
    def reduce(values: list, node: ast.Reduction) -> object:
        candidates = _texts(values) if node.as_type == "string" else _numbers(values)
        return pick(candidates) if candidates else None

    return reduce


def _mode(values: list, node: ast.Reduction) -> object:
    counts = Counter(_texts(values))
    least = node.min_frequency or 1
    candidates = [(-count, value) for value, count in counts.items() if count >= least]
    if not candidates:
        return None
    best = min(candidates)[1]
    return number(best) if node.as_type == "number" else best


def _unique(values: list, node: ast.Reduction) -> list[str]:
    return sorted(set(_texts(values)))


_REDUCERS = {
    "sum": _sum,
    "avg": _avg,
    "min": _extreme(min),
    "max": _extreme(max),
    "mode": _mode,
    "first": lambda values, node: values[0] if values else None,
    "last": lambda values, node: values[-1] if values else None,
    "unique": _unique,
    "unique_count": lambda values, node: len(_unique(values, node)),
}
