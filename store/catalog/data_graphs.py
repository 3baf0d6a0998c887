"""A space's Data Graph: set and read (`segment_audiences_update_data_graph` / `get_data_graph`, the
CLI's `data-graph set` / `show`), checked against the warehouse, and the graph LINKED definitions
are checked and compiled against.

A config is checked in two steps: on its own (`backend.datagraph.config`), then against the
warehouse (`store.warehouse`): every `table_ref` names a table there, every primary key and join
column is a column of its table, and the two sides of a join are of one family (an `external_id`
join column holds text or numbers, since identifiers are text). Every error names the block and
attribute (`relationship.carts.join_on`). Against the graph before it:
- removing a relationship a LINKED audience reads, or retargeting it (another entity, or another
  place in the graph), is a `conflict` naming those audiences: they would fail their next run;
- changing an entity's `table_ref` or `primary_key` is accepted, with a warning naming the
  audiences that read it (Segment's "potential breaking" change);
- anything else (names, descriptions, new nodes) is safe.
Each accepted config is the next version, from 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlmodel import Session, col, select

from backend.cql import CQLError, parse
from backend.cql.entities import referenced_relationships, top_level_relationships
from backend.cql.linked_checks import check_linked
from backend.datagraph.config import (ColumnJoin, DataGraph, DataGraphError, JunctionJoin, ProfileJoin, from_document,
                                      parse_hcl)
from backend.datagraph.linked import LinkedGraph, ResolvedTable, resolve
from store.catalog.spaces import require_space
from store.db.errors import Conflict, InputValidation, NotFound
from store.db.models import Audience, DataGraphConfig
from store.db.pagination import Page, PageRequest, slice_page
from store.db.store import Store
from store.warehouse.location import warehouse_of
from store.warehouse.tables import TableInfo

JOIN_FAMILIES = {"number", "string"}
MAX_SAMPLE_VALUES = 1000


@dataclass(frozen=True)
class DataGraphView:
    space_id: str
    version: int
    config: str
    config_format: str
    graph: DataGraph
    updated_at: datetime
    updated_by: str
    tables: dict[str, TableInfo]  # by table_ref, as the warehouse describes them now


@dataclass(frozen=True)
class Updated:
    view: DataGraphView
    warnings: list[str]


def update_data_graph(store: Store, space_id: str, *, config: str | None = None,
                      config_json: dict | None = None) -> Updated:
    """Check a config (HCL text, or its JSON form) and make it the space's Data Graph."""
    if (config is None) == (config_json is None):
        raise InputValidation("Give the Data Graph as config (HCL text) or as configJson (its JSON form), one of "
                              "the two.", field="config")
    graph = _parsed(config, config_json)
    tables = checked_against_warehouse(store, graph)
    text = config if config is not None else orjson.dumps(config_json, option=orjson.OPT_INDENT_2).decode()
    with store.write() as session:
        require_space(session, space_id)
        stored = session.get(DataGraphConfig, space_id)
        warnings = [] if stored is None else _compared(session, space_id, _graph_of(stored), graph)
        row = stored or DataGraphConfig(space_id=space_id, version=0)
        row.version += 1
        row.config, row.config_format = text, "hcl" if config is not None else "json"
        row.updated_at, row.updated_by = store.now(), store.actor
        session.add(row)
        return Updated(_view(row, graph, tables), warnings)


def get_data_graph(store: Store, space_id: str) -> DataGraphView:
    """The space's Data Graph, with its tables as the warehouse has them now (a table gone since is
    left out of `tables`)."""
    with store.read() as session:
        require_space(session, space_id)
        row = _require(session, space_id)
    graph = _graph_of(row)
    return _view(row, graph, _described(store, graph))


def stored_graph(store: Store, space_id: str) -> DataGraph | None:
    with store.read() as session:
        row = session.get(DataGraphConfig, space_id)
    return None if row is None else _graph_of(row)


def linked_graph(store: Store, space_id: str) -> LinkedGraph:
    """The space's Data Graph resolved against the warehouse now, for compiling `entity()`."""
    with store.read() as session:
        row = _require(session, space_id)
    graph = _graph_of(row)
    tables = checked_against_warehouse(store, graph, field="dataGraph")
    return resolve(graph, lambda ref: resolved_table(tables[ref]))


