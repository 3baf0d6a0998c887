"""Priority list tools (additions to the Public API): ranked audiences whose connections send each
profile only as a member of the highest-ranked audience it is in (`store.catalog.priority_lists`)."""

from typing import Annotated, Optional

from pydantic import BaseModel, Field

from backend.clock import iso
from store.catalog import priority_lists
from store.db.store import Store
from tools.models import Output, SpaceId, Status, resource_id
from tools.registry import read, remove, write

ListId = resource_id("Priority list id (pri_…).")
Ranking = Annotated[list[str], Field(min_length=2, max_length=20, description="Audience ids (aud_…), highest first.")]


class RankedAudience(Output):
    audienceId: str
    rank: int = Field(description="0 is the highest.")
    delivered: Optional[int] = Field(None, description="Members its connections hold: those in no higher audience (get only).")


class PriorityList(Output):
    id: str
    name: str
    audiences: list[RankedAudience]
    createdAt: str
    updatedAt: str


class PriorityListOutput(BaseModel):
    priorityList: PriorityList


class UpdatedPriorityListOutput(BaseModel):
    priorityList: PriorityList
    changed: int = Field(description="Exits and entries the new ranking sent.")


def create_priority_list(store: Store, spaceId: SpaceId, name: Annotated[str, Field(min_length=1, max_length=255)],
                         audienceIds: Ranking) -> PriorityListOutput:
    """(Not in the Public API.) Rank 2 to 20 USERS (or ACCOUNTS) audiences: through their
    connections a profile is sent only as a member of the highest-ranked one it is in, decided at
    each run (moving sends the exits and entries). Members in a higher one are sent an exit now."""
    return PriorityListOutput(priorityList=_shape(priority_lists.create_list(store, spaceId, name, audienceIds)))


def get_priority_list(store: Store, spaceId: SpaceId, id: ListId) -> PriorityListOutput:
    """(Not in the Public API.) A priority list: its audiences, highest first, each with the members its connections hold."""
    ranked, delivered = priority_lists.get_list(store, spaceId, id)
    return PriorityListOutput(priorityList=_shape(ranked, delivered))


def update_priority_list(store: Store, spaceId: SpaceId, id: ListId,
                         name: Annotated[Optional[str], Field(None, min_length=1, max_length=255)] = None,
                         audienceIds: Optional[Ranking] = None) -> UpdatedPriorityListOutput:
    """(Not in the Public API.) Rename or reorder a priority list (audienceIds may add or drop
    audiences); connections are sent the exits and entries the new ranking makes."""
    ranked, changed = priority_lists.update_list(store, spaceId, id, name, audienceIds)
    return UpdatedPriorityListOutput(priorityList=_shape(ranked), changed=changed)


def remove_priority_list(store: Store, spaceId: SpaceId, id: ListId) -> Status:
    """(Not in the Public API.) Remove a priority list: every audience's connections then hold all its
    members (the entries are sent). Returns {status: SUCCESS}."""
    priority_lists.remove_list(store, spaceId, id)
    return Status(status="SUCCESS")


def _shape(ranked: priority_lists.RankedList, delivered: dict[str, int] | None = None) -> PriorityList:
    row = ranked.row
    return PriorityList(id=row.id, name=row.name, createdAt=iso(row.created_at), updatedAt=iso(row.updated_at),
                        audiences=[RankedAudience(audienceId=a, rank=rank, delivered=None if delivered is None else delivered[a])
                                   for rank, a in enumerate(ranked.audience_ids)])


TOOLS = [
    write("create_priority_list", "Create priority list", create_priority_list),
    read("get_priority_list", "Get priority list", get_priority_list),
    write("update_priority_list", "Update priority list", update_priority_list, idempotent=True),
    remove("remove_priority_list", "Remove priority list", remove_priority_list),
]
