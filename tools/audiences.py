"""Audience tools: create, read, list, update and remove audiences, and list their consumers."""

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, Field

from store import audiences, computations, definitions, runs
from store.store import Store
from tools import shapes
from tools.models import (
    AudienceDefinitionInput,
    AudienceDefinitionUpdate,
    AudienceOptionsInput,
    AudienceSearchInput,
    AudiencesPaginationInput,
    AudienceSummary,
    AudienceType,
    AudienceWithLookback,
    ConsumersSortInput,
    PaginationInput,
    PaginationOutput,
    SpaceId,
    Status,
    Warnings,
    resource_id,
)
from tools.registry import read, remove, write

AudienceIdParam = resource_id("Audience id (aud_…).")
Include = Annotated[Optional[Literal["schedules"]], Field(description="'schedules' adds each audience's schedules.")]


class AudienceOutput(BaseModel):
    audience: AudienceSummary
    warnings: Warnings = None


class GetAudienceOutput(BaseModel):
    audience: AudienceWithLookback


class ListAudiencesOutput(BaseModel):
    audiences: list[AudienceWithLookback]
    pagination: PaginationOutput


class ConsumersOutput(BaseModel):
    audiences: list[AudienceSummary]
    pagination: PaginationOutput


def create_audience(
    store: Store,
    spaceId: SpaceId,
    audienceType: Annotated[AudienceType, Field(description="USERS (profiles), ACCOUNTS (accounts) or LINKED (entities).")],
    definition: Annotated[AudienceDefinitionInput, Field(description="{query: CQL, targetEntity?: LINKED only}.")],
    name: Annotated[str, Field(min_length=1, description="Name; the audience key is its snake_case, e.g. 'VIP Users' → vip_users.")],
    description: Optional[str] = None,
    enabled: Annotated[Optional[bool], Field(description="Compute the audience (default true).")] = None,
    options: Annotated[Optional[AudienceOptionsInput], Field(description="History and identifier options.")] = None,
) -> AudienceOutput:
    """Create an audience from a CQL definition, e.g. {"query": "event('Order Completed').within(30 days).count() >= 3"}.

    The query must be a condition (true/false per profile). A mistake is reported with its line and
    column and what was expected there; a trait('<key>') that no audience, computed trait or profile
    has is accepted and named in `warnings`. The key (the trait that carries membership, usable as
    trait('<key>') in other audiences) is the snake_case of the name and never changes. With
    includeHistoricalData (the default) every stored event counts, bounded only by the definition's
    own windows (backfillEventDataDays limits it); false counts only events from now on. Returns
    {audience} with id aud_…; next, connect a destination with
    segment_audiences_add_destination_to_audience or read it with segment_audiences_get_audience.
    CQL reference: resource segment-audiences://reference/cql."""
    row = audiences.create_audience(
        store,
        spaceId,
        name=name,
        audience_type=audienceType,
        query=definition.query,
        target_entity=definition.targetEntity,
        definition_type=definition.type,
        description=description,
        enabled=enabled,
        options=options.model_dump(exclude_none=True) if options else None,
    )
    return _with_warnings(store, row)


def get_audience(
    store: Store,
    spaceId: SpaceId,
    id: AudienceIdParam,
    include: Include = None,
    explain: Annotated[Optional[bool], Field(description="Addition to the Public API: true adds `explain` (the compiled SQL, the cadence and its reason, the keys and events read).")] = None,
) -> GetAudienceOutput:
    """Get one audience: definition, key, status (Preparing until first computed, then Live, or
    Failed), size.count (members), options, computeCadence (REALTIME or BATCH) and, with
    include='schedules', its run schedules. Find ids with segment_audiences_list_audiences."""
    row = audiences.get_audience(store, spaceId, id)
    schedules = audiences.schedules_by_audience(store, [row.id])[row.id] if include else None
    state = runs.states(store, [row.id]).get(row.id)
    explanation = None
    if explain:
        computation = computations.for_audience(row)
        explanation = shapes.explain(computations.explain(computation, store.now()), computation)
    return GetAudienceOutput(audience=shapes.audience_with_lookback(row, schedules, state, explanation))


