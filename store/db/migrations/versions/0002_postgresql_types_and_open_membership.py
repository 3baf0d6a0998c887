"""PostgreSQL's own types, and at most one open membership per profile and computation.

On PostgreSQL: JSON columns become jsonb, autoincrementing row ids 64-bit, every text column takes
the "C" collation (code point order, as SQLite's BINARY), and `segment_audiences_julianday` (what
compiled CQL reads dates with) is created. On both databases a unique index over the open rows of
`membership` and `computed_value` makes a second open stay of one profile in one computation
impossible. `schema_version` becomes 2, so release 0.1.0 refuses to open the database.
"""

import sqlalchemy as sa
from alembic import op

from backend.cql.dialects.postgresql import POSTGRES_JULIANDAY

revision = "0002"
down_revision = "0001"

JSON_TEXT_COLUMNS = {
    "event": ("properties", "traits", "context", "external_ids"),
    "trait": ("value",),
    "computed_value": ("value",),
    "outbox": ("value",),
}
ROW_IDS = ("identifier", "event", "profile_merge", "membership", "computed_value", "outbox", "delivery_attempt")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _postgresql_types(bind)
    op.create_index("ux_membership_open", "membership", ["computation_id", "profile_id"], unique=True,
                    sqlite_where=sa.text("exited_at_ms IS NULL"), postgresql_where=sa.text("exited_at_ms IS NULL"))
    op.create_index("ux_computed_value_open", "computed_value", ["computation_id", "profile_id"], unique=True,
                    sqlite_where=sa.text("until_ms IS NULL"), postgresql_where=sa.text("until_ms IS NULL"))
    bind.execute(sa.text("UPDATE schema_meta SET value = '2' WHERE key = 'schema_version'"))


def _postgresql_types(bind) -> None:
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        changes = []
        for column in inspector.get_columns(table):
            name, kind = column["name"], column["type"]
            if isinstance(kind, sa.JSON) or name in JSON_TEXT_COLUMNS.get(table, ()):
                changes.append(f'ALTER COLUMN "{name}" TYPE jsonb USING "{name}"::jsonb')
            elif isinstance(kind, sa.String) and not isinstance(kind, sa.Text):
                changes.append(f'ALTER COLUMN "{name}" TYPE varchar COLLATE "C"')
            elif name == "id" and table in ROW_IDS:
                changes.append(f'ALTER COLUMN "{name}" TYPE bigint')
        if changes:
            bind.exec_driver_sql(f'ALTER TABLE "{table}" ' + ", ".join(changes))
    for table in ROW_IDS:
        bind.exec_driver_sql(f"ALTER SEQUENCE IF EXISTS {table}_id_seq AS bigint")
    bind.exec_driver_sql(POSTGRES_JULIANDAY)
