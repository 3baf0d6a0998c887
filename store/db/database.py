"""Engine set-up: the default SQLite file, WAL and foreign keys, write locks taken up front; jsonb
read as text on PostgreSQL. The schema is `store.db.schema`'s.

Every write transaction on SQLite starts with `BEGIN IMMEDIATE`, so two processes sharing one file
queue for the write lock (waiting up to `busy_timeout`) instead of failing half-way through.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import platformdirs
from psycopg.types.string import TextLoader
from sqlalchemy import Engine, create_engine, event, make_url

BUSY_TIMEOUT_MS = 30_000
CACHE_KIB = 64 * 1024  # page cache per connection: the event and identifier indexes stay in memory longer
CHECKPOINT_PAGES = 16_384  # copy the WAL back every ~64 MiB, not every 4 MiB: hot index pages are written once
MMAP_BYTES = 2**31 - 2**16  # read the file's pages (up to SQLite's usual 2 GiB cap) through memory, not a read call each


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


def analytics_option(option: str | None) -> str:
    """Where full runs compute (`store.analytic.store`): the option given, else
    SEGMENT_AUDIENCES_ANALYTICS, else `duckdb`."""
    return (option or os.environ.get("SEGMENT_AUDIENCES_ANALYTICS") or "duckdb").strip()


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database (None for another database, or one in memory)."""
    database = make_url(url).database if url.startswith("sqlite") else None
    return None if not database or database == ":memory:" else Path(database)


def attached_warehouse(url: str, option: str) -> Path | None:
    """The SQLite file every connection attaches as schema `warehouse` (`store.warehouse`): with
    `--analytics none`, the entity tables live in the operational database, beside a SQLite file."""
    file = sqlite_file(url)
    return None if file is None or option != "none" else file.with_suffix(".warehouse.sqlite")


def ingest_log_file(url: str) -> Path | None:
    """The SQLite file the Tracking API's log is kept in beside a SQLite database (`x.db` →
    `x.ingest-log.sqlite`), so acknowledging never waits for the database's write lock; None elsewhere
    (PostgreSQL, an in-memory database), where the log is a table of the database itself."""
    file = sqlite_file(url)
    return None if file is None else file.with_suffix(".ingest-log.sqlite")


def make_engine(url: str, attach: Path | None = None) -> Engine:
    """An engine for the database; on SQLite, `attach` is a file attached to each connection as `warehouse`."""
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "postgresql":
            event.listen(engine, "connect", _jsonb_as_text)
        return engine
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun explicitly below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        _use_wal(cursor)
        if attach is not None:
            cursor.execute("ATTACH DATABASE ? AS warehouse", (str(attach),))
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _jsonb_as_text(dbapi_connection, _record) -> None:
    """jsonb values arrive as their JSON text, as JSON does from SQLite (`models.JsonText`)."""
    dbapi_connection.adapters.register_loader("jsonb", TextLoader)


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
