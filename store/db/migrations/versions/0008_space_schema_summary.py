"""What each space has received, summarised for the Space Schema tools (`store.ingest.schema_summary`).

Ingest keeps these tables up to date. The events stored before them are summarised when a process
first starts on the upgraded database: this migration notes the newest one's id under
`schema_summary_pending` in `schema_meta`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"

TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")  # code point order, as 0002 made every text column


def upgrade() -> None:
    op.create_table(
        "schema_event",
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("type", TEXT, nullable=False),
        sa.Column("name", TEXT, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("space_id", "type", "name"),
    )
    op.create_table(
        "schema_field",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("kind", TEXT, nullable=False),
        sa.Column("event", TEXT, nullable=False),
        sa.Column("name", TEXT, nullable=False),
        sa.Column("data_type", TEXT, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("distinct_values", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("space_id", "kind", "event", "name"),
    )
    op.create_table(
        "schema_sample",
        sa.Column("field_id", sa.BigInteger(), nullable=False),
        sa.Column("value", TEXT, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("field_id", "value"),
    )
    newest = op.get_bind().execute(sa.text("SELECT max(id) FROM event")).scalar()
    if newest is not None:
        op.get_bind().execute(sa.text("INSERT INTO schema_meta (key, value) VALUES ('schema_summary_pending', :value)"),
                              {"value": f"0:{newest}"})
