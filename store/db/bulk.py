"""Writing and reading many rows at once through the database driver's own `executemany`, `COPY`
(PostgreSQL), a staged `INSERT … SELECT` (SQLite) and cursor.

SQLAlchemy's per-row parameter processing costs more than the insert itself on the ingest path (and
its row objects more than the query on a full run's reads), and the rows there already hold plain
strings and integers. Statements are still built with SQLAlchemy Core (so they follow the dialect),
compiled once per dialect and remembered by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import orjson
from sqlalchemy import Column, Connection, MetaData, Select, Table, bindparam, literal, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable

_COMPILED: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}
IN_CHUNK = 300
STAGED_ROWS = 10_000


def execute_rows(connection: Connection, name: str, build: Callable[[], Executable], columns: tuple[str, ...],
                 rows: Sequence[Sequence]) -> None:
    """Run the statement `build()` once per row; each row holds the bind values in `columns` order."""
    if not rows:
        return
    sql, order = _compiled(connection, name, build)
    if order is None:
        parameters = [dict(zip(columns, row)) for row in rows]
    elif order == columns:
        parameters = rows
    else:
        positions = [columns.index(column) for column in order]
        parameters = [tuple(row[i] for i in positions) for row in rows]
    connection.exec_driver_sql(sql, parameters)


def select_in(connection: Connection, name: str, build: Callable[[list], Executable], values: Sequence,
              fixed: dict | None = None) -> list[tuple]:
    """Rows of `build(placeholders)` for every value, asked in chunks of IN_CHUNK. The statement gets
    a fixed number of placeholders (the last chunk repeats its last value) so it is compiled once;
    `fixed` gives the values of the statement's other, named bind parameters."""
    values = list(values)
    if not values:
        return []
    names = [f"in_{i}" for i in range(IN_CHUNK)]
    sql, order = _compiled(connection, name, lambda: build([bindparam(n) for n in names]))
    found: list[tuple] = []
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        named = {**(fixed or {}), **dict(zip(names, chunk + [chunk[-1]] * (IN_CHUNK - len(chunk))))}
        parameters = named if order is None else tuple(named[n] for n in order)
        found.extend(connection.exec_driver_sql(sql, parameters).all())
    return found


def select_all(connection: Connection, name: str, build: Callable[[], Executable], fixed: dict | None = None) -> list[tuple]:
    """Every row of `build()`, as the driver's plain tuples: a full run reads up to a row per profile,
    and building SQLAlchemy's row objects for them costs more than the query (0.6 s against 0.17 s
    for 456,000 members). `fixed` gives the values of the statement's named bind parameters."""
    sql, order = _compiled(connection, name, build)
    named = fixed or {}
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, named if order is None else tuple(named[n] for n in order))
        return cursor.fetchall()
    finally:
        cursor.close()


def _compiled(connection: Connection, name: str, build: Callable[[], Executable]) -> tuple[str, tuple[str, ...] | None]:
    """The SQL text of `build()` for the connection's dialect, compiled once, and the order of its
    bind parameters where the driver takes them by position (None: by name)."""
    key = (connection.dialect.name, name)
    if key not in _COMPILED:
        compiled = build().compile(dialect=connection.dialect)
        _COMPILED[key] = (str(compiled), tuple(compiled.positiontup) if connection.dialect.positional else None)
    return _COMPILED[key]


def execute_dicts(connection: Connection, name: str, build: Callable[[], Executable], rows: list[dict]) -> None:
    """`execute_rows` for rows given as dicts, all with the same keys in the same order."""
    if rows:
        execute_rows(connection, name, build, tuple(rows[0]), [tuple(row.values()) for row in rows])


def insert_rows(connection: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence],
                fixed: dict | None = None) -> None:
    """Insert rows given in `columns` order, each with the `fixed` values (the same in every row, as a
    run's computation, space and time are) in the columns those name. Many rows (`STAGED_ROWS` or
    more) go in bulk: on PostgreSQL in one `COPY` stream, on SQLite staged in a temporary table (of
    `columns` alone) and moved with one INSERT … SELECT. One statement keeps its place in the table
    and each index from row to row, where a statement per row seeks them from the root again: a
    million history rows took 4.3 s one by one, and 2.1 s staged, the staging included."""
    fixed = fixed or {}
    if len(rows) >= STAGED_ROWS and connection.dialect.name == "sqlite":
        with _staged(connection, table, columns, rows) as staged:
            connection.execute(table.insert().from_select((*columns, *fixed), _with_fixed(table, staged, fixed)))
        return
    every, whole = (*columns, *fixed), _extended(rows, fixed)
    if len(rows) < STAGED_ROWS:
        _insert_each(connection, table, every, whole)
    else:
        _copy(connection, table, every, whole)


def _extended(rows: Sequence[Sequence], fixed: dict) -> Sequence[Sequence]:
    """Each row followed by the `fixed` values."""
    return [(*row, *fixed.values()) for row in rows] if fixed else rows


def _insert_each(connection: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence]) -> None:
    """One INSERT per row, through the driver's `executemany`."""
    execute_rows(connection, f"insert {table.name} {columns}",
                 lambda: table.insert().values({name: bindparam(name) for name in columns}), columns, rows)


