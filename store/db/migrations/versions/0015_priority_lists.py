"""Priority lists: ranked audiences of a space (`priority_list`, `priority_list_entry`)."""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"

TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")  # code point order, as 0002 made every text column


def upgrade() -> None:
    op.create_table(
        "priority_list",
        sa.Column("id", TEXT, nullable=False),
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("name", TEXT, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_priority_list_space_id", "priority_list", ["space_id"])
    op.create_table(
        "priority_list_entry",
        sa.Column("audience_id", TEXT, nullable=False),
        sa.Column("list_id", TEXT, nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("audience_id"),
    )
    op.create_index("ix_priority_list_entry_list_id", "priority_list_entry", ["list_id"])
