"""The tables. Times are timezone-aware UTC; JSON columns hold the Public API's nested objects.

The same tables on SQLite and PostgreSQL, with PostgreSQL's own types where they matter: JSON is
`jsonb` (documents the compiled CQL reads are kept as text on SQLite and read back as text on both),
row ids are 64-bit, and every text column has the "C" collation, so text compares and sorts by code
point as SQLite's BINARY does, whatever the database's default locale.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Text, TypeDecorator, UniqueConstraint, false, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import UserDefinedType
from sqlmodel import AutoString, Field, SQLModel


class _Declared(UserDefinedType):
    """A column type as the schema declares it, with no conversion of its own."""

    cache_ok = True

    def __init__(self, name: str):
        self.name = name

    def get_col_spec(self, **kw) -> str:
        return self.name


class _jsonb_text(FunctionElement):
    """The JSON text of a bound value, cast to jsonb on PostgreSQL."""

    inherit_cache = True
    type = Text()
    name = "jsonb_text"


@compiles(_jsonb_text)
def _jsonb_text_default(element, compiler, **kw):
    return compiler.process(element.clauses.clauses[0], **kw)


@compiles(_jsonb_text, "postgresql")
def _jsonb_text_postgresql(element, compiler, **kw):
    return f"CAST({compiler.process(element.clauses.clauses[0], **kw)} AS jsonb)"


class JsonText(TypeDecorator):
    """A JSON document handled as its text: TEXT on SQLite, jsonb on PostgreSQL, where the driver is
    told to return jsonb as text (`store.db.database.make_engine`)."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(_Declared("JSONB") if dialect.name == "postgresql" else Text())

    def bind_expression(self, bindvalue):
        return _jsonb_text(bindvalue)


class JsonObject(JsonText):
    """A JSON document handled as the Python value it holds (JSON on SQLite, jsonb on PostgreSQL)."""

    cache_ok = True  # SQLAlchemy asks each class: it holds no state a statement's cache key must tell

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(_Declared("JSONB" if dialect.name == "postgresql" else "JSON"))

    def process_bind_param(self, value, dialect):
        return None if value is None else orjson.dumps(value).decode()

    def process_result_value(self, value, dialect):
        return None if value is None else orjson.loads(value)


def row_id() -> Any:
    """An autoincrementing 64-bit row id (SQLite's INTEGER PRIMARY KEY is 64-bit already)."""
    return Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                                autoincrement=True))


class SchemaMeta(SQLModel, table=True):
    """Key/value facts about the database itself: `schema_version`, `workspace_id`."""

    __tablename__ = "schema_meta"
    key: str = Field(primary_key=True)
    value: str


class Space(SQLModel, table=True):
    id: str = Field(primary_key=True)
    slug: str = Field(unique=True)
    name: str
    write_key: str = Field(unique=True, index=True)
    access_token_hash: str
    created_at: datetime


class TraitKey(SQLModel, table=True):
    """A trait key taken by an audience or computed trait; kept after removal so it is never reused."""

    __tablename__ = "trait_key"
    space_id: str = Field(primary_key=True, foreign_key="space.id")
    key: str = Field(primary_key=True)
    owner_id: str


class Audience(SQLModel, table=True):
    id: str = Field(primary_key=True)
    space_id: str = Field(foreign_key="space.id", index=True)
    key: str
    name: str
    description: str | None = None
    enabled: bool
    audience_type: str
    query: str
    target_entity: str | None = None
    options: dict[str, Any] = Field(sa_type=JsonObject)
    status: str
    compute_cadence: str
    cadence_reason: str
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class ComputedTrait(SQLModel, table=True):
    __tablename__ = "computed_trait"
    id: str = Field(primary_key=True)
    space_id: str = Field(foreign_key="space.id", index=True)
    key: str
    name: str
    description: str | None = None
    enabled: bool
    query: str
    definition_type: str
    options: dict[str, Any] = Field(sa_type=JsonObject)
    status: str
    compute_cadence: str
    cadence_reason: str
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class DefinitionReference(SQLModel, table=True):
    """`owner_id`'s definition reads `trait('<key>')`: the edges of consumer lists and cycle checks."""

    __tablename__ = "definition_reference"
    owner_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True, index=True)
    space_id: str = Field(foreign_key="space.id", index=True)