def list_audiences(
    store: Store,
    spaceId: SpaceId,
    search: Annotated[Optional[AudienceSearchInput], Field(description="{type: NAME|KEY|DEFINITION, query}.")] = None,
    pagination: Annotated[Optional[AudiencesPaginationInput], Field(description="{cursor, count 1..200}.")] = None,
    include: Include = None,
) -> ListAudiencesOutput:
    """List the audiences of a space, oldest first, optionally searched by name, key prefix or
    definition text. Removed audiences are not listed. Pass pagination.next as pagination.cursor
    for the next page."""
    page = audiences.list_audiences(
        store, spaceId, _search(search), shapes.page_request(pagination)
    )
    ids = [row.id for row in page.items]
    schedules = audiences.schedules_by_audience(store, ids) if include else {}
    states = runs.states(store, ids)
    return ListAudiencesOutput(
        audiences=[shapes.audience_with_lookback(row, schedules.get(row.id), states.get(row.id)) for row in page.items],
        pagination=shapes.pagination(page),
    )


def update_audience_for_space(
    store: Store,
    spaceId: SpaceId,
    id: AudienceIdParam,
    definition: Annotated[Optional[AudienceDefinitionUpdate], Field(description="{query} to replace the definition.")] = None,
    description: Optional[str] = None,
    enabled: Annotated[Optional[bool], Field(description="false stops computing (status Disabled); true resumes.")] = None,
    name: Annotated[Optional[str], Field(min_length=1, description="New name; the key does not change.")] = None,
    options: Optional[AudienceOptionsInput] = None,
) -> AudienceOutput:
    """Update an audience; only the fields given change. A new definition is checked like on create
    and may not switch the audience between REALTIME and BATCH (create a new audience instead).
    The key never changes. enabled: false stops computing and sending (a one-off campaign's end);
    enabled: true recomputes at once and sends destinations only the differences from the members
    stored when it was disabled. Returns {audience} (and `warnings`, as on create)."""
    row = audiences.update_audience(
        store,
        spaceId,
        id,
        name=name,
        description=description,
        enabled=enabled,
        query=definition.query if definition else None,
        target_entity=definition.targetEntity if definition else None,
        options=options.model_dump(exclude_none=True) if options else None,
    )
    return _with_warnings(store, row)


def remove_audience_from_space(store: Store, spaceId: SpaceId, id: AudienceIdParam) -> Status:
    """Remove an audience. It stops computing and disappears from reads; its key stays reserved and
    its history is kept. Refused with a conflict while other audiences or computed traits read it
    (trait('<its key>')): remove or edit those first. Returns {status: SUCCESS}; removing it again
    answers not-found."""
    audiences.remove_audience(store, spaceId, id)
    return Status(status="SUCCESS")


def list_audience_consumers_from_space_and_audience(
    store: Store,
    spaceId: SpaceId,
    id: AudienceIdParam,
    pagination: Annotated[Optional[PaginationInput], Field(description="{cursor, count 1..1000}.")] = None,
    search: Annotated[Optional[AudienceSearchInput], Field(description="{type: NAME|KEY|DEFINITION, query}.")] = None,
    sort: Annotated[Optional[ConsumersSortInput], Field(description="{field: CREATED_AT|NAME|UPDATED_AT, direction: ASC|DESC}.")] = None,
) -> ConsumersOutput:
    """List the audiences whose definitions use this audience, i.e. reference trait('<its key>').
    Check this before removing or changing an audience others depend on."""
    page = audiences.list_consumers(
        store,
        spaceId,
        id,
        _search(search),
        audiences.Sort(sort.field, sort.direction) if sort else None,
        shapes.page_request(pagination),
    )
    return ConsumersOutput(audiences=[shapes.audience(row) for row in page.items], pagination=shapes.pagination(page))


def _with_warnings(store: Store, row) -> AudienceOutput:
    warnings = definitions.definition_warnings(store, row.space_id, row.query, kind="audience",
                                               audience_type=row.audience_type)
    return AudienceOutput(audience=shapes.audience(row), warnings=warnings or None)


def _search(search: Optional[AudienceSearchInput]) -> Optional[audiences.Search]:
    return audiences.Search(search.type, search.query) if search else None


TOOLS = [
    write("create_audience", "Create audience", create_audience),
    read("get_audience", "Get audience", get_audience),
    read("list_audiences", "List audiences", list_audiences),
    write("update_audience_for_space", "Update audience", update_audience_for_space, idempotent=True),
    remove("remove_audience_from_space", "Remove audience", remove_audience_from_space),
    read("list_audience_consumers_from_space_and_audience", "List audience consumers", list_audience_consumers_from_space_and_audience),
]
