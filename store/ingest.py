"""Storing accepted messages: space filters, messageId de-duplication, identity resolution, and the
profile's events, identifiers, traits and account links, all in one transaction per batch.

A batch is stored completely or not at all. Rows are buffered and written with `executemany`; a
merge first writes what is buffered, then moves the merged profile's events, identifiers, traits and
links to the older, canonical profile. Traits follow "last updated wins": the value received last
(and, within a batch, the later message) is kept, also when profiles merge; event timestamps are not
used for this because clock-skew correction can reorder calls made milliseconds apart. `null`
removes a trait. messageIds are
de-duplicated per space for as long as the events are kept.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import orjson
from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from backend import fql
from backend.tracking.identity import ACCOUNTS, USERS, ExternalId, Resolution, extract, resolve
from backend.tracking.messages import MAX_MESSAGE_BYTES, Message, MessageError, message_size, normalise, to_ms
from store import filters
from store.ids import new_id
from store.models import DirtyProfile, Event, Identifier, Profile, ProfileLink, ProfileMerge, Trait
from store.store import Store

MAX_IDENTIFIERS = 1000
EVENT_COLUMNS = ("space_id", "profile_id", "message_id", "type", "event", "timestamp_ms", "received_at_ms", "source_id",
                 "properties", "traits", "context", "external_ids")
IDENTIFIER_COLUMNS = ("space_id", "collection", "type", "value", "profile_id", "created_at_ms", "first_message_id",
                      "source_id")
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
            extracted = [(message, extract(message)) for message in fresh]
            writer.preload([identifiers for _, identifiers in extracted])
            for message, identifiers in extracted:
                writer.add(message, identifiers)
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
        self.new_profiles: dict[str, dict] = {}
        self.new_identifiers: list[dict] = []
        self.events: list[dict] = []
        self.traits: dict[tuple[str, str], tuple[object, int]] = {}
        self.links: set[tuple[str, str]] = set()
        self.last_seen: dict[str, tuple[int, str]] = {}
        self.merges_done: list[dict] = []
        self.merge_records: list[dict] = []
        self.redirect: dict[str, str] = {}

    # -- the identity graph, as `resolve` sees it ------------------------------------------------

    def preload(self, batch: list[list[ExternalId]]) -> None:
        """Look up, in a few queries, the owners of a batch's identifiers and, for the messages that may
        add identifiers or merge, what resolution needs to know about their profiles."""
        wanted = {i for identifiers in batch for i in identifiers}
        self._load_owners(wanted)
        involved: set[str] = set()
        for identifiers in batch:
            owners = {self.owners[i] for i in identifiers}
            if len(owners) > 1 or None in owners:
                involved.update(p for p in owners if p is not None)
        self._load_profiles(involved)

    def _load_owners(self, wanted: set[ExternalId]) -> None:
        wanted = {i for i in wanted if i not in self.owners}
        for identifier in wanted:
            self.owners[identifier] = None
        values = sorted({i.value for i in wanted})
        for start in range(0, len(values), _CHUNK):
            statement = select(Identifier.collection, Identifier.type, Identifier.value, Identifier.profile_id).where(
                Identifier.space_id == self.space_id, Identifier.value.in_(values[start : start + _CHUNK])
            )
            for collection, kind, value, profile_id in self.connection.execute(statement):
                identifier = ExternalId(collection, kind, value)
                if identifier in wanted:
                    self.owners[identifier] = self._current(profile_id)

    def _load_profiles(self, profile_ids: set[str]) -> None:
        """Identifiers, age and merge count of stored profiles not yet known to this batch."""
        missing = sorted(profile_ids - self.known_ids.keys())
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            for profile_id in chunk:
                self.known_ids[profile_id] = set()
            rows = self.connection.execute(
                select(Identifier.collection, Identifier.type, Identifier.value, Identifier.profile_id).where(
                    Identifier.profile_id.in_(chunk)
                )
            )
            for collection, kind, value, profile_id in rows:
                self.known_ids[profile_id].add(ExternalId(collection, kind, value))
            facts = self.connection.execute(
                select(Profile.id, Profile.created_at_ms, Profile.collection, Profile.merge_count).where(Profile.id.in_(chunk))
            )
            for profile_id, created, collection, merges in facts:
                self.profile_facts[profile_id] = (created, collection, merges)

    def _current(self, profile_id: str) -> str:
        """Where a profile lives now, following merges made earlier in this batch."""
        while profile_id in self.redirect:
            profile_id = self.redirect[profile_id]
        return profile_id

    def owner(self, identifier: ExternalId) -> str | None:
        if identifier not in self.owners:
            self._load_owners({identifier})
        return self.owners[identifier]

    def identifiers(self, profile_id: str) -> set[ExternalId]:
        if profile_id not in self.known_ids:
            self._load_profiles({profile_id})
        return self.known_ids[profile_id]

    def age(self, profile_id: str) -> tuple:
        self.identifiers(profile_id)
        return (self.profile_facts[profile_id][0], profile_id)

    def merges(self, profile_id: str) -> int:
        self.identifiers(profile_id)
        return self.profile_facts[profile_id][2]

    # -- one message -----------------------------------------------------------------------------

    def add(self, message: Message, identifiers: list[ExternalId]) -> None:
        resolution = resolve(identifiers, self)
        profile_id = self._apply(resolution, USERS, message)
        self.events.append(self._event_row(message, profile_id, identifiers))
        if message.type == "identify":
            self._set_traits(profile_id, message.traits or {}, message.received_at_ms)
        for account_id in self._accounts(identifiers, message):
            self.links.add((profile_id, account_id))
            if message.type == "group":
                self._set_traits(account_id, message.traits or {}, message.received_at_ms)

    def _apply(self, resolution: Resolution, collection: str, message: Message) -> str:
        profile_id = resolution.profile_id
        if profile_id is None:
            profile_id = self._create_profile(collection, message)
        for merged in resolution.merge:
            self._merge(merged, profile_id, message.message_id)
        if resolution.add:
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
        self.new_profiles[profile_id] = (
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
                "merged_into": None,
                "merge_count": 0,
            }
        )
        self.profile_facts[profile_id] = (message.received_at_ms, collection, 0)
        self.known_ids[profile_id] = set()
        return profile_id

    def _add_identifier(self, identifier: ExternalId, profile_id: str, message: Message) -> None:
        self.owners[identifier] = profile_id
        self.identifiers(profile_id).add(identifier)
        self.new_identifiers.append([
            self.space_id, identifier.collection, identifier.type, identifier.value, profile_id,
            message.received_at_ms, message.message_id, self.source_id,
        ])

    def _set_traits(self, profile_id: str, traits: dict, received_at_ms: int) -> None:
        for key, value in traits.items():
            self.traits[(profile_id, key)] = (_REMOVE if value is None else value, received_at_ms)

    def _event_row(self, message: Message, profile_id: str, identifiers: list[ExternalId]) -> list:
        return [
            self.space_id, profile_id, message.message_id, message.type, message.event, message.timestamp_ms,
            message.received_at_ms, self.source_id, _dump(message.properties),
            None if message.traits is None else _dump(message.traits), _dump(message.context),
            _dump([i.public() for i in identifiers]),
        ]

    # -- merges ----------------------------------------------------------------------------------

    def _merge(self, merged: str, canonical: str, message_id: str) -> None:
        """Fold `merged` into the older `canonical`. The rows buffered in this batch are re-pointed now;
        stored events, identifiers, traits and links move when the batch is written. The merge is
        recorded and both profiles are marked for recompute."""
        merged_ids, canonical_ids = self.identifiers(merged), self.identifiers(canonical)
        merged_count = self.merges(merged) + 1
        for rows, column in ((self.events, EVENT_COLUMNS), (self.new_identifiers, IDENTIFIER_COLUMNS)):
            at = column.index("profile_id")
            for row in rows:
                if row[at] == merged:
                    row[at] = canonical
        for (profile_id, key), entry in list(self.traits.items()):
            if profile_id == merged:
                del self.traits[(profile_id, key)]
                current = self.traits.get((canonical, key))
                if current is None or entry[1] >= current[1]:
                    self.traits[(canonical, key)] = entry
        self.links = {(canonical if user == merged else user, account) for user, account in self.links}
        if merged in self.last_seen:
            self.last_seen[canonical] = max(self.last_seen.pop(merged), self.last_seen.get(canonical, (0, "")))
        if merged in self.new_profiles:
            self.new_profiles[merged]["merged_into"] = canonical
        else:
            self.merges_done.append({"merged": merged, "canonical": canonical})
        for row in self.new_profiles.values():
            if row["merged_into"] == merged:
                row["merged_into"] = canonical
        self.merge_records.append({"space_id": self.space_id, "merged_id": merged, "canonical_id": canonical,
                                   "message_id": message_id, "merged_at_ms": self.now_ms, "count": merged_count})
        self.redirect[merged] = canonical
        created, collection, count = self.profile_facts[canonical]
        self.profile_facts[canonical] = (created, collection, count + merged_count)
        for identifier in merged_ids:
            self.owners[identifier] = canonical
        self.known_ids[canonical] = canonical_ids | self.known_ids.pop(merged)
        self.touched.add(merged)

    # -- writing ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the batch: new profiles, then the moves of stored profiles merged in this batch (in
        the order they were merged, so chains end at the last canonical), then the buffered rows."""
        connection = self.connection
        if self.new_profiles:
            _insert_many(connection, Profile.__table__, list(self.new_profiles.values()))
        if self.merges_done:
            self._move_merged(self.merges_done)
        if self.merge_records:
            counts = [{"profile": r["canonical_id"], "count": r["count"]} for r in self.merge_records]
            profile = Profile.__table__
            _executemany(connection, "add merge counts", lambda: profile.update().where(profile.c.id == bindparam("profile")).values(
                merge_count=profile.c.merge_count + bindparam("count")), counts)
            _insert_many(connection, ProfileMerge.__table__, [
                {k: v for k, v in record.items() if k != "count"} for record in self.merge_records])
        if self.new_identifiers:
            _insert_rows(connection, Identifier.__table__, IDENTIFIER_COLUMNS, self.new_identifiers)
        if self.events:
            _insert_rows(connection, Event.__table__, EVENT_COLUMNS, self.events)
        self._write_traits()
        if self.links:
            _insert_ignoring_duplicates(connection, ProfileLink, [
                {"user_id": user, "account_id": account, "space_id": self.space_id, "created_at_ms": self.now_ms}
                for user, account in sorted(self.links)
            ])
        if self.last_seen:
            table = Profile.__table__
            _executemany(
                connection,
                "touch profiles",
                lambda: table.update().where(table.c.id == bindparam("profile")).values(
                    updated_at_ms=bindparam("at"), last_message_id=bindparam("message"), last_source_id=bindparam("source")
                ),
                [{"profile": p, "at": at, "message": m, "source": self.source_id} for p, (at, m) in self.last_seen.items()],
            )
        if self.touched:
            _insert_ignoring_duplicates(connection, DirtyProfile, [
                {"profile_id": profile_id, "space_id": self.space_id, "since_ms": self.now_ms}
                for profile_id in sorted(self.touched)
            ])
        self._reset_buffers()

    def _move_merged(self, pairs: list[dict]) -> None:
        """Move stored rows of merged profiles to their canonical profiles, pair by pair in order."""
        connection = self.connection
        identifier, event, trait, link, profile = (model.__table__ for model in (Identifier, Event, Trait, ProfileLink, Profile))
        merged, canonical = bindparam("merged"), bindparam("canonical")
        _executemany(connection, "move identifiers", lambda: identifier.update().where(identifier.c.profile_id == merged).values(profile_id=canonical), pairs)
        _executemany(connection, "move events", lambda: event.update().where(event.c.profile_id == merged).values(profile_id=canonical), pairs)
        for pair in pairs:
            moved = connection.execute(
                select(trait.c.key, trait.c.value, trait.c.trait_class, trait.c.source_id, trait.c.updated_at_ms).where(
                    trait.c.profile_id == pair["merged"], trait.c.trait_class == CUSTOM)
            ).all()
            _upsert_traits(connection, [
                {"profile_id": pair["canonical"], "key": key, "space_id": self.space_id, "value": value,
                 "trait_class": trait_class, "source_id": source, "updated_at_ms": at}
                for key, value, trait_class, source, at in moved
            ])
            accounts = connection.execute(select(link.c.account_id).where(link.c.user_id == pair["merged"])).scalars().all()
            _insert_ignoring_duplicates(connection, ProfileLink, [
                {"user_id": pair["canonical"], "account_id": account, "space_id": self.space_id, "created_at_ms": self.now_ms}
                for account in accounts
            ])
        _executemany(connection, "drop merged traits", lambda: trait.delete().where(trait.c.profile_id == merged), pairs)
        _executemany(connection, "drop merged links", lambda: link.delete().where(link.c.user_id == merged), pairs)
        _executemany(connection, "repoint merged", lambda: profile.update().where(profile.c.merged_into == merged).values(merged_into=canonical), pairs)
        _executemany(connection, "mark merged", lambda: profile.update().where(profile.c.id == merged).values(merged_into=canonical), pairs)

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


