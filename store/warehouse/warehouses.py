"""The warehouse: where a space's entity tables live, next to what full runs read.

- **DuckDB** (the default, beside the analytic store's file: `<name>.warehouse.duckdb`). A file of its
  own, not the analytic store's: that one is only a copy, rebuilt when damaged, and owned by one
  process. A statement that reads entities attaches this file read-only to the analytic store's
  connection for as long as it runs (`AnalyticStore.compute`), and a loader (`segment-audiences
  warehouse load`, in another process while `serve` runs) opens it read-write between those
  statements: DuckDB's file lock keeps the two apart, each waiting up to `LOCK_WAIT_SECONDS`. A
  statement therefore sees a table as it was before a load or after it, never half-loaded.
- **The operational database** (`--analytics none`): a schema of its own, `warehouse`, which on
  SQLite is a database file attached to every connection (`<name>.warehouse.sqlite`) and on
  PostgreSQL a schema. A load is one transaction.
- **ClickHouse** (`--analytics clickhouse://…`): the tables are already there; a `table_ref` names
  them. Loading is left to ClickHouse's own tools.

Files are read by DuckDB's readers everywhere (`store.warehouse.files`), so a column gets the type
DuckDB infers, written as each database's nearest type.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, Double, MetaData, Table, Text, inspect, text)

from store.db.errors import Conflict, InputValidation, NotFound
from store.warehouse.files import identifier, quoted, reader_sql
from store.warehouse.tables import ColumnInfo, TableInfo, ref_parts, table_name

SCHEMA = "warehouse"  # the warehouse's own schema (DuckDB: the alias its file is attached under)
LOCK_WAIT_SECONDS = 120.0
LOCK_RETRY_SECONDS = 0.1
INSERT_BATCH = 10_000


class Warehouse(Protocol):
    name: str

    def describe(self, table_ref: str) -> TableInfo | None:
        """The table a `table_ref` names, with its columns (and row count), or None."""

    def tables(self) -> list[TableInfo]:
        """The tables of the warehouse's own schema, with columns and row counts."""

    def load(self, table: str, file: str | Path, *, append: bool = False) -> TableInfo:
        """Load a file into a table of the warehouse's own schema, replacing it (or appending)."""

    def drop(self, table: str) -> None: ...

    def top_values(self, info: TableInfo, column: str, limit: int) -> list[str]:
        """A column's most frequent values as text, most frequent first (ties by value), NULLs left out."""


def _top_values_sql(qualified: str, column: str, limit: int, as_text: str) -> str:
    value = identifier(column)
    return (f"SELECT {as_text.format(value)} AS v, count(*) AS n FROM {qualified} WHERE {value} IS NOT NULL "
            f"GROUP BY v ORDER BY n DESC, v LIMIT {int(limit)}")