def check_linked_definition(store: Store, space_id: str, query: str, target_entity: str | None) -> None:
    """A LINKED definition checked against the space's graph (a definition without `entity()` needs
    none), and its `targetEntity`: `profile`, or a relationship directly under the profile that the
    definition reads at its top level (as Segment's builder offers only entities the definition
    references)."""
    root = parse(query)
    slugs = referenced_relationships(root)
    target = target_entity or "profile"
    top = top_level_relationships(root)
    if target != "profile" and target not in top:
        choices = ", ".join(f"'{slug}'" for slug in ["profile", *sorted(top)])
        raise InputValidation(f"targetEntity '{target}' is not an entity('…') the definition reads under the "
                              f"profile; use one of {choices}.", field="definition.targetEntity")
    if not slugs:
        return
    with store.read() as session:
        if session.get(DataGraphConfig, space_id) is None:
            raise InputValidation(f"Space '{space_id}' has no Data Graph, which entity() and targetEntity read; set "
                                  "one with segment_audiences_update_data_graph first.", field="definition.query")
    graph = linked_graph(store, space_id)
    try:
        check_linked(root, graph)
    except CQLError as error:
        raise InputValidation(f"Invalid definition at {error.position}: {error.message}.",
                              field="definition.query") from error


def check_personalized_entities(store: Store, space_id: str, entities: list[dict]) -> list[dict]:
    """An activation's `personalization.entities` checked against the space's graph: each names a
    relationship of it and columns of its entity (any case; returned as the warehouse spells them)."""
    nodes = {node.slug: node for node in linked_graph(store, space_id).nodes()}
    checked = []
    for index, item in enumerate(entities):
        field = f"personalization.entities[{index}]"
        node = nodes.get(item["relationshipSlug"])
        if node is None:
            raise InputValidation(f"{field}.relationshipSlug '{item['relationshipSlug']}' is not a relationship of the "
                                  f"Data Graph; there: {', '.join(sorted(nodes)) or 'none'}.",
                                  field=f"{field}.relationshipSlug")
        columns = []
        for name in item.get("properties") or ():
            found = node.column(name)
            if found is None:
                known = sorted(spelled for spelled, _ in node.entity_table.families.values())
                raise InputValidation(f"{field}.properties: '{name}' is not a column of entity '{node.entity}' "
                                      f"(relationship '{node.slug}'); its columns: {', '.join(known)}.",
                                      field=f"{field}.properties")
            columns.append(found[0])
        checked.append({"relationshipSlug": node.slug, "properties": list(dict.fromkeys(columns))})
    return checked


@dataclass(frozen=True)
class EntityPath:
    """One node of the graph, as the Space Schema entity-path tool lists it."""

    id: str
    entity_name: str
    path_name: str
    entity_slug: str
    relationship_slugs: list[str]
    child_relationship_slugs: list[str]
    parent_relationship_slug_path: str


@dataclass(frozen=True)
class EntityColumn:
    name: str
    primary_key: bool
    data_type: str  # NUMBER | STRING | BOOLEAN | DATE | TIMESTAMP | OTHER
    samples: list[str] | None


def entity_paths(store: Store, space_id: str, search: str | None, page: PageRequest) -> Page:
    """The graph's relationships depth first, each the path to its entity (`pathName` joins the
    relationships' names with " → "); `search` matches the entity's or the path's name, any case.
    None while the space has no Data Graph."""
    graph = stored_graph(store, space_id)
    paths = []
    for node, parents in ([] if graph is None else graph.nodes()):
        slugs = [*parents, node.slug]
        names = [graph.relationship(slug).name for slug in slugs]
        paths.append(EntityPath(f"path_{':'.join(slugs)}", graph.entities[node.related_entity].name, " → ".join(names),
                                node.related_entity, slugs, [child.slug for child in node.children], ":".join(parents)))
    if search:
        wanted = search.lower()
        paths = [path for path in paths if wanted in path.entity_name.lower() or wanted in path.path_name.lower()]
    return slice_page(paths, page)


