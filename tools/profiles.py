"""Profile tools (additions): read one profile, as an agent checks what its audiences and computed
traits made of the data, without the Profile API's access token.

A profile is named as the Profile API names it: `type:value` of one of its identifiers (`user_id:u1`,
`email:a@b.c`, `anonymous_id:…`, `group_id:…` for accounts) or its id (`use_…`, `acc_…`). Lookups
follow merges: an identifier of a merged profile finds the profile it was merged into.
"""

import base64
import binascii
import json
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, Field

from backend.clock import iso_ms, to_ms
from backend.tracking.messages import MessageError, parse_time
from store.catalog import spaces
from store.db.errors import InputValidation, NotFound
from store.db.models import Event, Identifier, Profile
from store.db.store import Store
from store.profiles import profiles
from tools.models import Output, SpaceId
from tools.registry import read

TRAITS_SHOWN = 500
EVENTS_PAGE = 20
ProfileReference = Annotated[str, Field(min_length=1, max_length=1000, description=(
    "type:value of an identifier (user_id:u1, email:a@b.c) or the profile id (use_…)."))]
Collection = Annotated[Literal["users", "accounts"], Field(description="accounts for group_id:… or acc_….")]


class ProfileTrait(Output):
    key: str
    value: Any = None
    traitClass: Literal["custom", "audience", "computed_trait"] = Field(
        description="custom: set by Identify/Group; audience or computed_trait: written by its runs.")
    updatedAt: str


class ExternalId(Output):
    type: str
    id: str
    sourceId: str
    createdAt: str


class ProfileAudience(Output):
    id: str
    key: str
    name: str


class LinkedProfile(Output):
    id: str
    collection: str
    externalIds: list[ExternalId]


class ProfileDetails(Output):
    id: str
    collection: str
    createdAt: str
    updatedAt: str
    traits: list[ProfileTrait]
    moreTraits: bool = Field(description=f"True when the profile has more than the {TRAITS_SHOWN} traits shown.")
    externalIds: list[ExternalId]
    audiences: list[ProfileAudience] = Field(description="The audiences it is a member of now.")
    links: list[LinkedProfile] = Field(description="Its accounts (for a user) or users (for an account).")


class GetProfileOutput(BaseModel):
    profile: ProfileDetails


class ProfileEvent(Output):
    type: str
    event: Optional[str] = None
    messageId: str
    timestamp: str
    properties: dict
    context: dict
    traits: Optional[dict] = None
    externalIds: list


class ForwardPagination(Output):
    current: str
    next: Optional[str] = None


class ListProfileEventsOutput(BaseModel):
    events: list[ProfileEvent]
    pagination: ForwardPagination


def get_profile(store: Store, spaceId: SpaceId, identifier: ProfileReference,
                collection: Collection = "users") -> GetProfileOutput:
    """(Not in the Public API.) Read one profile, to check what a definition sees: {profile: {id,
    traits: [{key, value, traitClass}], externalIds, audiences (member of now), links}}."""
    profile = _profile(store, spaceId, collection, identifier)
    page = profiles.traits(store, profile.id, classes=profiles.TRAIT_CLASSES, include=None, limit=TRAITS_SHOWN,
                           after=None)
    facts = profiles.metadata(store, profile)
    return GetProfileOutput(profile=ProfileDetails(
        id=profile.id, collection=profile.collection, createdAt=iso_ms(facts.created_at_ms),
        updatedAt=iso_ms(facts.updated_at_ms),
        traits=[ProfileTrait(key=row.key, value=row.value, traitClass=row.trait_class, updatedAt=iso_ms(row.updated_at_ms))
                for row in page.rows],
        moreTraits=page.next is not None,
        externalIds=_external_ids(profiles.external_ids(store, profile.id, include=None, limit=1000, offset=0).rows),
        audiences=[ProfileAudience(id=row.id, key=row.key, name=row.name)
                   for row in profiles.audiences_of(store, profile)],
        links=[LinkedProfile(id=other.id, collection=other.collection, externalIds=_external_ids(identifiers))
               for other, identifiers in profiles.linked(store, profile, 100)]))


def list_profile_events(
    store: Store, spaceId: SpaceId, identifier: ProfileReference, collection: Collection = "users",
    eventNames: Annotated[Optional[list[Annotated[str, Field(min_length=1, max_length=1000)]]], Field(
        max_length=100, description="Only these Track event names.")] = None,
    start: Annotated[Optional[str], Field(description="ISO-8601, inclusive.")] = None,
    end: Annotated[Optional[str], Field(description="ISO-8601, inclusive.")] = None,
    count: Annotated[int, Field(ge=1, le=100)] = EVENTS_PAGE,
    cursor: Annotated[Optional[str], Field(max_length=200, description="pagination.next.")] = None,
) -> ListProfileEventsOutput:
    """(Not in the Public API.) A profile's events, newest first, as the Profile API shows them:
    {events: [{type, event, timestamp, properties, context, traits}], pagination}."""
    profile = _profile(store, spaceId, collection, identifier)
    page = profiles.events(store, profile.id, start_ms=_time(start, "start"), end_ms=_time(end, "end"),
                           include=eventNames, exclude=None, limit=count, descending=True, after=_after(cursor))
    return ListProfileEventsOutput(
        events=[_event(row) for row in page.rows],
        pagination=ForwardPagination(current=cursor or "MA==", next=_encoded(page.next) if page.next else None))


def _profile(store: Store, space_id: str, collection: str, reference: str) -> Profile:
    spaces.get_space(store, space_id)
    found = profiles.find_profile(store, space_id, collection, reference)
    if found is None:
        raise NotFound("profile", reference, field="identifier", scope=f"among the {collection} of space '{space_id}'")
    return found


def _external_ids(rows: list[Identifier]) -> list[ExternalId]:
    return [ExternalId(type=row.type, id=row.value, sourceId=row.source_id, createdAt=iso_ms(row.created_at_ms))
            for row in rows]


def _event(row: Event) -> ProfileEvent:
    return ProfileEvent(type=row.type, event=row.event, messageId=row.message_id, timestamp=iso_ms(row.timestamp_ms),
                        properties=json.loads(row.properties), context=json.loads(row.context),
                        traits=None if row.traits is None else json.loads(row.traits),
                        externalIds=json.loads(row.external_ids))


def _time(text: str | None, field: str) -> int | None:
    try:
        moment = parse_time(text, field)
    except MessageError as error:
        raise InputValidation(f"{error}.", field=field) from None
    return None if moment is None else to_ms(moment)


def _encoded(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode()


def _after(cursor: str | None) -> tuple[int, int] | None:
    """The (timestamp, row id) a cursor of this tool holds."""
    if cursor is None:
        return None
    try:
        at, _, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("::")
        position = int(at), int(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        position = None
    if position is None or not all(-2**63 <= number < 2**63 for number in position):
        raise InputValidation("cursor is not a pagination.next this tool returned.", field="cursor")
    return position


TOOLS = [
    read("get_profile", "Get profile", get_profile),
    read("list_profile_events", "List profile events", list_profile_events),
]
