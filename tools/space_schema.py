"""Space Schema tools (Segment's Space Schema API, alpha): what a definition can reference in a space,
the events, their properties, the traits and their values, so an agent checks a name before it
writes `event('…')` or `trait('…')`. Events and traits come from what the space has received
(`store.profiles.space_schema`); entity paths and entity properties from its Data Graph.

Additions to Segment's shapes: `count` (messages received that carried the item) and `dataType`
(the JSON type seen: STRING, NUMBER, BOOLEAN, ARRAY, OBJECT, or MIXED when it varied).
"""

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, Field

from backend.clock import iso_ms
from store.catalog import data_graphs, spaces
from store.db.pagination import Page
from store.db.store import Store
from store.profiles import space_schema
from tools import shapes
from tools.models import Output, PaginationInput, PaginationOutput, SpaceId
from tools.registry import read

Name = Annotated[str, Field(min_length=1, max_length=1000)]
Search = Annotated[Optional[str], Field(max_length=1000, description="Case-insensitive substring of the name.")]
SortDir = Literal["asc", "desc"]
Collection = Annotated[Literal["accounts", "users"], Field(description="User traits or account (Group) traits.")]
IncludeSamples = Annotated[bool, Field(description="Attach each item's most frequent values as samples.")]
SamplesCount = Annotated[int, Field(ge=1, le=100, description="Most samples per item.")]


class ForwardOnlyPagination(Output):
    current: str
    next: Optional[str] = None
    totalEntries: Optional[int] = None


class EventAlpha(Output):
    name: str
    type: Literal["ALIAS", "GROUP", "IDENTIFY", "PAGE", "SCREEN", "TRACK"]
    lastSeenAt: str
    count: int


class ListEventsOutput(BaseModel):
    events: list[EventAlpha]
    pagination: PaginationOutput


class EventPropertyAlpha(Output):
    name: str = Field(description="Nested names joined with dots, as property() and context() take them.")
    type: Literal["CONTEXT", "PROPERTY"]
    eventName: str
    lastSeenAt: str
    dataType: str
    count: int
    samples: Optional[list[str]] = None


class ListPropertiesFromEventOutput(BaseModel):
    eventProperties: list[EventPropertyAlpha]
    pagination: PaginationOutput


class SampleValuesOutput(BaseModel):
    sampleValues: list[str] = Field(description="Most frequent first, at most 1,000.")


class TraitAlpha(Output):
    trait: str
    type: Literal["AUDIENCE", "COMPUTED", "CUSTOM", "SQL"]
    lastSeenAt: str
    dataType: Optional[str] = None
    count: Optional[int] = Field(None, description="CUSTOM only: the calls that set it.")
    samples: Optional[list[str]] = None


class ListTraitsOutput(BaseModel):
    traits: list[TraitAlpha]
    pagination: ForwardOnlyPagination


class EntityPathAlpha(Output):
    id: str
    entityName: str
    pathName: str
    entitySlug: str
    relationshipSlugs: list[str]
    childRelationshipSlugs: list[str]
    parentRelationshipSlugPath: str


class ListEntityPathsOutput(BaseModel):
    entityPaths: list[EntityPathAlpha]
    pagination: PaginationOutput


class EntityPropertyAlpha(Output):
    name: str
    primaryKey: bool
    dataType: str
    samples: Optional[list[str]] = None


class ListPropertiesFromEntityOutput(BaseModel):
    entityProperties: list[EntityPropertyAlpha]
    pagination: ForwardOnlyPagination


def list_events(
    store: Store, spaceId: SpaceId, pagination: Optional[PaginationInput] = None,
    sortBy: Literal["lastSeenAt", "name"] = "lastSeenAt", sortDir: SortDir = "desc", search: Search = None,
) -> ListEventsOutput:
    """List the events the space has received: Track events by name, Page and Screen calls as Page
    Viewed / Screen Viewed, Identify, Group and Alias calls as such."""
    spaces.get_space(store, spaceId)
    page = space_schema.list_events(store, spaceId, space_schema.Listing(search, sortBy, sortDir == "desc"),
                                    shapes.page_request(pagination))
    return ListEventsOutput(events=[EventAlpha(name=row.name, type=row.type, lastSeenAt=iso_ms(row.last_seen_ms),
                                               count=row.count) for row in page.items],
                            pagination=shapes.pagination(page))


def list_properties_from_event(
    store: Store, spaceId: SpaceId, eventName: Name, pagination: Optional[PaginationInput] = None,
    sortBy: Literal["lastSeenAt", "name"] = "lastSeenAt", sortDir: SortDir = "desc", search: Search = None,
    includeSampleValues: IncludeSamples = False, samplesCount: SamplesCount = 20,
) -> ListPropertiesFromEventOutput:
    """List the properties (PROPERTY) and context fields (CONTEXT) seen on one event."""
    spaces.get_space(store, spaceId)
    page = space_schema.event_properties(store, spaceId, eventName, space_schema.Listing(search, sortBy, sortDir == "desc"),
                                         shapes.page_request(pagination), samplesCount if includeSampleValues else None)
    return ListPropertiesFromEventOutput(eventProperties=[EventPropertyAlpha(
        name=entry.name, type=entry.kind, eventName=entry.event, lastSeenAt=iso_ms(entry.last_seen_ms),
        dataType=entry.data_type, count=entry.count, samples=entry.samples) for entry in page.items],
        pagination=shapes.pagination(page))


