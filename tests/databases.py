"""The database the tests run on: a SQLite file per test by default, or, when
SEGMENT_AUDIENCES_TEST_POSTGRES names a PostgreSQL server (`postgresql+psycopg://user@host:port/`),
a fresh database on it per test, dropped when the test ends. Tests that start a second process give
it the same URL, so both work on one database as they would in production.

A test's database starts at the newest schema, copied from one migrated once per test session: the
migrations take about a second on PostgreSQL, a copy a tenth of that, and a thousand tests each
started one. Each copy gets a workspace id of its own, as a database migrated by itself would.
`tests/test_schema_upgrade.py` migrates databases that start empty (`empty_database_url`)."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sqlite3
import tempfile
import uuid
from contextlib import closing
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, make_url, text

from store.db.database import make_engine
from store.db.ids import new_id
from store.db.schema import migrate

POSTGRES = os.environ.get("SEGMENT_AUDIENCES_TEST_POSTGRES", "")
_created: dict[tuple[str, str], str] = {}


def on_postgres() -> bool:
    return bool(POSTGRES)


def database_url(tmp_path, name: str = "test") -> str:
    """A URL for a database of this test's own, at the newest schema and holding nothing else when first
    asked for; asked again (by the same test, with the same name) it is the same database, as a file
    path would be."""
    if POSTGRES:
        return _postgres_database(tmp_path, name, migrated=True)
    path = Path(tmp_path) / f"{name}.db"
    if not path.exists():
        with closing(sqlite3.connect(_sqlite_template())) as source, closing(sqlite3.connect(path)) as copy:
            source.backup(copy)
        _give_own_workspace(f"sqlite:///{path}")
    return f"sqlite:///{path}"


def empty_database_url(tmp_path, name: str) -> str:
    """A URL for a database of this test's own with no schema at all, for the tests of migrations."""
    if POSTGRES:
        return _postgres_database(tmp_path, name, migrated=False)
    return f"sqlite:///{tmp_path / f'{name}.db'}"


def _postgres_database(tmp_path, name: str, *, migrated: bool) -> str:
    """The URL of this test's PostgreSQL database `name`, made on first ask (a copy of the migrated
    template with a workspace id of its own, or empty) and the same one when asked again."""
    key = (str(tmp_path), name)
    if key not in _created:
        _created[key] = _create(name, template=_postgres_template() if migrated else None)
        if migrated:
            _give_own_workspace(_url(_created[key]))
    return _url(_created[key])


def fetch(url: str, sql: str, **parameters) -> list[tuple]:
    """The rows of one query on the database at `url`, read through a connection of its own (as
    another process would read them)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), parameters)]
    finally:
        engine.dispose()


def session_database_url(name: str) -> str:
    """A URL for an empty database kept until the test session ends (shared by a module's tests)."""
    if not POSTGRES:
        return "sqlite://"
    database = _create(name)
    atexit.register(_drop, database)
    return _url(database)


def _create(name: str, template: str | None = None) -> str:
    """A new database, a copy of `template` or else empty, whose default collation is linguistic (ICU's
    en-US: `_`, `a`, `b`, `B`), so a query that orders text without the schema's "C" collation sorts
    differently and a test sees it. A copy takes its template's collation, made the same way."""
    database = f"test_{name}_{uuid.uuid4().hex[:12]}".lower()
    with _admin() as connection:
        if template is None:
            connection.execute(f"CREATE DATABASE \"{database}\" TEMPLATE template0 LOCALE_PROVIDER icu "
                               f"ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
        else:
            connection.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    return database


@functools.cache
def _sqlite_template() -> Path:
    """A SQLite file migrated once for the session, removed when it ends."""
    directory = Path(tempfile.mkdtemp(prefix="segment-audiences-template-"))
    atexit.register(shutil.rmtree, directory, True)
    _migrate(f"sqlite:///{directory / 'template.db'}")
    return directory / "template.db"


@functools.cache
def _postgres_template() -> str:
    """A PostgreSQL database migrated once for the session (with no connection left open to it, which
    copying needs), dropped when it ends."""
    database = _create("template")
    atexit.register(_drop, database)
    _migrate(_url(database))
    return database


def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def _give_own_workspace(url: str) -> None:
    """A copy's workspace id made its own: every database migrated alone has one."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE schema_meta SET value = :id WHERE key = 'workspace_id'"),
                               {"id": new_id("wsp")})
    finally:
        engine.dispose()


def _url(database: str) -> str:
    return make_url(POSTGRES).set(database=database).render_as_string(hide_password=False)


def _drop(database: str) -> None:
    with _admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def drop_created() -> None:
    """Drop the databases made since the last call, closing what still holds them."""
    while _created:
        _drop(_created.popitem()[1])


def _admin() -> psycopg.Connection:
    url = make_url(POSTGRES).set(drivername="postgresql", database="postgres")
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