class DefinitionChange(SQLModel, table=True):
    """An audience's or computed trait's definition from `changed_at_ms` on (its first when it was
    created), so its size history can mark what changed when."""

    __tablename__ = "definition_change"
    id: int | None = row_id()
    space_id: str
    computation_id: str = Field(index=True)
    changed_at_ms: int = Field(sa_type=BigInteger)
    query: str = Field(sa_type=Text)


class AudienceSplit(SQLModel, table=True):
    """An audience's experiment split (`backend.splits`): `groups` is its list of {name, percentage,
    holdout} in bucket order. An audience has at most one."""

    __tablename__ = "audience_split"
    id: str = Field(primary_key=True)
    space_id: str
    audience_id: str = Field(index=True, unique=True)
    salt: str
    groups: list[dict[str, Any]] = Field(sa_type=JsonObject)
    created_at: datetime
    updated_at: datetime


class PriorityList(SQLModel, table=True):
    """A ranked list of a space's audiences (`store.catalog.priority_lists`); its entries rank them."""

    __tablename__ = "priority_list"
    id: str = Field(primary_key=True)
    space_id: str = Field(index=True)
    name: str
    created_at: datetime
    updated_at: datetime


class PriorityListEntry(SQLModel, table=True):
    """An audience's place on a priority list (0 is the highest); an audience is on at most one."""

    __tablename__ = "priority_list_entry"
    audience_id: str = Field(primary_key=True)
    list_id: str = Field(index=True)
    rank: int


class Alert(SQLModel, table=True):
    """A condition watched in the background (`store.insights.alerts`): `kind` SIZE_CHANGE of an
    audience or computed trait, or DELIVERY_FAILURE_RATE of a destination instance (`subject_id`),
    above `threshold_percent`; `firing` while it holds, so it is sent once per episode."""

    id: str = Field(primary_key=True)
    space_id: str = Field(index=True)
    kind: str
    subject_id: str
    threshold_percent: float
    webhook_url: str
    firing: bool = False
    checked_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    created_at: datetime


class AlertFiring(SQLModel, table=True):
    """One time an alert fired: the value measured, the payload sent and what the webhook answered."""

    __tablename__ = "alert_firing"
    id: int | None = row_id()
    alert_id: str = Field(index=True)
    space_id: str
    fired_at_ms: int = Field(sa_type=BigInteger)
    value_percent: float
    payload: dict[str, Any] = Field(sa_type=JsonObject)
    status: int | None = None
    error: str | None = Field(default=None, sa_type=Text)


class AudienceSchedule(SQLModel, table=True):
    __tablename__ = "audience_schedule"
    id: str = Field(primary_key=True)
    audience_id: str = Field(foreign_key="audience.id", index=True)
    strategy: str
    config: dict[str, Any] = Field(sa_type=JsonObject)
    next_execution: datetime
    created_at: datetime
    updated_at: datetime


class Destination(SQLModel, table=True):
    """A destination instance added to a space (Engage settings), from the catalog entry `slug`."""

    id: str = Field(primary_key=True)
    space_id: str = Field(foreign_key="space.id", index=True)
    slug: str
    name: str
    settings: dict[str, Any] = Field(sa_type=JsonObject)
    enabled: bool = True
    created_at: datetime
    updated_at: datetime


class Connection(SQLModel, table=True):
    """A destination connected to an audience or computed trait (`ii_…`); `audience_id` holds either
    id (`aud_…`, `tra_…`), as the Public API's `audienceId` does."""

    __table_args__ = (UniqueConstraint("audience_id", "destination_id"),)
    id: str = Field(primary_key=True)
    space_id: str = Field(foreign_key="space.id", index=True)
    audience_id: str = Field(index=True)
    destination_id: str = Field(foreign_key="destination.id")
    id_sync_configuration: list[dict[str, Any]] = Field(sa_type=JsonObject)
    connection_settings: dict[str, Any] = Field(sa_type=JsonObject)
    enabled: bool = True
    created_at: datetime
    updated_at: datetime


class Activation(SQLModel, table=True):
    """Which events a connection sends; `audience_id` is the connection's audience or computed trait."""

    id: str = Field(primary_key=True)
    space_id: str = Field(foreign_key="space.id", index=True)
    audience_id: str = Field(index=True)
    connection_id: str = Field(foreign_key="connection.id", index=True)
    activation_type: str
    activation_name: str
    display_name: str | None = None
    personalization: dict[str, Any] = Field(sa_type=JsonObject)
    destination_mapping: dict[str, Any] | None = Field(default=None, sa_type=JsonObject)
    enabled: bool
    perform_resync: bool
    created_at: datetime
    updated_at: datetime
    split_group: str | None = None  # the one group of the audience's split it sends, if not its connection's