def list_sample_values_from_event_property(
    store: Store, spaceId: SpaceId, eventName: Name, propertyName: Name, propertyType: Literal["CONTEXT", "PROPERTY"],
) -> SampleValuesOutput:
    """List the values one property (PROPERTY) or context field (CONTEXT) of an event had, most
    frequent first."""
    spaces.get_space(store, spaceId)
    return SampleValuesOutput(sampleValues=space_schema.event_property_samples(
        store, spaceId, eventName, propertyName, propertyType))


def list_traits(
    store: Store, spaceId: SpaceId, pagination: Optional[PaginationInput] = None,
    sortBy: Literal["lastSeenAt", "trait"] = "trait", sortDir: SortDir = "asc", search: Search = None,
    collection: Collection = "users", includeSampleValues: IncludeSamples = False, samplesCount: SamplesCount = 20,
) -> ListTraitsOutput:
    """List the traits profiles have: CUSTOM (set by Identify or Group calls), AUDIENCE and COMPUTED
    (the keys of the space's audiences and computed traits). Forward paging only."""
    spaces.get_space(store, spaceId)
    page = space_schema.list_traits(store, spaceId, collection, space_schema.Listing(search, sortBy, sortDir == "desc"),
                                    shapes.page_request(pagination), samplesCount if includeSampleValues else None)
    return ListTraitsOutput(traits=[TraitAlpha(
        trait=entry.key, type=entry.type, lastSeenAt=iso_ms(entry.last_seen_ms), dataType=entry.data_type,
        count=entry.count, samples=entry.samples) for entry in page.items], pagination=_forward(page))


def list_sample_values_from_trait(store: Store, spaceId: SpaceId, traitKey: Name,
                                  collection: Collection = "users") -> SampleValuesOutput:
    """List the values one trait has, most frequent first."""
    spaces.get_space(store, spaceId)
    return SampleValuesOutput(sampleValues=space_schema.trait_samples(store, spaceId, traitKey, collection))


def list_entity_paths(store: Store, spaceId: SpaceId, pagination: Optional[PaginationInput] = None,
                      search: Search = None) -> ListEntityPathsOutput:
    """List the entities of the space's Data Graph and the relationship paths to them (empty while the
    space has no Data Graph)."""
    spaces.get_space(store, spaceId)
    page = data_graphs.entity_paths(store, spaceId, search, shapes.page_request(pagination))
    return ListEntityPathsOutput(entityPaths=[EntityPathAlpha(
        id=path.id, entityName=path.entity_name, pathName=path.path_name, entitySlug=path.entity_slug,
        relationshipSlugs=path.relationship_slugs, childRelationshipSlugs=path.child_relationship_slugs,
        parentRelationshipSlugPath=path.parent_relationship_slug_path) for path in page.items],
        pagination=shapes.pagination(page))


def list_properties_from_entity(
    store: Store, spaceId: SpaceId, entitySlug: Name, pagination: Optional[PaginationInput] = None,
    includeSampleValues: IncludeSamples = False, samplesCount: SamplesCount = 20,
) -> ListPropertiesFromEntityOutput:
    """List the columns of one Data Graph entity (its warehouse table), with dataType NUMBER, STRING,
    BOOLEAN, DATE, TIMESTAMP or OTHER. Forward paging only."""
    spaces.get_space(store, spaceId)
    page = data_graphs.entity_columns(store, spaceId, entitySlug, shapes.page_request(pagination),
                                      samplesCount if includeSampleValues else None)
    return ListPropertiesFromEntityOutput(entityProperties=[EntityPropertyAlpha(
        name=column.name, primaryKey=column.primary_key, dataType=column.data_type, samples=column.samples)
        for column in page.items], pagination=_forward(page))


def list_sample_values_from_entity_property(store: Store, spaceId: SpaceId, entitySlug: Name,
                                            propertyName: Name) -> SampleValuesOutput:
    """List the most frequent values of one column of a Data Graph entity."""
    spaces.get_space(store, spaceId)
    return SampleValuesOutput(sampleValues=data_graphs.entity_samples(store, spaceId, entitySlug, propertyName))


def _forward(page: Page) -> ForwardOnlyPagination:
    return ForwardOnlyPagination(current=page.current, next=page.next, totalEntries=page.total)


TOOLS = [
    read("list_events", "List events", list_events),
    read("list_properties_from_event", "List properties from event", list_properties_from_event),
    read("list_sample_values_from_event_property", "List sample values from event property",
         list_sample_values_from_event_property),
    read("list_traits", "List traits", list_traits),
    read("list_sample_values_from_trait", "List sample values from trait", list_sample_values_from_trait),
    read("list_entity_paths", "List entity paths", list_entity_paths),
    read("list_properties_from_entity", "List properties from entity", list_properties_from_entity),
    read("list_sample_values_from_entity_property", "List sample values from entity property",
         list_sample_values_from_entity_property),
]
