"""Activation tools: which events a destination connection receives for an audience or computed trait."""

from typing import Annotated, Optional

from pydantic import BaseModel, Field

from store import activations, outbox
from store.models import Activation
from store.store import Store
from tools import shapes
from tools.models import (
    ActivationOutput,
    DestinationMappingInput,
    PaginationInput,
    PaginationOutput,
    PersonalizationInput,
    SpaceId,
    Status,
    Warnings,
    resource_id,
)
from tools.registry import read, remove, write

AudienceIdParam = resource_id("Audience id (aud_…), or a computed trait id (tra_…).")
ActivationId = resource_id("Activation id (act_…).")
ACTIVATION_TYPES = (
    "Audiences: 'Audience Entered', 'Audience Exited' (Track) or 'Audience Membership Changed' (Identify, "
    "both); LINKED audiences also 'Entity Added', 'Entity Removed', 'Entity Values Changed', 'All Events'. "
    "Computed traits: 'Audience Membership Changed' (Identify traits.<key>) or 'All Events' (Track Trait "
    "Computed), sent on every value change."
)


class ActivationResult(BaseModel):
    activation: ActivationOutput
    warnings: Warnings = None


class ActivationsOutput(BaseModel):
    activations: list[ActivationOutput]
    pagination: Optional[PaginationOutput] = None


def add_activation_to_audience(
    store: Store,
    spaceId: SpaceId,
    audienceId: AudienceIdParam,
    connectionId: Annotated[str, Field(min_length=1, description="Connection id (ii_…) of this audience, from add_destination_to_audience.")],
    activationName: Annotated[str, Field(min_length=1, description="A name for the activation.")],
    activationType: Annotated[str, Field(description=ACTIVATION_TYPES)],
    performResync: Annotated[bool, Field(description="true resends every current member; false sends only future changes.")],
    personalization: Annotated[PersonalizationInput, Field(description="{profile: {properties: [trait…], mapping: {trait: sentName}}}.")],
    destinationMapping: Annotated[Optional[DestinationMappingInput], Field(description="Action destinations: {actionId, settings}.")] = None,
    displayName: Annotated[Optional[str], Field(description="Optional label (warehouses).")] = None,
    enabled: Annotated[Optional[bool], Field(description="Default true.")] = None,
) -> ActivationResult:
    """Add an activation to a destination connection of an audience or computed trait: which events it
    sends (activationType), with which profile traits (personalization), through which destination action
    (destinationMapping; see segment_audiences_list_supported_destinations_from_audience).
    A personalization trait no profile has yet is accepted and named in `warnings`.
    Returns {activation} with id act_…."""
    row = activations.add_activation(
        store,
        spaceId,
        audienceId,
        connectionId,
        activation_name=activationName,
        activation_type=activationType,
        perform_resync=performResync,
        personalization=personalization.model_dump(exclude_none=True),
        destination_mapping=destinationMapping.model_dump(exclude_none=True) if destinationMapping else None,
        display_name=displayName,
        enabled=enabled,
    )
    return _result(store, row, activations.personalization_warnings(store, spaceId, row.personalization))


def get_activation_from_audience(
    store: Store, spaceId: SpaceId, audienceId: AudienceIdParam, id: ActivationId
) -> ActivationResult:
    """Get one activation of an audience or computed trait. performResync reads true while a full resync is pending or
    still going out; the extra field `delivery` reports pending, retrying, delivered and
    dead-lettered counts and the last error."""
    row = activations.get_activation(store, spaceId, audienceId, id)
    return _result(store, row)


def list_activations_from_audience(
    store: Store,
    spaceId: SpaceId,
    audienceId: AudienceIdParam,
    pagination: Annotated[Optional[PaginationInput], Field(description="{cursor, count 1..1000}.")] = None,
) -> ActivationsOutput:
    """List the activations of an audience or computed trait across all its destination connections, each with its
    delivery health (extra field `delivery`: pending, retrying, delivered, deadLettered, lastError)."""
    page = activations.list_activations(store, spaceId, audienceId, shapes.page_request(pagination))
    health = outbox.health_of(store, [row.id for row in page.items])
    return ActivationsOutput(
        activations=[shapes.activation(row, store.workspace_id, health[row.id]) for row in page.items],
        pagination=shapes.pagination(page),
    )


def update_activation_for_audience(
    store: Store,
    spaceId: SpaceId,
    audienceId: AudienceIdParam,
    id: ActivationId,
    activationName: Annotated[Optional[str], Field(description="New name; empty is ignored.")] = None,
    destinationMapping: Annotated[Optional[DestinationMappingInput], Field(description="New settings; the actionId cannot change.")] = None,
    displayName: Annotated[Optional[str], Field(description="New label; an empty string clears it.")] = None,
    enabled: Optional[bool] = None,
    performResync: Annotated[Optional[bool], Field(description="true resends every current member with the new configuration.")] = None,
    personalization: Optional[PersonalizationInput] = None,
) -> ActivationResult:
    """Update an activation; only the fields given change. Returns {activation}."""
    row = activations.update_activation(
        store,
        spaceId,
        audienceId,
        id,
        activation_name=activationName,
        display_name=displayName,
        enabled=enabled,
        perform_resync=performResync,
        personalization=personalization.model_dump(exclude_none=True) if personalization else None,
        destination_mapping=destinationMapping.model_dump(exclude_none=True) if destinationMapping else None,
    )
    return _result(store, row, activations.personalization_warnings(store, spaceId, row.personalization))


def remove_activation_from_audience(store: Store, spaceId: SpaceId, audienceId: AudienceIdParam, id: ActivationId) -> Status:
    """Remove an activation; the destination stops receiving this audience's (or computed trait's) events through it."""
    activations.remove_activation(store, spaceId, audienceId, id)
    return Status(status="SUCCESS")


TOOLS = [
    write("add_activation_to_audience", "Add activation", add_activation_to_audience),
    read("get_activation_from_audience", "Get activation", get_activation_from_audience),
    read("list_activations_from_audience", "List activations", list_activations_from_audience),
    write("update_activation_for_audience", "Update activation", update_activation_for_audience, idempotent=True),
    remove("remove_activation_from_audience", "Remove activation", remove_activation_from_audience),
]


def _result(store: Store, row: Activation, warnings: Optional[list[str]] = None) -> ActivationResult:
    health = outbox.health_of(store, [row.id])[row.id]
    return ActivationResult(activation=shapes.activation(row, store.workspace_id, health), warnings=warnings or None)
