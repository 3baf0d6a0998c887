"""Destination instances in a space (added from the CLI, as in Engage settings) and their
connections to audiences (`ii_…`), with ID sync configuration and connection settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from backend.clock import to_ms
from store import catalog, outbox, routes
from store.audiences import AUDIENCE_TYPES, require_audience
from store.errors import Conflict, InputValidation, NotFound
from store.ids import new_id
from store.models import Activation, Connection, Destination
from store.pagination import Page, PageRequest, paginate
from store.spaces import get_space, require_space
from store.store import Store

ID_SYNC_STRATEGIES = ("first", "last", "all")
MAX_ID_SYNC = 5
MAX_ID_SYNC_ALL = 3
REDACTED = "********"


@dataclass(frozen=True)
class ConnectionView:
    connection: Connection
    destination: Destination


def add_destination(store: Store, space_id: str, slug: str, name: str, settings: dict[str, Any]) -> Destination:
    entry = catalog.BY_SLUG.get(slug)
    if entry is None:
        raise InputValidation(
            f"Unknown destination type '{slug}'; use one of {', '.join(catalog.BY_SLUG)}.", field="type"
        )
    checked = check_fields(settings, entry.settings, "settings", require=True)
    with store.write() as session:
        require_space(session, space_id)
        now = store.now()
        destination = Destination(
            id=new_id("dst"), space_id=space_id, slug=slug, name=name, settings=checked, created_at=now, updated_at=now
        )
        session.add(destination)
        return destination


def list_space_destinations(store: Store, space_id: str) -> list[Destination]:
    with store.read() as session:
        require_space(session, space_id)
        statement = select(Destination).where(Destination.space_id == space_id).order_by(Destination.created_at)
        return list(session.exec(statement).all())


def supported_destinations(
    store: Store, space_id: str, audience_type: str, slug: str | None, action_id: str | None
) -> list[catalog.CatalogEntry]:
    get_space(store, space_id)
    if audience_type not in AUDIENCE_TYPES:
        raise InputValidation(
            f"audienceType must be one of {', '.join(AUDIENCE_TYPES)}, not '{audience_type}'.", field="audienceType"
        )
    return [
        entry
        for entry in catalog.CATALOG
        if catalog.supports(entry, audience_type)
        and (slug is None or entry.slug == slug)
        and (action_id is None or any(action.id == action_id for action in entry.actions))
    ]


def connect(
    store: Store,
    space_id: str,
    audience_id: str,
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
        audience = require_audience(session, space_id, audience_id)
        destination = session.get(Destination, destination_id)
        if destination is None or destination.space_id != space_id:
            raise NotFound("destination", destination_id, field="destination.id", scope=f"in space '{space_id}'")
        entry = catalog.BY_SLUG[destination.slug]
        if not catalog.supports(entry, audience.audience_type):
            raise InputValidation(
                f"{entry.name} cannot activate {audience.audience_type} audiences.", field="destination.id"
            )
        now = store.now()
        connection = Connection(
            id=new_id("ii"),
            space_id=space_id,
            audience_id=audience_id,
            destination_id=destination_id,
            id_sync_configuration=_check_id_sync(id_sync) if id_sync else _default_id_sync(entry),
            connection_settings=check_fields(connection_settings or {}, entry.connection_settings, "connectionSettings"),
            created_at=now,
            updated_at=now,
        )
        session.add(connection)
        try:
            session.flush()
        except IntegrityError as error:
            raise Conflict(
                f"Destination '{destination_id}' is already connected to audience '{audience_id}'; "
                "update that connection instead.",
                field="destination.id",
            ) from error
        if audience.options.get("includeHistoricalData", True):
            route = routes.resolve(session, {connection.id}).get(connection.id)
            if route is not None and route.call_types:
                outbox.resync(session, route, to_ms(now))
        return ConnectionView(connection, destination)


def list_connections(store: Store, space_id: str, audience_id: str, request: PageRequest) -> Page:
    """A page of `ConnectionView`s for the audience."""
    with store.read() as session:
        require_audience(session, space_id, audience_id)
        statement = (
            select(Connection, Destination)
            .join(Destination)
            .where(Connection.audience_id == audience_id)
            .order_by(Connection.created_at, Connection.id)
        )
        page = paginate(session, statement, request)
    return Page([ConnectionView(c, d) for c, d in page.items], page.current, page.next, page.previous, page.total)


def update_connection(
    store: Store,
    space_id: str,
    audience_id: str,
    connection_id: str,
    id_sync: list[dict[str, Any]] | None,
    connection_settings: dict[str, Any] | None,
) -> ConnectionView:
    """`idSyncConfiguration` and `connectionSettings` each replace what is stored; empty means unchanged."""
    if id_sync is None and connection_settings is None:
        raise InputValidation(
            "Give idSyncConfiguration, connectionSettings or both; there is nothing to update.",
            field="idSyncConfiguration",
        )
    with store.write() as session:
        connection = require_connection(session, space_id, audience_id, connection_id)
        destination = session.get(Destination, connection.destination_id)
        assert destination is not None
        if id_sync:
            connection.id_sync_configuration = _check_id_sync(id_sync)
        if connection_settings:
            entry = catalog.BY_SLUG[destination.slug]
            connection.connection_settings = check_fields(
                connection_settings, entry.connection_settings, "connectionSettings"
            )
        connection.updated_at = store.now()
        session.add(connection)
        return ConnectionView(connection, destination)


def disconnect(store: Store, space_id: str, audience_id: str, connection_id: str) -> None:
    with store.write() as session:
        connection = require_connection(session, space_id, audience_id, connection_id)
        activations = session.exec(select(Activation.id).where(Activation.connection_id == connection_id)).all()
        if activations:
            raise Conflict(
                f"Connection '{connection_id}' still has activations ({', '.join(activations)}); "
                "remove them with segment_audiences_remove_activation_from_audience first.",
                field="destinationId",
            )
        session.delete(connection)
        outbox.cancel(session, target_id=connection_id)


def require_connection(session: Session, space_id: str, audience_id: str, connection_id: str, field: str = "destinationId") -> Connection:
    require_audience(session, space_id, audience_id)
    connection = session.get(Connection, connection_id)
    if connection is None or connection.audience_id != audience_id:
        raise NotFound("connection", connection_id, field=field, scope=f"on audience '{audience_id}'")
    return connection


def visible_settings(destination: Destination) -> dict[str, Any]:
    """The instance settings with secret values masked."""
    secrets = {f.name for f in catalog.BY_SLUG[destination.slug].settings if f.secret}
    return {name: REDACTED if name in secrets else value for name, value in destination.settings.items()}


def _default_id_sync(entry: catalog.CatalogEntry) -> list[dict[str, Any]]:
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


_TYPES = {"string": str, "boolean": bool, "object": dict, "integer": int}


def check_fields(values: dict[str, Any], fields: tuple[catalog.SettingField, ...], where: str, require: bool = False) -> dict[str, Any]:
    """Settings checked against their catalog fields: known names, types, choices, and (with
    `require`) every required field present."""
    known = {f.name: f for f in fields}
    for name, value in values.items():
        spec = known.get(name)
        if spec is None:
            allowed = ", ".join(known) or "none"
            raise InputValidation(f"Unknown setting '{name}'; this destination takes: {allowed}.", field=f"{where}.{name}")
        expected = _TYPES[spec.type]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise InputValidation(f"{name} must be a {spec.type}.", field=f"{where}.{name}")
        if spec.choices and value not in spec.choices:
            raise InputValidation(f"{name} must be one of {', '.join(spec.choices)}, not '{value}'.",
                                  field=f"{where}.{name}")
    if require:
        missing = [f.name for f in fields if f.required and f.name not in values]
        if missing:
            raise InputValidation(f"Missing required setting(s): {', '.join(missing)}.", field=f"{where}.{missing[0]}")
    return dict(values)
