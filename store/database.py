"""Engine set-up: the default SQLite file, WAL and foreign keys, write locks taken up front, schema.

Every write transaction on SQLite starts with `BEGIN IMMEDIATE`, so two processes sharing one file
queue for the write lock (waiting up to `busy_timeout`) instead of failing half-way through.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import platformdirs
from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect, make_url
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import Session, SQLModel, select

from store import models
from store.ids import new_id

BUSY_TIMEOUT_MS = 30_000
CACHE_KIB = 64 * 1024  # page cache per connection: the event and identifier indexes stay in memory longer
CHECKPOINT_PAGES = 16_384  # copy the WAL back every ~64 MiB, not every 4 MiB: hot index pages are written once


class SchemaTooNew(RuntimeError):
    """The database was written by a newer segment-audiences whose schema this one does not know."""


def database_url(value: str) -> str:
    """A SQLAlchemy URL as given, or a plain file path (`/tmp/x.db`, `x.db`) as the SQLite file there."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def default_url() -> str:
    directory = _user_data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'segment-audiences.db'}"


def data_dir(url: str) -> Path:
    """Where files go beside the database: SEGMENT_AUDIENCES_DATA_DIR, else a SQLite file's own
    directory, else the user data directory."""
    if os.environ.get("SEGMENT_AUDIENCES_DATA_DIR"):
        return Path(os.environ["SEGMENT_AUDIENCES_DATA_DIR"])
    database = make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
        return Path(database).resolve().parent
    return _user_data_dir()


def _user_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("segment-audiences", appauthor=False))


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun explicitly below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        _use_wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _use_wal(cursor) -> None:
    """Switch the file to WAL once. Switching needs the file to itself and SQLite answers "locked"
    without waiting while another process holds it (two processes opening a new file), so retry."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def writer(engine: Engine) -> Engine:
    """The same engine, beginning transactions that intend to write with the write lock held."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def initialise(engine: Engine) -> str:
    """Create missing tables, record or check the schema version, and return the workspace id."""
    _drop_stale_foreign_keys(engine)
    with Session(writer(engine)) as session, session.begin():
        SQLModel.metadata.create_all(session.connection())
        _add_missing_columns(session.connection())
        meta = {row.key: row.value for row in session.exec(select(models.SchemaMeta))}
        version = int(meta.get("schema_version", models.SCHEMA_VERSION))
        if version > models.SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the database has schema version {version}, newer than this program's "
                f"{models.SCHEMA_VERSION}; upgrade segment-audiences"
            )
        if "schema_version" not in meta:
            session.add(models.SchemaMeta(key="schema_version", value=str(models.SCHEMA_VERSION)))
        if "workspace_id" not in meta:
            meta["workspace_id"] = new_id("wsp")
            session.add(models.SchemaMeta(key="workspace_id", value=meta["workspace_id"]))
        return meta["workspace_id"]


def _add_missing_columns(connection: Connection) -> None:
    """Bring tables created by an earlier version up to date: columns added since are nullable, so
    adding them in place keeps every stored row (`create_all` only creates missing tables)."""
    inspector = inspect(connection)
    for table in SQLModel.metadata.sorted_tables:
        existing = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in existing:
                kind = column.type.compile(connection.dialect)
                connection.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
        existing_indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in existing_indexes:
                index.create(connection)


def _drop_stale_foreign_keys(engine: Engine) -> None:
    """Remove foreign keys an earlier version declared and this one does not (connections and
    activations once pointed at audiences only; they now also belong to computed traits).

    SQLite cannot drop a constraint, so such a table is rebuilt the way SQLite documents it: with
    foreign key enforcement off, copy the rows into a table of the new shape, drop the old one, give
    the new one its name, recreate its indexes and check every reference before committing."""
    stale = _tables_with_stale_foreign_keys(engine)
    if not stale:
        return
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            for table, names in stale.items():
                for name in names:
                    connection.exec_driver_sql(f'ALTER TABLE "{table.name}" DROP CONSTRAINT "{name}"')
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.execute("BEGIN IMMEDIATE")
        try:
            for table in _tables_with_stale_foreign_keys(engine, cursor):
                _rebuild_sqlite_table(cursor, table, engine)
            problems = cursor.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise RuntimeError(f"rebuilding tables left broken references: {problems[:5]}")
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        raw.close()


def _tables_with_stale_foreign_keys(engine: Engine, cursor=None) -> dict[Table, list[str]]:
    """Model tables whose stored foreign keys include one the model no longer has, with its names.
    With `cursor` (SQLite, inside the rebuild's transaction) the catalogue is read through it."""
    found: dict[Table, list[str]] = {}
    inspector = inspect(engine) if cursor is None else None
    for table in SQLModel.metadata.sorted_tables:
        wanted = {(fk.parent.name, fk.column.table.name) for fk in table.foreign_keys}
        if inspector is None:
            stored = [(row[3], row[2], None) for row in cursor.execute(f'PRAGMA foreign_key_list("{table.name}")')]
        else:
            if not inspector.has_table(table.name):
                continue
            stored = [(column, fk["referred_table"], fk.get("name"))
                      for fk in inspector.get_foreign_keys(table.name) for column in fk["constrained_columns"]]
        extra = [name or "" for column, referred, name in stored if (column, referred) not in wanted]
        if extra:
            found[table] = extra
    return found


def _rebuild_sqlite_table(cursor, table: Table, engine: Engine) -> None:
    new_name = f"_new_{table.name}"
    ddl = str(CreateTable(table).compile(dialect=engine.dialect)).strip()
    cursor.execute(ddl.replace(f"CREATE TABLE {table.name} ", f'CREATE TABLE "{new_name}" ', 1))
    stored = {row[1] for row in cursor.execute(f'PRAGMA table_info("{table.name}")')}
    columns = ", ".join(f'"{column.name}"' for column in table.columns if column.name in stored)
    cursor.execute(f'INSERT INTO "{new_name}" ({columns}) SELECT {columns} FROM "{table.name}"')
    cursor.execute(f'DROP TABLE "{table.name}"')
    cursor.execute(f'ALTER TABLE "{new_name}" RENAME TO "{table.name}"')
    for index in table.indexes:
        cursor.execute(str(CreateIndex(index).compile(dialect=engine.dialect)))
