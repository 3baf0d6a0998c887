"""The outbox's order check reads an index of pending rows only.

A claim takes a row only when no earlier row of its target and profile is still pending. That check
had an index over every row (`ix_outbox_order`), which grows with each delivery, and a planner that
believed the table empty (as it does for a minute after a fresh start, before its first statistics)
answered it through `ix_outbox_target` instead: every pending row of the target for every candidate,
seconds per claim at a few thousand rows. `ix_outbox_pending` holds only pending rows, by target,
profile and id, so the check is one short lookup whatever the planner believes.

The other outbox indexes follow: due times and lease holders are indexed over pending rows only, so
they stay small as deliveries accumulate, and targets' settled rows (for health and dead letters)
over the rest.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

PENDING = sa.text("state = 'pending'")
DUE = sa.text("state = 'pending' AND next_attempt_at_ms IS NOT NULL")
LEASED = sa.text("state = 'pending' AND lease_owner IS NOT NULL")
SETTLED = sa.text("state <> 'pending'")


def upgrade() -> None:
    for name in ("ix_outbox_order", "ix_outbox_due", "ix_outbox_target"):
        op.drop_index(name, table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["next_attempt_at_ms"], sqlite_where=DUE, postgresql_where=DUE)
    op.create_index("ix_outbox_pending", "outbox", ["target_id", "profile_id", "id"],
                    sqlite_where=PENDING, postgresql_where=PENDING)
    op.create_index("ix_outbox_lease", "outbox", ["lease_owner"], sqlite_where=LEASED, postgresql_where=LEASED)
    op.create_index("ix_outbox_target", "outbox", ["target_id", "state"], sqlite_where=SETTLED, postgresql_where=SETTLED)
