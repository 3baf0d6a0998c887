"""Space filter tools: FQL conditions that drop matching events before identity resolution."""

from typing import Annotated, Optional

from pydantic import BaseModel, Field

from store.catalog import filters as filter_store
from store.db.models import SpaceFilter
from store.db.store import Store
from tools.models import Input, Output, resource_id
from tools.registry import read, remove, write
from tools.shapes import iso

FilterId = resource_id("Filter id (flt_…).")
IntegrationId = Annotated[str, Field(min_length=1, max_length=255, description="Space id (spa_…).")]
IF_HELP = (
    "FQL, e.g. event = 'Button Clicked', match(context.library.version, '1.*'), "
    "'dark-mode' in properties.features, or all."
)


class Filter(Output):
    id: str
    workspaceId: str
    integrationId: str
    enabled: bool
    name: str
    description: Optional[str] = None
    if_: str = Field(alias="if")
    drop: bool
    createdAt: str
    updatedAt: str
    droppedCount: int = Field(description="Events this filter has dropped (an extension of the Public API).")
    lastDroppedAt: Optional[str] = None


class FilterOutput(BaseModel):
    filter: Filter


class FiltersPaginationInput(Input):
    cursor: Optional[int] = Field(None, ge=0, description="pagination.next of the last page.")
    count: int = Field(10, ge=1, le=10)


class FiltersPaginationOutput(Output):
    current: int
    next: Optional[int] = None
    totalEntries: int


class FiltersOutput(BaseModel):
    filters: list[Filter]
    pagination: FiltersPaginationOutput


class DeletedOutput(BaseModel):
    deleted: bool


def create_filter_for_space(
    store: Store,
    integrationId: IntegrationId,
    name: Annotated[str, Field(min_length=1, max_length=255)],
    if_: Annotated[str, Field(alias="if", min_length=1, max_length=10_000, description=IF_HELP)],
    enabled: Annotated[Optional[bool], Field(description="Default true.")] = None,
    description: Annotated[Optional[str], Field(max_length=1000)] = None,
    drop: Annotated[Optional[bool], Field(description="Default true.")] = None,
) -> FilterOutput:
    """Create a space filter: enabled filters with drop true discard incoming events matching `if`
    before identity resolution, and count them. An invalid FQL `if` is refused with its line and column.
    At most 10 per space. Returns {filter}. FQL: resource segment-audiences://reference/fql."""
    row = filter_store.create_filter(store, integrationId, name, if_, enabled=enabled, description=description, drop=drop)
    return FilterOutput(filter=_filter(store, row))


def get_filter_by_id(store: Store, id: FilterId) -> FilterOutput:
    """Get a space filter by id, with how many events it has dropped."""
    return FilterOutput(filter=_filter(store, filter_store.get_filter(store, id)))


def list_filters_for_space(
    store: Store,
    integrationId: IntegrationId,
    pagination: Optional[FiltersPaginationInput] = None,
) -> FiltersOutput:
    """List a space's filters, oldest first, by offset pages of at most 10."""
    page = pagination or FiltersPaginationInput()
    offset = page.cursor or 0
    rows, total = filter_store.list_filters(store, integrationId, offset, page.count)
    following = offset + len(rows)
    return FiltersOutput(
        filters=[_filter(store, row) for row in rows],
        pagination=FiltersPaginationOutput(current=offset, next=following if following < total else None, totalEntries=total),
    )


def update_filter_by_id(
    store: Store,
    id: FilterId,
    integrationId: Annotated[Optional[str], Field(max_length=255, description="Cannot change.")] = None,
    name: Annotated[Optional[str], Field(min_length=1, max_length=255)] = None,
    if_: Annotated[Optional[str], Field(alias="if", min_length=1, max_length=10_000, description=IF_HELP)] = None,
    enabled: Optional[bool] = None,
    description: Annotated[Optional[str], Field(max_length=1000)] = None,
    drop: Optional[bool] = None,
) -> FilterOutput:
    """Change a space filter; fields not given keep their values, and a new `if` is checked like on
    create. Returns {filter}."""
    changes = {"name": name, "condition": if_, "enabled": enabled, "description": description, "drop": drop}
    row = filter_store.update_filter(store, id, integrationId, {k: v for k, v in changes.items() if v is not None})
    return FilterOutput(filter=_filter(store, row))


def delete_filter_by_id(store: Store, id: FilterId) -> DeletedOutput:
    """Delete a space filter; events it would have dropped flow in again. Returns {deleted: true}."""
    filter_store.delete_filter(store, id)
    return DeletedOutput(deleted=True)


def _filter(store: Store, row: SpaceFilter) -> Filter:
    return Filter.model_validate(
        {
            "id": row.id,
            "workspaceId": store.workspace_id,
            "integrationId": row.space_id,
            "enabled": row.enabled,
            "name": row.name,
            "description": row.description,
            "if": row.condition,
            "drop": row.drop,
            "createdAt": iso(row.created_at),
            "updatedAt": iso(row.updated_at),
            "droppedCount": row.dropped_count,
            "lastDroppedAt": iso(row.last_dropped_at),
        }
    )


TOOLS = [
    write("create_filter_for_space", "Create space filter", create_filter_for_space),
    read("get_filter_by_id", "Get space filter", get_filter_by_id),
    read("list_filters_for_space", "List space filters", list_filters_for_space),
    write("update_filter_by_id", "Update space filter", update_filter_by_id, idempotent=True),
    remove("delete_filter_by_id", "Delete space filter", delete_filter_by_id),
]
