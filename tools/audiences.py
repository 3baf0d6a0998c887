"""Audience tools: create, read, list, update and remove audiences, and list their consumers."""

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, Field

from store.catalog import audiences, definitions
from store.compute import computations, runs
from store.db.store import Store
from tools import shapes
from tools.models import (AudienceDefinitionInput, AudienceSummary, AudienceType, AudienceWithLookback, Input,
                          PaginationInput, PaginationOutput, SpaceId, Status, Warnings, resource_id)
from tools.registry import read, remove, write


class AudiencesPaginationInput(PaginationInput):
    count: int = Field(200, ge=1, le=200)


class AudienceSearchInput(Input):
    type: Literal["NAME", "KEY", "DEFINITION"] = Field(
        description="KEY matches a prefix; the others a substring, any case."
    )
    query: str = Field(min_length=1, max_length=255)


class ConsumersSortInput(Input):
    field: Literal["CREATED_AT", "NAME", "UPDATED_AT"]
    direction: Literal["ASC", "DESC"]


class AudienceDefinitionUpdate(Input):
    query: str = Field(min_length=1, description="CQL.")
    targetEntity: Optional[str] = Field(None, description="LINKED: profile or a top entity('…') slug.")


class AudienceOptionsInput(Input):
    includeHistoricalData: Optional[bool] = Field(None, description="Default true (always for BATCH): count stored events, within the definition's windows; false: only new ones.")
    filterByExternalIds: Optional[list[str]] = Field(
        None, min_length=1, description="Members need one of these id types (default user_id, email, android.idfa, ios.idfa)."
    )
    backfillEventDataDays: Optional[int] = Field(None, ge=1, le=36_500, description="Days of history (default all); with includeHistoricalData.")
    includeAnonymousUsers: Optional[bool] = Field(None, description="Older: true adds anonymous_id to filterByExternalIds.")


AudienceIdParam = resource_id("Audience id (aud_…).")
Include = Annotated[Optional[Literal["schedules"]], Field(description="'schedules' adds their schedules.")]


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
    audienceType: Annotated[AudienceType, Field(description="Members are profiles, accounts or (LINKED) entities.")],
    definition: AudienceDefinitionInput,
    name: Annotated[str, Field(min_length=1, description="The key is its snake_case: 'VIP Users' → vip_users.")],
    description: Optional[str] = None,
    enabled: Annotated[Optional[bool], Field(description="Default true.")] = None,
    options: Optional[AudienceOptionsInput] = None,
) -> AudienceOutput:
    """Create an audience from a CQL condition, e.g. {"query": "event('Order Completed').within(30
    days).count() >= 3"}. A mistake is reported with its line, column and what was expected; a
    trait('<key>') nobody has is accepted and named in `warnings`. The key (usable as trait('<key>')
    elsewhere) is the name's snake_case and never changes. With includeHistoricalData (default) stored
    events count, within the definition's windows. Returns {audience} (aud_…); next:
    segment_audiences_add_destination_to_audience. CQL: resource segment-audiences://reference/cql."""
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
    return _with_warnings(store, row, created=True)


def get_audience(
    store: Store,
    spaceId: SpaceId,
    id: AudienceIdParam,
    include: Include = None,
    explain: Annotated[Optional[bool], Field(description="Extra: true adds `explain` (SQL, cadence and why, keys and events read).")] = None,
) -> GetAudienceOutput:
    """Get one audience: definition, key, status (Preparing until first computed, then Live, or Failed),
    size.count, options, computeCadence (REALTIME or BATCH) and, with include='schedules', its
    schedules."""
    row = audiences.get_audience(store, spaceId, id)
    schedules = audiences.schedules_by_audience(store, [row.id])[row.id] if include else None
    state = runs.states(store, [row.id]).get(row.id)
    explanation = None
    if explain:
        computation = computations.for_audience(row)
        explanation = shapes.explain(*computations.explain(store, computation), computation)
    return GetAudienceOutput(audience=shapes.audience_with_lookback(row, schedules, state, explanation))


def list_audiences(
    store: Store,
    spaceId: SpaceId,
    search: Optional[AudienceSearchInput] = None,
    pagination: Optional[AudiencesPaginationInput] = None,
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
    definition: Optional[AudienceDefinitionUpdate] = None,
    description: Optional[str] = None,
    enabled: Annotated[Optional[bool], Field(description="false stops computing (Disabled); true resumes.")] = None,
    name: Annotated[Optional[str], Field(min_length=1, description="The key does not change.")] = None,
    options: Optional[AudienceOptionsInput] = None,
) -> AudienceOutput:
    """Update an audience; only the fields given change. A new definition is checked as on create and
    may not switch between REALTIME and BATCH. enabled: false stops computing and sending; true
    recomputes at once and sends only the differences since it was disabled. Returns {audience} (and
    `warnings`)."""
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
    """Remove an audience: it stops computing and leaves reads; its key stays reserved. Refused
    (conflict) while others read it with trait('<its key>'): remove or edit those first. Returns
    {status: SUCCESS}."""
    audiences.remove_audience(store, spaceId, id)
    return Status(status="SUCCESS")


def list_audience_consumers_from_space_and_audience(
    store: Store,
    spaceId: SpaceId,
    id: AudienceIdParam,
    pagination: Optional[PaginationInput] = None,
    search: Optional[AudienceSearchInput] = None,
    sort: Optional[ConsumersSortInput] = None,
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


def _with_warnings(store: Store, row, *, created: bool = False) -> AudienceOutput:
    warnings = definitions.definition_warnings(store, row.space_id, row.query, kind="audience",
                                               audience_type=row.audience_type)
    if created:
        warnings += definitions.name_warnings(store, row.space_id, row.id, row.name, row.key)
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
