"""The Segment events an outbox row is delivered as (`reference/engine-semantics.md` §4.2–4.5).

An entry or exit becomes Identify `traits.<key>: true|false` or Track `Audience Entered`/`Audience
Exited` with `properties.audience_key` and `properties.<key>`, carrying `context.personas` and
`integrations: {"All": false, <destination>: true}`. Personalization traits are added under their
mapped names (Identify traits, Track properties).

Which identifiers are sent follows the connection's ID sync configuration: per external id type,
`first` sends the oldest value, `last` the newest, `all` every value; one event goes out per
combination of the chosen values. Exits ignore the strategies and send every combination of the
configured types. `user_id` and `anonymous_id` become `userId`/`anonymousId`; other types go to
`traits` (Identify) or `context.traits` (Track) under `mapTo` or their own name. A profile with
neither chosen is sent with its newest anonymous id, or else its profile id, as `anonymousId`.
At most MAX_EVENTS_PER_ROW combinations are sent, in identifier order, so one profile with many
values cannot flood a destination.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson
from sqlmodel import Session, select

from backend.clock import from_ms, iso
from store.bulk import select_in
from store import external_ids
from store.external_ids import ExternalIds
from store.models import OutboxMessage, Trait
from store.routes import Route

MAX_EVENTS_PER_ROW = 20
TOP_LEVEL = {"user_id": "userId", "anonymous_id": "anonymousId"}
EVENT_NAMES = {"entered": "Audience Entered", "exited": "Audience Exited"}



def build(session: Session, rows: list[OutboxMessage], routes: dict[str, Route]) -> dict[int, list[dict[str, Any]]]:
    """The events of each row (by outbox id), for rows whose target still exists."""
    profile_ids = sorted({row.profile_id for row in rows})
    identifiers = external_ids.by_profile(session, profile_ids)
    wanted_traits = {trait for route in routes.values() for trait in _personal_traits(route)}
    traits = _traits(session, profile_ids, wanted_traits) if wanted_traits else {}
    return {row.id: events(row, routes[row.target_id], identifiers.get(row.profile_id, {}),
                           traits.get(row.profile_id, {}))
            for row in rows if row.target_id in routes}


def events(row: OutboxMessage, route: Route, ids: ExternalIds, traits: dict[str, Any]) -> list[dict[str, Any]]:
    """The events for one row: per identity combination, one event per call type of the route."""
    member = row.transition == "entered"
    key = route.audience.key
    personas = {
        "computation_class": "audience",
        "computation_id": route.audience.id,
        "computation_key": key,
        "namespace": route.audience.space_id,
        "space_id": route.audience.space_id,
    }
    if route.activation is not None:
        personas["event_emitter_id"] = route.activation.id
    personal = _personalized(route, traits)
    found = []
    for combination in combinations(ids, route.connection.id_sync_configuration, exit_=not member):
        for call in route.call_types:
            event: dict[str, Any] = {"type": call, "timestamp": iso(from_ms(row.created_at_ms))}
            id_traits = _place_identifiers(event, combination, ids, row.profile_id)
            context: dict[str, Any] = {"personas": dict(personas)}
            if call == "identify":
                event["traits"] = {**personal, **id_traits, key: member}
            else:
                event["event"] = EVENT_NAMES[row.transition]
                event["properties"] = {**personal, "audience_key": key, key: member}
                if id_traits:
                    context["traits"] = id_traits
            event["context"] = context
            event["integrations"] = {"All": False, route.entry.name: True}
            found.append(event)
    for index, event in enumerate(found):
        event["messageId"] = row.message_id if len(found) == 1 else str(uuid.uuid5(uuid.UUID(row.message_id), str(index)))
    return found


def combinations(ids: ExternalIds, config: list[dict[str, Any]], *, exit_: bool) -> list[list[tuple[str, str, str]]]:
    """Every (type, value, sent name) combination the ID sync configuration selects."""
    choices = []
    for item in config:
        values = ids.get(item["externalId"], [])
        if not values:
            continue
        strategy = "all" if exit_ else item["strategy"]
        chosen = values[:1] if strategy == "first" else values[-1:] if strategy == "last" else values
        name = item.get("mapTo") or item["externalId"]
        choices.append([(item["externalId"], value, name) for value in chosen])
    return [list(combo) for combo in itertools.islice(itertools.product(*choices), MAX_EVENTS_PER_ROW)]


def _place_identifiers(event: dict[str, Any], combination: list[tuple[str, str, str]], ids: ExternalIds,
                       profile_id: str) -> dict[str, str]:
    id_traits = {}
    for kind, value, name in combination:
        if kind in TOP_LEVEL:
            event[TOP_LEVEL[kind]] = value
        else:
            id_traits[name] = value
    if "userId" not in event and "anonymousId" not in event:
        anonymous = ids.get("anonymous_id")
        event["anonymousId"] = anonymous[-1] if anonymous else profile_id
    return id_traits


def _personal_traits(route: Route) -> list[str]:
    if route.activation is None:
        return []
    return list((route.activation.personalization.get("profile") or {}).get("properties") or [])


def _personalized(route: Route, traits: dict[str, Any]) -> dict[str, Any]:
    mapping = ((route.activation.personalization.get("profile") or {}).get("mapping") or {}) if route.activation else {}
    return {mapping.get(name, name): traits[name] for name in _personal_traits(route) if name in traits}


def _traits(session: Session, profile_ids: list[str], keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    keys = set(keys)
    rows = select_in(
        session.connection(), "payload traits",
        lambda ids: select(Trait.profile_id, Trait.key, Trait.value).where(Trait.profile_id.in_(ids)),
        profile_ids)
    found: dict[str, dict[str, Any]] = defaultdict(dict)
    for profile_id, key, value in rows:
        if key in keys:
            found[profile_id][key] = orjson.loads(value)
    return found