class SubscriptionGroup(SQLModel, table=True):
    __tablename__ = "subscription_group"
    __table_args__ = (UniqueConstraint("space_id", "name"),)
    id: str = Field(primary_key=True)
    space_id: str = Field(foreign_key="space.id", index=True)
    name: str


class MessagingSubscription(SQLModel, table=True):
    """The global subscription state of one contact vector (an email, a phone number, a push token)."""

    __tablename__ = "messaging_subscription"
    space_id: str = Field(primary_key=True, foreign_key="space.id")
    type: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    status: str | None = None
    updated_at: datetime


class GroupSubscription(SQLModel, table=True):
    __tablename__ = "group_subscription"
    space_id: str = Field(primary_key=True, foreign_key="space.id")
    type: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    group_id: str = Field(primary_key=True, foreign_key="subscription_group.id")
    status: str
    updated_at: datetime


class SpaceFilter(SQLModel, table=True):
    """A space filter: events matching `condition` (FQL) are dropped before identity resolution."""

    __tablename__ = "space_filter"
    id: str = Field(primary_key=True)
    space_id: str = Field(foreign_key="space.id", index=True)
    name: str
    description: str | None = None
    condition: str
    enabled: bool
    drop: bool
    dropped_count: int = 0
    last_dropped_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class Profile(SQLModel, table=True):
    """A user (`use_…`) or account (`acc_…`) profile; a merged profile points at its canonical one.
    When it last changed is read from its newest event, so ingest never rewrites this row."""

    id: str = Field(primary_key=True)
    space_id: str = Field(foreign_key="space.id", index=True)
    collection: str
    created_at_ms: int = Field(sa_type=BigInteger)
    first_message_id: str
    first_source_id: str
    merged_into: str | None = Field(default=None, index=True)
    merge_count: int = 0


class Identifier(SQLModel, table=True):
    """An external id (`user_id:u1`, `email:…`, `group_id:g1`) and the canonical profile it resolves to."""

    __table_args__ = (UniqueConstraint("space_id", "value", "type", "collection"),)
    id: int | None = row_id()
    space_id: str
    collection: str
    type: str
    value: str
    profile_id: str = Field(index=True)
    created_at_ms: int = Field(sa_type=BigInteger)
    first_message_id: str
    source_id: str


class Event(SQLModel, table=True):
    """One accepted message, as the profile's history. JSON columns hold serialised text; times are
    epoch milliseconds so window arithmetic is plain integer comparison on every database."""

    __table_args__ = (
        UniqueConstraint("space_id", "message_id"),
        Index("ix_event_profile_time", "profile_id", "timestamp_ms"),
    )
    id: int | None = row_id()
    space_id: str
    profile_id: str
    message_id: str
    type: str
    event: str | None = None
    timestamp_ms: int = Field(sa_type=BigInteger)
    received_at_ms: int = Field(sa_type=BigInteger)
    source_id: str
    properties: str = Field(sa_type=JsonText)
    traits: str | None = Field(default=None, sa_type=JsonText)
    context: str = Field(sa_type=JsonText)
    external_ids: str = Field(sa_type=JsonText)


CUSTOM = "custom"  # the class of traits that Identify and Group calls write
COMPUTED_TRAIT = f"trait_class <> '{CUSTOM}'"


class Trait(SQLModel, table=True):
    """One trait of a profile: `custom` from Identify/Group calls, or `audience`/`computed_trait`."""

    __table_args__ = (
        Index("ix_trait_computed", "space_id", "key", sqlite_where=text(COMPUTED_TRAIT),
              postgresql_where=text(COMPUTED_TRAIT)),
    )
    profile_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    space_id: str
    value: str = Field(sa_type=JsonText)
    trait_class: str
    source_id: str
    updated_at_ms: int = Field(sa_type=BigInteger)