def entity_columns(store: Store, space_id: str, entity_slug: str, page: PageRequest,
                   samples: int | None) -> Page:
    """An entity's columns in the warehouse's order, with their most frequent values if `samples`."""
    entity, info = _entity_table(store, space_id, entity_slug)
    warehouse = warehouse_of(store)
    columns = [EntityColumn(column.name, column.name.lower() == entity.primary_key.lower(), column.family.upper(),
                            None if samples is None else warehouse.top_values(info, column.name, samples))
               for column in info.columns]
    return slice_page(columns, page)


def entity_samples(store: Store, space_id: str, entity_slug: str, column: str) -> list[str]:
    """The most frequent values of an entity's column (at most 1,000)."""
    _, info = _entity_table(store, space_id, entity_slug)
    found = info.column(column)
    if found is None:
        raise NotFound("entity property", column, by="name", field="propertyName",
                       scope=f"in entity '{entity_slug}' (its columns: {', '.join(c.name for c in info.columns)})")
    return warehouse_of(store).top_values(info, found.name, MAX_SAMPLE_VALUES)


def _entity_table(store: Store, space_id: str, entity_slug: str):
    graph = stored_graph(store, space_id)
    if graph is None or entity_slug not in graph.entities:
        scope = (f"in space '{space_id}', which has no Data Graph yet" if graph is None else
                 f"in the Data Graph of space '{space_id}' (its entities: {', '.join(sorted(graph.entities))})")
        raise NotFound("entity", entity_slug, by="slug", field="entitySlug", scope=scope)
    entity = graph.entities[entity_slug]
    info = warehouse_of(store).describe(entity.table_ref)
    if info is None:
        raise NotFound("warehouse table", entity.table_ref, by="table_ref", field="entitySlug",
                       scope=f"(entity '{entity_slug}' names it; it is no longer in the warehouse)")
    return entity, info


def resolved_table(info: TableInfo) -> ResolvedTable:
    return ResolvedTable(info.sql_table(), {c.name.lower(): (c.name, c.family) for c in info.columns})


def checked_against_warehouse(store: Store, graph: DataGraph, field: str | None = None) -> dict[str, TableInfo]:
    """The graph's tables as the warehouse describes them, by table_ref; InputValidation naming the
    block and attribute (or `field`) where a table, a column or a join's types do not fit."""
    warehouse = warehouse_of(store)
    tables: dict[str, TableInfo] = {}

    def table(ref: str, path: str) -> TableInfo:
        if ref not in tables:
            found = warehouse.describe(ref)
            if found is None:
                names = ", ".join(t.name for t in warehouse.tables()) if warehouse.name != "clickhouse" else ""
                raise InputValidation(f"{_label(path)}: table_ref '{ref}' is not a table in the warehouse "
                                      f"({warehouse.name}){'; its tables: ' + names if names else ''}. Load it with "
                                      "`segment-audiences warehouse load`.", field=field or path)
            tables[ref] = found
        return tables[ref]

    def column(info: TableInfo, name: str, path: str) -> str:
        found = info.column(name)
        if found is None:
            raise InputValidation(f"{_label(path)}: '{name}' is not a column of table {info.name}; its columns: "
                                  f"{', '.join(c.name for c in info.columns)}.", field=field or path)
        return found.family

    for slug, entity in graph.entities.items():
        info = table(entity.table_ref, f"entity.{slug}.table_ref")
        column(info, entity.primary_key, f"entity.{slug}.primary_key")
    for node, parents in graph.nodes():
        path = f"relationship.{node.slug}"
        child = tables[graph.entities[node.related_entity].table_ref]
        join = node.join
        if isinstance(join, ProfileJoin):
            kind = column(child, join.join_key, f"{path}.{join.by}.join_key")
            if kind not in JOIN_FAMILIES:
                raise InputValidation(f"{_label(path)}: join_key '{join.join_key}' is a {kind} column; a profile "
                                      "joins on text or numbers.", field=field or f"{path}.{join.by}.join_key")
            continue
        parent = tables[graph.entity_of(parents[-1]).table_ref]
        if isinstance(join, ColumnJoin):
            pairs = [(column(parent, join.parent_column, f"{path}.join_on"),
                      column(child, join.child_column, f"{path}.join_on"), f"{path}.join_on")]
        else:
            junction = table(join.table_ref, f"{path}.junction_table.table_ref")
            column(junction, join.primary_key, f"{path}.junction_table.primary_key")
            where = f"{path}.junction_table"
            pairs = [(column(parent, join.parent_column, f"{where}.left_join_on"),
                      column(junction, join.left_column, f"{where}.left_join_on"), f"{where}.left_join_on"),
                     (column(junction, join.right_column, f"{where}.right_join_on"),
                      column(child, join.child_column, f"{where}.right_join_on"), f"{where}.right_join_on")]
        for left, right, where in pairs:
            if left != right or left == "other":
                raise InputValidation(f"{_label(where)}: {where.rsplit('.', 1)[1]} joins a {left} column to a {right} "
                                      "column; both sides of a join must be of one type.", field=field or where)
    return tables


