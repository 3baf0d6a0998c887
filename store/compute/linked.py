"""Where a LINKED computation's `entity()` conditions run: with the space's Data Graph resolved
against the warehouse when its run starts, on the engine that holds both the entity tables and the
profile tables (`store.warehouse`):

- the DuckDB warehouse file is attached, read-only, to the analytic store's DuckDB for the run's
  statement, so only the process that owns the analytic store computes LINKED audiences (another
  fails the run, saying so);
- ClickHouse reads its own tables;
- the operational database's `warehouse` schema is read as the operational store's runs read it.

A run's computation carries the graph (`computations.with_data_graph`).

The analytic store's answer is taken as it is: the profiles changed since its copy are not recomputed
on the operational store (which cannot read the DuckDB or ClickHouse warehouse), so a LINKED run is
as fresh as that copy, made when the run starts. Segment's LINKED audiences are as fresh as the
warehouse's Profiles Sync.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection

from sqlalchemy import func, literal, select, union_all

from backend.cql.entities import entity_join, profile_join
from backend.cql.errors import CompileError
from backend.cql.matched import Matches, nest
from backend.datagraph.linked import LinkedGraph, LinkedNode
from store.analytic import tables as analytic_tables
from store.analytic.store import AnalyticStore, FullResult
from store.catalog import data_graphs
from store.compute.computations import TABLES, Computation
from store.db.budget import Budget
from store.db.store import Store
from store.warehouse.location import warehouse_of
from store.warehouse.warehouses import DuckDBWarehouse, OperationalWarehouse


def full_result(store: Store, computation: Computation, now, budget: Budget) -> FullResult | None:
    """The run's rows from the analytic store, or None when the warehouse is the operational
    database's (the run then reads it as any other)."""
    warehouse = warehouse_of(store)
    if isinstance(warehouse, OperationalWarehouse):
        return None
    analytics = _owning_analytic_store(store, warehouse)
    attach = warehouse.attached if isinstance(warehouse, DuckDBWarehouse) else None
    result = computation.on_analytic_store(analytics, now, budget, attached=attach)
    if result is None:
        raise CompileError(_NOT_READY)
    return result


MAX_LISTED_PROFILES = 1_000  # more profile ids than this are not written into a statement
_NOT_READY = ("the analytic store is still making its first copy of the profiles; the LINKED run can start once it "
              "has (force it again in a moment)")


def _owning_analytic_store(store: Store, warehouse) -> AnalyticStore:
    analytics = store.analytics
    if analytics is None or analytics.name != warehouse.name:
        raise CompileError(f"the warehouse ({warehouse.name}) is read through the analytic store, which another "
                           "process owns; LINKED audiences are computed by the process that owns it (serve)")
    return analytics


def matched(store: Store, computation: Computation, now, budget: Budget, *, columns: dict[str, Collection[str]],
            profile_ids: Collection[str] | None = None, top_only: bool = False) -> dict[str, Matches]:
    """Per profile (of `profile_ids`, or every one), the entity rows its definition's conditions keep
    (`backend.cql.matched`), showing `columns` besides the definition's, read on the engine that
    computes the run; `top_only` reads only the rows directly under the profile. A long list of
    profiles is not sent to the engine: their rows are read for every profile and kept for them."""
    restrict = profile_ids if profile_ids is not None and len(profile_ids) <= MAX_LISTED_PROFILES else None
    warehouse = warehouse_of(store)
    if isinstance(warehouse, OperationalWarehouse):
        streams = computation.matched_streams(now, columns, restrict)
        with store.read() as session, budget.on(session.connection()):
            results = [(stream, session.execute(stream.statement).all()) for stream in streams
                       if not (top_only and stream.enclosing is not None)]
        return nest(results, profile_ids)
    analytics = _owning_analytic_store(store, warehouse)
    attach = warehouse.attached if isinstance(warehouse, DuckDBWarehouse) else None
    tables = analytics.tables_for(computation.analysis.property_paths)
    results = []
    for stream in computation.matched_streams(now, columns, restrict, analytic=tables):
        if top_only and stream.enclosing is not None:
            continue
        result = analytics.compute(stream.statement, computation.space_id, computation.analysis.referenced_traits,
                                   budget=budget, attached=attach)
        if result is None:
            raise CompileError(_NOT_READY)
        results.append((stream, result.rows))
    return nest(results, profile_ids)


def join_counts(store: Store, space_id: str) -> dict[str, int] | None:
    """Per relationship, how many rows of its entity its join matches: under the profile, rows joined
    to a profile of the space; deeper, rows joined to some row of the parent entity (distinct by
    primary key). None when this process cannot read the warehouse beside the profiles."""
    graph = data_graphs.linked_graph(store, space_id)
    warehouse = warehouse_of(store)
    analytics = store.analytics
    if isinstance(warehouse, OperationalWarehouse):
        statement = _counts(graph, TABLES, space_id)
        with store.read() as session:
            return {slug: int(count) for slug, count in session.execute(statement)}
    if analytics is None or analytics.name != warehouse.name:
        return None
    attach = warehouse.attached if isinstance(warehouse, DuckDBWarehouse) else None
    result = analytics.compute(_counts(graph, analytic_tables.TABLES, space_id), space_id, attached=attach)
    return None if result is None else {slug: int(count) for slug, count in result.rows}


def _counts(graph: LinkedGraph, tables, space_id: str):
    names = itertools.count(1)

    def name(prefix: str) -> str:
        return f"{prefix}{next(names)}"

    def count(node: LinkedNode, parent: LinkedNode | None):
        entity = node.table.alias(name("n"))
        pk = node.sql_column(entity, node.primary_key)
        if parent is None:
            source, _, conditions = profile_join(tables, space_id, node, entity, name)
        else:
            rows = parent.table.alias(name("p"))
            source, conditions = entity_join(node, entity, rows, parent.column(node.join.parent_column)[0], name), []
        return select(literal(node.slug).label("slug"), func.count(pk.distinct()).label("n")).select_from(
            source).where(*conditions)

    def under(node: LinkedNode, parent: LinkedNode | None):
        yield count(node, parent)
        for child in node.children.values():
            yield from under(child, node)

    return union_all(*(statement for node in graph.top.values() for statement in under(node, None)))
