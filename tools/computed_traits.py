"""Computed trait tools: per-profile values reduced from events, e.g. a 30-day order count."""

from typing import Annotated, Optional

from pydantic import BaseModel, Field

from store.catalog import computed_traits, definitions
from store.db.store import Store
from tools import shapes
from tools.models import (ComputedTraitSummary, Input, PaginationInput, PaginationOutput, SpaceId, Status,
                          TraitType, Warnings, resource_id)
from tools.registry import read, remove, write


class TraitDefinitionInput(Input):
    query: str = Field(min_length=1, description="A CQL reducer, e.g. event('Order Completed').sum(property('revenue')).")
    type: TraitType = Field(description="Per profile (USERS) or account.")


class TraitOptionsInput(Input):
    includeHistoricalData: Optional[bool] = None
    includeAnonymousUsers: Optional[bool] = None
    backfillDurationDays: Optional[int] = Field(None, ge=1, le=36_500)


TraitId = resource_id("Computed trait id (tra_…).")


class ComputedTraitOutput(BaseModel):
    computedTrait: ComputedTraitSummary
    warnings: Warnings = None


class ComputedTraitsOutput(BaseModel):
    computedTraits: list[ComputedTraitSummary]
    pagination: PaginationOutput


def create_computed_trait(
    store: Store,
    spaceId: SpaceId,
    definition: TraitDefinitionInput,
    name: Annotated[str, Field(min_length=1, description="The key is its snake_case.")],
    description: Optional[str] = None,
    enabled: Annotated[Optional[bool], Field(description="Default true.")] = None,
    options: Optional[TraitOptionsInput] = None,
) -> ComputedTraitOutput:
    """Create a computed trait: one value per profile (or account) reduced from its events, e.g.
    event('Order Completed').within(30 days).sum(property('revenue')); also .count(), .avg(),
    .mode(property('category'), 2), .last(property('plan')), .unique(property('sku')).count(). Stored as
    trait '<key>' (the name's snake_case), usable in audiences; unknown trait('<key>') reads are named
    in `warnings`. Send it with segment_audiences_add_destination_to_audience (audienceId = tra_…).
    Returns {computedTrait} (tra_…). CQL: resource segment-audiences://reference/cql."""
    row = computed_traits.create_computed_trait(
        store,
        spaceId,
        name=name,
        query=definition.query,
        definition_type=definition.type,
        description=description,
        enabled=enabled,
        options=options.model_dump(exclude_none=True) if options else None,
    )
    return _with_warnings(store, row, created=True)


def get_computed_trait(store: Store, spaceId: SpaceId, id: TraitId) -> ComputedTraitOutput:
    """Get one computed trait by id. Find ids with segment_audiences_list_computed_traits."""
    return ComputedTraitOutput(computedTrait=shapes.computed_trait(computed_traits.get_computed_trait(store, spaceId, id)))


def list_computed_traits(
    store: Store,
    spaceId: SpaceId,
    pagination: Optional[PaginationInput] = None,
) -> ComputedTraitsOutput:
    """List the computed traits of a space, oldest first."""
    page = computed_traits.list_computed_traits(store, spaceId, shapes.page_request(pagination))
    return ComputedTraitsOutput(
        computedTraits=[shapes.computed_trait(row) for row in page.items], pagination=shapes.pagination(page)
    )


def update_computed_trait_for_space(
    store: Store,
    spaceId: SpaceId,
    id: TraitId,
    definition: Optional[TraitDefinitionInput] = None,
    description: Optional[str] = None,
    enabled: Optional[bool] = None,
    name: Annotated[Optional[str], Field(min_length=1, description="The key does not change.")] = None,
) -> ComputedTraitOutput:
    """Update a computed trait; only the fields given change, and the key never does."""
    row = computed_traits.update_computed_trait(
        store,
        spaceId,
        id,
        name=name,
        description=description,
        enabled=enabled,
        query=definition.query if definition else None,
        definition_type=definition.type if definition else None,
    )
    return _with_warnings(store, row)


def remove_computed_trait_from_space(store: Store, spaceId: SpaceId, id: TraitId) -> Status:
    """Remove a computed trait; its key stays reserved. Refused with a conflict while audiences or
    computed traits read it (trait('<its key>')): remove or edit those first. Returns {status: SUCCESS}."""
    computed_traits.remove_computed_trait(store, spaceId, id)
    return Status(status="SUCCESS")


def _with_warnings(store: Store, row, *, created: bool = False) -> ComputedTraitOutput:
    warnings = definitions.definition_warnings(store, row.space_id, row.query, kind="computed_trait",
                                               audience_type=row.definition_type)
    if created:
        warnings += definitions.name_warnings(store, row.space_id, row.id, row.name, row.key)
    return ComputedTraitOutput(computedTrait=shapes.computed_trait(row), warnings=warnings or None)


TOOLS = [
    write("create_computed_trait", "Create computed trait", create_computed_trait),
    read("get_computed_trait", "Get computed trait", get_computed_trait),
    read("list_computed_traits", "List computed traits", list_computed_traits),
    write("update_computed_trait_for_space", "Update computed trait", update_computed_trait_for_space, idempotent=True),
    remove("remove_computed_trait_from_space", "Remove computed trait", remove_computed_trait_from_space),
]
