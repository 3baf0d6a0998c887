"""Computed values' changes are logged apart from custom traits', and indexed by key.

Every run rewrites the `<key>` trait of the profiles it changes, up to every profile, and the
analytic store needs those values only for the keys a definition reads. The `trait` triggers now log
a computed row (class `audience` or `computed_trait`) as `computed_trait`, which the replicator does
not re-copy (a full run copies the keys it reads, `Replicator.copy_computed`) but which still tells a
full run which profiles changed after its copy. `ix_trait_computed` finds a space's computed values
of a key without reading its custom traits.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

COMPUTED = sa.text("trait_class <> 'custom'")
LOGGED_AS = "CASE WHEN {row}.trait_class = 'custom' THEN 'trait' ELSE 'computed_trait' END"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        postgresql_triggers(bind, LOGGED_AS)
    else:
        sqlite_triggers(bind, LOGGED_AS)
    op.create_index("ix_trait_computed", "trait", ["space_id", "key"], sqlite_where=COMPUTED,
                    postgresql_where=COMPUTED)


def sqlite_triggers(bind, logged_as: str) -> None:
    """The `trait` triggers, logging a changed row under the table name `logged_as` gives it."""
    for operation, rows in (("INSERT", ("NEW",)), ("DELETE", ("OLD",)), ("UPDATE", ("OLD", "NEW"))):
        name = f"analytic_trait_{operation.lower()}"
        inserts = " ".join(f"INSERT INTO analytic_change (table_name, profile_id) VALUES "
                           f"({logged_as.format(row=row)}, {row}.profile_id);" for row in rows)
        bind.exec_driver_sql(f"DROP TRIGGER {name}")
        bind.exec_driver_sql(f"CREATE TRIGGER {name} AFTER {operation} ON trait BEGIN {inserts} END")


def postgresql_triggers(bind, logged_as: str) -> None:
    """The functions behind 0004's statement triggers, replaced (the triggers stay as they are), logging a
    changed row under the table name `logged_as` gives it."""
    for operation, rows in (("insert", ("new_rows",)), ("delete", ("old_rows",)), ("update", ("old_rows", "new_rows"))):
        selects = " UNION ".join(f"SELECT {logged_as.format(row=row)}, profile_id FROM {row}" for row in rows)
        bind.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION analytic_trait_{operation}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"INSERT INTO analytic_change (table_name, profile_id) SELECT table_name, profile_id "
            f"FROM ({selects}) AS changed(table_name, profile_id); RETURN NULL; END $$")
