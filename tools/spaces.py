"""Space tools: list and read the spaces (Engage environments) of this server."""

from typing import Optional

from pydantic import BaseModel

from store.catalog import spaces
from store.db.store import Store
from tools import shapes
from tools.models import PaginationInput, PaginationOutput, Space, SpaceId
from tools.registry import read

class ListSpacesOutput(BaseModel):
    spaces: list[Space]
    pagination: PaginationOutput


class GetSpaceOutput(BaseModel):
    space: Optional[Space]


def list_spaces(
    store: Store, pagination: Optional[PaginationInput] = None
) -> ListSpacesOutput:
    """List the spaces (Engage environments), oldest first: {spaces: [{id: spa_…, slug, name}],
    pagination}. Every other tool takes a spaceId; start here. Pass pagination.next as pagination.cursor
    for the next page."""
    page = spaces.list_spaces(store, shapes.page_request(pagination))
    return ListSpacesOutput(spaces=[shapes.space(row) for row in page.items], pagination=shapes.pagination(page))


def get_space(store: Store, spaceId: SpaceId) -> GetSpaceOutput:
    """Get one space by id: {space: {id, slug, name}}. Use segment_audiences_list_spaces to find ids."""
    return GetSpaceOutput(space=shapes.space(spaces.get_space(store, spaceId)))


TOOLS = [
    read("list_spaces", "List spaces", list_spaces),
    read("get_space", "Get space", get_space),
]
