"""Destination connection tools: the catalog of supported destinations, and connecting a space's
destination instances (segment_audiences_create_destination) to audiences and computed traits."""

from typing import Annotated, Any, Optional

from pydantic import BaseModel, Field

from store import destinations, outbox
from store.store import Store
from tools import shapes
from tools.models import (
    DestinationInput,
    IdOnly,
    IdSyncConfiguration,
    IdSyncItem,
    PaginationInput,
    PaginationOutput,
    SimpleDestination,
    SpaceId,
    Status,
    resource_id,
)
from tools.registry import read, remove, write

AudienceIdParam = resource_id("Audience id (aud_…), or a computed trait id (tra_…) to send its values.")
ConnectionId = resource_id("Connection id (ii_…) from segment_audiences_list_destinations_from_audience.")
IdSync = Annotated[
    Optional[list[IdSyncItem]],
    Field(max_length=5, description="Up to 5 {externalId, strategy: first|last|all, mapTo?}; at most 3 'all'."),
]


class SupportedDestinationsOutput(BaseModel):
    destinations: dict[str, Any]
    pagination: Optional[PaginationOutput] = None


class AddDestinationOutput(BaseModel):
    connection: IdOnly
    idSyncConfiguration: list[IdSyncConfiguration]
    connectionSettings: Optional[dict[str, Any]] = None


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
    slug: Annotated[Optional[str], Field(description="Only this destination, e.g. webhooks-actions.")] = None,
    actionId: Annotated[Optional[str], Field(description="Only destinations offering this action id.")] = None,
) -> SupportedDestinationsOutput:
    """List the destinations audiences (and computed traits) of this type can be sent to, keyed by
    slug: their settings (for segment_audiences_create_destination), connectionSettings, actions (ids
    and fields for destinationMapping), the Segment calls each accepts and the default ID sync.
    Destinations without actions (MoEngage, Segment Tracking API) are configured with
    connectionSettings {sendIdentify, sendTrack, sendGroup (ACCOUNTS only)}. Use it before
    create_destination, add_destination_to_audience and add_activation_to_audience."""
    entries = destinations.supported_destinations(store, spaceId, audienceType, slug, actionId)
    return SupportedDestinationsOutput(destinations={entry.slug: shapes.catalog_entry(entry) for entry in entries})


def add_destination_to_audience(
    store: Store,
    spaceId: SpaceId,
    audienceId: AudienceIdParam,
    destination: Annotated[DestinationInput, Field(description="{id: dst_… instance id, type: 'destination'}.")],
    connectionSettings: Annotated[Optional[dict[str, Any]], Field(description="Destination-specific, e.g. {sendIdentify: true}.")] = None,
    idSyncConfiguration: IdSync = None,
) -> AddDestinationOutput:
    """Connect a destination instance of the space to an audience or a computed trait. The instance
    must exist first: segment_audiences_list_destinations lists them, segment_audiences_create_destination
    makes one. With the owner's history on (the default) the current members (or values) are sent
    at once to destinations that send by themselves. An audience sends Identify traits.<key>:
    true|false or Track Audience Entered/Exited; a computed trait sends Identify traits.<key>:
    <value> or Track Trait Computed on every change; an ACCOUNTS one sends Group per account
    (connectionSettings.sendGroup) and Identify/Track per user of the account. Omitted
    idSyncConfiguration takes the destination's default. Returns {connection: {id: ii_…}}; next,
    add an activation with segment_audiences_add_activation_to_audience using that id as connectionId."""
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
    )


def list_destinations_from_audience(
    store: Store,
    spaceId: SpaceId,
    audienceId: AudienceIdParam,
    pagination: Annotated[Optional[PaginationInput], Field(description="{cursor, count 1..1000}.")] = None,
) -> ListDestinationsOutput:
    """List the destination connections of an audience or computed trait (id ii_…, destination
    instance, settings with secrets masked, idSyncConfiguration, connectionSettings) with their
    delivery health (extra field `delivery`, counting the connection's own events and its activations')."""
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
