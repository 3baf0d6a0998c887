"""The Segment events an outbox row is delivered as (`reference/engine-semantics.md` §4.2–4.5).

An audience's entry or exit becomes Identify `traits.<key>: true|false` or Track `Audience Entered`/
`Audience Exited` with `properties.audience_key` and `properties.<key>`; a computed trait's new value
becomes Identify `traits.<key>: <value>` or Track `Trait Computed` with `properties.trait_key` and
`properties.<key>` (a cleared value is sent as null). Every event carries `context.personas`
(`computation_class` "audience" or "trait"; `split_group`, the profile's group, for an audience with
an experiment split), `context.library` (name and version "unknown", as on
the events Engage generates), `receivedAt` (equal to `timestamp`: the time the change was computed)
and `integrations: {"All": false, <destination>: true}`.
Personalization traits are added under their mapped names (Identify traits, Track properties). A
LINKED audience's Track events carry `properties.data_graph_entity_context` (`_entity_context`), and
its entity rows' changes go out as Track `Entity Added` / `Entity Removed` / `Entity Values Changed`
(`<key>` false for a removed row), or Identify for Audience Membership Changed.

Which identifiers are sent follows the connection's ID sync configuration: per external id type,
`first` sends the oldest value, `last` the newest, `all` every value; one event goes out per
combination of the chosen values. Exits ignore the strategies and send every combination of the
configured types. `user_id` and `anonymous_id` become `userId`/`anonymousId`; other types go to
`traits` (Identify) or `context.traits` (Track) under `mapTo` or their own name. When neither
`user_id` nor `anonymous_id` is chosen, the profile's newest user id (else its newest anonymous id)
is added as `userId` (`anonymousId`); a profile without any identifier to send gets no event. An
internal id (`use_…`, `acc_…`) is never sent. At most MAX_EVENTS_PER_ROW combinations are sent per
profile, in identifier order, so one profile with many values cannot flood a destination.

Account-level rows (an ACCOUNTS audience or computed trait) send Group once per account, with the
account's oldest `group_id` as `groupId` and the account's first linked user's id (of users linked at
the same moment, by one batch, the one seen first; else the group id
as `anonymousId`, since the Segment spec requires one), and Identify or Track once per user linked to
the account, at most MAX_ACCOUNT_USERS, each with that user's identifiers and personalization traits.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlmodel import Session, col, func, select

from backend.clock import from_ms, iso
from backend.cql import matched
from store.db.bulk import select_in
from store.db.models import Identifier, OutboxMessage, Profile, ProfileLink, Trait
from store.delivery import owners
from store.delivery.routes import Route
from store.profiles import external_ids
from store.profiles.external_ids import ExternalIds

MAX_EVENTS_PER_ROW = 20
MAX_ACCOUNT_USERS = 500
LIBRARY = {"name": "unknown", "version": "unknown"}
TOP_LEVEL = {"user_id": "userId", "anonymous_id": "anonymousId"}
EVENT_NAMES = {"entered": "Audience Entered", "exited": "Audience Exited", "changed": "Trait Computed",
               "entity_added": "Entity Added", "entity_removed": "Entity Removed",
               "entity_changed": "Entity Values Changed"}


@dataclass(frozen=True)
class Facts:
    """What the rows being built need to know about their profiles, read once for all of them."""

    ids: dict[str, ExternalIds]  # user profile → identifiers
    group_ids: dict[str, list[str]]  # account → its group_id values, oldest first
    users: dict[str, list[str]]  # account → its linked (unmerged) user profiles, oldest link first
    traits: dict[str, dict[str, Any]]  # user profile → the personalization traits it has


def build(session: Session, rows: list[OutboxMessage], routes: dict[str, Route]) -> dict[int, list[dict[str, Any]]]:
    """The events of each row (by outbox id), for rows whose target still exists."""
    rows = [row for row in rows if row.target_id in routes]
    accounts = sorted({row.profile_id for row in rows if routes[row.target_id].accounts})
    users = _linked_users(session, accounts)
    people = sorted({row.profile_id for row in rows if not routes[row.target_id].accounts}
                    | {user for linked in users.values() for user in linked})
    wanted_traits = {trait for route in routes.values() for trait in _personal_traits(route)}
    facts = Facts(
        ids=external_ids.by_profile(session, people),
        group_ids={account: ids.get("group_id", [])
                   for account, ids in external_ids.by_profile(session, accounts, collection="accounts").items()},
        users=users,
        traits=_traits(session, people, wanted_traits) if wanted_traits else {},
    )
    return {row.id: events(row, routes[row.target_id], facts) for row in rows}


def events(row: OutboxMessage, route: Route, facts: Facts) -> list[dict[str, Any]]:
    """The events for one row: Group per account, then per identity one event per call type."""
    owner = route.owner
    value: Any = (orjson.loads(row.value) if row.value is not None else None) if route.is_trait \
        else row.transition != "exited" and row.transition != "entity_removed"
    entity_context = _entity_context(row, route)
    personas = {
        "computation_class": "trait" if route.is_trait else "audience",
        "computation_id": owner.id,
        "computation_key": owner.key,
        "namespace": owner.space_id,
        "space_id": owner.space_id,
    }
    if route.activation is not None:
        personas["event_emitter_id"] = route.activation.id
    if owners.profile_type(owner) == "LINKED":
        personas["computation_run_id"] = row.run_id
    if row.split_group is not None:
        personas["split_group"] = row.split_group
    timestamp = iso(from_ms(row.created_at_ms))
    integrations = {"All": False, route.entry.name: True}

    def stamped(event: dict[str, Any], context_traits: dict[str, str]) -> dict[str, Any]:
        context = {"library": LIBRARY, "personas": personas, **({"traits": context_traits} if context_traits else {})}
        return {**event, "timestamp": timestamp, "receivedAt": timestamp, "context": context,
                "integrations": integrations}

    people = facts.users.get(row.profile_id, [])[:MAX_ACCOUNT_USERS] if route.accounts else [row.profile_id]
    found = []
    if "group" in route.call_types:
        found.extend(stamped(event, {}) for event in _group(row.profile_id, people, owner.key, value, facts))
    per_identity = [call for call in route.call_types if call != "group"]
    for person in people:
        ids = facts.ids.get(person, {})
        personal = _personalized(route, facts.traits.get(person, {}))
        for combination in combinations(ids, route.connection.id_sync_configuration, exit_=row.transition == "exited"):
            identity, id_traits = _identity(combination, ids)
            if not identity and not id_traits:
                continue
            for call in per_identity:
                event: dict[str, Any] = {"type": call, **identity}
                if call == "identify":
                    event["traits"] = {**personal, **id_traits, owner.key: value}
                else:
                    event["event"] = EVENT_NAMES[row.transition]
                    key_name = "trait_key" if route.is_trait else "audience_key"
                    event["properties"] = {**personal, key_name: owner.key, owner.key: value}
                    if entity_context is not None:
                        event["properties"]["data_graph_entity_context"] = entity_context
                found.append(stamped(event, id_traits if call == "track" else {}))
    for index, event in enumerate(found):
        event["messageId"] = row.message_id if len(found) == 1 else str(uuid.uuid5(uuid.UUID(row.message_id), str(index)))
    return found


def _entity_context(row: OutboxMessage, route: Route) -> dict[str, Any] | None:
    """A LINKED audience's `data_graph_entity_context` (`reference/data-graph.md` §3.3): for an entry or
    exit, the profile's matched rows by relationship; for an entity row's change, `__entity` and that
    row under its relationship. Each row shows its primary key and the columns the activation
    personalizes."""
    if row.value is None or route.is_trait:
        return None
    stored = orjson.loads(row.value)
    entities = (route.activation.personalization or {}).get("entities") if route.activation else None
    columns = {entity["relationshipSlug"]: entity.get("properties") or () for entity in entities or ()}
    if "entities" in stored:
        return matched.context(stored["entities"], columns)
    shown = matched.context_row(stored["row"], columns)
    return {"__entity": shown.pop("__entity"), stored["relationship"]: shown}


def _group(account: str, people: list[str], key: str, value: Any, facts: Facts) -> list[dict[str, Any]]:
    group_ids = facts.group_ids.get(account)
    if not group_ids:
        return []
    event: dict[str, Any] = {"type": "group", "groupId": group_ids[0]}
    for person in people:
        identity, _ = _identity([], facts.ids.get(person, {}))
        if identity:
            event.update(identity)
            break
    else:
        event["anonymousId"] = group_ids[0]
    event["traits"] = {key: value}
    return [event]


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


def _identity(combination: list[tuple[str, str, str]], ids: ExternalIds) -> tuple[dict[str, str], dict[str, str]]:
    """The event's `userId`/`anonymousId` and the other chosen identifiers (sent as traits)."""
    identity, id_traits = {}, {}
    for kind, value, name in combination:
        if kind in TOP_LEVEL:
            identity[TOP_LEVEL[kind]] = value
        else:
            id_traits[name] = value
    if not identity:
        for kind in ("user_id", "anonymous_id"):
            if ids.get(kind):
                identity[TOP_LEVEL[kind]] = ids[kind][-1]
                break
    return identity, id_traits


def _personal_traits(route: Route) -> list[str]:
    if route.activation is None:
        return []
    return list((route.activation.personalization.get("profile") or {}).get("properties") or [])


def _personalized(route: Route, traits: dict[str, Any]) -> dict[str, Any]:
    mapping = ((route.activation.personalization.get("profile") or {}).get("mapping") or {}) if route.activation else {}
    return {mapping.get(name, name): traits[name] for name in _personal_traits(route) if name in traits}


def _linked_users(session: Session, accounts: list[str]) -> dict[str, list[str]]:
    if not accounts:
        return {}
    first_seen = select(func.min(Identifier.id)).where(Identifier.profile_id == ProfileLink.user_id).scalar_subquery()
    rows = select_in(
        session.connection(), "account users",
        lambda ids: select(ProfileLink.account_id, ProfileLink.user_id).join(Profile, Profile.id == ProfileLink.user_id)
        .where(col(ProfileLink.account_id).in_(ids), col(Profile.merged_into).is_(None))
        .order_by(ProfileLink.account_id, ProfileLink.created_at_ms, first_seen, ProfileLink.user_id),
        accounts)
    found: dict[str, list[str]] = defaultdict(list)
    for account, user in rows:
        found[account].append(user)
    return found


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