class DuckDBWarehouse:
    name = "duckdb"

    def __init__(self, path: str | Path, lock_wait_seconds: float = LOCK_WAIT_SECONDS):
        self.path = str(path)
        self.lock_wait_seconds = lock_wait_seconds

    @contextmanager
    def connection(self, *, write: bool) -> Iterator:
        """A connection of its own to the file, once no other process holds it against this use."""
        import duckdb

        connection = self._once_free(lambda: duckdb.connect(self.path, read_only=not write))
        try:
            yield connection
        finally:
            connection.close()

    @contextmanager
    def attached(self, connection) -> Iterator[None]:
        """The file attached read-only to a DuckDB connection (the analytic store's) as `warehouse`
        while the block runs, waiting while a loader holds it."""
        self._once_free(lambda: connection.execute(f"ATTACH {quoted(self.path)} AS {SCHEMA} (READ_ONLY)"))
        try:
            yield
        finally:
            connection.execute(f"DETACH {SCHEMA}")

    def _once_free(self, open_file):
        """`open_file()`'s result, tried again while another process holds the file (a first use
        makes the file)."""
        import duckdb

        if not Path(self.path).exists():
            duckdb.connect(self.path).close()
        deadline = time.monotonic() + self.lock_wait_seconds
        while True:
            try:
                return open_file()
            except duckdb.IOException as error:
                if "lock" not in str(error) or time.monotonic() >= deadline:
                    raise _busy(self.path, error) from None
                time.sleep(LOCK_RETRY_SECONDS)

    def load(self, table: str, file: str | Path, *, append: bool = False) -> TableInfo:
        name, source = table_name(table), reader_sql(file)
        with self.connection(write=True) as duck:
            duck.execute("BEGIN TRANSACTION")
            if append:
                duck.execute(f"CREATE TABLE IF NOT EXISTS main.{identifier(name)} AS SELECT * FROM {source} LIMIT 0")
                duck.execute(f"INSERT INTO main.{identifier(name)} BY NAME SELECT * FROM {source}")
            else:
                duck.execute(f"CREATE OR REPLACE TABLE main.{identifier(name)} AS SELECT * FROM {source}")
            duck.execute("COMMIT")
        return self.describe(name)

    def drop(self, table: str) -> None:
        with self.connection(write=True) as duck:
            found = self._found(duck, "main", table)
            if found is None:
                raise NotFound("warehouse table", table, by="name")
            duck.execute(f"DROP TABLE main.{identifier(found.name)}")

    def tables(self) -> list[TableInfo]:
        with self.connection(write=False) as duck:
            names = [row[0] for row in duck.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name").fetchall()]
            return [self._found(duck, "main", name) for name in names]

    def describe(self, table_ref: str) -> TableInfo | None:
        parts = ref_parts(table_ref, 3)
        if len(parts) == 3 and parts[0].lower() != SCHEMA:
            return None
        schema = parts[-2] if len(parts) > 1 else "main"
        with self.connection(write=False) as duck:
            return self._found(duck, schema, parts[-1])

    def top_values(self, info: TableInfo, column: str, limit: int) -> list[str]:
        schema = info.schema.split(".", 1)[1]
        with self.connection(write=False) as duck:
            sql = _top_values_sql(f"{identifier(schema)}.{identifier(info.name)}", column, limit, "CAST({} AS VARCHAR)")
            return [row[0] for row in duck.execute(sql).fetchall()]

    @staticmethod
    def _found(duck, schema: str, table: str) -> TableInfo | None:
        rows = duck.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE lower(table_schema) = lower(?) AND lower(table_name) = lower(?) ORDER BY ordinal_position",
            [schema, table]).fetchall()
        if not rows:
            return None
        found_schema, found_name = rows[0][0], rows[0][1]
        count = duck.execute(f"SELECT count(*) FROM {identifier(found_schema)}.{identifier(found_name)}").fetchone()[0]
        return TableInfo(f"{SCHEMA}.{found_schema}", found_name,
                         tuple(ColumnInfo(row[2], row[3]) for row in rows), count)


class OperationalWarehouse:
    """The `warehouse` schema of the operational database (SQLite: the attached file)."""

    def __init__(self, store):
        self.store = store
        self.name = store.engine.dialect.name

    def load(self, table: str, file: str | Path, *, append: bool = False) -> TableInfo:
        """Reads the file with DuckDB and inserts its rows in one transaction; PostgreSQL then analyzes
        the table, so the next run is planned on its real size rather than on empty statistics."""
        import duckdb

        name, source = table_name(table), reader_sql(file)
        reader = duckdb.connect()
        try:
            relation = reader.sql(f"SELECT * FROM {source}")
            columns = [Column(column, self._type(str(kind))) for column, kind in zip(relation.columns, relation.types)]
            target = Table(name, MetaData(), *columns, schema=SCHEMA)
            with self.store.write() as session:
                connection = session.connection()
                if self.name == "postgresql":
                    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
                existing = self._found(connection, SCHEMA, name)
                if existing is not None and not append:
                    connection.execute(text(f"DROP TABLE {SCHEMA}.{identifier(existing.name)}"))
                if existing is None or not append:
                    target.create(connection)
                else:
                    target = Table(existing.name, MetaData(), *(Column(c.name) for c in columns), schema=SCHEMA)
                names, cursor = relation.columns, reader.execute(f"SELECT * FROM {source}")
                while batch := cursor.fetchmany(INSERT_BATCH):
                    connection.execute(target.insert(), [dict(zip(names, map(_plain, row))) for row in batch])
                if self.name == "postgresql":
                    connection.execute(text(f"ANALYZE {SCHEMA}.{identifier(target.name)}"))
        finally:
            reader.close()
        return self.describe(name)

    @staticmethod
    def _type(duckdb_type: str):
        kind = duckdb_type.upper()
        if kind in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT"):
            return BigInteger()
        if kind in ("DOUBLE", "FLOAT", "REAL", "HUGEINT") or kind.startswith("DECIMAL"):
            return Double()
        if kind == "BOOLEAN":
            return Boolean()
        if kind == "DATE":
            return Date()
        if kind.startswith("TIMESTAMP"):
            return DateTime(timezone="TIME ZONE" in kind)
        return Text()

    def drop(self, table: str) -> None:
        with self.store.write() as session:
            connection = session.connection()
            found = self._found(connection, SCHEMA, table)
            if found is None:
                raise NotFound("warehouse table", table, by="name")
            connection.execute(text(f"DROP TABLE {SCHEMA}.{identifier(found.name)}"))

    def tables(self) -> list[TableInfo]:
        with self.store.read() as session:
            connection = session.connection()
            if not self._has_schema(connection):
                return []
            names = sorted(inspect(connection).get_table_names(schema=SCHEMA))
            return [self._found(connection, SCHEMA, name) for name in names]

    def describe(self, table_ref: str) -> TableInfo | None:
        parts = ref_parts(table_ref, 3 if self.name == "postgresql" else 2)
        with self.store.read() as session:
            connection = session.connection()
            if len(parts) == 3 and parts[0] != connection.execute(text("SELECT current_database()")).scalar_one():
                return None
            return self._found(connection, parts[-2] if len(parts) > 1 else SCHEMA, parts[-1])

    def top_values(self, info: TableInfo, column: str, limit: int) -> list[str]:
        sql = _top_values_sql(f"{identifier(info.schema)}.{identifier(info.name)}", column, limit, "CAST({} AS TEXT)")
        with self.store.read() as session:
            return [row[0] for row in session.connection().execute(text(sql))]

    def _has_schema(self, connection) -> bool:
        return SCHEMA in inspect(connection).get_schema_names()

    def _found(self, connection, schema: str, table: str) -> TableInfo | None:
        inspector = inspect(connection)
        schemas = {name.lower(): name for name in inspector.get_schema_names()}
        if schema.lower() not in schemas:
            return None
        schema = schemas[schema.lower()]
        names = {name.lower(): name for name in inspector.get_table_names(schema=schema)}
        if table.lower() not in names:
            return None
        name = names[table.lower()]
        columns = tuple(ColumnInfo(column["name"], str(column["type"])) for column in
                        inspector.get_columns(name, schema=schema))
        count = connection.execute(text(f"SELECT count(*) FROM {identifier(schema)}.{identifier(name)}")).scalar_one()
        return TableInfo(schema, name, columns, count)


