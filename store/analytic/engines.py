"""Connections to the analytic engines, behind one interface: create the tables, run SQL text or a
compiled statement, insert rows column by column, and group writes in a transaction where the
engine has them.

DuckDB is reached through SQLAlchemy (duckdb_engine), whose dialect renders statements for it; rows
go in through Arrow. ClickHouse is reached through a client that takes SQL text:
clickhouse-connect's client for a server, or chdb (the ClickHouse engine in process) for tests and
one machine. Statements are rendered by clickhouse-connect's SQLAlchemy dialect with their values
inlined (it quotes them for ClickHouse), and run with `join_use_nulls`, so an unmatched LEFT JOIN
gives NULL as in SQL. ClickHouse has no transactions: what the replicator writes is idempotent
instead (`store.analytic.replication`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Protocol

import orjson
from sqlalchemy import Connection, Executable, Table, create_engine

from store.analytic.tables import CLICKHOUSE_ORDER, METADATA, DerivedColumn

CLICKHOUSE_TYPES = {"BIGINT": "Int64", "VARCHAR": "String", "DOUBLE": "Float64"}


class AnalyticEngine(Protocol):
    name: str
    keeps_values: bool  # whether computed traits' values are kept here (`store.analytic.values`)

    def create_tables(self) -> None: ...

    def drop_tables(self) -> None:
        """Drop every analytic table (and forget their derived columns)."""

    def transaction(self): ...

    def execute(self, sql: str) -> None: ...

    def run(self, statement: Executable) -> list[tuple]: ...

    def insert(self, table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> None: ...

    def derive(self, table: Table, columns: Sequence[DerivedColumn], *, fill: bool) -> None: ...

    def attached(self, attach):
        """A context manager under which statements also read what `attach` attaches (DuckDB)."""

    def sql(self, statement: Executable) -> str: ...

    def interrupt(self) -> None:
        """Stop the statement `run` is running now, if the engine can (`store.db.budget`)."""

    def close(self) -> None: ...


class DuckDB:
    """A DuckDB database file (or `:memory:`). DuckDB lets one process at a time open a file for
    writing; opening it fails in any other (`duckdb.IOException`)."""

    name = "duckdb"
    keeps_values = True  # its file is this process's alone

    def __init__(self, path: str):
        self.engine = create_engine(f"duckdb:///{path}")
        self._connection: Connection | None = None
        self._running = None
        self._derived: dict[str, list[DerivedColumn]] = {}
        self.engine.connect().close()

    def create_tables(self) -> None:
        METADATA.create_all(self.engine)

    def drop_tables(self) -> None:
        METADATA.drop_all(self.engine)
        self._derived.clear()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes made inside commit together, or not at all."""
        with self.engine.begin() as connection:
            self._connection = connection
            try:
                yield
            finally:
                self._connection = None

    def _using(self):
        return nullcontext(self._connection) if self._connection is not None else self.engine.begin()

    @contextmanager
    def attached(self, attach) -> Iterator[None]:
        """Statements run inside read what `attach(duckdb_connection)` attaches for as long as it is
        entered (nothing when it is None), all on one connection."""
        if attach is None:
            yield
            return
        with self.engine.connect() as connection:
            self._connection = connection
            try:
                with attach(connection.connection.driver_connection):
                    yield
            finally:
                self._connection = None

    def execute(self, sql: str) -> None:
        """Run a statement as written (through DuckDB's cursor: a `:name` in a literal stays text)."""
        with self._using() as connection:
            connection.connection.driver_connection.execute(sql)

    def run(self, statement: Executable) -> list[tuple]:
        """The statement's rows, sent with its values inlined and read through DuckDB's own cursor:
        bound values keep DuckDB from pruning row groups by them (three times slower here), and
        SQLAlchemy's rows cost as much again as the query on large answers."""
        with self._using() as connection:
            self._running = connection.connection.driver_connection
            try:
                return self._running.execute(self.sql(statement)).fetchall()
            finally:
                self._running = None

    def interrupt(self) -> None:
        running = self._running
        if running is not None:
            running.interrupt()

    def insert(self, table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        """Insert rows through an Arrow table built a column at a time (three times faster than Arrow
        transposing the rows), computing the table's derived columns as they go in."""
        if not rows:
            return
        import pyarrow

        batch = pyarrow.table({name: pyarrow.array([row[index] for row in rows]) for index, name in enumerate(columns)})
        derived = self._derived.get(table.name, [])
        names = [*columns, *(column.name for column in derived)]
        values = [*columns, *(self.sql(column.expression) for column in derived)]
        with self._using() as connection:
            duck = connection.connection.driver_connection
            duck.register("incoming_rows", batch)
            try:
                duck.execute(f"INSERT INTO \"{table.name}\" ({', '.join(names)}) "
                             f"SELECT {', '.join(values)} FROM incoming_rows")
            finally:
                duck.unregister("incoming_rows")

    def derive(self, table: Table, columns: Sequence[DerivedColumn], *, fill: bool) -> None:
        """Keep `columns` computed from the rows `insert` adds to `table`; with `fill`, add them to the
        table first and compute them for its rows. (DuckDB's generated columns are computed on every
        read, which is what these columns are there to avoid.)"""
        if fill and columns:
            for column in columns:
                kind = column.kind().compile(dialect=self.engine.dialect)
                self.execute(f'ALTER TABLE "{table.name}" ADD COLUMN IF NOT EXISTS {column.name} {kind}')
            assignments = ", ".join(f"{column.name} = {self.sql(column.expression)}" for column in columns)
            self.execute(f'UPDATE "{table.name}" SET {assignments}')
        self._derived.setdefault(table.name, []).extend(columns)

    def sql(self, statement: Executable) -> str:
        return str(statement.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))

    def close(self) -> None:
        self.engine.dispose()


