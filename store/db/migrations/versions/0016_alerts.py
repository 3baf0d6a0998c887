"""Alerts (`alert`) and each time one fired (`alert_firing`)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0016"
down_revision = "0015"

TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")  # code point order, as 0002 made every text column


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("id", TEXT, nullable=False),
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("kind", TEXT, nullable=False),
        sa.Column("subject_id", TEXT, nullable=False),
        sa.Column("threshold_percent", sa.Float(), nullable=False),
        sa.Column("webhook_url", TEXT, nullable=False),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("checked_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_space_id", "alert", ["space_id"])
    op.create_table(
        "alert_firing",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("alert_id", TEXT, nullable=False),
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("fired_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("value_percent", sa.Float(), nullable=False),
        sa.Column("payload", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_firing_alert_id", "alert_firing", ["alert_id"])
