"""Destination connection tools: the catalog of supported destinations, and connecting a space's
destination instances (segment_audiences_create_destination) to audiences and computed traits."""

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, Field

from store.catalog import destinations
from store.db.store import Store
from store.delivery import outbox
from tools import shapes
from tools.models import (IdSyncConfiguration, Input, Output, PaginationInput, PaginationOutput,
                          SimpleDestination, SpaceId, Status, resource_id)
from tools.registry import read, remove, write


class DestinationInput(Input):
    id: str = Field(min_length=1, description="Instance id (dst_…), from list_destinations.")
    type: Literal["destination", "warehouse"] = "destination"


class IdSyncItem(Input):
    externalId: str = Field(min_length=1, description="Id type, e.g. user_id, email, ios.idfa.")
    strategy: Literal["first", "last", "all"] = Field(description="Oldest, newest, or every value (an event each).")
    mapTo: Optional[str] = Field(None, description="Field name to send it as.")


class IdOnly(Output):
    id: str


AudienceIdParam = resource_id("Audience (aud_…) or computed trait (tra_…) id.")
ConnectionId = resource_id("Connection id (ii_…), from list_destinations_from_audience.")
IdSync = Annotated[
    Optional[list[IdSyncItem]],
    Field(max_length=5, description="At most 3 'all'."),
]


class SupportedDestinationsOutput(BaseModel):
    destinations: dict[str, Any]
    pagination: Optional[PaginationOutput] = None


class AddDestinationOutput(BaseModel):
    connection: IdOnly
    idSyncConfiguration: list[IdSyncConfiguration]
    connectionSettings: Optional[dict[str, Any]] = None
    sending: Optional[str] = Field(None, description="Addition to the Public API: what this connection sends, "
                                   "and whether that starts now or only once an activation exists.")


class ListDestinationsOutput(BaseModel):
    connections: list[SimpleDestination]
    pagination: Optional[PaginationOutput] = None


class UpdateDestinationOutput(BaseModel):
    destination: IdOnly
    idSyncConfiguration: Optional[list[IdSyncConfiguration]] = None
    connectionSettings: Optional[dict[str, Any]] = None


def list_supported_destinations_from_audience(
    store: Store,
    spaceId: SpaceId,
    audienceType: Annotated[str, Field(min_length=1, description="USERS, ACCOUNTS or LINKED.")],
    slug: Annotated[Optional[str], Field(description="Only this one, e.g. webhooks-actions.")] = None,
    actionId: Annotated[Optional[str], Field(description="Only those with this action.")] = None,
) -> SupportedDestinationsOutput:
    """List, by slug, the destinations this audience type can be sent to: settings (for
    segment_audiences_create_destination), connectionSettings, actions (ids and fields for
    destinationMapping), accepted calls and default ID sync. Destinations without actions take
    connectionSettings {sendIdentify, sendTrack, sendGroup (ACCOUNTS)}."""
    entries = destinations.supported_destinations(store, spaceId, audienceType, slug, actionId)
    return SupportedDestinationsOutput(destinations={entry.slug: shapes.catalog_entry(entry) for entry in entries})


def add_destination_to_audience(
    store: Store,
    spaceId: SpaceId,
    audienceId: AudienceIdParam,
    destination: DestinationInput,
    connectionSettings: Annotated[Optional[dict[str, Any]], Field(
        description="Per destination, e.g. {sendIdentify: true}; splitGroup: only that group of the audience's split.")] = None,
    idSyncConfiguration: IdSync = None,
) -> AddDestinationOutput:
    """Connect a destination instance (segment_audiences_list_destinations; create one with
    segment_audiences_create_destination) to an audience or computed trait. Classic destinations
    (MoEngage, the forwarder) send from the connection, current members at once with history on
    (default); action destinations (Webhooks, Pendula) send nothing until an activation exists;
    `sending` says which. Audiences send Identify traits.<key>: true|false or Track
    Audience Entered/Exited; computed traits Identify traits.<key>: <value> or Track Trait Computed;
    ACCOUNTS ones also Group (sendGroup). Omitted idSyncConfiguration takes the destination's default.
    Returns {connection: {id: ii_…}}; next: segment_audiences_add_activation_to_audience."""
    view = destinations.connect(
        store,
        spaceId,
        audienceId,
        destination.id,
        destination.type,
        [item.model_dump(exclude_none=True) for item in idSyncConfiguration] if idSyncConfiguration else None,
        connectionSettings,
    )
    return AddDestinationOutput(
        connection=IdOnly(id=view.connection.id),
        idSyncConfiguration=view.connection.id_sync_configuration,
        connectionSettings=view.connection.connection_settings,
        sending=view.sending,
    )


def list_destinations_from_audience(
    store: Store,
    spaceId: SpaceId,
    audienceId: AudienceIdParam,
    pagination: Optional[PaginationInput] = None,
) -> ListDestinationsOutput:
    """List the connections (ii_…) of an audience or computed trait: destination instance, settings
    (secrets masked), idSyncConfiguration, connectionSettings and (extra) `delivery` health, its
    activations' included."""
    page = destinations.list_connections(store, spaceId, audienceId, shapes.page_request(pagination))
    health = outbox.connection_health(store, [view.connection.id for view in page.items])
    return ListDestinationsOutput(
        connections=[shapes.connection(view, health[view.connection.id]) for view in page.items],
        pagination=shapes.pagination(page),
    )


def update_destination_for_audience(
    store: Store,
    spaceId: SpaceId,
    audienceId: AudienceIdParam,
    destinationId: ConnectionId,
    connectionSettings: Annotated[Optional[dict[str, Any]], Field(description="Replaces the stored object; {} keeps it.")] = None,
    idSyncConfiguration: Annotated[
        Optional[list[IdSyncItem]], Field(max_length=5, description="Replaces the stored list; [] keeps it.")
    ] = None,
) -> UpdateDestinationOutput:
    """Change a connection's idSyncConfiguration and/or connectionSettings (give at least one).
    destinationId is the connection id (ii_…)."""
    view = destinations.update_connection(
        store,
        spaceId,
        audienceId,
        destinationId,
        [item.model_dump(exclude_none=True) for item in idSyncConfiguration] if idSyncConfiguration is not None else None,
        connectionSettings,
    )
    return UpdateDestinationOutput(
        destination=IdOnly(id=view.connection.id),
        idSyncConfiguration=view.connection.id_sync_configuration,
        connectionSettings=view.connection.connection_settings,
    )


def remove_destination_from_audience(
    store: Store, spaceId: SpaceId, audienceId: AudienceIdParam, destinationId: ConnectionId
) -> Status:
    """Disconnect a destination from an audience or computed trait. Refused with a conflict while the
    connection still has activations: remove those first. Returns {status: SUCCESS}."""
    destinations.disconnect(store, spaceId, audienceId, destinationId)
    return Status(status="SUCCESS")


TOOLS = [
    read("list_supported_destinations_from_audience", "List supported destinations", list_supported_destinations_from_audience),
    write("add_destination_to_audience", "Add destination to audience", add_destination_to_audience),
    read("list_destinations_from_audience", "List audience destinations", list_destinations_from_audience),
    write("update_destination_for_audience", "Update audience destination", update_destination_for_audience, idempotent=True),
    remove("remove_destination_from_audience", "Remove destination from audience", remove_destination_from_audience),
]