class ClickHouseClient(Protocol):
    """What this store needs of a ClickHouse connection."""

    def query_rows(self, sql: str) -> list[tuple]: ...

    def command(self, sql: str) -> None: ...

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None: ...

    def close(self) -> None: ...


class ClickHouse:
    """A ClickHouse database reached through `client`."""

    name = "clickhouse"
    keeps_values = False  # a server is shared by processes: runs of one computation could interleave there

    def __init__(self, client: ClickHouseClient):
        from clickhouse_connect.cc_sqlalchemy.dialect import ClickHouseDialect

        self.client = client
        self.dialect = ClickHouseDialect()

    def create_tables(self) -> None:
        for table in METADATA.sorted_tables:
            columns = ", ".join(f"`{column.name}` {self._type(column)}" for column in table.columns)
            self.client.command(f"CREATE TABLE IF NOT EXISTS `{table.name}` ({columns}) "
                                f"ENGINE = MergeTree ORDER BY {CLICKHOUSE_ORDER[table.name]}")

    def drop_tables(self) -> None:
        for table in METADATA.sorted_tables:
            self.client.command(f"DROP TABLE IF EXISTS `{table.name}`")

    @staticmethod
    def own_tables() -> frozenset[str]:
        """The tables this store keeps in the database (the rest are the user's)."""
        return frozenset(METADATA.tables)

    @staticmethod
    def _type(column) -> str:
        kind = CLICKHOUSE_TYPES[column.type.compile().split("(")[0]]
        return f"Nullable({kind})" if column.nullable else kind

    def transaction(self):
        return nullcontext()

    def attached(self, attach):
        """ClickHouse reads its own databases: nothing is attached."""
        return nullcontext()

    def execute(self, sql: str) -> None:
        self.client.command(sql)

    def run(self, statement: Executable) -> list[tuple]:
        return self.client.query_rows(self.sql(statement) + " SETTINGS join_use_nulls = 1")

    def insert(self, table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        if rows:
            self.client.insert_rows(table.name, columns, rows)

    def derive(self, table: Table, columns: Sequence[DerivedColumn], *, fill: bool) -> None:
        """Add `columns` as MATERIALIZED columns, which ClickHouse computes for every row inserted (a
        column already there is kept: with no transactions, an earlier attempt may have added it),
        and with `fill` compute them for the rows already there."""
        for column in columns:
            kind = CLICKHOUSE_TYPES[column.kind().compile().split("(")[0]]
            self.client.command(f"ALTER TABLE `{table.name}` ADD COLUMN IF NOT EXISTS `{column.name}` "
                                f"Nullable({kind}) MATERIALIZED {self.sql(column.expression)}")
        for column in columns if fill else ():
            self.client.command(f"ALTER TABLE `{table.name}` MATERIALIZE COLUMN `{column.name}` "
                                "SETTINGS mutations_sync = 2")

    def sql(self, statement: Executable) -> str:
        return str(statement.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))

    def interrupt(self) -> None:
        """ClickHouse's statements are not stopped from here: one over budget is refused when it ends."""

    def close(self) -> None:
        self.client.close()


class Chdb:
    """The ClickHouse engine in this process (chdb), as a `ClickHouseClient`."""

    def __init__(self, path: str = ":memory:"):
        import chdb

        self.connection = chdb.connect(path)

    def query_rows(self, sql: str) -> list[tuple]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def command(self, sql: str) -> None:
        self.query_rows(sql)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        lines = b"\n".join(orjson.dumps(dict(zip(columns, row))) for row in rows).decode()
        self.command(f"INSERT INTO `{table}` FORMAT JSONEachRow\n{lines}")

    def close(self) -> None:
        self.connection.close()


class ClickHouseServer:
    """A ClickHouse server through clickhouse-connect, as a `ClickHouseClient`."""

    def __init__(self, url: str):
        import clickhouse_connect

        self.client = clickhouse_connect.get_client(dsn=url)

    def query_rows(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self.client.query(sql).result_rows]

    def command(self, sql: str) -> None:
        self.client.command(sql)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        self.client.insert(table, list(rows), column_names=list(columns))

    def close(self) -> None:
        self.client.close()
