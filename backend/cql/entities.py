"""`entity()` streams compiled to joins over the warehouse's entity tables (LINKED audiences), a part
of `backend.cql.compiler`.

An entity stream's rows are the entity rows linked to each row of the scope it is read in, one row
per (scope row, entity row): at the top, a profile's rows are found through its identifiers
(`external_id`: the entity's join column holds the identifier's value) or one of its traits
(`trait`: the column holds the trait's value); inside an entity's `where`, a child relationship's
rows are those joined to the parent row (`join_on`, or the two joins through a junction table).
Every join is an inner join, as Segment's. The rows carry the scope's keys (k0…), the profile
(`owner`, whose traits `trait()` reads), the entity's primary key (`pk`) and the columns the
definition reads (`c0`…), and, in a nested stream, the parent row's columns (`p0`…) for
`property(parent: …)`. `count()` counts distinct primary keys, so an entity reached twice (through a
junction table listing a pair twice) counts once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import FromClause, String, cast, select

from backend.cql import ast
from backend.cql.analysis import children, walk
from backend.cql.errors import CompileError
from backend.cql.sqlvalues import JsonValue
from backend.datagraph.config import ColumnJoin, JunctionJoin, ProfileJoin
from backend.datagraph.linked import LinkedNode


@dataclass(frozen=True)
class EntityRows:
    """How an entity frame's rows name the columns of its entity (and of its parent's)."""

    node: LinkedNode
    columns: dict[str, tuple[str, str]]  # lower-cased column -> (label in the rows, family)
    parent: dict[str, tuple[str, str]]  # the same for the parent entity's columns, as p…


def columns_read(stream: ast.Stream, node: LinkedNode, extra: Collection[str] = ()) -> list[str]:
    """The columns of `node` a stream reads: its primary key, those its `where` reads, those its
    nested entity streams join on or read as `property(parent: …)`, and the `extra` ones asked for
    (lower-cased, in order, those the table has)."""
    wanted = [node.primary_key.lower(), *(name.lower() for name in extra)]
    for step in stream.filters:
        for inner in _same_level(step):
            if isinstance(inner, ast.PropertyRef) and not inner.parent:
                wanted.append(inner.path[0].lower())
            elif isinstance(inner, ast.Stream) and inner.source == "entity" and inner.name in node.children:
                child = node.children[inner.name]
                wanted.append(_parent_column(child).lower())
                wanted.extend(ref.path[0].lower() for filter_ in inner.filters for ref in _same_level(filter_)
                              if isinstance(ref, ast.PropertyRef) and ref.parent)
    return list(dict.fromkeys(name for name in wanted if node.column(name) is not None))


def shown_columns(stream: ast.Stream, node: LinkedNode, extra: Collection[str] = ()) -> list[str]:
    """The columns a matched row of the stream shows, as the warehouse spells them: its primary key,
    those its `where` compares, and the `extra` ones asked for (those the table has)."""
    compared = [inner.path[0] for step in stream.filters for inner in _same_level(step)
                if isinstance(inner, ast.PropertyRef) and not inner.parent]
    found = (node.column(name) for name in (node.primary_key, *compared, *extra))
    return list(dict.fromkeys(column[0] for column in found if column is not None))


def _same_level(node):
    """The nodes below `node` that belong to its stream, not to a nested one's filters."""
    yield node
    if isinstance(node, ast.Stream):
        return
    for child in children(node):
        yield from _same_level(child)


def _parent_column(node: LinkedNode) -> str:
    join = node.join
    return join.parent_column if isinstance(join, (ColumnJoin, JunctionJoin)) else ""


def entity_candidates(compiler, node: LinkedNode, stream: ast.Stream, frame, parent: EntityRows | None,
                      ) -> tuple[FromClause, EntityRows]:
    """The stream's candidate rows for each row of `frame` (see the module's docstring)."""
    entity = node.table.alias(compiler.name("n"))
    read = columns_read(stream, node, compiler.columns.get(node.slug, ()))
    labels = {name: (f"c{index}", node.column(name)[1]) for index, name in enumerate(read)}
    columns = [node.sql_column(entity, name).label(labels[name][0]) for name in read]
    pk = node.sql_column(entity, node.primary_key).label("pk")
    if parent is None:
        source, owner, conditions = profile_join(compiler.tables, compiler.scope.space_id, node, entity, compiler.name)
        conditions.extend(frame.restrict(owner))
        keys, parent_columns, parent_labels = [owner], [], {}
    else:
        rows = frame.rows
        source = entity_join(node, entity, rows, parent.columns[node.join.parent_column.lower()][0], compiler.name)
        owner, conditions, keys = rows.c.owner, [], list(frame.keys)
        parent_labels = {name: (f"p{index}", family) for index, (name, (label, family)) in
                         enumerate(parent.columns.items())}
        parent_columns = [rows.c[label].label(parent_labels[name][0]) for name, (label, _) in parent.columns.items()]
    statement = select(*(key.label(f"k{index}") for index, key in enumerate(keys)), owner.label("owner"), pk,
                       *columns, *parent_columns).select_from(source).where(*conditions)
    return statement.subquery(compiler.name("c")), EntityRows(node, labels, parent_labels)


def profile_join(tables, space: str, node: LinkedNode, entity, name):
    """The profile's entity rows (`entity`, an alias of the node's table): the join through an
    identifier or a trait whose value the join column holds, the profile id, and the conditions on
    the identifier or trait. `name(prefix)` names the aliases it makes."""
    join = node.join
    if not isinstance(join, ProfileJoin):
        raise CompileError(f"relationship '{node.slug}' does not join the profile")
    column = node.sql_column(entity, join.join_key)
    family = node.column(join.join_key)[1]
    if join.by == "external_id":
        identifier = tables.identifier.alias(name("i"))
        value = column if family == "string" else cast(column, String)
        source = identifier.join(entity, value == identifier.c.value)
        conditions = [identifier.c.space_id == space, identifier.c.type == join.key,
                      identifier.c.collection == "users"]
        return source, identifier.c.profile_id, conditions
    trait = tables.trait.alias(name("t"))
    value = JsonValue(trait.c.value)
    matched = (value.plain_number() == column) if family == "number" else (value.string() == column)
    source = trait.join(entity, matched)
    return source, trait.c.profile_id, [trait.c.space_id == space, trait.c.key == join.key]


def entity_join(node: LinkedNode, entity, rows, parent_column: str, name):
    """The child rows (`entity`, an alias of the node's table) joined to the parent's rows `rows`,
    whose column `parent_column` holds the parent side of the join."""
    join = node.join
    if isinstance(join, ColumnJoin):
        return rows.join(entity, node.sql_column(entity, join.child_column) == rows.c[parent_column])
    if isinstance(join, JunctionJoin):
        junction = node.junction.table.alias(name("j"))
        left = junction.c[node.junction.column(join.left_column)[0]]
        right = junction.c[node.junction.column(join.right_column)[0]]
        return rows.join(junction, left == rows.c[parent_column]).join(
            entity, node.sql_column(entity, join.child_column) == right)
    raise CompileError(f"relationship '{node.slug}' joins the profile, not an entity")


def referenced_relationships(root: ast.Node) -> set[str]:
    """The relationship slugs a definition's entity() streams name."""
    return {node.name for node in walk(root) if isinstance(node, ast.Stream) and node.source == "entity"}


def top_level_relationships(root: ast.Node) -> set[str]:
    """The relationship slugs of the entity() streams read under the profile (not inside another's where)."""
    return {node.name for node in walk(root, entities=False) if isinstance(node, ast.Stream) and node.source == "entity"}
