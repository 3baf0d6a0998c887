"""Reading what a space has received, as Segment's Space Schema API lists it: events, their properties
and context fields, traits, and the values each one had, most frequent first.

Events, properties and traits set by calls come from the summary ingest keeps
(`store.ingest.schema_summary`). A trait that an audience or computed trait writes is listed once,
typed `AUDIENCE` or `COMPUTED`, last seen at its latest run (or its creation, before one), and its
sample values are the values its runs wrote. A search is a case-insensitive substring match. Entity
paths and properties come from a space's Data Graph, which no space has in this release.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import asc, desc, func
from sqlmodel import Session, col, select

from store.db.errors import NotFound
from store.db.models import (
    CUSTOM,
    Audience,
    ComputedTrait,
    ComputeState,
    SchemaEvent,
    SchemaField,
    SchemaSample,
    Trait,
)
from store.db.pagination import Page, PageRequest, paginate, slice_page
from store.db.store import Store

MAX_SAMPLE_VALUES = 1000
EVENT_KINDS = ("TRACK", "PAGE", "SCREEN")


@dataclass(frozen=True)
class Listing:
    """How a list is searched and ordered."""

    search: str | None
    sort_by: str
    descending: bool


@dataclass(frozen=True)
class FieldEntry:
    name: str
    kind: str
    event: str
    data_type: str
    last_seen_ms: int
    count: int
    samples: list[str] | None


@dataclass(frozen=True)
class TraitEntry:
    key: str
    type: str  # AUDIENCE | COMPUTED | CUSTOM
    data_type: str | None
    last_seen_ms: int
    count: int | None
    samples: list[str] | None


def list_events(store: Store, space_id: str, listing: Listing, page: PageRequest) -> Page:
    """A page of `SchemaEvent` rows, ordered by last seen or by name."""
    order = _direction(listing.descending)
    keys = ((SchemaEvent.last_seen_ms, order), (SchemaEvent.name, asc), (SchemaEvent.type, asc)) if listing.sort_by == "lastSeenAt" \
        else ((SchemaEvent.name, order), (SchemaEvent.type, asc))
    statement = select(SchemaEvent).where(SchemaEvent.space_id == space_id)
    if listing.search:
        statement = statement.where(_contains(SchemaEvent.name, listing.search))
    with store.read() as session:
        return paginate(session, statement.order_by(*(way(column) for column, way in keys)), page)


def event_properties(store: Store, space_id: str, event_name: str, listing: Listing, page: PageRequest,
                     samples: int | None) -> Page:
    """A page of `FieldEntry`s: the properties and context fields seen on one event."""
    order = _direction(listing.descending)
    keys = ((SchemaField.last_seen_ms, order), (SchemaField.name, asc), (SchemaField.kind, asc)) \
        if listing.sort_by == "lastSeenAt" else ((SchemaField.name, order), (SchemaField.kind, asc))
    statement = select(SchemaField).where(SchemaField.space_id == space_id, SchemaField.event == event_name,
                                          col(SchemaField.kind).in_(("PROPERTY", "CONTEXT")))
    if listing.search:
        statement = statement.where(_contains(SchemaField.name, listing.search))
    with store.read() as session:
        _require_event(session, space_id, event_name)
        found = paginate(session, statement.order_by(*(way(column) for column, way in keys)), page)
        return _with_entries(found, [_field_entry(session, row, samples) for row in found.items])


def event_property_samples(store: Store, space_id: str, event_name: str, property_name: str, kind: str) -> list[str]:
    with store.read() as session:
        _require_event(session, space_id, event_name)
        row = session.exec(select(SchemaField).where(
            SchemaField.space_id == space_id, SchemaField.kind == kind, SchemaField.event == event_name,
            SchemaField.name == property_name)).first()
        if row is None:
            raise NotFound("property", property_name, by="name", field="propertyName",
                           scope=f"among the {kind} fields of '{event_name}' in space '{space_id}'")
        return _samples(session, row.id, MAX_SAMPLE_VALUES)


def list_traits(store: Store, space_id: str, collection: str, listing: Listing, page: PageRequest,
                samples: int | None) -> Page:
    """A page of `TraitEntry`s: the traits calls set and the keys of the space's computations."""
    with store.read() as session:
        computed = _computation_traits(session, space_id, collection)
        custom = session.exec(select(SchemaField).where(
            SchemaField.space_id == space_id, SchemaField.kind == collection)).all()
        entries = {**{row.name: row for row in custom if row.name.split(".")[0] not in computed}, **computed}
        if listing.search:
            needle = listing.search.lower()
            entries = {key: entry for key, entry in entries.items() if needle in key.lower()}
        ordered = sorted(entries.items(), key=lambda item: item[0], reverse=listing.descending)
        if listing.sort_by == "lastSeenAt":
            ordered.sort(key=lambda item: item[1].last_seen_ms, reverse=listing.descending)
        found = slice_page([entry for _, entry in ordered], page)
        return _with_entries(found, [_trait_entry(session, space_id, entry, samples) for entry in found.items])


