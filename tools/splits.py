"""Experiment split tools (additions to the Public API): an audience's members in deterministic
groups, some of them holdouts, which a connection may target one at a time (`store.catalog.splits`)."""

from typing import Annotated, Optional

from pydantic import BaseModel, Field

from backend.clock import iso
from backend.splits import Group
from store.catalog import splits
from store.db.models import AudienceSplit
from store.db.store import Store
from tools.models import Input, Output, SpaceId, Status, resource_id
from tools.registry import read, remove, write

AudienceIdParam = resource_id("Audience id (aud_…).")


class GroupInput(Input):
    name: str = Field(min_length=1, max_length=100)
    percentage: int = Field(ge=0, le=100, description="All groups' sum to 100.")
    holdout: bool = False


Groups = Annotated[list[GroupInput], Field(min_length=2, max_length=10, description=(
    "In bucket order: hash(salt, profile id) mod 100 falls in one group's range."))]


class SplitGroup(Output):
    name: str
    percentage: int
    holdout: bool
    members: Optional[int] = Field(None, description="Current members in the group (get only).")


class Split(Output):
    id: str
    audienceId: str
    salt: str
    groups: list[SplitGroup]
    createdAt: str
    updatedAt: str


class SplitOutput(BaseModel):
    audienceSplit: Split


class UpdatedSplitOutput(BaseModel):
    audienceSplit: Split
    moved: int = Field(description="Members whose group changed.")


def create_audience_split(
    store: Store,
    spaceId: SpaceId,
    audienceId: AudienceIdParam,
    groups: Groups,
    salt: Annotated[Optional[str], Field(None, min_length=1, max_length=255,
                                         description="Default the split's id.")] = None,
) -> SplitOutput:
    """(Not in the Public API.) Split an audience's members into deterministic experiment groups
    (never rebalanced by churn; kept per stay, so size history and overlap answer per group).
    Holdouts are sent nowhere (current ones get an exit). A connection targets one group with
    connectionSettings.splitGroup; events carry context.personas.split_group."""
    row = splits.create_split(store, spaceId, audienceId, _groups(groups), salt)
    return SplitOutput(audienceSplit=_shape(row))


def get_audience_split(store: Store, spaceId: SpaceId, audienceId: AudienceIdParam) -> SplitOutput:
    """(Not in the Public API.) An audience's split: salt, groups in bucket order with their current members."""
    row, sizes = splits.get_split(store, spaceId, audienceId)
    return SplitOutput(audienceSplit=_shape(row, sizes))


def update_audience_split(store: Store, spaceId: SpaceId, audienceId: AudienceIdParam,
                          groups: Groups) -> UpdatedSplitOutput:
    """(Not in the Public API.) Replace a split's groups (the salt stays). Only members whose bucket
    changed group move (a new stay each; connections get the exits and entries). Groups connections
    target must stay."""
    row, moved = splits.update_split(store, spaceId, audienceId, _groups(groups))
    return UpdatedSplitOutput(audienceSplit=_shape(row), moved=moved)


def remove_audience_split(store: Store, spaceId: SpaceId, audienceId: AudienceIdParam) -> Status:
    """(Not in the Public API.) Remove an audience's split (holdouts get an entry); refused while a
    connection targets a group. Returns {status: SUCCESS}."""
    splits.remove_split(store, spaceId, audienceId)
    return Status(status="SUCCESS")


def _groups(groups: list[GroupInput]) -> list[Group]:
    return [Group(group.name, group.percentage, group.holdout) for group in groups]


def _shape(row: AudienceSplit, sizes: dict[str, int] | None = None) -> Split:
    return Split(id=row.id, audienceId=row.audience_id, salt=row.salt,
                 groups=[SplitGroup(name=g.name, percentage=g.percentage, holdout=g.holdout,
                                    members=None if sizes is None else sizes[g.name]) for g in splits.groups_of(row)],
                 createdAt=iso(row.created_at), updatedAt=iso(row.updated_at))


TOOLS = [
    write("create_audience_split", "Create audience split", create_audience_split),
    read("get_audience_split", "Get audience split", get_audience_split),
    write("update_audience_split", "Update audience split", update_audience_split, idempotent=True),
    remove("remove_audience_split", "Remove audience split", remove_audience_split),
]
