"""A lane's claim reads its target's pending rows in the order they fall due and stops at its limit.

`ix_outbox_due` held due rows by due time alone, with a condition (`next_attempt_at_ms IS NOT NULL`)
that SQLite never finds implied for a NOT NULL column, so no query there could use it. A claim of one
target's rows read them through `ix_outbox_pending` instead: every pending row of the target, each with
its order check, then sorted, to keep the first few hundred; a resync of 50,000 members paid that on
every claim. `ix_outbox_claim` holds pending rows by target, due time and id: a claim reads the rows it
takes (and the few leased or held back before them), and looking for targets with rows due is one
short lookup per target. The order check (target and profile) matches both columns of
`ix_outbox_pending` and one of `ix_outbox_claim`, so it stays one lookup in the first.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index("ix_outbox_claim", "outbox", ["target_id", "next_attempt_at_ms", "id"],
                    sqlite_where=PENDING, postgresql_where=PENDING)
