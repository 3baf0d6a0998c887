"""The schema is Alembic's: a database release 0.1.0 made opens under this one with every row kept, an
older one is adopted, any number of processes may start at once, and a newer schema is refused."""

import importlib
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, select, text
from sqlmodel import SQLModel

from store.catalog import audiences
from store.compute import runs
from store.db.database import ingest_log_file
from store.db.schema import SchemaTooNew, head_revision
from store.db.store import Store
from tests.databases import database_url, empty_database_url, fetch, on_postgres

RELEASE_DUMP = Path(__file__).parent / "fixtures" / "release-0.1.0.sql"
RELEASE_WORKSPACE = "wsp_01m8eg89awh3dn8t08ftbhdpy3"
RELEASE_AUDIENCE = "aud_01m8eg89cm4gppghjy7vpzxjq0"
BASELINE = importlib.import_module("store.db.migrations.versions.0001_baseline").BASELINE


def release_database(tmp_path) -> str:
    """A database as release 0.1.0 left it (three members, their outbox rows, a computed trait): its
    own dump on SQLite; on PostgreSQL, 0.1.0's tables with the same rows."""
    dumped = tmp_path / "release.db"
    with sqlite3.connect(dumped) as database:
        database.executescript(RELEASE_DUMP.read_text())
    if not on_postgres():
        return f"sqlite:///{dumped}"
    url = empty_database_url(tmp_path, "release")
    source, target = create_engine(f"sqlite:///{dumped}"), create_engine(url)
    BASELINE.create_all(target)
    with source.connect() as reading, target.begin() as writing:
        for table in BASELINE.sorted_tables:
            found = [dict(row._mapping) for row in reading.execute(select(table))]
            if found:
                writing.execute(insert(table), found)
    for engine in (source, target):
        engine.dispose()
    return url


def test_a_release_0_1_0_database_keeps_every_row_and_computes_on(tmp_path):
    url = release_database(tmp_path)
    store = Store(url)
    try:
        assert store.workspace_id == RELEASE_WORKSPACE
        assert fetch(url, "select version_num from alembic_version") == [(head_revision(),)]
        assert fetch(url, "select value from schema_meta where key = 'schema_version'") == [("2",)]
        assert fetch(url, "select count(*) from membership where exited_at_ms is null") == [(3,)]
        assert fetch(url, "select count(*) from outbox") == [(3,)]
        assert fetch(url, "select count(*) from event") == [(6,)]
        [(space_id,)] = fetch(url, "select space_id from audience where id = :a", a=RELEASE_AUDIENCE)
        [(query, changed_at_ms)] = fetch(url, "select query, changed_at_ms from definition_change where computation_id = :a",
                                         a=RELEASE_AUDIENCE)
        assert query == fetch(url, "select query from audience where id = :a", a=RELEASE_AUDIENCE)[0][0]
        assert changed_at_ms > 1_700_000_000_000, "its definition as of its last update"
        assert audiences.get_audience(store, space_id, RELEASE_AUDIENCE).status == "Live"
        assert runs.run(store, RELEASE_AUDIENCE, reason="forced").size == 3
    finally:
        store.close()
    Store(url).close()  # a second start finds nothing left to do


# The two tables as releases before 0.1.0 created them: both pointed at audiences only.
OLDER_CONNECTION = """CREATE TABLE connection (
    id VARCHAR NOT NULL, space_id VARCHAR NOT NULL, audience_id VARCHAR NOT NULL, destination_id VARCHAR NOT NULL,
    id_sync_configuration JSON NOT NULL, connection_settings JSON NOT NULL, enabled BOOLEAN NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, PRIMARY KEY (id), UNIQUE (audience_id, destination_id),
    FOREIGN KEY(space_id) REFERENCES space (id), FOREIGN KEY(audience_id) REFERENCES audience (id),
    FOREIGN KEY(destination_id) REFERENCES destination (id))"""
OLDER_ACTIVATION = """CREATE TABLE activation (
    id VARCHAR NOT NULL, space_id VARCHAR NOT NULL, audience_id VARCHAR NOT NULL, connection_id VARCHAR NOT NULL,
    activation_type VARCHAR NOT NULL, activation_name VARCHAR NOT NULL, display_name VARCHAR,
    personalization JSON NOT NULL, destination_mapping JSON, enabled BOOLEAN NOT NULL, perform_resync BOOLEAN NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(space_id) REFERENCES space (id), FOREIGN KEY(audience_id) REFERENCES audience (id),
    FOREIGN KEY(connection_id) REFERENCES connection (id))"""


