"""The schema, created and upgraded by the Alembic migrations in `store/db/migrations`, at every start.

Migrations run under a lock that every starting process takes first, so any number of processes may
start at once on an empty, an old or a current database: PostgreSQL's transaction-scoped advisory
lock, or SQLite's write lock (`BEGIN IMMEDIATE`). The first process migrates; the others wait, then
find nothing left to do. A database migrated by a newer release than this one is refused. Alembic's
log lines appear only when a migration runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).with_name("migrations")
ADVISORY_LOCK = 0x5E6_A0D1  # any constant shared by every process of this program


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer segment-audiences whose schema this one does not know."""


def migrate(engine: Engine) -> str:
    """Bring the database to the newest schema; returns the workspace id it records."""
    config = _config()
    scripts = ScriptDirectory.from_config(config)
    known = {revision.revision for revision in scripts.walk_revisions()}
    with _locked(engine) as connection:
        with _quiet(logging.getLogger("alembic.runtime.migration")):
            current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and current not in known:
            raise SchemaTooNew(f"the database's schema is at revision {current}, which this program does not "
                               f"know: a newer segment-audiences migrated it; upgrade segment-audiences")
        if current != scripts.get_current_head():
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return connection.execute(text("SELECT value FROM schema_meta WHERE key = 'workspace_id'")).scalar_one()


def head_revision() -> str:
    """The newest migration's revision: where `migrate` brings every database."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """`logger` says nothing below a warning meanwhile (by a filter of this call's own, so that calls
    in several threads at once undo only their own)."""
    below_warning = logging.Filter()
    below_warning.filter = lambda record: record.levelno >= logging.WARNING
    logger.addFilter(below_warning)
    try:
        yield
    finally:
        logger.removeFilter(below_warning)


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction holding the migration lock, committed at the end. On SQLite,
    foreign keys are not enforced meanwhile (a table rebuild drops a referenced table); the
    migration checks them itself."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            driver = connection.connection.driver_connection
            driver.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.execution_options(sqlite_begin="IMMEDIATE").begin():
                    yield connection
            finally:
                driver.execute("PRAGMA foreign_keys=ON")
        else:
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
                yield connection
