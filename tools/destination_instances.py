"""Destination instance tools (additions to the 39, with the Public API's Destination names and shapes):
create, list, get, update and remove the destinations of a space that audiences and computed traits
connect to."""

from typing import Annotated, Any, Optional

from pydantic import BaseModel, Field

from store.catalog import destination_instances
from store.db.store import Store
from tools import shapes
from tools.models import Destination, PaginationInput, PaginationOutput, SpaceId, Status, resource_id
from tools.registry import read, remove, write

DestinationId = resource_id("Instance id (dst_…), from list_destinations.")


class DestinationResult(BaseModel):
    destination: Destination


class DestinationsOutput(BaseModel):
    destinations: list[Destination]
    pagination: Optional[PaginationOutput] = None


def create_destination(
    store: Store,
    spaceId: SpaceId,
    metadataId: Annotated[str, Field(min_length=1, description="webhooks-actions, pendula, moengage or segment-tracking-api.")],
    name: Annotated[str, Field(min_length=1)],
    settings: Annotated[dict[str, Any], Field(description="As the catalog lists, e.g. pendula {flowTriggerUrl, apiToken}.")],
    enabled: Annotated[Optional[bool], Field(description="Default true.")] = None,
) -> DestinationResult:
    """(Not in the Public API.) Create a destination instance from the catalog
    (segment_audiences_list_supported_destinations_from_audience lists each entry's settings; unknown or
    mistyped ones are refused). Returns {destination} (dst_…; secrets never shown back); next:
    segment_audiences_add_destination_to_audience. Catalog: resource
    segment-audiences://catalog/destinations."""
    destination = destination_instances.add_destination(store, spaceId, metadataId, name, settings,
                                                        True if enabled is None else enabled)
    return DestinationResult(destination=shapes.destination(destination))


def list_destinations(
    store: Store,
    spaceId: SpaceId,
    pagination: Optional[PaginationInput] = None,
) -> DestinationsOutput:
    """(Not in the Public API.) List the destination instances of a space,
    oldest first, with their settings (secrets masked)."""
    page = destination_instances.list_destinations(store, spaceId, shapes.page_request(pagination))
    return DestinationsOutput(destinations=[shapes.destination(row) for row in page.items],
                              pagination=shapes.pagination(page))


def get_destination(store: Store, spaceId: SpaceId, destinationId: DestinationId) -> DestinationResult:
    """(Not in the Public API.) Get one destination instance (secrets masked)."""
    return DestinationResult(destination=shapes.destination(
        destination_instances.get_destination(store, spaceId, destinationId)))


def update_destination(
    store: Store,
    spaceId: SpaceId,
    destinationId: DestinationId,
    name: Optional[str] = None,
    enabled: Annotated[Optional[bool], Field(description="false holds its queue until true.")] = None,
    settings: Annotated[Optional[dict[str, Any]], Field(description="Merged key by key; ******** keeps a secret.")] = None,
) -> DestinationResult:
    """(Not in the Public API.) Change a destination instance's name, enabled
    flag or settings (a new URL, a rotated token); only what is given changes. Returns {destination}."""
    destination = destination_instances.update_destination(store, spaceId, destinationId, name=name,
                                                           enabled=enabled, settings=settings)
    return DestinationResult(destination=shapes.destination(destination))


def remove_destination(store: Store, spaceId: SpaceId, destinationId: DestinationId) -> Status:
    """(Not in the Public API.) Remove a destination instance. Refused (conflict, naming them) while
    connections use it: remove those with segment_audiences_remove_destination_from_audience first.
    Returns {status: SUCCESS}."""
    destination_instances.remove_destination(store, spaceId, destinationId)
    return Status(status="SUCCESS")


TOOLS = [
    write("create_destination", "Create destination", create_destination),
    read("list_destinations", "List destinations", list_destinations),
    read("get_destination", "Get destination", get_destination),
    write("update_destination", "Update destination", update_destination, idempotent=True),
    remove("remove_destination", "Remove destination", remove_destination),
]
