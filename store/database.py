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
from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url
from sqlmodel import Session, SQLModel, select

from store import models
from store.ids import new_id

BUSY_TIMEOUT_MS = 30_000
CACHE_KIB = 64 * 1024  # page cache per connection: the event and identifier indexes stay in memory longer
CHECKPOINT_PAGES = 16_384  # copy the WAL back every ~64 MiB, not every 4 MiB: hot index pages are written once


class SchemaTooNew(RuntimeError):
    """The database was written by a newer segment-audiences whose schema this one does not know."""


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
