"""A realtime pass remembers since when it has left a profile for later.

On SQLite a pass reads a batch's rows ahead of its write transaction, and leaves a profile that changed
again meanwhile to the next pass. `deferred_since_ms` is when a pass first did so (NULL: never), so that
only a profile left over and over for 30 s is recomputed inside a write transaction, not every profile
whose mark merely waited behind a busy space's backlog.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    with op.batch_alter_table("dirty_profile") as table:
        table.add_column(sa.Column("deferred_since_ms", sa.BigInteger(), nullable=True))