def foreign_keys(path, table):
    with sqlite3.connect(path) as db:
        return {(row[3], row[2]) for row in db.execute(f"PRAGMA foreign_key_list({table})")}


@pytest.mark.skipif(on_postgres(), reason="releases before 0.1.0 ran on SQLite only")
def test_an_older_database_is_adopted_its_audience_only_foreign_keys_dropped_and_rows_kept(tmp_path):
    url = release_database(tmp_path)
    path = tmp_path / "release.db"
    with sqlite3.connect(path) as db:
        db.executescript(f"""
            PRAGMA foreign_keys=OFF;
            CREATE TABLE old_connection AS SELECT * FROM connection; CREATE TABLE old_activation AS SELECT * FROM activation;
            DROP TABLE activation; DROP TABLE connection;
            {OLDER_CONNECTION}; {OLDER_ACTIVATION};
            INSERT INTO connection SELECT * FROM old_connection; INSERT INTO activation SELECT * FROM old_activation;
            DROP TABLE old_connection; DROP TABLE old_activation;
        """)
    assert ("audience_id", "audience") in foreign_keys(path, "connection")

    Store(url).close()

    assert foreign_keys(path, "connection") == {("space_id", "space"), ("destination_id", "destination")}
    assert foreign_keys(path, "activation") == {("space_id", "space"), ("connection_id", "connection")}
    assert fetch(url, "select count(*) from connection") == [(1,)] and fetch(url, "select count(*) from activation") == [(1,)]
    assert fetch(url, "pragma foreign_key_check") == []
    indexes = {name for (name,) in fetch(url, "select name from sqlite_master where type = 'index'")}
    assert {"ix_connection_audience_id", "ix_activation_connection_id"} <= indexes


STARTER = """
import sys
from store.db.store import Store
print(Store(sys.argv[1]).workspace_id)
"""


def test_processes_starting_at_once_on_an_empty_database_migrate_it_once(tmp_path):
    url = empty_database_url(tmp_path, "fresh")
    starters = [subprocess.Popen([sys.executable, "-c", STARTER, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(4)]
    answers = [starter.communicate(timeout=120) for starter in starters]
    assert [starter.returncode for starter in starters] == [0] * 4, [error for _, error in answers]
    assert len({out.strip() for out, _ in answers}) == 1
    assert fetch(url, "select version_num from alembic_version") == [(head_revision(),)]
    assert fetch(url, "select count(*) from schema_meta where key = 'workspace_id'") == [(1,)]


def test_a_database_migrated_by_a_newer_release_is_refused(tmp_path):
    url = database_url(tmp_path)
    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("update alembic_version set version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaTooNew, match="9999"):
        Store(url)


def test_the_migrations_make_exactly_the_tables_the_models_describe(store):
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


@pytest.mark.skipif(not on_postgres(), reason="PostgreSQL's own types")
def test_postgresql_keeps_json_as_jsonb_64_bit_row_ids_and_code_point_order(store):
    url = store.url
    types = dict(((table, column), kind) for table, column, kind in fetch(
        url, "select table_name, column_name, data_type from information_schema.columns where table_schema = 'public'"))
    assert types["event", "properties"] == types["audience", "options"] == types["trait", "value"] == "jsonb"
    assert types["event", "id"] == types["outbox", "id"] == "bigint"
    collations = {collation for (collation,) in fetch(url, "select distinct collation_name from information_schema.columns "
                                                         "where table_schema = 'public' and data_type = 'character varying' "
                                                         "and table_name <> 'alembic_version'")}
    assert collations == {"C"}



@pytest.mark.skipif(on_postgres(), reason="the log is a file of its own only beside a SQLite database")
def test_stores_opening_at_once_beside_a_database_create_the_ingest_log_once(tmp_path):
    url = database_url(tmp_path, "migrated")
    Store(url).close()
    for _ in range(10):
        ingest_log_file(url).unlink()
        with ThreadPoolExecutor(8) as pool:
            stores = list(pool.map(lambda _: Store(url), range(8)))
        for store in stores:
            store.close()
        with sqlite3.connect(ingest_log_file(url)) as log:
            assert log.execute("select count(*) from sqlite_master where name = 'ingest_log'").fetchone() == (1,)
