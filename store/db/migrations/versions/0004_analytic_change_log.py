"""A change log for the analytic store, and what a run records about where it ran.

Triggers on `profile`, `identifier`, `trait` and `profile_link` write the table and the id of each
profile whose rows in it changed (inserted, updated or deleted; an identifier or link moved by a merge
names both its old and its new profile) to `analytic_change`, in `seq` order. The analytic store's
replicator re-copies those profiles' rows of that table
(`store.analytic.replication`). Events are not logged: they are only ever inserted, and a merge's
move of them is read through the merged profile's `merged_into`. `compute_run` gains the engine a run
read and how far behind its analytic store was when it started.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

# (table, column naming the profile) whose rows the analytic store copies.
LOGGED = (("profile", "id"), ("identifier", "profile_id"), ("trait", "profile_id"), ("profile_link", "user_id"))


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "analytic_change",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("table_name", sa.String(), nullable=False),
        sa.Column("profile_id", sa.String(), nullable=False),
    )
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql('ALTER TABLE analytic_change ALTER COLUMN table_name TYPE varchar COLLATE "C", '
                             'ALTER COLUMN profile_id TYPE varchar COLLATE "C"')
        _postgresql_triggers(bind)
    else:
        _sqlite_triggers(bind)
    op.add_column("compute_run", sa.Column("engine", sa.String(), nullable=True))
    op.add_column("compute_run", sa.Column("replication_lag_ms", sa.BigInteger(), nullable=True))
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql('ALTER TABLE compute_run ALTER COLUMN engine TYPE varchar COLLATE "C"')


def _sqlite_triggers(bind) -> None:
    for table, column in LOGGED:
        for operation, rows in (("INSERT", ("NEW",)), ("DELETE", ("OLD",)), ("UPDATE", ("OLD", "NEW"))):
            inserts = " ".join(f"INSERT INTO analytic_change (table_name, profile_id) VALUES ('{table}', {row}.{column});"
                               for row in rows)
            bind.exec_driver_sql(f"CREATE TRIGGER analytic_{table}_{operation.lower()} AFTER {operation} ON {table} "
                                 f"BEGIN {inserts} END")


def _postgresql_triggers(bind) -> None:
    """Statement triggers with transition tables: one INSERT … SELECT per statement, however many rows."""
    for table, column in LOGGED:
        for operation, rows in (("INSERT", ("new_rows",)), ("DELETE", ("old_rows",)),
                                ("UPDATE", ("old_rows", "new_rows"))):
            function = f"analytic_{table}_{operation.lower()}"
            selects = " UNION ".join(f"SELECT {column} FROM {row}" for row in rows)
            bind.exec_driver_sql(
                f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"INSERT INTO analytic_change (table_name, profile_id) SELECT '{table}', profile_id "
                f"FROM ({selects}) AS changed(profile_id); RETURN NULL; END $$")
            transitions = " ".join(f"{'NEW' if row == 'new_rows' else 'OLD'} TABLE AS {row}" for row in rows)
            bind.exec_driver_sql(f"CREATE TRIGGER {function} AFTER {operation} ON {table} REFERENCING {transitions} "
                                 f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
