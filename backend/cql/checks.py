"""Semantic checks on a parsed definition: types, placement rules and per-product restrictions.

Rules (from `reference/engine-semantics.md` §1.2–1.5), plus the choices made where it is silent:
- an audience is a boolean expression; a computed trait is a reducer over an `event()` stream;
- `property()`/`context()` only inside `where(...)` or as a reducer's argument;
- `within(parent: …)` only on a stream nested in another stream's `where`, and `property(parent: …)`
  only inside such a nested stream's `where`;
- `ANY`/`ALL` only in ACCOUNTS audiences, at the top level (not inside `where`), not nested;
- `entity()` only in LINKED audiences, with `.where(...)` as its only filter (entities have no time)
  and `count()` as its only reducer; an entity's `where` reads its columns (one name, no dotted
  path), traits and nested entities, never an event or a context; an event's `where` reads no
  entity; a count of 0 (`= 0`, `<= 0`, `< 1`) takes no filter, as in Segment's builder. Whether a
  relationship and its columns exist, and their types, is checked against the Data Graph
  (`backend.cql.linked_checks`);
- `expires_after` only in computed traits (session windows, 30 minutes to 90 days);
- numeric comparators take numbers or references, date comparators ISO-8601 dates, `within_last`
  and friends hours or days; a stream has at most one time window; `between(a, b)` needs a < b.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from backend.cql import ast
from backend.cql.errors import CQLError

NUMERIC_COMPARATORS = {"greater_than", "at_least", "less_than", "at_most"}
TEXT_COMPARATORS = {"contains", "omits", "starts_with", "ends_with"}
DATE_COMPARATORS = {"before_date", "after_date"}
REFERENCES = (ast.TraitRef, ast.PropertyRef, ast.ContextRef)
SESSION_WINDOW_HOURS = (0.5, 90 * 24)


@dataclass(frozen=True)
class _Scope:
    stream_depth: int = 0  # how many enclosing where(...) clauses of streams
    quantified: bool = False
    inside: str | None = None  # the source ("event" | "entity") of the innermost enclosing stream


def check(root: ast.Node, *, kind: str, audience_type: str) -> None:
    """Raise `CQLError` if `root` is not a valid `kind` ("audience" | "computed_trait") definition."""
    _Checker(kind, audience_type).definition(root)


class _Checker:
    def __init__(self, kind: str, audience_type: str):
        self.kind = kind
        self.audience_type = audience_type

    def definition(self, root: ast.Node) -> None:
        if self.kind == "audience":
            self.boolean(root, _Scope())
            return
        if not isinstance(root, ast.Reduction):
            raise CQLError(
                "a computed trait must reduce an event stream to one value, "
                "for example event('Order Completed').within(30 days).sum(property('revenue'))",
                root.position,
            )
        self.scalar(root, _Scope())

    def boolean(self, node: ast.Node, scope: _Scope) -> None:
        if isinstance(node, (ast.And, ast.Or)):
            for operand in node.operands:
                self.boolean(operand, scope)
        elif isinstance(node, ast.Not):
            self.boolean(node.operand, scope)
        elif isinstance(node, ast.Quantified):
            self.quantified(node, scope)
        elif isinstance(node, ast.Comparison):
            self.comparison(node, scope)
        elif isinstance(node, ast.Stream):
            raise CQLError(
                f"{node.source}('{node.name}') is a stream, not a condition; reduce and compare it, "
                f"for example {node.source}('{node.name}').count() >= 1",
                node.position,
            )
        else:
            raise CQLError(
                "this is a value, not a condition; compare it, for example with = 'value' or .exists()",
                node.position,
            )

    def quantified(self, node: ast.Quantified, scope: _Scope) -> None:
        if self.kind != "audience" or self.audience_type != "ACCOUNTS":
            raise CQLError(f"{node.quantifier} is only valid in ACCOUNTS audiences", node.position)
        if scope.stream_depth or scope.quantified:
            raise CQLError(f"{node.quantifier} cannot be nested inside where(...) or another ANY/ALL", node.position)
        self.boolean(node.operand, replace(scope, quantified=True))

    def comparison(self, node: ast.Comparison, scope: _Scope) -> None:
        subject = node.subject
        self.scalar(subject, scope)
        if isinstance(subject, ast.Reduction) and subject.reducer == "unique":
            raise CQLError("unique(...) returns a list; compare its size with .unique(...).count()", node.position)
        if isinstance(subject, ast.Reduction) and subject.stream.source == "entity":
            self.entity_count(node, subject)
        for argument in node.arguments:
            if not isinstance(argument, ast.Duration):
                self.scalar(argument, scope)
        self.arguments(node)

    def entity_count(self, node: ast.Comparison, subject: ast.Reduction) -> None:
        if subject.reducer != "count":
            raise CQLError(f"entity() streams are reduced with count() only, not {subject.reducer}(), for example "
                           f"entity('{subject.stream.name}').count() >= 1", subject.position)
        [bound] = node.arguments or [None]
        zero = isinstance(bound, ast.Literal) and (
            (node.comparator in ("equals", "at_most") and bound.value == 0)
            or (node.comparator == "less_than" and bound.value == 1))
        if zero and subject.stream.filters:
            raise CQLError(f"a count of 0 takes no where(...): write NOT entity('{subject.stream.name}').where(…)"
                           ".count() >= 1 for profiles without such an entity", node.position)

    def arguments(self, node: ast.Comparison) -> None:
        name = node.comparator
        for argument in node.arguments:
            if isinstance(argument, ast.Duration):
                if argument.unit == "seconds":
                    raise CQLError(f"{name}() takes hours or days", argument.position, ("hours", "days"))
                if argument.amount < 1:
                    raise CQLError(f"{name}() needs a duration of at least 1", argument.position)
                continue
            if not isinstance(argument, ast.Literal):
                continue
            if name in NUMERIC_COMPARATORS and argument.kind not in ("int", "float"):
                raise CQLError(f"{name}() compares numbers; {argument.value!r} is not a number", argument.position)
            if name in TEXT_COMPARATORS and argument.kind != "string":
                raise CQLError(f"{name}() takes text in quotes", argument.position)
            if name in DATE_COMPARATORS and not _is_iso_datetime(str(argument.value)):
                raise CQLError(
                    f"{name}() needs an ISO-8601 timestamp such as 2023-12-07T18:50:00Z", argument.position
                )

    def scalar(self, node: ast.Node, scope: _Scope) -> None:
        if isinstance(node, (ast.PropertyRef, ast.ContextRef)):
            self.event_property(node, scope, as_reducer_argument=False)
        elif isinstance(node, ast.Reduction):
            self.stream(node.stream, scope)
            if node.argument is not None:
                self.event_property(node.argument, scope, as_reducer_argument=True)
            if node.min_frequency is not None and node.min_frequency < 1:
                raise CQLError("mode() needs a minimum frequency of at least 1", node.position)
        elif isinstance(node, ast.Stream):
            self.boolean(node, scope)

    def event_property(self, node: ast.PropertyRef | ast.ContextRef, scope: _Scope, as_reducer_argument: bool) -> None:
        name = "context" if isinstance(node, ast.ContextRef) else "property"
        if scope.inside == "entity" and not as_reducer_argument:
            if name == "context":
                raise CQLError("context() reads an event; inside an entity's where(...) read its columns with "
                               "property('COLUMN')", node.position)
            if len(node.path) > 1:
                raise CQLError("an entity's property() names one column; there is no dotted path into it",
                               node.position)
        if not as_reducer_argument and not scope.stream_depth:
            raise CQLError(f"{name}() is only valid inside where(...) or as a reducer's argument", node.position)
        if isinstance(node, ast.PropertyRef) and node.parent:
            if as_reducer_argument or scope.stream_depth < 2:
                raise CQLError(
                    "property(parent: …) is only valid inside the where(...) of an event nested in another "
                    "event's where(...)",
                    node.position,
                )

    def stream(self, node: ast.Stream, scope: _Scope) -> None:
        if node.source == "entity":
            self.entity_stream(node, scope)
            return
        if scope.inside == "entity":
            raise CQLError(f"event('{node.name}') cannot be read inside an entity's where(...); combine the two "
                           "with AND at the top of the definition", node.position)
        windows = [f for f in node.filters if isinstance(f, (ast.Within, ast.Between))]
        if len(windows) > 1:
            raise CQLError("a stream takes one time window: within(...) or between(...), once", windows[1].position)
        for item in node.filters:
            if isinstance(item, ast.Where):
                self.boolean(item.condition, replace(scope, stream_depth=scope.stream_depth + 1, inside="event"))
            elif isinstance(item, ast.Within):
                self.window(item.duration, "within")
                if item.parent and not scope.stream_depth:
                    raise CQLError(
                        "within(parent: …) is only valid on an event nested in another event's where(...)",
                        item.position,
                    )
            elif isinstance(item, ast.Between):
                self.window(item.start, "between")
                self.window(item.end, "between")
                if item.start.hours >= item.end.hours:
                    raise CQLError("between(a, b) needs a shorter duration before a longer one", item.position)
            elif isinstance(item, ast.ExpiresAfter):
                self.expires_after(item)

    def entity_stream(self, node: ast.Stream, scope: _Scope) -> None:
        if self.kind != "audience" or self.audience_type != "LINKED":
            raise CQLError("entity() is only valid in LINKED audiences", node.position)
        if scope.inside == "event":
            raise CQLError(f"entity('{node.name}') cannot be read inside an event's where(...); combine the two "
                           "with AND at the top of the definition", node.position)
        for item in node.filters:
            if not isinstance(item, ast.Where):
                raise CQLError("entity() takes where(...) only: entities have no time, so within, between, "
                               "sources and expires_after do not apply", item.position)
            self.boolean(item.condition, replace(scope, stream_depth=scope.stream_depth + 1, inside="entity"))

    def window(self, duration: ast.Duration, name: str) -> None:
        if duration.unit == "seconds":
            raise CQLError(f"{name}() takes hours or days", duration.position, ("hours", "days"))
        if duration.amount < 1:
            raise CQLError(f"{name}() needs a duration of at least 1", duration.position)

    def expires_after(self, item: ast.ExpiresAfter) -> None:
        if self.kind != "computed_trait":
            raise CQLError("expires_after(...) is only valid in computed traits (session windows)", item.position)
        low, high = SESSION_WINDOW_HOURS
        if not low <= item.duration.hours <= high:
            raise CQLError("expires_after(...) takes a session window from 30 minutes to 90 days", item.position)


def _is_iso_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True

