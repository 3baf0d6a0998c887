"""Random Data Graphs for the LINKED differential test: a graph's shape, its entity and junction rows,
the profiles' identifiers, written to one engine beside the profiles `tests.cql_data` stores there, and
the same data as the reference evaluator's linked rows.

Every entity table has the same columns (ID, the primary key; PARENT, the join column; NUM, TXT,
FLAG, DAY), so one set of tables serves every graph; a graph of n relationships uses the first n
entity tables (`entity0`…) and junction tables (`junction0`…: ID, L, R)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Boolean, Column, Date, Double, MetaData, String, Table, delete, insert

from backend.cql.evaluate import EntityRecord
from backend.datagraph.config import DataGraph, from_document
from backend.datagraph.linked import LinkedGraph, ResolvedTable, resolve
from backend.datagraph.types import family
from store.analytic import tables as analytic
from store.db.models import Identifier
from tests.cql_data import SPACE

SLOTS = 5
EMAILS = ["a@x.io", "b@x.io", "c@x.io"]
CUSTOMERS = ["n1", "n2", "n3"]
METADATA = MetaData()
ENTITY_COLUMNS = {"ID": String, "PARENT": String, "NUM": Double, "TXT": String, "FLAG": Boolean, "DAY": Date}
ENTITY_TYPES = {"ID": "VARCHAR", "PARENT": "VARCHAR", "NUM": "DOUBLE", "TXT": "VARCHAR", "FLAG": "BOOLEAN",
                "DAY": "DATE"}
CLICKHOUSE_TYPES = {"ID": "String", "PARENT": "Nullable(String)", "NUM": "Nullable(Float64)",
                    "TXT": "Nullable(String)", "FLAG": "Nullable(Bool)", "DAY": "Nullable(Date)"}
ENTITIES = [Table(f"entity{slot}", METADATA, *(Column(name, kind()) for name, kind in ENTITY_COLUMNS.items()))
            for slot in range(SLOTS)]
JUNCTIONS = [Table(f"junction{slot}", METADATA, Column("ID", String), Column("L", String), Column("R", String))
             for slot in range(SLOTS)]


@dataclass(frozen=True)
class Shape:
    """Relationship `r<i>` joins `parents[i]` (None: the profile) by `joins[i]`: `external_id`,
    `trait`, `join_on` or `junction`."""

    parents: tuple[int | None, ...]
    joins: tuple[str, ...]

    def children(self, slot: int | None) -> list[int]:
        return [index for index, parent in enumerate(self.parents) if parent == slot]

    def depth(self, slot: int) -> int:
        parent = self.parents[slot]
        return 1 if parent is None else 1 + self.depth(parent)


def graph_document(shape: Shape) -> dict:
    """The shape as a Data Graph config in HCL's JSON form."""
    def relationship(slot: int) -> dict:
        body: dict = {"name": f"R{slot}", "related_entity": f"e{slot}"}
        join, parent = shape.joins[slot], shape.parents[slot]
        if join == "external_id":
            body["external_id"] = {"type": "email", "join_key": "PARENT"}
        elif join == "trait":
            body["trait"] = {"name": "customer", "join_key": "parent"}
        elif join == "join_on":
            body["join_on"] = f"e{parent}.ID = e{slot}.PARENT"
        else:
            body["junction_table"] = {"table_ref": f"junction{slot}", "primary_key": "ID", "left_join_on": f"e{parent}.ID = L",
                                      "right_join_on": f"R = e{slot}.ID"}
        children = shape.children(slot)
        if children:
            body["relationship"] = {f"r{child}": relationship(child) for child in children}
        return body

    entities = {f"e{slot}": {"name": f"E{slot}", "table_ref": f"entity{slot}", "primary_key": "ID"}
                for slot in range(len(shape.parents))}
    return {"data_graph": {"entity": entities, "profile": {"relationship": {
        f"r{slot}": relationship(slot) for slot in shape.children(None)}}}}


