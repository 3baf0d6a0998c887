"""A LINKED definition checked against its space's Data Graph, resolved against the warehouse
(`backend.datagraph.linked`): every `entity('<slug>')` names a relationship under the profile (at the
top) or under the enclosing entity's relationship, every `property('COL')` a column of its entity
(any case; `parent:` its parent's), and every comparison of a column takes a value of the column's
family (`backend.datagraph.types`): a number column numbers, a string column text, a boolean column
true or false, a date or timestamp column an ISO-8601 date or time, compared with `=`, `!=`,
`before_date`, `after_date`, `within_last` and the like rather than `<` or `>`. Two columns compared
must be of one family. A column compared with a trait takes the trait as it comes.
"""

from __future__ import annotations

from backend.cql import ast
from backend.cql.analysis import children
from backend.cql.errors import CQLError
from backend.datagraph.linked import LinkedGraph, LinkedNode

LITERAL_FAMILIES = {"int": "number", "float": "number", "string": "string", "boolean": "boolean",
                    "date": "date", "timestamp": "timestamp"}
ORDERING = {"greater_than", "at_least", "less_than", "at_most"}
TEXT = {"contains", "omits", "starts_with", "ends_with"}
DATES = {"before_date", "after_date", "within_last", "within_next", "before_last", "after_next"}


def check_linked(root: ast.Node, graph: LinkedGraph) -> None:
    """Raise `CQLError` where the definition does not fit the graph."""
    _Linked(graph).visit(root, None, None)


class _Linked:
    def __init__(self, graph: LinkedGraph):
        self.graph = graph

    def visit(self, node, current: LinkedNode | None, parent: LinkedNode | None) -> None:
        if isinstance(node, ast.Stream) and node.source == "entity":
            child = self.relationship(node, current)
            for step in node.filters:
                self.visit(step, child, current)
            return
        if isinstance(node, ast.Comparison) and current is not None:
            self.comparison(node, current, parent)
        for below in children(node):
            self.visit(below, current, parent)

    def relationship(self, node: ast.Stream, current: LinkedNode | None) -> LinkedNode:
        choices = self.graph.top if current is None else current.children
        if node.name not in choices:
            where = "directly under the profile" if current is None else f"under '{current.slug}'"
            known = ", ".join(f"'{slug}'" for slug in sorted(choices)) or "none"
            raise CQLError(f"the Data Graph has no relationship '{node.name}' {where}; there: {known}", node.position)
        return choices[node.name]

    def comparison(self, node: ast.Comparison, current: LinkedNode, parent: LinkedNode | None) -> None:
        operands = [node.subject, *(argument for argument in node.arguments if not isinstance(argument, ast.Duration))]
        columns = [self.column(operand, current, parent) for operand in operands if isinstance(operand, ast.PropertyRef)]
        if not columns:
            return
        name, family = columns[0]
        if family == "other":
            raise CQLError(f"column '{name}' holds lists or structures, which a definition cannot compare",
                           node.position)
        if len({column_family for _, column_family in columns}) > 1:
            described = " and ".join(f"'{column}' ({kind})" for column, kind in columns)
            raise CQLError(f"{described} are of different types; both sides must have one type", node.position)
        for operand in operands:
            if isinstance(operand, ast.Literal):
                self.literal(operand, name, family)
        self.comparator(node, name, family)

    def column(self, node: ast.PropertyRef, current: LinkedNode, parent: LinkedNode | None) -> tuple[str, str]:
        entity = parent if node.parent else current
        if entity is None:
            raise CQLError("property(parent: …) is only valid inside a nested entity's where(...)", node.position)
        found = entity.column(node.path[0])
        if found is None:
            known = ", ".join(sorted(name for name, _ in entity.entity_table.families.values()))
            raise CQLError(f"entity '{entity.entity}' (relationship '{entity.slug}') has no column '{node.path[0]}'; "
                           f"its columns: {known}", node.position)
        return found

    @staticmethod
    def literal(literal: ast.Literal, name: str, family: str) -> None:
        kind = LITERAL_FAMILIES.get(literal.kind, "other")
        fits = kind == family or (family in ("date", "timestamp") and kind in ("string", "date", "timestamp"))
        if not fits:
            raise CQLError(f"column '{name}' is a {family}, and {literal.value!r} is a {kind}; compare it with a "
                           f"{family}", literal.position)

    @staticmethod
    def comparator(node: ast.Comparison, name: str, family: str) -> None:
        if node.comparator in TEXT and family != "string":
            raise CQLError(f"{node.comparator}() compares text, and column '{name}' is a {family}", node.position)
        if node.comparator in ORDERING and family in ("date", "timestamp", "boolean"):
            hint = " (use before_date / after_date)" if family != "boolean" else ""
            raise CQLError(f"column '{name}' is a {family}: compare it with = or !={hint}", node.position)
        if node.comparator in DATES and family not in ("date", "timestamp", "string"):
            raise CQLError(f"{node.comparator}() compares dates, and column '{name}' is a {family}", node.position)
