"""The schema of release 0.1.0, the last made without migrations.

On an empty database this creates it. On a database an earlier release made (its tables exist, but
no migration was ever recorded) it adopts what is there: tables and nullable columns added since are
added, and the foreign keys from connections and activations to audiences (they belong to computed
traits too now) are dropped, by rebuilding the two tables on SQLite, which cannot drop a constraint.
"""

import sqlalchemy as sa
from alembic import op

from store.db.ids import new_id

revision = "0001"
down_revision = None

BASELINE = sa.MetaData()

sa.Table('audience_preview', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('audience_type', sa.String(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('results', sa.JSON(), nullable=True),
    sa.Column('failure_reason', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_audience_preview_space_id', *(BASELINE.tables['audience_preview'].c[name] for name in ('space_id',)), unique=False)
sa.Table('compute_run', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('computation_id', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('started_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('finished_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('profiles', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('entered', sa.Integer(), nullable=False),
    sa.Column('exited', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_compute_run_computation_id', *(BASELINE.tables['compute_run'].c[name] for name in ('computation_id',)), unique=False)
sa.Table('compute_state', BASELINE,
    sa.Column('computation_id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('last_run_id', sa.String(), nullable=True),
    sa.Column('last_run_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('next_run_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('error', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('computation_id')
)
sa.Index('ix_compute_state_next_run_at_ms', *(BASELINE.tables['compute_state'].c[name] for name in ('next_run_at_ms',)), unique=False)
sa.Index('ix_compute_state_space_id', *(BASELINE.tables['compute_state'].c[name] for name in ('space_id',)), unique=False)
sa.Table('computed_value', BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('computation_id', sa.String(), nullable=False),
    sa.Column('profile_id', sa.String(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('from_ms', sa.BigInteger(), nullable=False),
    sa.Column('until_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_computed_value_current', *(BASELINE.tables['computed_value'].c[name] for name in ('computation_id', 'until_ms', 'profile_id',)), unique=False)
sa.Table('delivery_attempt', BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('target_id', sa.String(), nullable=False),
    sa.Column('message_id', sa.String(), nullable=False),
    sa.Column('at_ms', sa.BigInteger(), nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_delivery_attempt_outbox_id', *(BASELINE.tables['delivery_attempt'].c[name] for name in ('outbox_id',)), unique=False)
sa.Table('dirty_profile', BASELINE,
    sa.Column('profile_id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('since_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('profile_id')
)
sa.Index('ix_dirty_profile_space_id', *(BASELINE.tables['dirty_profile'].c[name] for name in ('space_id',)), unique=False)
sa.Table('download', BASELINE,
    sa.Column('token', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('collection_id', sa.String(), nullable=False),
    sa.Column('hour_ms', sa.BigInteger(), nullable=False),
    sa.Column('format', sa.String(), nullable=False),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('expires_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('token')
)
sa.Index('ix_download_expires_at_ms', *(BASELINE.tables['download'].c[name] for name in ('expires_at_ms',)), unique=False)
sa.Table('event', BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('profile_id', sa.String(), nullable=False),
    sa.Column('message_id', sa.String(), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('event', sa.String(), nullable=True),
    sa.Column('timestamp_ms', sa.BigInteger(), nullable=False),
    sa.Column('received_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('source_id', sa.String(), nullable=False),
    sa.Column('properties', sa.Text(), nullable=False),
    sa.Column('traits', sa.Text(), nullable=True),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('external_ids', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('space_id', 'message_id')
)
sa.Index('ix_event_profile_time', *(BASELINE.tables['event'].c[name] for name in ('profile_id', 'timestamp_ms',)), unique=False)
sa.Table('identifier', BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('collection', sa.String(), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('value', sa.String(), nullable=False),
    sa.Column('profile_id', sa.String(), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('first_message_id', sa.String(), nullable=False),
    sa.Column('source_id', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('space_id', 'value', 'type', 'collection')
)
sa.Index('ix_identifier_profile_id', *(BASELINE.tables['identifier'].c[name] for name in ('profile_id',)), unique=False)
sa.Table('membership', BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('computation_id', sa.String(), nullable=False),
    sa.Column('profile_id', sa.String(), nullable=False),
    sa.Column('entered_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('entered_run_id', sa.String(), nullable=False),
    sa.Column('exited_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('exited_run_id', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_membership_current', *(BASELINE.tables['membership'].c[name] for name in ('computation_id', 'exited_at_ms', 'profile_id',)), unique=False)
sa.Index('ix_membership_profile_id', *(BASELINE.tables['membership'].c[name] for name in ('profile_id',)), unique=False)
sa.Table('outbox', BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('computation_id', sa.String(), nullable=False),
    sa.Column('target_kind', sa.String(), nullable=False),
    sa.Column('target_id', sa.String(), nullable=False),
    sa.Column('profile_id', sa.String(), nullable=False),
    sa.Column('transition', sa.String(), nullable=False),
    sa.Column('run_id', sa.String(), nullable=False),
    sa.Column('message_id', sa.String(), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('lease_owner', sa.String(), nullable=True),
    sa.Column('lease_until_ms', sa.BigInteger(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('first_attempt_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_attempt_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('delivered_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('value', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id')
)
sa.Index('ix_outbox_computation_id', *(BASELINE.tables['outbox'].c[name] for name in ('computation_id',)), unique=False)
sa.Index('ix_outbox_due', *(BASELINE.tables['outbox'].c[name] for name in ('state', 'next_attempt_at_ms',)), unique=False)
sa.Index('ix_outbox_order', *(BASELINE.tables['outbox'].c[name] for name in ('target_id', 'profile_id', 'state', 'id',)), unique=False)
sa.Index('ix_outbox_target', *(BASELINE.tables['outbox'].c[name] for name in ('target_id', 'state',)), unique=False)
sa.Table('profile_link', BASELINE,
    sa.Column('user_id', sa.String(), nullable=False),
    sa.Column('account_id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'account_id')
)
sa.Index('ix_profile_link_account_id', *(BASELINE.tables['profile_link'].c[name] for name in ('account_id',)), unique=False)
sa.Table('profile_merge', BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('merged_id', sa.String(), nullable=False),
    sa.Column('canonical_id', sa.String(), nullable=False),
    sa.Column('message_id', sa.String(), nullable=False),
    sa.Column('merged_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_profile_merge_canonical_id', *(BASELINE.tables['profile_merge'].c[name] for name in ('canonical_id',)), unique=False)
sa.Index('ix_profile_merge_merged_id', *(BASELINE.tables['profile_merge'].c[name] for name in ('merged_id',)), unique=False)
sa.Index('ix_profile_merge_space_id', *(BASELINE.tables['profile_merge'].c[name] for name in ('space_id',)), unique=False)
sa.Table('schema_meta', BASELINE,
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('value', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('key')
)
sa.Table('space', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('slug', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('write_key', sa.String(), nullable=False),
    sa.Column('access_token_hash', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
)
sa.Index('ix_space_write_key', *(BASELINE.tables['space'].c[name] for name in ('write_key',)), unique=True)
sa.Table('trait', BASELINE,
    sa.Column('profile_id', sa.String(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('trait_class', sa.String(), nullable=False),
    sa.Column('source_id', sa.String(), nullable=False),
    sa.Column('updated_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('profile_id', 'key')
)
sa.Table('audience', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('description', sa.String(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('audience_type', sa.String(), nullable=False),
    sa.Column('query', sa.String(), nullable=False),
    sa.Column('target_entity', sa.String(), nullable=True),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('compute_cadence', sa.String(), nullable=False),
    sa.Column('cadence_reason', sa.String(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('updated_by', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_audience_space_id', *(BASELINE.tables['audience'].c[name] for name in ('space_id',)), unique=False)
sa.Table('computed_trait', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('description', sa.String(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('query', sa.String(), nullable=False),
    sa.Column('definition_type', sa.String(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('compute_cadence', sa.String(), nullable=False),
    sa.Column('cadence_reason', sa.String(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('updated_by', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_computed_trait_space_id', *(BASELINE.tables['computed_trait'].c[name] for name in ('space_id',)), unique=False)
sa.Table('definition_reference', BASELINE,
    sa.Column('owner_id', sa.String(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('owner_id', 'key')
)
sa.Index('ix_definition_reference_key', *(BASELINE.tables['definition_reference'].c[name] for name in ('key',)), unique=False)
sa.Index('ix_definition_reference_space_id', *(BASELINE.tables['definition_reference'].c[name] for name in ('space_id',)), unique=False)
sa.Table('destination', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('slug', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_destination_space_id', *(BASELINE.tables['destination'].c[name] for name in ('space_id',)), unique=False)
sa.Table('messaging_subscription', BASELINE,
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('space_id', 'type', 'key')
)
sa.Table('profile', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('collection', sa.String(), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('first_message_id', sa.String(), nullable=False),
    sa.Column('first_source_id', sa.String(), nullable=False),
    sa.Column('merged_into', sa.String(), nullable=True),
    sa.Column('merge_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_profile_merged_into', *(BASELINE.tables['profile'].c[name] for name in ('merged_into',)), unique=False)
sa.Index('ix_profile_space_id', *(BASELINE.tables['profile'].c[name] for name in ('space_id',)), unique=False)
sa.Table('space_filter', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('description', sa.String(), nullable=True),
    sa.Column('condition', sa.String(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('drop', sa.Boolean(), nullable=False),
    sa.Column('dropped_count', sa.Integer(), nullable=False),
    sa.Column('last_dropped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_space_filter_space_id', *(BASELINE.tables['space_filter'].c[name] for name in ('space_id',)), unique=False)
sa.Table('subscription_group', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('space_id', 'name')
)
sa.Index('ix_subscription_group_space_id', *(BASELINE.tables['subscription_group'].c[name] for name in ('space_id',)), unique=False)
sa.Table('trait_key', BASELINE,
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('owner_id', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('space_id', 'key')
)
sa.Table('audience_schedule', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('audience_id', sa.String(), nullable=False),
    sa.Column('strategy', sa.String(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('next_execution', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['audience_id'], ['audience.id'], ),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_audience_schedule_audience_id', *(BASELINE.tables['audience_schedule'].c[name] for name in ('audience_id',)), unique=False)
sa.Table('connection', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('audience_id', sa.String(), nullable=False),
    sa.Column('destination_id', sa.String(), nullable=False),
    sa.Column('id_sync_configuration', sa.JSON(), nullable=False),
    sa.Column('connection_settings', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['destination_id'], ['destination.id'], ),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('audience_id', 'destination_id')
)
sa.Index('ix_connection_audience_id', *(BASELINE.tables['connection'].c[name] for name in ('audience_id',)), unique=False)
sa.Index('ix_connection_space_id', *(BASELINE.tables['connection'].c[name] for name in ('space_id',)), unique=False)
sa.Table('group_subscription', BASELINE,
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('group_id', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['subscription_group.id'], ),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('space_id', 'type', 'key', 'group_id')
)
sa.Table('activation', BASELINE,
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('space_id', sa.String(), nullable=False),
    sa.Column('audience_id', sa.String(), nullable=False),
    sa.Column('connection_id', sa.String(), nullable=False),
    sa.Column('activation_type', sa.String(), nullable=False),
    sa.Column('activation_name', sa.String(), nullable=False),
    sa.Column('display_name', sa.String(), nullable=True),
    sa.Column('personalization', sa.JSON(), nullable=False),
    sa.Column('destination_mapping', sa.JSON(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('perform_resync', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connection.id'], ),
    sa.ForeignKeyConstraint(['space_id'], ['space.id'], ),
    sa.PrimaryKeyConstraint('id')
)
sa.Index('ix_activation_audience_id', *(BASELINE.tables['activation'].c[name] for name in ('audience_id',)), unique=False)
sa.Index('ix_activation_connection_id', *(BASELINE.tables['activation'].c[name] for name in ('connection_id',)), unique=False)
sa.Index('ix_activation_space_id', *(BASELINE.tables['activation'].c[name] for name in ('space_id',)), unique=False)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if inspector.has_table("space"):
        _adopt(bind, inspector)
    else:
        BASELINE.create_all(bind)
    meta = BASELINE.tables["schema_meta"]
    stored = dict(bind.execute(sa.select(meta.c.key, meta.c.value)).all())
    wanted = {"schema_version": "1", "workspace_id": new_id("wsp")}
    missing = [{"key": key, "value": value} for key, value in wanted.items() if key not in stored]
    if missing:
        bind.execute(meta.insert(), missing)


def _adopt(bind, inspector) -> None:
    BASELINE.create_all(bind, checkfirst=True)
    for table in BASELINE.sorted_tables:
        existing = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in existing:
                op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
    for name in ("connection", "activation"):
        stale = [fk for fk in inspector.get_foreign_keys(name) if fk["referred_table"] == "audience"]
        if not stale:
            continue
        if bind.dialect.name == "sqlite":
            with op.batch_alter_table(name, recreate="always", copy_from=BASELINE.tables[name]):
                pass
        else:
            for fk in stale:
                op.drop_constraint(fk["name"], name, type_="foreignkey")
    if bind.dialect.name == "sqlite":
        problems = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"adopting the database left broken references: {problems[:5]}")
