"""Destination instances of a space (`dst_…`, Engage settings' destinations): created from a catalog
entry, their settings checked against its fields, secrets never shown back.

An update merges settings key by key; a secret given as its masked value (what reads show) keeps the
stored secret, so an agent can send back what it read. A disabled instance sends nothing and queues
nothing new; what it had queued waits. An instance still connected to a live audience or computed
trait cannot be removed; connections left behind by removed ones go with it.

A Tracking API forwarder whose write key is its own space's would send the space's audience events
back into it, where realtime computations over them emit more: it is refused when saved (ingest
also drops what a space's own computations emitted, should it arrive anyway: `store.ingest`).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, delete, select

from store.catalog.spaces import require_space
from store.db.errors import Conflict, InputValidation, NotFound
from store.db.ids import new_id
from store.db.models import Activation, Audience, ComputedTrait, Connection, Destination, Space
from store.db.pagination import Page, PageRequest, paginate
from store.db.store import Store
from store.delivery import destination_catalog

REDACTED = "********"


def add_destination(store: Store, space_id: str, slug: str, name: str, settings: dict[str, Any],
                    enabled: bool = True) -> Destination:
    entry = require_entry(slug)
    checked = destination_catalog.check_fields(settings, entry.settings, "settings", require=True)
    with store.write() as session:
        _refuse_loop(require_space(session, space_id), checked)
        now = store.now()
        destination = Destination(id=new_id("dst"), space_id=space_id, slug=slug, name=_check_name(name),
                                  settings=checked, enabled=enabled, created_at=now, updated_at=now)
        session.add(destination)
        return destination


def list_destinations(store: Store, space_id: str, request: PageRequest) -> Page:
    with store.read() as session:
        require_space(session, space_id)
        statement = select(Destination).where(Destination.space_id == space_id).order_by(
            Destination.created_at, Destination.id)
        return paginate(session, statement, request)


def get_destination(store: Store, space_id: str, destination_id: str) -> Destination:
    with store.read() as session:
        return require_destination(session, space_id, destination_id)


def update_destination(store: Store, space_id: str, destination_id: str, *, name: str | None = None,
                       enabled: bool | None = None, settings: dict[str, Any] | None = None) -> Destination:
    """Only what is given changes; `settings` are merged into the stored ones key by key."""
    if name is None and enabled is None and settings is None:
        raise InputValidation("Give name, enabled or settings; there is nothing to update.", field="settings")
    with store.write() as session:
        destination = require_destination(session, space_id, destination_id)
        if settings is not None:
            entry = destination_catalog.BY_SLUG[destination.slug]
            secrets = {f.name for f in entry.settings if f.secret}
            given = {key: value for key, value in settings.items() if not (key in secrets and value == REDACTED)}
            destination.settings = destination_catalog.check_fields({**destination.settings, **given}, entry.settings,
                                                        "settings", require=True)
            _refuse_loop(require_space(session, space_id), destination.settings)
        if name is not None:
            destination.name = _check_name(name)
        if enabled is not None:
            destination.enabled = enabled
        destination.updated_at = store.now()
        session.add(destination)
        return destination


def _refuse_loop(space: Space, settings: dict[str, Any]) -> None:
    if settings.get("writeKey") == space.write_key:
        raise InputValidation("settings.writeKey is this space's own write key: the destination would send the "
                              "space's audience events back into it, for ever. Give the write key of another "
                              "space (or another workspace's source).", field="settings.writeKey")


def remove_destination(store: Store, space_id: str, destination_id: str) -> None:
    with store.write() as session:
        destination = require_destination(session, space_id, destination_id)
        connections = session.exec(select(Connection).where(Connection.destination_id == destination_id)
                                   .order_by(Connection.created_at, Connection.id)).all()
        live = live_owner_ids(session, {connection.audience_id for connection in connections})
        connected = [(c.id, c.audience_id) for c in connections if c.audience_id in live]
        if connected:
            names = ", ".join(f"{connection_id} (on {owner_id})" for connection_id, owner_id in connected)
            raise Conflict(
                f"Destination '{destination_id}' is still connected: {names}. Remove each connection with "
                "segment_audiences_remove_destination_from_audience (after its activations) first.",
                field="destinationId",
            )
        for connection in connections:
            session.exec(delete(Activation).where(Activation.connection_id == connection.id))
            session.delete(connection)
        session.flush()
        session.delete(destination)


def live_owner_ids(session: Session, owner_ids: set[str]) -> set[str]:
    """Those of these audience and computed trait ids that are not removed."""
    return {owner_id for model in (Audience, ComputedTrait) for owner_id in session.exec(
        select(model.id).where(col(model.id).in_(owner_ids), col(model.deleted_at).is_(None)))}


def require_destination(session: Session, space_id: str, destination_id: str, field: str = "destinationId") -> Destination:
    require_space(session, space_id)
    destination = session.get(Destination, destination_id)
    if destination is None or destination.space_id != space_id:
        raise NotFound("destination", destination_id, field=field, scope=f"in space '{space_id}'")
    return destination


def require_entry(slug: str, field: str = "metadataId") -> destination_catalog.CatalogEntry:
    entry = destination_catalog.BY_SLUG.get(slug)
    if entry is None:
        raise InputValidation(f"Unknown destination type '{slug}'; use one of {', '.join(destination_catalog.BY_SLUG)} "
                              "(see segment_audiences_list_supported_destinations_from_audience).", field=field)
    return entry


def visible_settings(destination: Destination) -> dict[str, Any]:
    """The instance settings with secret values masked."""
    secrets = {f.name for f in destination_catalog.BY_SLUG[destination.slug].settings if f.secret}
    return {name: REDACTED if name in secrets else value for name, value in destination.settings.items()}


def _check_name(name: str) -> str:
    if not name.strip():
        raise InputValidation("name must not be empty.", field="name")
    return name