def resolved(graph: DataGraph, schema: str | None = None) -> LinkedGraph:
    def table_of(ref: str) -> ResolvedTable:
        source = METADATA.tables[ref]
        table = Table(source.name, MetaData(), *(Column(c.name, c.type) for c in source.columns), schema=schema)
        families = {c.name.lower(): (c.name, family(ENTITY_TYPES.get(c.name, "VARCHAR"))) for c in source.columns}
        return ResolvedTable(table, families)

    return resolve(graph, table_of)


@dataclass(frozen=True)
class LinkedRows:
    """The rows of a graph's entity and junction tables, and each profile's email."""

    entities: dict[int, list[dict]]
    junctions: dict[int, list[dict]]
    emails: dict[str, str]

    def linked(self, shape: Shape, profile_id: str, traits: dict) -> dict:
        """The profile's linked rows per top-level relationship, as the evaluator takes them."""
        linked = {}
        for slot in shape.children(None):
            if shape.joins[slot] == "external_id":
                key = self.emails.get(profile_id)
            else:
                key = traits.get("customer") if isinstance(traits.get("customer"), str) else None
            rows = [row for row in self.entities[slot] if key is not None and row["PARENT"] == key]
            linked[f"r{slot}"] = [self.record(shape, slot, row) for row in rows]
        return linked

    def record(self, shape: Shape, slot: int, row: dict) -> EntityRecord:
        children = {}
        for child in shape.children(slot):
            if shape.joins[child] == "join_on":
                rows = [other for other in self.entities[child] if other["PARENT"] == row["ID"]]
            else:
                rows = [other for link in self.junctions[child] if link["L"] == row["ID"]
                        for other in self.entities[child] if other["ID"] == link["R"]]
            children[f"r{child}"] = [self.record(shape, child, other) for other in rows]
        return EntityRecord(row["ID"], row, children)


def parse_shape(shape: Shape) -> DataGraph:
    return from_document(graph_document(shape))


def write(database, rows: LinkedRows, profile_ids: list[str]) -> None:
    """The identifiers and the entity and junction rows written to the database's engine."""
    identifiers = [dict(id=index + 1, space_id=SPACE, collection="users", type="email", value=email,
                        profile_id=profile_id, created_at_ms=0, first_message_id="m", source_id="web")
                   for index, (profile_id, email) in enumerate(sorted(rows.emails.items()))]
    tables = [(ENTITIES[slot], rows.entities.get(slot, [])) for slot in range(SLOTS)] + [
        (JUNCTIONS[slot], rows.junctions.get(slot, [])) for slot in range(SLOTS)]
    if database.analytic is None:
        with database.operational.begin() as connection:
            METADATA.create_all(connection)
            connection.execute(delete(Identifier.__table__))
            if identifiers:
                connection.execute(insert(Identifier.__table__), identifiers)
            for table, table_rows in tables:
                connection.execute(delete(table))
                if table_rows:
                    connection.execute(insert(table), table_rows)
        return
    engine = database.analytic
    _create_analytic(engine)
    columns = [str(column.name) for column in analytic.IDENTIFIER.columns]
    engine.execute("TRUNCATE TABLE identifier")
    engine.insert(analytic.IDENTIFIER, columns, [tuple(row[name] for name in columns) for row in identifiers])
    for table, table_rows in tables:
        engine.execute(f"TRUNCATE TABLE {table.name}")
        names = [str(column.name) for column in table.columns]
        engine.insert(table, names, [tuple(_stored(engine, row[name]) for name in names) for row in table_rows])


def _stored(engine, value):
    return value.isoformat() if isinstance(value, date) and engine.name == "clickhouse" else value


def _create_analytic(engine) -> None:
    if getattr(engine, "_linked_tables", False):
        return
    if engine.name == "duckdb":
        METADATA.create_all(engine.engine)
    else:
        for table in ENTITIES:
            columns = ", ".join(f"`{name}` {kind}" for name, kind in CLICKHOUSE_TYPES.items())
            engine.execute(f"CREATE TABLE {table.name} ({columns}) ENGINE = MergeTree ORDER BY ID")
        for table in JUNCTIONS:
            engine.execute(f"CREATE TABLE {table.name} (ID String, L String, R String) ENGINE = MergeTree ORDER BY ID")
    engine._linked_tables = True