def _label(path: str) -> str:
    parts = path.split(".")
    return f'{parts[0]} "{parts[1]}"'


def _described(store: Store, graph: DataGraph) -> dict[str, TableInfo]:
    warehouse = warehouse_of(store)
    refs = {entity.table_ref for entity in graph.entities.values()} | {
        node.join.table_ref for node, _ in graph.nodes() if isinstance(node.join, JunctionJoin)}
    found = {ref: warehouse.describe(ref) for ref in sorted(refs)}
    return {ref: info for ref, info in found.items() if info is not None}


def _parsed(config: str | None, config_json: dict | None) -> DataGraph:
    try:
        return parse_hcl(config) if config is not None else from_document(config_json)
    except DataGraphError as error:
        raise InputValidation(f"{error} (at {error.path}).", field=error.path) from error


def _graph_of(row: DataGraphConfig) -> DataGraph:
    return parse_hcl(row.config) if row.config_format == "hcl" else from_document(orjson.loads(row.config))


def _require(session: Session, space_id: str) -> DataGraphConfig:
    row = session.get(DataGraphConfig, space_id)
    if row is None:
        raise NotFound("data graph", space_id, by="space id", field="spaceId",
                       scope="; set one with segment_audiences_update_data_graph")
    return row


def _view(row: DataGraphConfig, graph: DataGraph, tables: dict[str, TableInfo]) -> DataGraphView:
    return DataGraphView(row.space_id, row.version, row.config, row.config_format, graph, row.updated_at,
                         row.updated_by, tables)


def _compared(session: Session, space_id: str, before: DataGraph, after: DataGraph) -> list[str]:
    """Refuse a change that breaks a LINKED audience; the warnings for one that may."""
    readers = _readers(session, space_id)
    broken, warnings = {}, []
    for node, parents in before.nodes():
        users = readers.get(node.slug, [])
        if not users:
            continue
        now = after.relationship(node.slug)
        if now is None:
            broken[node.slug] = (users, "removes it")
        elif now.related_entity != node.related_entity or after.parents(node.slug) != parents:
            broken[node.slug] = (users, "retargets it")
        else:
            old, new = before.entities[node.related_entity], after.entities[now.related_entity]
            if (old.table_ref, old.primary_key.lower()) != (new.table_ref, new.primary_key.lower()):
                warnings.append(f"entity '{new.slug}' now reads {new.table_ref} (primary key {new.primary_key}); "
                                f"{_names(users)} read it through relationship '{node.slug}' and may fail their "
                                "next run if its columns differ.")
    if broken:
        described = "; ".join(f"relationship '{slug}' ({change}) is read by {_names(users)}"
                              for slug, (users, change) in broken.items())
        raise Conflict(f"This Data Graph would break LINKED audiences: {described}. Change or remove those audiences "
                       "first, or keep the relationships.", field="config")
    return warnings


def _readers(session: Session, space_id: str) -> dict[str, list[Audience]]:
    """The live LINKED audiences by the relationship slugs they read (entity() and targetEntity)."""
    audiences = session.exec(select(Audience).where(Audience.space_id == space_id, Audience.audience_type == "LINKED",
                                                    col(Audience.deleted_at).is_(None)).order_by(Audience.id)).all()
    readers: dict[str, list[Audience]] = {}
    for audience in audiences:
        slugs = referenced_relationships(parse(audience.query))
        if audience.target_entity and audience.target_entity != "profile":
            slugs.add(audience.target_entity)
        for slug in slugs:
            readers.setdefault(slug, []).append(audience)
    return readers


def _names(audiences: list[Audience]) -> str:
    return ", ".join(f"'{audience.name}' ({audience.id})" for audience in audiences)