def _insert_many(connection: Connection, table, rows: list[dict]) -> None:
    _insert_rows(connection, table, tuple(rows[0]), [tuple(row.values()) for row in rows])


def _insert_rows(connection: Connection, table, columns: tuple[str, ...], rows: list) -> None:
    _executemany_rows(connection, f"insert {table.name} {columns}",
                      lambda: table.insert().values({name: bindparam(name) for name in columns}), columns, rows)


def _executemany(connection: Connection, name: str, build, rows: list[dict]) -> None:
    """`_executemany_rows` for rows given as dicts, all with the same keys in the same order."""
    _executemany_rows(connection, name, build, tuple(rows[0]), [tuple(row.values()) for row in rows])


_COMPILED: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}


def _executemany_rows(connection: Connection, name: str, build, columns: tuple[str, ...], rows: list) -> None:
    """Run one statement for many rows through the driver's own executemany, skipping SQLAlchemy's
    per-row parameter processing (the rows hold plain strings and integers, in `columns` order).
    `build` makes the statement; it is compiled once per dialect and remembered under `name`."""
    key = (connection.dialect.name, name)
    if key not in _COMPILED:
        compiled = build().compile(dialect=connection.dialect)
        _COMPILED[key] = (str(compiled), tuple(compiled.positiontup) if connection.dialect.positional else None)
    sql, order = _COMPILED[key]
    if order is None:
        parameters = [dict(zip(columns, row)) for row in rows]
    elif order == columns:
        parameters = [tuple(row) for row in rows]
    else:
        positions = [columns.index(column) for column in order]
        parameters = [tuple(row[i] for i in positions) for row in rows]
    connection.exec_driver_sql(sql, parameters)


def _dialect_insert(connection: Connection, model):
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    return module.insert(model.__table__)


def _upsert_traits(connection: Connection, rows: list[dict]) -> None:
    """Insert traits, or overwrite a stored value only with one at least as new."""
    if not rows:
        return
    columns = tuple(rows[0])

    def build():
        statement = _dialect_insert(connection, Trait).values({name: bindparam(name) for name in columns})
        table = Trait.__table__
        return statement.on_conflict_do_update(
            index_elements=[table.c.profile_id, table.c.key],
            set_={name: statement.excluded[name] for name in ("value", "trait_class", "source_id", "updated_at_ms")},
            where=statement.excluded.updated_at_ms >= table.c.updated_at_ms,
        )

    _executemany(connection, f"upsert traits {columns}", build, rows)


def _insert_ignoring_duplicates(connection: Connection, model, rows: list[dict]) -> None:
    if rows:
        columns = tuple(rows[0])
        _executemany(connection, f"insert or ignore {model.__tablename__} {columns}", lambda: _dialect_insert(connection, model).values(
            {name: bindparam(name) for name in columns}).on_conflict_do_nothing(), rows)


def _dump(value: object) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
