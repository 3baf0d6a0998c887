"""A realtime pass that fails for a profile keeps its mark, to be retried with backoff.

`attempts` counts the passes that failed for the profile in a row, and `retry_at_ms` is when the next
one may take it (NULL: at once). A pass also puts back, due at once, the mark of a profile it could not
recompute for a computation whose full run held the computation meanwhile.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("dirty_profile") as table:
        table.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("retry_at_ms", sa.BigInteger(), nullable=True))
