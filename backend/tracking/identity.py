"""Identity resolution (Segment Unify's flat matching), as pure functions over an identity graph.

`extract` finds a message's identifiers (the eleven defaults and `context.externalIds`), leaving out
blocked values. `resolve` decides what the message does to the graph: create a profile, join one, or
merge several. When joining would leave a profile with more identifiers of a type than its limit
(user_id 1, others 5), or a merge would pass 100 merges, the incoming identifier of lowest priority
(user_id, then email, then the other types alphabetically) is demoted (not used) and matching is
tried again, as in Segment's worked example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from backend.tracking.messages import Message

USERS, ACCOUNTS = "users", "accounts"
_BLOCKED_PATTERN = re.compile(r"^[0-]*$")
_BLOCKED_VALUES = {"-1", "null", "anonymous"}
PRIORITY = {"user_id": 1, "email": 2}
LIMITS = {"user_id": 1}
DEFAULT_LIMIT = 5
MAX_MERGES = 100


class ExternalId(NamedTuple):
    """One identifier of a user or account; a tuple, so sets and dicts of them are cheap."""

    collection: str
    type: str
    value: str

    def public(self) -> dict:
        return {"collection": self.collection, "type": self.type, "id": self.value, "encoding": "none"}


def is_blocked(value: str) -> bool:
    return value in _BLOCKED_VALUES or _BLOCKED_PATTERN.match(value) is not None


def limit(kind: str) -> int:
    return LIMITS.get(kind, DEFAULT_LIMIT)


def priority(identifier: ExternalId) -> tuple:
    """Sort key, most important first: user_id, email, then other types alphabetically."""
    return (PRIORITY.get(identifier.type, 3), identifier.type, identifier.value)


def extract(message: Message) -> list[ExternalId]:
    """Every identifier the message carries, users and accounts, without blocked values or repeats."""
    context = message.context
    found: list[ExternalId] = []

    def add(collection: str, kind: str, value: object) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value and not is_blocked(value):
            found.append(ExternalId(collection, kind, value))

    add(USERS, "user_id", message.user_id)
    add(USERS, "anonymous_id", message.anonymous_id)
    if message.type == "identify":
        add(USERS, "email", (message.traits or {}).get("email"))
    context_traits = context.get("traits")
    if isinstance(context_traits, dict):
        add(USERS, "email", context_traits.get("email"))
    device = context.get("device")
    if isinstance(device, dict) and str(device.get("type", "")).lower() in ("android", "ios"):
        platform = str(device["type"]).lower()
        add(USERS, f"{platform}.id", device.get("id"))
        add(USERS, f"{platform}.push_token", device.get("token"))
        if device.get("adTrackingEnabled") is True:
            add(USERS, f"{platform}.idfa", device.get("advertisingId"))
    integrations = context.get("integrations")
    if isinstance(integrations, dict) and isinstance(integrations.get("Google Analytics"), dict):
        add(USERS, "ga_client_id", integrations["Google Analytics"].get("clientId"))
    if message.group_id is not None:
        add(ACCOUNTS, "group_id", message.group_id)
    for entry in context.get("externalIds") or ():
        add(entry["collection"], entry["type"], entry["id"])
    return list(dict.fromkeys(found))


class Graph(Protocol):
    """What resolution needs to know about the profiles already in the space."""

    def owner(self, identifier: ExternalId) -> str | None:
        """The canonical profile holding this identifier, if any."""

    def identifiers(self, profile_id: str) -> set[ExternalId]:
        """Every identifier of a canonical profile."""

    def age(self, profile_id: str) -> tuple:
        """A key that sorts older profiles first."""

    def merges(self, profile_id: str) -> int:
        """How many profiles have been merged into this one."""


@dataclass(frozen=True)
class Resolution:
    """The outcome for one message: `profile_id` None means a new profile; `merge` are folded into it."""

    profile_id: str | None
    merge: tuple[str, ...] = ()
    add: tuple[ExternalId, ...] = ()
    demoted: tuple[ExternalId, ...] = ()


def resolve(identifiers: list[ExternalId], graph: Graph) -> Resolution:
    """Match the message's user identifiers against the graph, demoting until every limit holds."""
    candidates = sorted((i for i in identifiers if i.collection == USERS), key=priority)
    known = {graph.owner(i) for i in candidates}
    if len(known) == 1 and None not in known:
        return Resolution(known.pop())
    demoted: list[ExternalId] = []
    while True:
        owners = sorted({owner for i in candidates if (owner := graph.owner(i)) is not None}, key=graph.age)
        if _acceptable(candidates, owners, graph) or not candidates:
            break
        demoted.append(candidates.pop())
    new = tuple(i for i in candidates if graph.owner(i) is None)
    if not owners:
        return Resolution(None, (), new, tuple(demoted))
    return Resolution(owners[0], tuple(owners[1:]), new, tuple(demoted))


def _acceptable(candidates: list[ExternalId], owners: list[str], graph: Graph) -> bool:
    if len(owners) > 1 and sum(graph.merges(owner) + 1 for owner in owners) - 1 > MAX_MERGES:
        return False
    new = [i for i in candidates if graph.owner(i) is None]
    if len(owners) <= 1 and not new:
        return True
    combined: dict[str, set[str]] = {}
    for identifier in [*new, *(i for owner in owners for i in graph.identifiers(owner))]:
        combined.setdefault(identifier.type, set()).add(identifier.value)
    return all(len(values) <= limit(kind) for kind, values in combined.items())