class ClickHouseWarehouse:
    """The ClickHouse database the analytic store uses (its own tables left out); entity tables are
    made with ClickHouse's tools."""

    name = "clickhouse"

    def __init__(self, client, own_tables: frozenset[str] = frozenset()):
        self.client, self.own_tables = client, own_tables

    def describe(self, table_ref: str) -> TableInfo | None:
        parts = ref_parts(table_ref, 2)
        database = quoted(parts[0]) if len(parts) == 2 else "currentDatabase()"
        rows = self.client.query_rows(
            "SELECT database, table, name, type FROM system.columns WHERE lower(database) = lower("
            f"{database}) AND lower(table) = lower({quoted(parts[-1])}) ORDER BY position")
        if not rows:
            return None
        schema, name = rows[0][0], rows[0][1]
        [(count,)] = self.client.query_rows(f"SELECT count() FROM `{schema}`.`{name}`")
        return TableInfo(schema, name, tuple(ColumnInfo(row[2], row[3]) for row in rows), int(count))

    def tables(self) -> list[TableInfo]:
        names = self.client.query_rows("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                       "ORDER BY name")
        return [self.describe(name) for (name,) in names if name not in self.own_tables]

    def top_values(self, info: TableInfo, column: str, limit: int) -> list[str]:
        qualified = f"`{info.schema}`.`{info.name}`"
        sql = (f"SELECT toString(`{column}`) AS v, count() AS n FROM {qualified} WHERE `{column}` IS NOT NULL "
               f"GROUP BY v ORDER BY n DESC, v LIMIT {int(limit)}")
        return [row[0] for row in self.client.query_rows(sql)]

    def load(self, table: str, file: str | Path, *, append: bool = False) -> TableInfo:
        raise InputValidation("On ClickHouse the entity tables are yours: create and fill them with ClickHouse's own "
                              "tools, then name them in the Data Graph's table_ref (database.table).", field="table")

    def drop(self, table: str) -> None:
        raise InputValidation("On ClickHouse the entity tables are yours: drop them with ClickHouse's own tools.",
                              field="table")


def _busy(path: str, error: Exception) -> Conflict:
    return Conflict(f"The warehouse file {path} is held by another process ({error}); nothing was done. Retry once "
                    "its load or run has finished.")


def _plain(value):
    """A value as the operational database's driver takes it (SQLite has no decimals)."""
    return float(value) if isinstance(value, Decimal) else value
