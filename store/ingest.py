"""Storing accepted messages: space filters, messageId de-duplication, identity resolution, and the
profile's events, identifiers, traits and account links, all in one transaction per batch.

A batch is stored completely or not at all. Rows are buffered and written with `executemany`; a
merge first writes what is buffered, then moves the merged profile's events, identifiers, traits and
links to the older, canonical profile. Traits follow "newest wins" by event time, so an older
Identify arriving late never overwrites a newer value, and `null` removes a trait. messageIds are
de-duplicated per space for as long as the events are kept.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from backend import fql
from backend.tracking.identity import ACCOUNTS, USERS, ExternalId, Resolution, extract, resolve
from backend.tracking.messages import MAX_MESSAGE_BYTES, Message, MessageError, message_size, normalise, to_ms
from store import filters
from store.ids import new_id
from store.models import DirtyProfile, Event, Identifier, Profile, ProfileLink, ProfileMerge, SpaceFilter, Trait
from store.store import Store

MAX_IDENTIFIERS = 1000
CUSTOM = "custom"
_CHUNK = 300
_REMOVE = object()


@dataclass
class IngestResult:
    """What became of a batch: stored, skipped as duplicates, or dropped by a space filter."""

    stored: int = 0
    duplicates: int = 0
    dropped: int = 0
    profiles: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Rejection:
    index: int
    message: str


def accept(
    store: Store, space_id: str, raws: list, source_id: str, *, sent_at: object = None, context: object = None
) -> tuple[IngestResult, list[Rejection]]:
    """Validate raw Segment-spec messages and store the valid ones; the others come back with reasons.
    The Tracking API and the file importer both come through here."""
    received_at = store.now()
    messages, rejected = [], []
    for index, raw in enumerate(raws):
        try:
            if message_size(raw) > MAX_MESSAGE_BYTES:
                raise MessageError(f"message is larger than {MAX_MESSAGE_BYTES // 1024} KB")
            messages.append(normalise(raw, received_at, batch_sent_at=sent_at, batch_context=context))
        except MessageError as error:
            rejected.append(Rejection(index, str(error)))
    return ingest(store, space_id, messages, source_id), rejected


def ingest(store: Store, space_id: str, messages: list[Message], source_id: str) -> IngestResult:
    """Store a batch of validated messages for a space in one transaction."""
    with store.write() as session:
        connection = session.connection()
        result = IngestResult()
        kept = _apply_filters(connection, space_id, messages, result, to_ms(store.now()))
        fresh = _deduplicate(connection, space_id, kept, result)
        if fresh:
            writer = _BatchWriter(connection, space_id, source_id, to_ms(store.now()))
            for message in fresh:
                writer.add(message)
            writer.flush()
            result.profiles = writer.touched
        result.stored = len(fresh)
        return result


def _apply_filters(connection: Connection, space_id: str, messages: list[Message], result: IngestResult, now_ms: int) -> list[Message]:
    active = [(row.id, _parse_condition(row.condition)) for row in filters.dropping_filters(connection, space_id)]
    if not active:
        return messages
    kept, drops = [], Counter()
    for message in messages:
        document = message.document()
        hit = next((filter_id for filter_id, condition in active if fql.matches(condition, document)), None)
        if hit is None:
            kept.append(message)
        else:
            drops[hit] += 1
    for filter_id, count in drops.items():
        filters.count_drops(connection, filter_id, count, now_ms)
    result.dropped = sum(drops.values())
    return kept


@lru_cache(maxsize=256)
def _parse_condition(condition: str) -> fql.Node:
    return fql.parse(condition)


def _deduplicate(connection: Connection, space_id: str, messages: list[Message], result: IngestResult) -> list[Message]:
    seen: set[str] = set()
    ids = list({message.message_id for message in messages})
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        statement = select(Event.message_id).where(Event.space_id == space_id, Event.message_id.in_(chunk))
        seen.update(connection.execute(statement).scalars())
    fresh = []
    for message in messages:
        if message.message_id in seen:
            result.duplicates += 1
        else:
            seen.add(message.message_id)
            fresh.append(message)
    return fresh


class _BatchWriter:
    """Resolves each message against the identity graph and buffers the rows it produces."""

    def __init__(self, connection: Connection, space_id: str, source_id: str, now_ms: int):
        self.connection = connection
        self.space_id = space_id
        self.source_id = source_id
        self.now_ms = now_ms
        self.owners: dict[ExternalId, str | None] = {}
        self.known_ids: dict[str, set[ExternalId]] = {}
        self.profile_facts: dict[str, tuple[int, str, int]] = {}
        self.touched: set[str] = set()
        self._reset_buffers()

    def _reset_buffers(self) -> None:
        self.new_profiles: list[dict] = []
        self.new_identifiers: list[dict] = []
        self.events: list[dict] = []
        self.traits: dict[tuple[str, str], tuple[object, int]] = {}
        self.links: set[tuple[str, str]] = set()
        self.last_seen: dict[str, tuple[int, str]] = {}

    # -- the identity graph, as `resolve` sees it ------------------------------------------------

    def owner(self, identifier: ExternalId) -> str | None:
        if identifier not in self.owners:
            self._load_owners([identifier])
        return self.owners[identifier]

    def identifiers(self, profile_id: str) -> set[ExternalId]:
        if profile_id not in self.known_ids:
            rows = self.connection.execute(
                select(Identifier.collection, Identifier.type, Identifier.value).where(Identifier.profile_id == profile_id)
            )
            self.known_ids[profile_id] = {ExternalId(*row) for row in rows}
        return self.known_ids[profile_id]

    def age(self, profile_id: str) -> tuple:
        return (self._facts(profile_id)[0], profile_id)

    def merges(self, profile_id: str) -> int:
        return self._facts(profile_id)[2]

    def _facts(self, profile_id: str) -> tuple[int, str, int]:
        if profile_id not in self.profile_facts:
            row = self.connection.execute(
                select(Profile.created_at_ms, Profile.collection, Profile.merge_count).where(Profile.id == profile_id)
            ).one()
            self.profile_facts[profile_id] = tuple(row)
        return self.profile_facts[profile_id]

    def _load_owners(self, identifiers: list[ExternalId]) -> None:
        missing = [i for i in dict.fromkeys(identifiers) if i not in self.owners]
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            for identifier in chunk:
                self.owners[identifier] = None
            key = tuple_(Identifier.collection, Identifier.type, Identifier.value)
            statement = select(Identifier.collection, Identifier.type, Identifier.value, Identifier.profile_id).where(
                Identifier.space_id == self.space_id, key.in_([(i.collection, i.type, i.value) for i in chunk])
            )
            for collection, kind, value, profile_id in self.connection.execute(statement):
                self.owners[ExternalId(collection, kind, value)] = profile_id

    # -- one message -----------------------------------------------------------------------------

    def add(self, message: Message) -> None:
        identifiers = extract(message)
        self._load_owners(identifiers)
        resolution = resolve(identifiers, self)
        profile_id = self._apply(resolution, USERS, message)
        self.events.append(self._event_row(message, profile_id, identifiers))
        if message.type == "identify":
            self._set_traits(profile_id, message.traits or {}, message.timestamp_ms)
        for account_id in self._accounts(identifiers, message):
            self.links.add((profile_id, account_id))
            if message.type == "group":
                self._set_traits(account_id, message.traits or {}, message.timestamp_ms)

    def _apply(self, resolution: Resolution, collection: str, message: Message) -> str:
        profile_id = resolution.profile_id
        if profile_id is None:
            profile_id = self._create_profile(collection, message)
        for merged in resolution.merge:
            self._merge(merged, profile_id, message.message_id)
        room = MAX_IDENTIFIERS - len(self.identifiers(profile_id))
        for identifier in resolution.add[: max(room, 0)]:
            self._add_identifier(identifier, profile_id, message)
        self.last_seen[profile_id] = (message.received_at_ms, message.message_id)
        self.touched.add(profile_id)
        return profile_id

    def _accounts(self, identifiers: list[ExternalId], message: Message) -> list[str]:
        """The account profiles a message links its user to, created when new. Accounts never merge:
        each account identifier leads to the account that first claimed it."""
        accounts = []
        for identifier in identifiers:
            if identifier.collection != ACCOUNTS:
                continue
            account_id = self.owner(identifier)
            if account_id is None:
                account_id = self._apply(Resolution(None, (), (identifier,)), ACCOUNTS, message)
            else:
                self.last_seen[account_id] = (message.received_at_ms, message.message_id)
            accounts.append(account_id)
        return accounts

    def _create_profile(self, collection: str, message: Message) -> str:
        profile_id = new_id("use" if collection == USERS else "acc")
        self.new_profiles.append(
            {
                "id": profile_id,
                "space_id": self.space_id,
                "collection": collection,
                "created_at_ms": message.received_at_ms,
                "updated_at_ms": message.received_at_ms,
                "first_message_id": message.message_id,
                "last_message_id": message.message_id,
                "first_source_id": self.source_id,
                "last_source_id": self.source_id,
                "merge_count": 0,
            }
        )
        self.profile_facts[profile_id] = (message.received_at_ms, collection, 0)
        self.known_ids[profile_id] = set()
        return profile_id

    def _add_identifier(self, identifier: ExternalId, profile_id: str, message: Message) -> None:
        self.owners[identifier] = profile_id
        self.known_ids[profile_id].add(identifier)
        self.new_identifiers.append(
            {
                "space_id": self.space_id,
                "collection": identifier.collection,
                "type": identifier.type,
                "value": identifier.value,
                "profile_id": profile_id,
                "created_at_ms": message.received_at_ms,
                "first_message_id": message.message_id,
                "source_id": self.source_id,
            }
        )

    def _set_traits(self, profile_id: str, traits: dict, timestamp_ms: int) -> None:
        for key, value in traits.items():
            current = self.traits.get((profile_id, key))
            if current is None or timestamp_ms >= current[1]:
                self.traits[(profile_id, key)] = (_REMOVE if value is None else value, timestamp_ms)

    def _event_row(self, message: Message, profile_id: str, identifiers: list[ExternalId]) -> dict:
        return {
            "space_id": self.space_id,
            "profile_id": profile_id,
            "message_id": message.message_id,
            "type": message.type,
            "event": message.event,
            "timestamp_ms": message.timestamp_ms,
            "received_at_ms": message.received_at_ms,
            "source_id": self.source_id,
            "properties": _dump(message.properties),
            "traits": None if message.traits is None else _dump(message.traits),
            "context": _dump(message.context),
            "external_ids": _dump([i.public() for i in identifiers]),
        }

    # -- merges ----------------------------------------------------------------------------------

    def _merge(self, merged: str, canonical: str, message_id: str) -> None:
        """Fold `merged` into the older `canonical`: events, identifiers, traits and links move; the
        merge is recorded and both profiles are marked for recompute."""
        self.flush()
        merged_ids, canonical_ids = self.identifiers(merged), self.identifiers(canonical)
        execute = self.connection.execute
        execute(update(Identifier).where(Identifier.profile_id == merged).values(profile_id=canonical))
        execute(update(Event).where(Event.profile_id == merged).values(profile_id=canonical))
        moved = execute(
            select(Trait.key, Trait.value, Trait.trait_class, Trait.source_id, Trait.updated_at_ms).where(
                Trait.profile_id == merged, Trait.trait_class == CUSTOM
            )
        ).all()
        _upsert_traits(self.connection, [
            {"profile_id": canonical, "key": key, "space_id": self.space_id, "value": value,
             "trait_class": trait_class, "source_id": source, "updated_at_ms": at}
            for key, value, trait_class, source, at in moved
        ])
        execute(delete(Trait).where(Trait.profile_id == merged))
        accounts = execute(select(ProfileLink.account_id).where(ProfileLink.user_id == merged)).scalars().all()
        execute(delete(ProfileLink).where(ProfileLink.user_id == merged))
        self.links.update((canonical, account) for account in accounts)
        merged_count = self.merges(merged) + 1
        execute(update(Profile).where(Profile.merged_into == merged).values(merged_into=canonical))
        execute(update(Profile).where(Profile.id == merged).values(merged_into=canonical))
        execute(update(Profile).where(Profile.id == canonical).values(merge_count=Profile.merge_count + merged_count))
        execute(ProfileMerge.__table__.insert().values(
            space_id=self.space_id, merged_id=merged, canonical_id=canonical, message_id=message_id, merged_at_ms=self.now_ms
        ))
        created, collection, count = self._facts(canonical)
        self.profile_facts[canonical] = (created, collection, count + merged_count)
        for identifier in merged_ids:
            self.owners[identifier] = canonical
        self.known_ids[canonical] = canonical_ids | self.known_ids.pop(merged)
        self.touched.add(merged)
        self.flush()

    # -- writing ---------------------------------------------------------------------------------

    def flush(self) -> None:
        execute = self.connection.execute
        if self.new_profiles:
            execute(Profile.__table__.insert(), self.new_profiles)
        if self.new_identifiers:
            execute(Identifier.__table__.insert(), self.new_identifiers)
        if self.events:
            execute(Event.__table__.insert(), self.events)
        self._write_traits()
        if self.links:
            _insert_ignoring_duplicates(self.connection, ProfileLink, [
                {"user_id": user, "account_id": account, "space_id": self.space_id, "created_at_ms": self.now_ms}
                for user, account in sorted(self.links)
            ])
        if self.last_seen:
            table = Profile.__table__
            execute(
                table.update().where(table.c.id == bindparam("profile")).values(
                    updated_at_ms=bindparam("at"), last_message_id=bindparam("message"), last_source_id=self.source_id
                ),
                [{"profile": p, "at": at, "message": m} for p, (at, m) in self.last_seen.items()],
            )
        if self.touched:
            _insert_ignoring_duplicates(self.connection, DirtyProfile, [
                {"profile_id": profile_id, "space_id": self.space_id, "since_ms": self.now_ms}
                for profile_id in sorted(self.touched)
            ])
        self._reset_buffers()

    def _write_traits(self) -> None:
        removals = [(p, k, at) for (p, k), (value, at) in self.traits.items() if value is _REMOVE]
        updates = [
            {"profile_id": p, "key": k, "space_id": self.space_id, "value": _dump(value), "trait_class": CUSTOM,
             "source_id": self.source_id, "updated_at_ms": at}
            for (p, k), (value, at) in self.traits.items()
            if value is not _REMOVE
        ]
        _upsert_traits(self.connection, updates)
        if removals:
            table = Trait.__table__
            self.connection.execute(
                table.delete().where(
                    table.c.profile_id == bindparam("p"), table.c.key == bindparam("k"), table.c.updated_at_ms <= bindparam("at")
                ),
                [{"p": p, "k": k, "at": at} for p, k, at in removals],
            )


def _dialect_insert(connection: Connection, model):
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    return module.insert(model.__table__)


def _upsert_traits(connection: Connection, rows: list[dict]) -> None:
    """Insert traits, or overwrite a stored value only with one at least as new."""
    if not rows:
        return
    statement = _dialect_insert(connection, Trait)
    table = Trait.__table__
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.profile_id, table.c.key],
        set_={name: statement.excluded[name] for name in ("value", "trait_class", "source_id", "updated_at_ms")},
        where=statement.excluded.updated_at_ms >= table.c.updated_at_ms,
    )
    connection.execute(statement, rows)


def _insert_ignoring_duplicates(connection: Connection, model, rows: list[dict]) -> None:
    if rows:
        connection.execute(_dialect_insert(connection, model).on_conflict_do_nothing(), rows)


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
