"""A computed value's change is logged under its key (`computed_trait:<key>`), so the analytic store
can bring its copy of one computation's values up to date from the profiles whose value of that key
changed (`store.analytic.replication.Replicator.own_values`), not every profile any run changed.
Everything else reading the log takes any table name alike."""

import importlib

from alembic import op

revision = "0012"
down_revision = "0011"

LOGGED_AS = "CASE WHEN {row}.trait_class = 'custom' THEN 'trait' ELSE 'computed_trait:' || {row}.key END"
TRIGGERS = importlib.import_module("store.db.migrations.versions.0005_computed_values_logged_apart")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        TRIGGERS.postgresql_triggers(bind, LOGGED_AS)
    else:
        TRIGGERS.sqlite_triggers(bind, LOGGED_AS)
