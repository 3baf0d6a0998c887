"""The one group of an audience's split an activation sends (`activation.split_group`)."""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"

TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")  # code point order, as 0002 made every text column


def upgrade() -> None:
    with op.batch_alter_table("activation") as batch:
        batch.add_column(sa.Column("split_group", TEXT, nullable=True))
