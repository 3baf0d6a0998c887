"""Data Graph tools (additions to Segment's Public API, which edits the graph only in its app): set
and read a space's Data Graph, the entities in the warehouse and how they join the profile, which
LINKED audiences' `entity()` conditions read (`store.catalog.data_graphs`)."""

from typing import Annotated, Any, Optional

from pydantic import BaseModel, Field

from backend.datagraph.config import ColumnJoin, JunctionJoin, ProfileJoin, Relationship
from store.catalog import data_graphs
from store.compute import linked
from store.db.errors import DomainError
from store.db.store import Store
from tools.models import Output, SpaceId, Warnings
from tools.registry import read, write
from tools.shapes import iso

CONFIG_HELP = ("Segment's Data Graph config language (HCL): entity blocks, one profile block with nested "
               "relationship blocks. Example: resource segment-audiences://reference/data-graph.")


class RelationshipSummary(Output):
    relationshipSlug: str
    name: str
    entitySlug: str
    tableRef: str
    level: int = Field(description="Levels from the profile, which is level 1.")
    parentRelationshipSlugPath: str = Field(description="The relationships above it joined with ':'; '' under "
                                                        "the profile.")
    joinedBy: str = Field(description="external_id, trait, join_on or junction_table.")
    join: dict[str, Any]
    rowCount: Optional[int] = Field(None, description="Rows of its entity's table now (null when the table is gone).")
    matchCount: Optional[int] = Field(None, description="Rows of its entity its join matches now: under the "
                                                        "profile, rows joined to a profile; deeper, rows joined to "
                                                        "a row of the parent (null when not counted).")


class DataGraph(Output):
    spaceId: str
    version: int = Field(description="1 for the first config set, one more for each accepted change.")
    config: str = Field(description="The config as it was given (HCL, or JSON text).")
    configFormat: str = Field(description="hcl or json.")
    relationships: list[RelationshipSummary]
    updatedAt: str
    updatedBy: str


class DataGraphOutput(BaseModel):
    dataGraph: DataGraph
    warnings: Warnings = None


def update_data_graph(
    store: Store,
    spaceId: SpaceId,
    config: Annotated[Optional[str], Field(max_length=200_000, description=CONFIG_HELP)] = None,
    configJson: Annotated[Optional[dict[str, Any]], Field(
        description="Or the same in HCL's JSON form: {data_graph: {entity: {<slug>: {…}}, profile: {…}}}.")] = None,
) -> DataGraphOutput:
    """(Not in the Public API.) Set the space's Data Graph (`config` or `configJson`), checked against
    the warehouse (tables, keys, join columns and their types) and the LINKED audiences that read it
    (a relationship one reads cannot be removed). Returns {dataGraph, warnings}."""
    updated = data_graphs.update_data_graph(store, spaceId, config=config, config_json=configJson)
    return DataGraphOutput(dataGraph=_data_graph(updated.view, _match_counts(store, spaceId)),
                           warnings=updated.warnings or None)


def get_data_graph(store: Store, spaceId: SpaceId) -> DataGraphOutput:
    """(Not in the Public API.) Get the space's Data Graph: config, version, and per relationship its
    entity, level, join, rowCount and matchCount."""
    view = data_graphs.get_data_graph(store, spaceId)
    return DataGraphOutput(dataGraph=_data_graph(view, _match_counts(store, spaceId)))


def _match_counts(store: Store, space_id: str) -> dict[str, int]:
    """The join match counts, or none when the warehouse no longer fits the graph (a table dropped)."""
    try:
        return linked.join_counts(store, space_id) or {}
    except DomainError:
        return {}


def _data_graph(view: data_graphs.DataGraphView, matches: dict[str, int] | None = None) -> DataGraph:
    graph = view.graph
    relationships = []
    for node, parents in graph.nodes():
        entity = graph.entities[node.related_entity]
        table = view.tables.get(entity.table_ref)
        relationships.append(RelationshipSummary(
            relationshipSlug=node.slug, name=node.name, entitySlug=entity.slug, tableRef=entity.table_ref,
            level=len(parents) + 2, parentRelationshipSlugPath=":".join(parents), joinedBy=_joined_by(node),
            join=_join(node, graph.entity_of(parents[-1]).slug if parents else None),
            rowCount=None if table is None else table.rows, matchCount=(matches or {}).get(node.slug)))
    return DataGraph(spaceId=view.space_id, version=view.version, config=view.config, configFormat=view.config_format,
                     relationships=relationships, updatedAt=iso(view.updated_at), updatedBy=view.updated_by)


def _joined_by(node: Relationship) -> str:
    join = node.join
    if isinstance(join, ProfileJoin):
        return join.by
    return "join_on" if isinstance(join, ColumnJoin) else "junction_table"


def _join(node: Relationship, parent_entity: str | None) -> dict[str, Any]:
    join = node.join
    if isinstance(join, ProfileJoin):
        return {"type" if join.by == "external_id" else "name": join.key, "joinKey": join.join_key}
    if isinstance(join, ColumnJoin):
        return {"on": f"{parent_entity}.{join.parent_column} = {node.related_entity}.{join.child_column}"}
    assert isinstance(join, JunctionJoin)
    return {"tableRef": join.table_ref, "primaryKey": join.primary_key,
            "leftJoinOn": f"{parent_entity}.{join.parent_column} = {join.left_column}",
            "rightJoinOn": f"{join.right_column} = {node.related_entity}.{join.child_column}"}


TOOLS = [
    write("update_data_graph", "Update data graph", update_data_graph, idempotent=True),
    read("get_data_graph", "Get data graph", get_data_graph),
]