class SchemaEvent(SQLModel, table=True):
    """A kind of message a space has received, for the Space Schema tools: Track events by name, Page
    and Screen calls as `Page Viewed` / `Screen Viewed`, Identify, Group and Alias calls as such."""

    __tablename__ = "schema_event"
    space_id: str = Field(primary_key=True)
    type: str = Field(primary_key=True)  # TRACK | PAGE | SCREEN | IDENTIFY | GROUP | ALIAS
    name: str = Field(primary_key=True)
    count: int = Field(sa_type=BigInteger)
    last_seen_ms: int = Field(sa_type=BigInteger)


class SchemaField(SQLModel, table=True):
    """A property (`PROPERTY`) or context field (`CONTEXT`) seen on an event, or a trait Identify
    (`users`) or Group (`accounts`) calls set; nested names joined with dots. `distinct_values`
    counts its rows in `schema_sample`, which stops taking new values at a cap."""

    __tablename__ = "schema_field"
    __table_args__ = (UniqueConstraint("space_id", "kind", "event", "name"),)
    id: int | None = row_id()
    space_id: str
    kind: str  # PROPERTY | CONTEXT | users | accounts
    event: str  # the event's name; empty for a trait
    name: str
    data_type: str  # STRING | NUMBER | BOOLEAN | ARRAY | OBJECT | MIXED
    count: int = Field(sa_type=BigInteger)
    last_seen_ms: int = Field(sa_type=BigInteger)
    distinct_values: int = 0


class SchemaSample(SQLModel, table=True):
    """How often a field has had one value (as text)."""

    __tablename__ = "schema_sample"
    field_id: int = Field(primary_key=True, sa_type=BigInteger)
    value: str = Field(primary_key=True)
    count: int = Field(sa_type=BigInteger)


class DataGraphConfig(SQLModel, table=True):
    """A space's Data Graph (`store.catalog.data_graphs`): the config as it was given (HCL or JSON
    text), numbered by version from 1."""

    __tablename__ = "data_graph"
    space_id: str = Field(primary_key=True, foreign_key="space.id")
    version: int
    config: str = Field(sa_type=Text)
    config_format: str  # hcl | json
    updated_at: datetime
    updated_by: str


class ProfileLink(SQLModel, table=True):
    """A user profile's membership of an account, made by a Group call."""

    __tablename__ = "profile_link"
    user_id: str = Field(primary_key=True)
    account_id: str = Field(primary_key=True, index=True)
    space_id: str
    created_at_ms: int = Field(sa_type=BigInteger)


class ProfileMerge(SQLModel, table=True):
    """`merged_id` was folded into `canonical_id` by the message `message_id`."""

    __tablename__ = "profile_merge"
    id: int | None = row_id()
    space_id: str = Field(index=True)
    merged_id: str = Field(index=True)
    canonical_id: str = Field(index=True)
    message_id: str
    merged_at_ms: int = Field(sa_type=BigInteger)


class AnalyticChange(SQLModel, table=True):
    """A profile whose rows in a table (profile, identifier, trait, profile_link) changed, written by
    triggers (migration 0004) for the analytic store's replicator to re-copy."""

    __tablename__ = "analytic_change"
    seq: int | None = row_id()
    table_name: str
    profile_id: str


class IngestLog(SQLModel, table=True):
    """A Tracking API request acknowledged and not yet processed (`store.ingest.processor`): its body
    as received (gzip undone), kept until the processor has stored its messages. `id` is its position
    (never reused): a space's requests are processed in that order."""

    __tablename__ = "ingest_log"
    __table_args__ = (Index("ix_ingest_log_space", "space_id", "id"), {"sqlite_autoincrement": True})
    id: int | None = row_id()
    space_id: str
    source_id: str
    kind: str  # "batch", or the message type of a single call
    body: bytes = Field(sa_type=LargeBinary)
    messages: int  # how many messages of the body were accepted
    received_at_ms: int = Field(sa_type=BigInteger)


class IngestPosition(SQLModel, table=True):
    """With the log apart (`Store.log_apart`): the last log position of a space whose messages are
    stored, written in the transaction that stores them; the log's rows up to it are deleted after."""

    __tablename__ = "ingest_position"
    space_id: str = Field(primary_key=True)
    position: int = Field(sa_type=BigInteger)


class DirtyProfile(SQLModel, table=True):
    """A profile whose events, traits or identity changed since its audiences were last computed; one
    whose last passes failed waits until `retry_at_ms` (`attempts` failures in a row); one a pass left
    for later because it changed while the pass read it has been so since `deferred_since_ms`."""

    __tablename__ = "dirty_profile"
    profile_id: str = Field(primary_key=True)
    space_id: str = Field(index=True)
    since_ms: int = Field(sa_type=BigInteger)
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    retry_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    deferred_since_ms: int | None = Field(default=None, sa_type=BigInteger)


