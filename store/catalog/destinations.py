"""Connections (`ii_…`) of a space's destination instances to audiences and computed traits, with ID
sync configuration and connection settings.

A new connection backfills the current members (values, for a computed trait) when its owner
includes historical data and the connection sends anything by itself; the result says which
(`ConnectionView.sending`): an action destination's connection sends nothing until an activation
exists, and a classic one sends what its `connectionSettings` turn on. `sendGroup` is a connection setting of destinations that accept Group
calls and applies to ACCOUNTS audiences and computed traits only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from backend.clock import to_ms
from store.catalog import splits
from store.catalog.audiences import AUDIENCE_TYPES, require_audience
from store.catalog.computed_traits import require_computed_trait
from store.catalog.destination_instances import require_destination
from store.catalog.spaces import get_space
from store.db.errors import Conflict, InputValidation, NotFound
from store.db.ids import new_id
from store.db.models import Activation, Connection, Destination
from store.db.pagination import Page, PageRequest, paginate
from store.db.store import Store
from store.delivery import destination_catalog, outbox, owners, routes
from store.delivery.owners import TRAIT_PREFIX, Owner

ID_SYNC_STRATEGIES = ("first", "last", "all")
MAX_ID_SYNC = 5
MAX_ID_SYNC_ALL = 3


@dataclass(frozen=True)
class ConnectionView:
    connection: Connection
    destination: Destination
    sending: str | None = None  # what a new connection sends, and when


def supported_destinations(
    store: Store, space_id: str, audience_type: str, slug: str | None, action_id: str | None
) -> list[destination_catalog.CatalogEntry]:
    get_space(store, space_id)
    if audience_type not in AUDIENCE_TYPES:
        raise InputValidation(
            f"audienceType must be one of {', '.join(AUDIENCE_TYPES)}, not '{audience_type}'.", field="audienceType"
        )
    return [
        entry
        for entry in destination_catalog.CATALOG
        if destination_catalog.supports(entry, audience_type)
        and (slug is None or entry.slug == slug)
        and (action_id is None or any(action.id == action_id for action in entry.actions))
    ]


def connect(
    store: Store,
    space_id: str,
    owner_id: str,
    destination_id: str,
    destination_type: str,
    id_sync: list[dict[str, Any]] | None,
    connection_settings: dict[str, Any] | None,
) -> ConnectionView:
    if destination_type != "destination":
        raise InputValidation(
            "Only destination.type 'destination' is supported; warehouse destinations are not.",
            field="destination.type",
        )
    with store.write() as session:
        owner = require_owner(session, space_id, owner_id)
        destination = require_destination(session, space_id, destination_id, field="destination.id")
        entry = destination_catalog.BY_SLUG[destination.slug]
        if not destination_catalog.supports(entry, owners.profile_type(owner)):
            raise InputValidation(
                f"{entry.name} cannot activate {owners.profile_type(owner)} audiences.", field="destination.id"
            )
        now = store.now()
        connection = Connection(
            id=new_id("ii"),
            space_id=space_id,
            audience_id=owner_id,
            destination_id=destination_id,
            id_sync_configuration=_check_id_sync(id_sync) if id_sync else _default_id_sync(entry),
            connection_settings=_check_connection_settings(session, owner, entry, connection_settings or {}),
            created_at=now,
            updated_at=now,
        )
        session.add(connection)
        try:
            session.flush()
        except IntegrityError as error:
            raise Conflict(
                f"Destination '{destination_id}' is already connected to '{owner_id}'; "
                "update that connection instead.",
                field="destination.id",
            ) from error
        history = (owner.options or {}).get("includeHistoricalData", True)
        route = routes.resolve(session, {connection.id}).get(connection.id)
        sends = route is not None and bool(route.call_types)
        if history and sends:
            outbox.resync(session, route, to_ms(now))
        return ConnectionView(connection, destination, _sending(entry, sends, history))


def _sending(entry: destination_catalog.CatalogEntry, sends: bool, history: bool) -> str:
    if entry.actions and not sends:
        return (f"Nothing is sent yet: {entry.name} sends only through activations. Add one with "
                "segment_audiences_add_activation_to_audience.")
    if not sends:
        return ("Nothing is sent: these connectionSettings turn off both Identify and Track. Turn one on with "
                "segment_audiences_update_destination_for_audience, or add an activation.")
    if history:
        return "The current members (values) are being sent now, and every change from now on."
    return "Changes from now on are sent; current members are not, since includeHistoricalData is off."


def list_connections(store: Store, space_id: str, owner_id: str, request: PageRequest) -> Page:
    """A page of `ConnectionView`s for the audience or computed trait."""
    with store.read() as session:
        require_owner(session, space_id, owner_id)
        statement = (
            select(Connection, Destination)
            .join(Destination)
            .where(Connection.audience_id == owner_id)
            .order_by(Connection.created_at, Connection.id)
        )
        page = paginate(session, statement, request)
    return Page([ConnectionView(c, d) for c, d in page.items], page.current, page.next, page.previous, page.total)


def update_connection(
    store: Store,
    space_id: str,
    owner_id: str,
    connection_id: str,
    id_sync: list[dict[str, Any]] | None,
    connection_settings: dict[str, Any] | None,
) -> ConnectionView:
    """`idSyncConfiguration` and `connectionSettings` each replace what is stored; empty means unchanged.
    A `splitGroup` that changes (or goes) sends the connection's routes the exits and entries it makes
    (`splits.retarget`)."""
    if id_sync is None and connection_settings is None:
        raise InputValidation(
            "Give idSyncConfiguration, connectionSettings or both; there is nothing to update.",
            field="idSyncConfiguration",
        )
    with store.write() as session:
        connection = require_connection(session, space_id, owner_id, connection_id)
        destination = session.get(Destination, connection.destination_id)
        owner = require_owner(session, space_id, owner_id)
        assert destination is not None
        aimed = splits.aims(session, owner_id)
        if id_sync:
            connection.id_sync_configuration = _check_id_sync(id_sync)
        if connection_settings:
            connection.connection_settings = _check_connection_settings(
                session, owner, destination_catalog.BY_SLUG[destination.slug], connection_settings)
        connection.updated_at = store.now()
        session.add(connection)
        session.flush()
        splits.retarget(session, owner_id, aimed, to_ms(connection.updated_at))
        return ConnectionView(connection, destination)


def disconnect(store: Store, space_id: str, owner_id: str, connection_id: str) -> None:
    with store.write() as session:
        connection = require_connection(session, space_id, owner_id, connection_id)
        activations = session.exec(select(Activation.id).where(Activation.connection_id == connection_id)).all()
        if activations:
            raise Conflict(
                f"Connection '{connection_id}' still has activations ({', '.join(activations)}); "
                "remove them with segment_audiences_remove_activation_from_audience first.",
                field="destinationId",
            )
        session.delete(connection)
        outbox.cancel(session, target_id=connection_id)


def require_owner(session: Session, space_id: str, owner_id: str) -> Owner:
    """The live audience or computed trait with this id, or NotFound for the kind its prefix names."""
    if owner_id.startswith(TRAIT_PREFIX):
        return require_computed_trait(session, space_id, owner_id)
    return require_audience(session, space_id, owner_id)


def require_connection(session: Session, space_id: str, owner_id: str, connection_id: str, field: str = "destinationId") -> Connection:
    require_owner(session, space_id, owner_id)
    connection = session.get(Connection, connection_id)
    if connection is None or connection.audience_id != owner_id:
        raise NotFound("connection", connection_id, field=field, scope=f"on '{owner_id}'")
    return connection


def _check_connection_settings(session: Session, owner: Owner, entry: destination_catalog.CatalogEntry,
                               settings: dict[str, Any]) -> dict[str, Any]:
    """The destination's own settings checked against its catalog entry, and `splitGroup`, which any
    audience connection may give, against the audience's split (`store.catalog.splits`)."""
    settings = dict(settings)
    group = settings.pop("splitGroup", None)
    checked = destination_catalog.check_fields(settings, entry.connection_settings, "connectionSettings")
    if group is not None:
        if not isinstance(group, str) or owners.is_trait(owner):
            raise InputValidation("splitGroup names one group of an audience's split, as a string.",
                                  field="connectionSettings.splitGroup")
        splits.check_target(session, owner.id, group, "connectionSettings.splitGroup")
        checked["splitGroup"] = group
    if checked.get("sendGroup") and owners.profile_type(owner) != "ACCOUNTS":
        raise InputValidation("sendGroup applies only to ACCOUNTS audiences and computed traits, which send one "
                              "Group call per account; omit it here.", field="connectionSettings.sendGroup")
    return checked


