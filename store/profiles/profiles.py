"""Reading profiles the way Segment's Profile API shows them: traits, external ids, events, metadata
and links of a user or account found by one of its identifiers.

Lookups follow merges, so an identifier of a merged profile finds the canonical one. Events are not
limited to the last 14 days as on Segment; `start`/`end` narrow them instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlmodel import Session

from backend.tracking.identity import USERS
from store.db.models import Audience, Event, Identifier, Membership, Profile, ProfileLink, Space, Trait
from store.db.store import Store

TRAIT_CLASSES = ("audience", "computed_trait", "custom")


@dataclass(frozen=True)
class TraitRow:
    key: str
    value: object
    source_id: str
    updated_at_ms: int
    trait_class: str


@dataclass(frozen=True)
class Metadata:
    created_at_ms: int
    updated_at_ms: int
    first_message_id: str
    first_source_id: str
    last_message_id: str
    last_source_id: str


@dataclass(frozen=True)
class ProfilePage:
    """One page of a profile's rows and the cursor of the next, if any."""

    rows: list
    next: str | None


def access_token_valid(store: Store, space_id: str, token: str) -> bool:
    """Whether `token` is the space's Profile API access token (compared as SHA-256, in constant time)."""
    with store.read() as session:
        stored = session.execute(select(Space.access_token_hash).where(Space.id == space_id)).scalar_one_or_none()
    digest = hashlib.sha256(token.encode()).hexdigest()
    return stored is not None and hmac.compare_digest(stored, digest)


def find_profile(store: Store, space_id: str, collection: str, reference: str) -> Profile | None:
    """The canonical profile for `<type>:<value>`, or for a profile id (`use_…`, `acc_…`)."""
    kind, separator, value = reference.partition(":")
    with store.read() as session:
        if separator:
            profile_id = session.execute(
                select(Identifier.profile_id).where(
                    Identifier.space_id == space_id,
                    Identifier.collection == collection,
                    Identifier.type == kind,
                    Identifier.value == value,
                )
            ).scalar_one_or_none()
        else:
            profile_id = reference
        profile = _canonical(session, space_id, profile_id) if profile_id else None
        return profile if profile is not None and profile.collection == collection else None


def traits(store: Store, profile_id: str, *, classes: tuple[str, ...], include: list[str] | None, limit: int, after: str | None) -> ProfilePage:
    statement = select(Trait.key, Trait.value, Trait.source_id, Trait.updated_at_ms, Trait.trait_class).where(
        Trait.profile_id == profile_id, Trait.trait_class.in_(classes)
    )
    if include:
        statement = statement.where(Trait.key.in_(include))
    if after is not None:
        statement = statement.where(Trait.key > after)
    with store.read() as session:
        rows = session.execute(statement.order_by(Trait.key).limit(limit + 1)).all()
    page = [TraitRow(key, json.loads(value), source, at, trait_class) for key, value, source, at, trait_class in rows[:limit]]
    return ProfilePage(page, page[-1].key if len(rows) > limit else None)


def external_ids(store: Store, profile_id: str, *, include: list[str] | None, limit: int, offset: int) -> ProfilePage:
    statement = select(Identifier).where(Identifier.profile_id == profile_id)
    if include:
        statement = statement.where(Identifier.type.in_(include))
    with store.read() as session:
        rows = session.execute(statement.order_by(Identifier.id).offset(offset).limit(limit + 1)).scalars().all()
    return ProfilePage(list(rows[:limit]), str(offset + limit) if len(rows) > limit else None)


def events(
    store: Store,
    profile_id: str,
    *,
    start_ms: int | None,
    end_ms: int | None,
    include: list[str] | None,
    exclude: list[str] | None,
    limit: int,
    descending: bool,
    after: tuple[int, int] | None,
) -> ProfilePage:
    """Events of a profile by time; `after` is the (timestamp, row id) of the last event seen."""
    statement = select(Event).where(Event.profile_id == profile_id)
    if start_ms is not None:
        statement = statement.where(Event.timestamp_ms >= start_ms)
    if end_ms is not None:
        statement = statement.where(Event.timestamp_ms <= end_ms)
    if include:
        statement = statement.where(Event.event.in_(include))
    if exclude:
        statement = statement.where(or_(Event.event.is_(None), Event.event.not_in(exclude)))
    if after is not None:
        at, row_id = after
        if descending:
            statement = statement.where(or_(Event.timestamp_ms < at, and_(Event.timestamp_ms == at, Event.id < row_id)))
        else:
            statement = statement.where(or_(Event.timestamp_ms > at, and_(Event.timestamp_ms == at, Event.id > row_id)))
    order = (Event.timestamp_ms.desc(), Event.id.desc()) if descending else (Event.timestamp_ms, Event.id)
    with store.read() as session:
        rows = session.execute(statement.order_by(*order).limit(limit + 1)).scalars().all()
    page = list(rows[:limit])
    return ProfilePage(page, f"{page[-1].timestamp_ms}::{page[-1].id}" if len(rows) > limit else None)


def metadata(store: Store, profile: Profile) -> Metadata:
    """When a profile was created and last changed, and by which messages. The last change is its
    newest event; accounts hold no events (Group calls are events of their users), so theirs is
    their creation."""
    with store.read() as session:
        newest = session.execute(
            select(Event.message_id, Event.received_at_ms, Event.source_id)
            .where(Event.profile_id == profile.id)
            .order_by(Event.id.desc())
            .limit(1)
        ).first()
    if newest is None:
        return Metadata(profile.created_at_ms, profile.created_at_ms, profile.first_message_id, profile.first_source_id,
                        profile.first_message_id, profile.first_source_id)
    message_id, received_at_ms, source_id = newest
    return Metadata(profile.created_at_ms, received_at_ms, profile.first_message_id, profile.first_source_id,
                    message_id, source_id)


def audiences_of(store: Store, profile: Profile) -> list[Audience]:
    """The live audiences the profile is a member of now, by name."""
    with store.read() as session:
        return list(session.execute(
            select(Audience).join(Membership, Membership.computation_id == Audience.id)
            .where(Membership.profile_id == profile.id, Membership.exited_at_ms.is_(None),
                   Audience.deleted_at.is_(None))
            .order_by(Audience.name, Audience.id)).scalars())


def linked(store: Store, profile: Profile, limit: int) -> list[tuple[Profile, list[Identifier]]]:
    """The accounts a user belongs to, or the users of an account, each with its identifiers."""
    if profile.collection == USERS:
        mine, theirs = ProfileLink.user_id, ProfileLink.account_id
    else:
        mine, theirs = ProfileLink.account_id, ProfileLink.user_id
    with store.read() as session:
        others = session.execute(
            select(Profile).join(ProfileLink, theirs == Profile.id).where(mine == profile.id).order_by(Profile.id).limit(limit)
        ).scalars().all()
        result = []
        for other in others:
            ids = session.execute(select(Identifier).where(Identifier.profile_id == other.id).order_by(Identifier.id)).scalars().all()
            result.append((other, list(ids)))
        return result


def _canonical(session: Session, space_id: str, profile_id: str) -> Profile | None:
    row = session.get(Profile, profile_id)
    if row is not None and row.merged_into is not None:
        row = session.get(Profile, row.merged_into)
    return row if row is not None and row.space_id == space_id else None