class ComputeState(SQLModel, table=True):
    """Where an audience's or computed trait's computation stands: its size, its last run, and when
    the background loop runs it next (a batch cadence or a window sweep; NULL for never)."""

    __tablename__ = "compute_state"
    computation_id: str = Field(primary_key=True)
    space_id: str = Field(index=True)
    size: int = 0
    entity_size: int | None = None  # a LINKED audience with an entity target: its (profile, entity row) members
    entities_kept: bool = Field(default=False, sa_column_kwargs={"server_default": false()})  # entity_membership is current
    last_run_id: str | None = None
    last_run_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    next_run_at_ms: int | None = Field(default=None, sa_type=BigInteger, index=True)
    error: str | None = None


class ComputeRun(SQLModel, table=True):
    """One computation of an audience or computed trait: what started it, how long, what changed."""

    __tablename__ = "compute_run"
    id: str = Field(primary_key=True)
    space_id: str
    computation_id: str = Field(index=True)
    reason: str  # initial | cadence | sweep | schedule | forced | realtime | definition
    status: str  # COMPLETED | FAILED
    started_at_ms: int = Field(sa_type=BigInteger)
    finished_at_ms: int = Field(sa_type=BigInteger)
    profiles: int = 0
    size: int = 0
    entered: int = 0
    exited: int = 0
    error: str | None = None
    engine: str | None = None  # sqlite | postgresql | duckdb | clickhouse
    replication_lag_ms: int | None = Field(default=None, sa_type=BigInteger)
    entity_size: int | None = None  # as ComputeState's
    steps: dict[str, int] | None = Field(default=None, sa_type=JsonObject)  # a LINKED run's step -> milliseconds


class Membership(SQLModel, table=True):
    """One stay of a profile in an audience; the open rows (`exited_at_ms` NULL) are the members."""

    __table_args__ = (
        Index("ix_membership_current", "computation_id", "exited_at_ms", "profile_id"),
        Index("ux_membership_open", "computation_id", "profile_id", unique=True,
              sqlite_where=text("exited_at_ms IS NULL"), postgresql_where=text("exited_at_ms IS NULL")),
    )
    id: int | None = row_id()
    space_id: str
    computation_id: str
    profile_id: str = Field(index=True)
    entered_at_ms: int = Field(sa_type=BigInteger)
    entered_run_id: str
    exited_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    exited_run_id: str | None = None
    split_group: str | None = None  # the audience's split group during the stay (a move ends the stay)


class EntityMembership(SQLModel, table=True):
    """One stay of an entity row among a LINKED audience's matched rows of its tracked relationship
    (its target entity, else each relationship its definition reads under the profile), for one
    profile; `row` is the row as the last run saw it (JSON: its shown columns and matched rows under
    it), which Entity Values Changed compares."""

    __tablename__ = "entity_membership"
    __table_args__ = (
        Index("ix_entity_membership_current", "computation_id", "exited_at_ms", "profile_id"),
    )
    id: int | None = row_id()
    space_id: str
    computation_id: str
    profile_id: str
    relationship: str
    entity_key: str
    row: str = Field(sa_type=Text)
    entered_at_ms: int = Field(sa_type=BigInteger)
    entered_run_id: str
    exited_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    exited_run_id: str | None = None


class ComputedValue(SQLModel, table=True):
    """One value a computed trait held for a profile, from `from_ms` until `until_ms` (NULL while it
    still holds), so a past hour's values can be reconstructed like an audience's membership."""

    __tablename__ = "computed_value"
    __table_args__ = (
        Index("ix_computed_value_current", "computation_id", "until_ms", "profile_id"),
        Index("ux_computed_value_open", "computation_id", "profile_id", unique=True,
              sqlite_where=text("until_ms IS NULL"), postgresql_where=text("until_ms IS NULL")),
    )
    id: int | None = row_id()
    computation_id: str
    profile_id: str
    value: str = Field(sa_type=JsonText)
    from_ms: int = Field(sa_type=BigInteger)
    until_ms: int | None = Field(default=None, sa_type=BigInteger)


