"""The database the tests run on: a SQLite file per test by default, or, when
SEGMENT_AUDIENCES_TEST_POSTGRES names a PostgreSQL server (`postgresql+psycopg://user@host:port/`),
a fresh database on it per test, dropped when the test ends. Tests that start a second process give
it the same URL, so both work on one database as they would in production."""

from __future__ import annotations

import atexit
import os
import uuid

import psycopg
from sqlalchemy import create_engine, make_url, text

POSTGRES = os.environ.get("SEGMENT_AUDIENCES_TEST_POSTGRES", "")
_created: dict[tuple[str, str], str] = {}


def on_postgres() -> bool:
    return bool(POSTGRES)


def database_url(tmp_path, name: str = "test") -> str:
    """A URL for a database of this test's own, empty when first asked for; asked again (by the same
    test, with the same name) it is the same database, as a file path would be."""
    if not POSTGRES:
        return f"sqlite:///{tmp_path / f'{name}.db'}"
    key = (str(tmp_path), name)
    if key not in _created:
        _created[key] = _create(name)
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


def _create(name: str) -> str:
    """A new database whose default collation is linguistic (ICU's en-US: `_`, `a`, `b`, `B`), so a
    query that orders text without the schema's "C" collation sorts differently and a test sees it."""
    database = f"test_{name}_{uuid.uuid4().hex[:12]}".lower()
    with _admin() as connection:
        connection.execute(f"CREATE DATABASE \"{database}\" TEMPLATE template0 LOCALE_PROVIDER icu "
                           f"ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
    return database


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
