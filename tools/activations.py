"""Activation tools: which events a destination connection receives for an audience or computed trait."""

from typing import Annotated, Any, Optional

from pydantic import BaseModel, Field

from store.catalog import activations
from store.db.models import Activation
from store.db.store import Store
from store.delivery import outbox
from tools import shapes
from tools.models import (ActivationOutput, Input, PaginationInput, PaginationOutput, SpaceId, Status,
                          Warnings, resource_id)
from tools.registry import read, remove, write


class ProfilePersonalization(Input):
    properties: Optional[list[str]] = Field(None, description="Traits to send with each event.")
    mapping: Optional[dict[str, str]] = Field(None, description="Trait → name sent.")


class EntityPersonalization(Input):
    properties: list[str]
    relationshipSlug: str


class PersonalizationInput(Input):
    profile: Optional[ProfilePersonalization] = None
    entities: Optional[list[EntityPersonalization]] = Field(None, description="LINKED only.")
    syncEntityPropertyChanges: Optional[bool] = Field(None, description="Audience Membership Changed only.")


class DestinationMappingInput(Input):
    actionId: str = Field(min_length=1, description="From list_supported_destinations_from_audience.")
    settings: Optional[dict[str, Any]] = Field(None, description="The action's fields, e.g. webhooks-send {url, method, headers}.")


AudienceIdParam = resource_id("Audience (aud_…) or computed trait (tra_…) id.")
ActivationId = resource_id("Activation id (act_…).")
ACTIVATION_TYPES = (
    "Audiences: 'Audience Entered', 'Audience Exited' (Track), 'Audience Membership Changed' (Identify); "
    "LINKED also 'Entity Added', 'Entity Removed', 'Entity Values Changed', 'All Events'. "
    "Computed traits: 'Audience Membership Changed' (Identify) or 'All Events' (Track)."
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
    connectionId: Annotated[str, Field(min_length=1, description="Connection id (ii_…), from add_destination_to_audience.")],
    activationName: Annotated[str, Field(min_length=1)],
    activationType: Annotated[str, Field(description=ACTIVATION_TYPES)],
    performResync: Annotated[bool, Field(description="true resends every member; false sends only changes.")],
    personalization: PersonalizationInput,
    destinationMapping: Annotated[Optional[DestinationMappingInput], Field(description="Action destinations only.")] = None,
    displayName: Annotated[Optional[str], Field(description="Label (warehouses).")] = None,
    enabled: Annotated[Optional[bool], Field(description="Default true.")] = None,
    splitGroup: Annotated[Optional[str], Field(description="Addition: only this group of the audience's split.")] = None,
) -> ActivationResult:
    """Add an activation to a connection: which events (activationType), with which traits
    (personalization), through which action (destinationMapping; see
    segment_audiences_list_supported_destinations_from_audience). A trait no profile has yet is named in
    `warnings`. Returns {activation} (act_…)."""
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
        split_group=splitGroup,
    )
    return _result(store, row, activations.personalization_warnings(store, spaceId, row.personalization))


def get_activation_from_audience(
    store: Store, spaceId: SpaceId, audienceId: AudienceIdParam, id: ActivationId
) -> ActivationResult:
    """Get one activation. performResync reads true while a full resync is pending or going out; the
    extra field `delivery` counts pending, retrying, delivered and dead-lettered events, with the last
    error."""
    row = activations.get_activation(store, spaceId, audienceId, id)
    return _result(store, row)


def list_activations_from_audience(
    store: Store,
    spaceId: SpaceId,
    audienceId: AudienceIdParam,
    pagination: Optional[PaginationInput] = None,
) -> ActivationsOutput:
    """List the activations of an audience or computed trait across its connections, each with (extra)
    `delivery` health."""
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
    activationName: Annotated[Optional[str], Field(description="Empty is ignored.")] = None,
    destinationMapping: Annotated[Optional[DestinationMappingInput], Field(description="The actionId cannot change.")] = None,
    displayName: Annotated[Optional[str], Field(description="Empty clears it.")] = None,
    enabled: Optional[bool] = None,
    performResync: Annotated[Optional[bool], Field(description="true resends every member.")] = None,
    personalization: Optional[PersonalizationInput] = None,
    splitGroup: Annotated[Optional[str], Field(description="Addition: only this group; empty clears it.")] = None,
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
        split_group=splitGroup,
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
