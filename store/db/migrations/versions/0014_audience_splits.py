"""Experiment splits of audiences (`audience_split`), the group each stay was in
(`membership.split_group`) and the group an outbox row is sent for (`outbox.split_group`)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014"
down_revision = "0013"

TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")  # code point order, as 0002 made every text column


def upgrade() -> None:
    op.create_table(
        "audience_split",
        sa.Column("id", TEXT, nullable=False),
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("audience_id", TEXT, nullable=False),
        sa.Column("salt", TEXT, nullable=False),
        sa.Column("groups", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audience_split_audience_id", "audience_split", ["audience_id"], unique=True)
    with op.batch_alter_table("membership") as batch:
        batch.add_column(sa.Column("split_group", TEXT, nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("split_group", TEXT, nullable=True))
