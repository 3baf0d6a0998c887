"""LINKED audiences' matched entity rows between runs (`store.compute.entity_members`), a run's step
timings, the entity size of an audience (or preview) whose members are entity rows, and whether an
audience's kept rows are current (`entities_kept`)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"

TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")  # code point order, as 0002 made every text column


def upgrade() -> None:
    op.create_table(
        "entity_membership",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("computation_id", TEXT, nullable=False),
        sa.Column("profile_id", TEXT, nullable=False),
        sa.Column("relationship", TEXT, nullable=False),
        sa.Column("entity_key", TEXT, nullable=False),
        sa.Column("row", sa.Text(), nullable=False),
        sa.Column("entered_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("entered_run_id", TEXT, nullable=False),
        sa.Column("exited_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("exited_run_id", TEXT, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_entity_membership_current", "entity_membership",
                    ["computation_id", "exited_at_ms", "profile_id"])
    with op.batch_alter_table("compute_state") as batch:
        batch.add_column(sa.Column("entity_size", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("entities_kept", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("audience_preview") as batch:
        batch.add_column(sa.Column("entity_size", sa.Integer(), nullable=True))
    with op.batch_alter_table("compute_run") as batch:
        batch.add_column(sa.Column("entity_size", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("steps", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True))