def _default_id_sync(entry: destination_catalog.CatalogEntry) -> list[dict[str, Any]]:
    return [{"externalId": external_id, "strategy": strategy} for external_id, strategy in entry.default_id_sync]


def _check_id_sync(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(items) > MAX_ID_SYNC:
        raise InputValidation(f"idSyncConfiguration takes at most {MAX_ID_SYNC} items.", field="idSyncConfiguration")
    if sum(item.get("strategy") == "all" for item in items) > MAX_ID_SYNC_ALL:
        raise InputValidation(
            f"At most {MAX_ID_SYNC_ALL} idSyncConfiguration items may use the 'all' strategy.",
            field="idSyncConfiguration",
        )
    seen: set[str] = set()
    checked = []
    for index, item in enumerate(items):
        external_id, strategy = str(item.get("externalId") or "").strip(), item.get("strategy")
        if not external_id:
            raise InputValidation("externalId must not be empty.", field=f"idSyncConfiguration[{index}].externalId")
        if strategy not in ID_SYNC_STRATEGIES:
            raise InputValidation(
                "strategy must be first, last or all.", field=f"idSyncConfiguration[{index}].strategy"
            )
        if external_id in seen:
            raise InputValidation(
                f"externalId '{external_id}' is listed twice.", field=f"idSyncConfiguration[{index}].externalId"
            )
        seen.add(external_id)
        checked.append({k: v for k, v in {"externalId": external_id, "strategy": strategy, "mapTo": item.get("mapTo")}.items() if v})
    return checked
