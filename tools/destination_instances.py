"""Destination instance tools (additions to the 39, with the Public API's Destination names and shapes):
create, list, get, update and remove the destinations of a space that audiences and computed traits
connect to."""

from typing import Annotated, Any, Optional

from pydantic import BaseModel, Field

from store import destination_instances
from store.store import Store
from tools import shapes
from tools.models import Destination, PaginationInput, PaginationOutput, SpaceId, Status, resource_id
from tools.registry import read, remove, write

DestinationId = resource_id("Destination instance id (dst_…) from segment_audiences_list_destinations.")


class DestinationResult(BaseModel):
    destination: Destination


class DestinationsOutput(BaseModel):
    destinations: list[Destination]
    pagination: Optional[PaginationOutput] = None


def create_destination(
    store: Store,
    spaceId: SpaceId,
    metadataId: Annotated[str, Field(min_length=1, description="Catalog slug: webhooks-actions, pendula, moengage or segment-tracking-api.")],
    name: Annotated[str, Field(min_length=1, description="A name for this instance, e.g. 'Win-back flow'.")],
    settings: Annotated[dict[str, Any], Field(description="The catalog entry's settings, e.g. pendula {flowTriggerUrl, apiToken}; moengage {apiId, apiKey, region?, endpoint?}.")],
    enabled: Annotated[Optional[bool], Field(description="Default true; a disabled instance sends nothing.")] = None,
) -> DestinationResult:
    """(Addition to the Public API's audience tools.) Create a destination instance in a space from
    the catalog; segment_audiences_list_supported_destinations_from_audience lists each entry's
    settings, and unknown or mistyped settings are refused. Returns {destination} with id dst_…;
    next, connect it with segment_audiences_add_destination_to_audience {destination: {id, type:
    'destination'}}. Secrets (apiToken, apiKey, writeKey, sharedSecret) are never shown back.
    Catalog: resource segment-audiences://catalog/destinations."""
    destination = destination_instances.add_destination(store, spaceId, metadataId, name, settings,
                                                        True if enabled is None else enabled)
    return DestinationResult(destination=shapes.destination(destination))


def list_destinations(
    store: Store,
    spaceId: SpaceId,
    pagination: Annotated[Optional[PaginationInput], Field(description="{cursor, count 1..1000}.")] = None,
) -> DestinationsOutput:
    """(Addition to the Public API's audience tools.) List the destination instances of a space,
    oldest first, with their settings (secrets masked)."""
    page = destination_instances.list_destinations(store, spaceId, shapes.page_request(pagination))
    return DestinationsOutput(destinations=[shapes.destination(row) for row in page.items],
                              pagination=shapes.pagination(page))


def get_destination(store: Store, spaceId: SpaceId, destinationId: DestinationId) -> DestinationResult:
    """(Addition to the Public API's audience tools.) Get one destination instance (secrets masked)."""
    return DestinationResult(destination=shapes.destination(
        destination_instances.get_destination(store, spaceId, destinationId)))


def update_destination(
    store: Store,
    spaceId: SpaceId,
    destinationId: DestinationId,
    name: Annotated[Optional[str], Field(description="New name.")] = None,
    enabled: Annotated[Optional[bool], Field(description="false stops sending; queued events wait until it is enabled again.")] = None,
    settings: Annotated[Optional[dict[str, Any]], Field(description="Merged key by key into the stored settings; a secret given as ******** stays unchanged.")] = None,
) -> DestinationResult:
    """(Addition to the Public API's audience tools.) Change a destination instance's name, enabled
    flag or settings (a new URL, a rotated token); only what is given changes. Returns {destination}."""
    destination = destination_instances.update_destination(store, spaceId, destinationId, name=name,
                                                           enabled=enabled, settings=settings)
    return DestinationResult(destination=shapes.destination(destination))


def remove_destination(store: Store, spaceId: SpaceId, destinationId: DestinationId) -> Status:
    """(Addition to the Public API's audience tools.) Remove a destination instance. Refused with a
    conflict naming the connections while an audience or computed trait is still connected to it:
    remove those with segment_audiences_remove_destination_from_audience first. Returns {status: SUCCESS}."""
    destination_instances.remove_destination(store, spaceId, destinationId)
    return Status(status="SUCCESS")


TOOLS = [
    write("create_destination", "Create destination", create_destination),
    read("list_destinations", "List destinations", list_destinations),
    read("get_destination", "Get destination", get_destination),
    write("update_destination", "Update destination", update_destination, idempotent=True),
    remove("remove_destination", "Remove destination", remove_destination),
]