class Download(SQLModel, table=True):
    """A CSV written for `create_download`, served under its unguessable `token` until `expires_at_ms`."""

    token: str = Field(primary_key=True)
    space_id: str
    collection_id: str
    hour_ms: int = Field(sa_type=BigInteger)
    format: str
    path: str
    rows: int
    created_at_ms: int = Field(sa_type=BigInteger)
    expires_at_ms: int = Field(sa_type=BigInteger, index=True)


# The outbox's partial indexes (see migrations 0003 and 0018). The claim's order check (target and
# profile) matches both columns of `ix_outbox_pending` and only the first of `ix_outbox_claim` (a
# target's pending rows in the order they fall due); the others name a column it never constrains.
PENDING = "state = 'pending'"
LEASED = "state = 'pending' AND lease_owner IS NOT NULL"
SETTLED = "state <> 'pending'"


class OutboxMessage(SQLModel, table=True):
    """A transition waiting for delivery to one activation or destination connection. `message_id` is
    stable per (target, profile, transition, run), so a resend is idempotent downstream.

    `state` is pending, delivered, dead (dead-lettered) or cancelled (its target was removed). A
    worker holds a pending row while `lease_until_ms` is in the future. `payload` is the Segment
    events, built when the row is first claimed and sent unchanged on every retry."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_claim", "target_id", "next_attempt_at_ms", "id", sqlite_where=text(PENDING),
              postgresql_where=text(PENDING)),
        Index("ix_outbox_pending", "target_id", "profile_id", "id",
              sqlite_where=text(PENDING), postgresql_where=text(PENDING)),
        Index("ix_outbox_lease", "lease_owner", sqlite_where=text(LEASED), postgresql_where=text(LEASED)),
        Index("ix_outbox_target", "target_id", "state", sqlite_where=text(SETTLED), postgresql_where=text(SETTLED)),
    )
    id: int | None = row_id()
    space_id: str
    computation_id: str = Field(index=True)
    target_kind: str  # activation | connection
    target_id: str
    profile_id: str
    transition: str  # entered | exited (audiences) | changed (computed traits)
    run_id: str
    message_id: str = Field(unique=True)
    created_at_ms: int = Field(sa_type=BigInteger)
    state: str = "pending"
    attempts: int = 0
    next_attempt_at_ms: int = Field(sa_type=BigInteger)
    lease_owner: str | None = None
    lease_until_ms: int | None = Field(default=None, sa_type=BigInteger)
    payload: str | None = Field(default=None, sa_type=Text)
    first_attempt_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    last_attempt_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    delivered_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_type=Text)
    value: str | None = Field(default=None, sa_type=JsonText)  # a computed trait's new value as JSON; NULL when cleared
    split_group: str | None = None  # an audience row's split group, sent in context.personas


class DeliveryAttempt(SQLModel, table=True):
    """One request (or group of requests) made for an outbox row, and what came back."""

    __tablename__ = "delivery_attempt"
    id: int | None = row_id()
    outbox_id: int = Field(index=True)
    space_id: str
    target_id: str
    message_id: str
    at_ms: int = Field(sa_type=BigInteger)
    latency_ms: int
    outcome: str  # delivered | retry | throttled | failed | dead
    status: int | None = None
    error: str | None = Field(default=None, sa_type=Text)


class AudiencePreview(SQLModel, table=True):
    """An audience definition computed once, without saving anything, for its size and a sample."""

    __tablename__ = "audience_preview"
    id: str = Field(primary_key=True)
    space_id: str = Field(index=True)
    audience_type: str
    definition: dict[str, Any] = Field(sa_type=JsonObject)
    options: dict[str, Any] = Field(sa_type=JsonObject)
    status: str  # RUNNING | COMPLETED | FAILED
    size: int | None = None
    entity_size: int | None = None  # a LINKED definition with an entity target: its (profile, entity row) members
    results: list[dict[str, Any]] | None = Field(default=None, sa_type=JsonObject)
    failure_reason: str | None = None
    created_at: datetime


def _binary_collation_on_postgresql() -> None:
    """Give every plain text column the "C" collation on PostgreSQL (see the module's docstring)."""
    for table in SQLModel.metadata.tables.values():
        for column in table.columns:
            if type(column.type) in (AutoString, String):
                column.type = column.type.with_variant(String(collation="C"), "postgresql")


_binary_collation_on_postgresql()
