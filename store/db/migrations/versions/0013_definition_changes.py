"""Each audience's and computed trait's definitions over time (`definition_change`), which size
histories mark; the definitions of today are their first rows."""

from datetime import timezone

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"

TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")  # code point order, as 0002 made every text column


def upgrade() -> None:
    op.create_table(
        "definition_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("space_id", TEXT, nullable=False),
        sa.Column("computation_id", TEXT, nullable=False),
        sa.Column("changed_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_definition_change_computation_id", "definition_change", ["computation_id"])
    bind = op.get_bind()
    changes = sa.table("definition_change", sa.column("space_id"), sa.column("computation_id"),
                       sa.column("changed_at_ms"), sa.column("query"))
    for name in ("audience", "computed_trait"):
        table = sa.table(name, sa.column("id"), sa.column("space_id"), sa.column("query"),
                         sa.column("updated_at", sa.DateTime()), sa.column("deleted_at"))
        rows = bind.execute(sa.select(table.c.id, table.c.space_id, table.c.query, table.c.updated_at)
                            .where(table.c.deleted_at.is_(None))).all()
        if rows:  # the definition of today, as of its last update (when it was set is not known)
            bind.execute(changes.insert(), [
                {"space_id": space_id, "computation_id": id_, "query": query,
                 "changed_at_ms": int(updated_at.replace(tzinfo=timezone.utc).timestamp() * 1000)}
                for id_, space_id, query, updated_at in rows])
