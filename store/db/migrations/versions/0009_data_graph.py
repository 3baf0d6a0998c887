"""A space's Data Graph, the config LINKED audiences read (`store.catalog.data_graphs`)."""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"

TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")  # code point order, as 0002 made every text column


def upgrade() -> None:
    op.create_table(
        "data_graph",
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("config_format", TEXT, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", TEXT, nullable=False),
        sa.ForeignKeyConstraint(["space_id"], ["space.id"]),
        sa.PrimaryKeyConstraint("space_id"),
    )

