"""The durable log the Tracking API acknowledges into and the processor drains (`store.ingest.log`),
and how far each space's messages are stored when the log is a file of its own beside SQLite."""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"

TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")  # code point order, as 0002 made every text column


def upgrade() -> None:
    op.create_table(
        "ingest_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("source_id", TEXT, nullable=False),
        sa.Column("kind", TEXT, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_ingest_log_space", "ingest_log", ["space_id", "id"])
    op.create_table(
        "ingest_position",
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("space_id"),
    )