def trait_samples(store: Store, space_id: str, key: str, collection: str) -> list[str]:
    with store.read() as session:
        computed = _computation_traits(session, space_id, collection)
        if key in computed:
            return _computed_samples(session, space_id, key, MAX_SAMPLE_VALUES)
        row = session.exec(select(SchemaField).where(
            SchemaField.space_id == space_id, SchemaField.kind == collection, SchemaField.event == "",
            SchemaField.name == key)).first()
        if row is None:
            raise NotFound("trait", key, by="key", field="traitKey", scope=f"among the {collection} traits of space '{space_id}'")
        return _samples(session, row.id, MAX_SAMPLE_VALUES)


def _require_event(session: Session, space_id: str, event_name: str) -> None:
    if session.exec(select(SchemaEvent.name).where(
            SchemaEvent.space_id == space_id, SchemaEvent.name == event_name,
            col(SchemaEvent.type).in_(EVENT_KINDS))).first() is None:
        raise NotFound("event", event_name, by="name", field="eventName", scope=f"among the events space '{space_id}' has received")


def _computation_traits(session: Session, space_id: str, collection: str) -> dict[str, TraitEntry]:
    """The space's live audiences and computed traits over `collection`, as traits."""
    profile_type = collection.upper()
    found = {}
    for model, kind, type_column in ((Audience, "AUDIENCE", Audience.audience_type),
                                     (ComputedTrait, "COMPUTED", ComputedTrait.definition_type)):
        rows = session.exec(select(model.key, model.created_at, ComputeState.last_run_at_ms).outerjoin(
            ComputeState, ComputeState.computation_id == model.id).where(
            model.space_id == space_id, col(model.deleted_at).is_(None), type_column == profile_type)).all()
        for key, created_at, last_run_at_ms in rows:
            seen = last_run_at_ms if last_run_at_ms is not None else int(created_at.timestamp() * 1000)
            found[key] = TraitEntry(key, kind, "BOOLEAN" if kind == "AUDIENCE" else None, seen, None, None)
    return found


def _trait_entry(session: Session, space_id: str, entry: SchemaField | TraitEntry, samples: int | None) -> TraitEntry:
    if isinstance(entry, TraitEntry):
        chosen = None if samples is None else _computed_samples(session, space_id, entry.key, samples)
        return TraitEntry(entry.key, entry.type, entry.data_type, entry.last_seen_ms, None, chosen)
    return TraitEntry(entry.name, "CUSTOM", entry.data_type, entry.last_seen_ms, entry.count,
                      None if samples is None else _samples(session, entry.id, samples))


def _field_entry(session: Session, row: SchemaField, samples: int | None) -> FieldEntry:
    return FieldEntry(row.name, row.kind, row.event, row.data_type, row.last_seen_ms, row.count,
                      None if samples is None else _samples(session, row.id, samples))


def _samples(session: Session, field_id: int, limit: int) -> list[str]:
    return list(session.exec(select(SchemaSample.value).where(SchemaSample.field_id == field_id).order_by(
        desc(SchemaSample.count), asc(SchemaSample.value)).limit(limit)).all())


def _computed_samples(session: Session, space_id: str, key: str, limit: int) -> list[str]:
    """The values a computation's runs wrote, most frequent first."""
    rows = session.exec(select(Trait.value, func.count()).where(
        Trait.space_id == space_id, Trait.key == key, Trait.trait_class != CUSTOM).group_by(Trait.value).order_by(
        desc(func.count()), asc(Trait.value)).limit(limit)).all()
    texts = []
    for value, _ in rows:
        loaded = orjson.loads(value)
        texts.append(loaded if isinstance(loaded, str) else orjson.dumps(loaded).decode())
    return texts


def _with_entries(page: Page, entries: list) -> Page:
    return Page(items=entries, current=page.current, next=page.next, previous=page.previous, total=page.total)


def _contains(column, text: str):
    return func.lower(column).contains(text.lower(), autoescape=True)


def _direction(descending: bool):
    return desc if descending else asc
