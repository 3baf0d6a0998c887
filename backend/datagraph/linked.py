"""A Data Graph resolved against the warehouse: per relationship, the entity's table with its typed
columns, the junction table if any, and its children. This is what the CQL compiler reads to turn
`entity('<slug>')` into joins (`backend.cql.compiler`), and what the checks read to know a column's
family (`backend.cql.linked_checks`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import Column, Table

from backend.datagraph.config import DataGraph, Join, JunctionJoin, Relationship


@dataclass(frozen=True)
class ResolvedTable:
    """A warehouse table as statements name it, and its columns' families by lower-cased name."""

    table: Table
    families: dict[str, tuple[str, str]]  # lower-cased name -> (name, family)

    def column(self, name: str) -> tuple[str, str] | None:
        """(name as the warehouse spells it, family), matched case-insensitively, or None."""
        return self.families.get(name.lower())


@dataclass(frozen=True)
class LinkedNode:
    slug: str
    entity: str
    join: Join
    entity_table: ResolvedTable
    primary_key: str
    junction: ResolvedTable | None = None
    children: dict[str, "LinkedNode"] = field(default_factory=dict)
    entity_name: str = ""  # the entity's label, which activation events name it by (`__entity`)

    @property
    def table(self) -> Table:
        return self.entity_table.table

    def column(self, name: str) -> tuple[str, str] | None:
        return self.entity_table.column(name)

    def sql_column(self, table: Table, name: str) -> Column:
        """The column `name` (any case) of `table`, an alias of this node's entity table."""
        return table.c[self.entity_table.column(name)[0]]


@dataclass(frozen=True)
class LinkedGraph:
    top: dict[str, LinkedNode]

    def find(self, slug: str) -> LinkedNode | None:
        return next((node for node in self.nodes() if node.slug == slug), None)

    def entity_names(self) -> dict[str, str]:
        """Each relationship's entity name, by relationship slug."""
        return {node.slug: node.entity_name or node.entity for node in self.nodes()}

    def nodes(self) -> Iterator[LinkedNode]:
        pending = list(self.top.values())
        while pending:
            node = pending.pop(0)
            yield node
            pending.extend(node.children.values())


def resolve(graph: DataGraph, table_of: Callable[[str], ResolvedTable]) -> LinkedGraph:
    """The graph with each table_ref resolved by `table_of` (which raises for one that is missing)."""
    return LinkedGraph({node.slug: _node(graph, node, table_of) for node in graph.relationships})


def _node(graph: DataGraph, relationship: Relationship, table_of) -> LinkedNode:
    entity = graph.entities[relationship.related_entity]
    resolved = table_of(entity.table_ref)
    junction = table_of(relationship.join.table_ref) if isinstance(relationship.join, JunctionJoin) else None
    return LinkedNode(relationship.slug, entity.slug, relationship.join, resolved,
                      resolved.column(entity.primary_key)[0], junction,
                      {child.slug: _node(graph, child, table_of) for child in relationship.children}, entity.name)
