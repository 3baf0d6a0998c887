"""Applying a batch of messages to the identity graph and writing what they produce: profiles,
identifiers, events, traits, account links, merges and recompute marks.

The graph is read in a few queries up front (`preload`); each message is then resolved in memory
and its rows buffered. Merges fold the newer profile into the older one: buffered rows are pointed
at the canonical profile when the batch is written, and stored rows of merged profiles are moved
then, in merge order, so chains end at the last canonical profile. Traits follow "last updated
wins": the value received last (within a batch, the later message) is kept, also across merges;
event timestamps are not used for this because clock-skew correction can reorder calls made
milliseconds apart. A `null` trait removes it. A trait named by one of the space's audiences or
computed traits is neither set nor removed: only that computation's runs write it (the message itself
is stored as sent), and the writer counts what it dropped.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from backend.tracking.identity import ACCOUNTS, USERS, ExternalId, Resolution, resolve
from backend.tracking.messages import Message
from store.db import bulk
from store.db.ids import new_id
from store.db.models import (
    CUSTOM,
    DirtyProfile,
    Event,
    Identifier,
    Profile,
    ProfileLink,
    ProfileMerge,
    Trait,
)

MAX_IDENTIFIERS = 1000
EVENT_COLUMNS = ("space_id", "profile_id", "message_id", "type", "event", "timestamp_ms", "received_at_ms", "source_id",
                 "properties", "traits", "context", "external_ids")
IDENTIFIER_COLUMNS = ("space_id", "collection", "type", "value", "profile_id", "created_at_ms", "first_message_id",
                      "source_id")
_EVENT_PROFILE = EVENT_COLUMNS.index("profile_id")
_IDENTIFIER_PROFILE = IDENTIFIER_COLUMNS.index("profile_id")
_CHUNK = 300
_REMOVE = object()


class BatchWriter:
    """One batch's view of the identity graph (what `resolve` asks) and the rows it will write."""

    def __init__(self, connection: Connection, space_id: str, source_id: str, now_ms: int,
                 computed_keys: set[str]):
        self.connection = connection
        self.computed_keys = computed_keys
        self.space_id = space_id
        self.source_id = source_id
        self.now_ms = now_ms
        self.owners: dict[ExternalId, str | None] = {}
        self.known_ids: dict[str, set[ExternalId]] = {}
        self.profile_facts: dict[str, tuple[int, int]] = {}  # created_at_ms, merge_count
        self.redirect: dict[str, str] = {}
        self.touched: set[str] = set()
        self.new_profiles: dict[str, dict] = {}
        self.new_identifiers: list[tuple] = []
        self.events: list[tuple] = []
        self.traits: dict[tuple[str, str], tuple[object, int, int]] = {}
        self.links: set[tuple[str, str]] = set()
        self.stored_merges: list[dict] = []
        self.merge_records: list[dict] = []
        self.sequence = 0
        self.computed_keys_dropped = 0

    # -- the identity graph, as `resolve` sees it ------------------------------------------------

    def preload(self, batch: list[list[ExternalId]]) -> None:
        """Look up, in a few queries, the owners of a batch's identifiers and, for the messages that may
        add identifiers or merge, what resolution needs to know about their profiles."""
        self._load_owners({i for identifiers in batch for i in identifiers})
        involved: set[str] = set()
        for identifiers in batch:
            owners = {self.owners[i] for i in identifiers}
            if len(owners) > 1 or None in owners:
                involved.update(p for p in owners if p is not None)
        self._load_profiles(involved)

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
        return self.profile_facts[profile_id][1]

    def _current(self, profile_id: str) -> str:
        """Where a profile lives now, following merges made earlier in this batch."""
        while profile_id in self.redirect:
            profile_id = self.redirect[profile_id]
        return profile_id

    def _load_owners(self, wanted: set[ExternalId]) -> None:
        wanted = {i for i in wanted if i not in self.owners}
        for identifier in wanted:
            self.owners[identifier] = None
        found = bulk.select_in(
            self.connection,
            "owners of identifiers",
            lambda placeholders: select(Identifier.collection, Identifier.type, Identifier.value, Identifier.profile_id).where(
                Identifier.space_id == bindparam("space"), Identifier.value.in_(placeholders)),
            sorted({i.value for i in wanted}),
            {"space": self.space_id},
        )
        for collection, kind, value, profile_id in found:
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
                select(Profile.id, Profile.created_at_ms, Profile.merge_count).where(Profile.id.in_(chunk))
            )
            for profile_id, created, merges in facts:
                self.profile_facts[profile_id] = (created, merges)

    # -- one message -----------------------------------------------------------------------------

    def add(self, message: Message, identifiers: list[ExternalId]) -> None:
        self.sequence += 1
        profile_id = self._apply(resolve(identifiers, self), USERS, message)
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
            accounts.append(account_id)
        return accounts

    def _create_profile(self, collection: str, message: Message) -> str:
        profile_id = new_id("use" if collection == USERS else "acc")
        self.new_profiles[profile_id] = {
            "id": profile_id,
            "space_id": self.space_id,
            "collection": collection,
            "created_at_ms": message.received_at_ms,
            "first_message_id": message.message_id,
            "first_source_id": self.source_id,
            "merged_into": None,
            "merge_count": 0,
        }
        self.profile_facts[profile_id] = (message.received_at_ms, 0)
        self.known_ids[profile_id] = set()
        return profile_id

    def _add_identifier(self, identifier: ExternalId, profile_id: str, message: Message) -> None:
        self.owners[identifier] = profile_id
        self.identifiers(profile_id).add(identifier)
        self.new_identifiers.append((
            self.space_id, identifier.collection, identifier.type, identifier.value, profile_id,
            message.received_at_ms, message.message_id, self.source_id,
        ))

    def _set_traits(self, profile_id: str, traits: dict, received_at_ms: int) -> None:
        for key, value in traits.items():
            self.traits[(profile_id, key)] = (_REMOVE if value is None else value, received_at_ms, self.sequence)

    def _event_row(self, message: Message, profile_id: str, identifiers: list[ExternalId]) -> tuple:
        return (
            self.space_id, profile_id, message.message_id, message.type, message.event, message.timestamp_ms,
            message.received_at_ms, self.source_id, bulk.dump(message.properties),
            None if message.traits is None else bulk.dump(message.traits), bulk.dump(message.context),
            bulk.dump([i.public() for i in identifiers]),
        )

    def _merge(self, merged: str, canonical: str, message_id: str) -> None:
        """Fold `merged` into the older `canonical` in this batch's graph; rows follow at `flush`."""
        merged_count = self.merges(merged) + 1
        if merged not in self.new_profiles:
            self.stored_merges.append({"merged": merged, "canonical": canonical})
        self.merge_records.append({"space_id": self.space_id, "merged_id": merged, "canonical_id": canonical,
                                   "message_id": message_id, "merged_at_ms": self.now_ms, "count": merged_count})
        self.redirect[merged] = canonical
        created, count = self.profile_facts[canonical]
        self.profile_facts[canonical] = (created, count + merged_count)
        merged_ids = self.known_ids.pop(merged)
        for identifier in merged_ids:
            self.owners[identifier] = canonical
        self.known_ids[canonical] = self.identifiers(canonical) | merged_ids
        self.touched.add(merged)

    # -- writing ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the batch: new profiles, then the moves of stored profiles merged in this batch, then
        the buffered rows, pointed at their canonical profiles."""
        connection = self.connection
        for profile_id, row in self.new_profiles.items():
            if profile_id in self.redirect:
                row["merged_into"] = self._current(profile_id)
        bulk.insert_dicts(connection, Profile.__table__, list(self.new_profiles.values()))
        if self.stored_merges:
            self._move_stored(self.stored_merges)
        if self.merge_records:
            self._record_merges()
        bulk.insert_rows(connection, Identifier.__table__, IDENTIFIER_COLUMNS, self._repointed(self.new_identifiers, _IDENTIFIER_PROFILE))
        bulk.insert_rows(connection, Event.__table__, EVENT_COLUMNS, self._repointed(self.events, _EVENT_PROFILE))
        self._write_traits()
        bulk.insert_ignoring_duplicates(connection, ProfileLink.__table__, [
            {"user_id": user, "account_id": account, "space_id": self.space_id, "created_at_ms": self.now_ms}
            for user, account in sorted({(self._current(user), account) for user, account in self.links})
        ])
        bulk.insert_or_hold(connection, DirtyProfile.__table__, [
            {"profile_id": profile_id, "space_id": self.space_id, "since_ms": self.now_ms, "attempts": 0,
             "retry_at_ms": None} for profile_id in sorted(self.touched)
        ], ("profile_id",))

    def _repointed(self, rows: list[tuple], at: int) -> list[tuple]:
        if not self.redirect:
            return rows
        return [row if row[at] not in self.redirect else (*row[:at], self._current(row[at]), *row[at + 1 :]) for row in rows]

    def _record_merges(self) -> None:
        profile = Profile.__table__
        bulk.execute_dicts(
            self.connection,
            "add merge counts",
            lambda: profile.update().where(profile.c.id == bindparam("profile")).values(
                merge_count=profile.c.merge_count + bindparam("count")),
            [{"profile": record["canonical_id"], "count": record["count"]} for record in self.merge_records],
        )
        bulk.insert_dicts(self.connection, ProfileMerge.__table__, [
            {key: value for key, value in record.items() if key != "count"} for record in self.merge_records])

    def _move_stored(self, pairs: list[dict]) -> None:
        """Move stored rows of merged profiles to their canonical profiles, pair by pair in order."""
        connection = self.connection
        identifier, event, trait, link, profile = (model.__table__ for model in (Identifier, Event, Trait, ProfileLink, Profile))
        merged, canonical = bindparam("merged"), bindparam("canonical")
        moves = {
            "move identifiers": lambda: identifier.update().where(identifier.c.profile_id == merged).values(profile_id=canonical),
            "move events": lambda: event.update().where(event.c.profile_id == merged).values(profile_id=canonical),
        }
        for name, build in moves.items():
            bulk.execute_dicts(connection, name, build, pairs)
        for pair in pairs:
            moved = connection.execute(
                select(trait.c.key, trait.c.value, trait.c.trait_class, trait.c.source_id, trait.c.updated_at_ms).where(
                    trait.c.profile_id == pair["merged"], trait.c.trait_class == CUSTOM)
            ).all()
            bulk.upsert_newer(connection, trait, [
                {"profile_id": pair["canonical"], "key": key, "space_id": self.space_id, "value": value,
                 "trait_class": trait_class, "source_id": source, "updated_at_ms": at}
                for key, value, trait_class, source, at in moved
            ], keys=("profile_id", "key"), stamp="updated_at_ms")
            accounts = connection.execute(select(link.c.account_id).where(link.c.user_id == pair["merged"])).scalars().all()
            bulk.insert_ignoring_duplicates(connection, link, [
                {"user_id": pair["canonical"], "account_id": account, "space_id": self.space_id, "created_at_ms": self.now_ms}
                for account in accounts
            ])
        cleanups = {
            "drop merged traits": lambda: trait.delete().where(trait.c.profile_id == merged),
            "drop merged links": lambda: link.delete().where(link.c.user_id == merged),
            "repoint merged": lambda: profile.update().where(profile.c.merged_into == merged).values(merged_into=canonical),
            "mark merged": lambda: profile.update().where(profile.c.id == merged).values(merged_into=canonical),
        }
        for name, build in cleanups.items():
            bulk.execute_dicts(connection, name, build, pairs)

    def _write_traits(self) -> None:
        final: dict[tuple[str, str], tuple[object, int, int]] = {}
        for (profile_id, key), entry in self.traits.items():
            if key in self.computed_keys:
                self.computed_keys_dropped += 1
                continue
            target = (self._current(profile_id), key)
            if target not in final or entry[1:] >= final[target][1:]:
                final[target] = entry
        bulk.upsert_newer(self.connection, Trait.__table__, [
            {"profile_id": p, "key": k, "space_id": self.space_id, "value": bulk.dump(value), "trait_class": CUSTOM,
             "source_id": self.source_id, "updated_at_ms": at}
            for (p, k), (value, at, _) in final.items() if value is not _REMOVE
        ], keys=("profile_id", "key"), stamp="updated_at_ms")
        table = Trait.__table__
        bulk.execute_dicts(
            self.connection,
            "remove traits",
            lambda: table.delete().where(table.c.profile_id == bindparam("p"), table.c.key == bindparam("k"),
                                         table.c.updated_at_ms <= bindparam("at")),
            [{"p": p, "k": k, "at": at} for (p, k), (value, at, _) in final.items() if value is _REMOVE],
        )