@contextmanager
def _staged(connection: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence]) -> Iterator[Table]:
    """A temporary table of `table`'s `columns` holding `rows` (loaded with `COPY` on PostgreSQL),
    dropped once the block ends."""
    staged = Table(f"staged_{table.name}", MetaData(), *(Column(name, table.c[name].type) for name in columns),
                   prefixes=["TEMPORARY"])
    staged.create(connection)
    try:
        if connection.dialect.name == "postgresql":
            _copy(connection, staged, columns, rows)
        else:
            _insert_each(connection, staged, columns, rows)
        yield staged
    finally:
        staged.drop(connection)


def _with_fixed(table: Table, staged: Table, fixed: dict) -> Select:
    """Every staged row, followed by the `fixed` values as bound parameters of their columns' types.
    (SQLite needs the WHERE before an upsert's ON CONFLICT.)"""
    return select(*staged.c, *(literal(value, table.c[name].type) for name, value in fixed.items())).where(true())


def _copy(connection: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence]) -> None:
    """`COPY … FROM STDIN` on the connection's own transaction; psycopg writes each value in the
    text form of its column's type."""
    preparer = connection.dialect.identifier_preparer
    names = ", ".join(preparer.quote(name) for name in columns)
    with connection.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY {preparer.format_table(table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def insert_dicts(connection: Connection, table: Table, rows: list[dict]) -> None:
    if rows:
        insert_rows(connection, table, tuple(rows[0]), [tuple(row.values()) for row in rows])


def insert_ignoring_duplicates(connection: Connection, table: Table, rows: list[dict]) -> None:
    if rows:
        columns = tuple(rows[0])
        execute_dicts(connection, f"insert or ignore {table.name} {columns}", lambda: dialect_insert(connection, table).values(
            {name: bindparam(name) for name in columns}).on_conflict_do_nothing(), rows)


def insert_or_hold(connection: Connection, table: Table, rows: list[dict], keys: tuple[str, ...]) -> None:
    """Insert rows; a row already stored under the same keys is kept as it was but locked (a no-op
    update) until this transaction ends. A claim that skips locked rows (`FOR UPDATE SKIP LOCKED`)
    then passes it over instead of taking it before the rest of this transaction is visible."""
    if not rows:
        return
    columns = tuple(rows[0])

    def build() -> Executable:
        statement = dialect_insert(connection, table).values({name: bindparam(name) for name in columns})
        kept = {name: table.c[name] for name in columns if name not in keys}
        return statement.on_conflict_do_update(index_elements=[table.c[key] for key in keys], set_=kept)

    execute_dicts(connection, f"insert or hold {table.name} {columns}", build, rows)


def upsert_newer(connection: Connection, table: Table, rows: list[dict], keys: tuple[str, ...], stamp: str) -> None:
    """Insert rows; on a key clash overwrite the stored row only with one whose `stamp` is at least as new."""
    if rows:
        _upsert_newer_rows(connection, table, tuple(rows[0]), [tuple(row.values()) for row in rows], keys, stamp)


def _upsert_newer_rows(connection: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence],
                       keys: tuple[str, ...], stamp: str) -> None:
    execute_rows(connection, f"upsert {table.name} {columns}",
                 lambda: _newer(dialect_insert(connection, table).values({name: bindparam(name) for name in columns}),
                                table, columns, keys, stamp), columns, rows)


def upsert_newer_distinct(connection: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence],
                          keys: tuple[str, ...], stamp: str, fixed: dict | None = None) -> None:
    """`upsert_newer` for rows given in `columns` order (with the `fixed` values, as in `insert_rows`)
    whose keys are all distinct (as a run's values are, one per profile). Many rows go through a
    temporary table and one INSERT … SELECT: SQLite keeps a statement journal of every page a
    statement changes in a table with triggers (the analytic change log's), so a million one-row
    statements into `trait` took 16 s, and one statement 4.5 s."""
    fixed = fixed or {}
    every = (*columns, *fixed)
    if len(rows) < STAGED_ROWS:
        _upsert_newer_rows(connection, table, every, _extended(rows, fixed), keys, stamp)
        return
    with _staged(connection, table, columns, rows) as staged:
        connection.execute(_newer(dialect_insert(connection, table).from_select(every, _with_fixed(table, staged, fixed)),
                                  table, every, keys, stamp))


def _newer(statement, table: Table, columns: tuple[str, ...], keys: tuple[str, ...], stamp: str) -> Executable:
    return statement.on_conflict_do_update(
        index_elements=[table.c[key] for key in keys],
        set_={name: statement.excluded[name] for name in columns if name not in keys},
        where=statement.excluded[stamp] >= table.c[stamp],
    )


def dialect_insert(connection: Connection, table: Table):
    """The INSERT with ON CONFLICT clauses of the connection's dialect (SQLite or PostgreSQL)."""
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def dump(value: object) -> str:
    """Compact JSON text, as stored in the JSON columns (integers beyond 64 bits kept exactly)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
