"""Where an audience's or computed trait's changes go: its enabled activations and sending connections,
each resolved to the destination instance, the adapter configuration and the Segment calls it sends.

An activation sends what its type asks for ("Audience Membership Changed" as Identify, the others as
Track). A connection sends by itself only to a classic destination (one without actions), with
Identify when `connectionSettings.sendIdentify` is true or unset and Track when `sendTrack` is true.
For an ACCOUNTS audience or computed trait, `sendGroup: true` on the connection adds one Group call
per account, sent by the connection itself and by each of its activations; Identify and Track go to
every user of the account (`reference/engine-semantics.md` §4.2, "Account level").

An audience's rows are entries and exits; a computed trait's rows are value changes ("changed"). A
LINKED audience's rows are also entity rows added, removed or changed (`entity_added`,
`entity_removed`, `entity_changed`: Entity Added / Removed / Values Changed, and Audience Membership
Changed with `syncEntityPropertyChanges`); "All Events" sends entries and exits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from backend.delivery.adapters import Target
from store.db.models import Activation, Audience, ComputedTrait, Connection, Destination
from store.delivery import destination_catalog, owners
from store.delivery.owners import Owner

TRANSITIONS_BY_ACTIVATION = {
    "Audience Entered": ("entered",),
    "Audience Exited": ("exited",),
    "Audience Membership Changed": ("entered", "exited"),
    "All Events": ("entered", "exited"),
    "Entity Added": ("entity_added",),
    "Entity Removed": ("entity_removed",),
    "Entity Values Changed": ("entity_changed",),
}
BOTH = ("entered", "exited")
CHANGED = ("changed",)


@dataclass(frozen=True)
class Route:
    target_kind: str  # activation | connection
    target_id: str
    owner: Owner
    connection: Connection
    destination: Destination
    activation: Activation | None = None

    @property
    def entry(self) -> destination_catalog.CatalogEntry:
        return destination_catalog.BY_SLUG[self.destination.slug]

    @property
    def is_trait(self) -> bool:
        return owners.is_trait(self.owner)

    @property
    def accounts(self) -> bool:
        return owners.profile_type(self.owner) == "ACCOUNTS"

    @property
    def split_group(self) -> str | None:
        """The one group of the audience's split this route sends, if any: the activation's own, else
        its connection's (`connectionSettings.splitGroup`)."""
        own = self.activation.split_group if self.activation is not None else None
        return own or self.connection.connection_settings.get("splitGroup")

    @property
    def transitions(self) -> tuple[str, ...]:
        if self.is_trait:
            return CHANGED
        if self.activation is None:
            return BOTH
        found = TRANSITIONS_BY_ACTIVATION.get(self.activation.activation_type, ())
        if (self.activation.personalization or {}).get("syncEntityPropertyChanges"):
            found = (*found, "entity_changed")
        return found

    @property
    def call_types(self) -> tuple[str, ...]:
        """The Segment calls sent: "group" once per account, then "identify" and/or "track" per identity."""
        settings = self.connection.connection_settings
        group = ("group",) if self.accounts and settings.get("sendGroup") else ()
        if self.activation is not None:
            per_identity = "identify" if self.activation.activation_type == "Audience Membership Changed" else "track"
            return (*group, per_identity)
        if self.entry.actions:
            return ()
        return (*group, *(kind for kind, wanted in (("identify", settings.get("sendIdentify", True)),
                                                    ("track", settings.get("sendTrack", False))) if wanted))

    def target(self) -> Target:
        mapping = (self.activation.destination_mapping if self.activation else None) or {}
        action_settings = mapping.get("settings") or {}
        secrets = tuple(str(self.destination.settings[f.name]) for f in self.entry.settings
                        if f.secret and self.destination.settings.get(f.name))
        return Target(
            slug=self.destination.slug,
            destination_id=self.destination.id,
            settings=self.destination.settings,
            action_id=mapping.get("actionId"),
            action_settings=action_settings,
            requests_per_second=self.entry.requests_per_second,
            max_in_flight=self.entry.max_in_flight,
            lane=self.lane,
            secrets=secrets,
            table=self.activation.activation_name if self.activation else "",
        )

    @property
    def lane(self) -> str:
        """What this route shares limits and a delivery lane with: an activation that names its own
        URL is a lane of its own; everything else shares its destination instance's lane."""
        mapping = (self.activation.destination_mapping if self.activation else None) or {}
        if (mapping.get("settings") or {}).get("url"):
            return self.target_id
        return self.destination.id


def sending_routes(session: Session, owner_id: str) -> list[Route]:
    """The enabled targets of an audience or computed trait that send something: connections, then
    activations, each oldest first."""
    connections = session.exec(
        select(Connection.id).join(Destination, Destination.id == Connection.destination_id)
        .where(Connection.audience_id == owner_id, Connection.enabled, Destination.enabled)
        .order_by(Connection.created_at, Connection.id)).all()
    if not connections:  # most computations of a busy space send nowhere: one query, not five, each pass
        return []
    activations = session.exec(
        select(Activation.id).where(col(Activation.connection_id).in_(connections), Activation.enabled)
        .order_by(Activation.created_at, Activation.id)).all()
    found = resolve(session, {*connections, *activations})
    routes = [found[target_id] for target_id in (*connections, *activations) if target_id in found]
    return [route for route in routes if route.transitions and route.call_types]


def resolve(session: Session, target_ids: set[str]) -> dict[str, Route]:
    """The routes of these activation and connection ids (those that still exist)."""
    activations = {a.id: a for a in session.exec(select(Activation).where(col(Activation.id).in_(target_ids)))}
    connection_ids = (target_ids - set(activations)) | {a.connection_id for a in activations.values()}
    found = session.exec(
        select(Connection, Destination).join(Destination, Destination.id == Connection.destination_id)
        .where(col(Connection.id).in_(connection_ids))
    ).all()
    owner_ids = {connection.audience_id for connection, _ in found}
    owned = {row.id: row for model in (Audience, ComputedTrait)
             for row in session.exec(select(model).where(col(model.id).in_(owner_ids)))}
    by_connection = {connection.id: (connection, destination) for connection, destination in found
                     if connection.audience_id in owned}
    routes = {}
    for target_id in target_ids:
        activation = activations.get(target_id)
        key = activation.connection_id if activation else target_id
        if key in by_connection:
            connection, destination = by_connection[key]
            kind = "activation" if activation else "connection"
            routes[target_id] = Route(kind, target_id, owned[connection.audience_id], connection, destination,
                                      activation)
    return routes


def enabled_target_ids():
    """A selectable of every target id whose rows may be sent now: enabled activations on enabled
    connections, and enabled connections, of enabled destination instances and of audiences and
    computed traits that are enabled and not deleted. Rows of any other target wait."""
    live_owners = select(Audience.id).where(Audience.enabled, col(Audience.deleted_at).is_(None)).union_all(
        select(ComputedTrait.id).where(ComputedTrait.enabled, col(ComputedTrait.deleted_at).is_(None)))
    live = select(Connection.id).join(Destination, Destination.id == Connection.destination_id).where(
        Connection.enabled, Destination.enabled, col(Connection.audience_id).in_(live_owners))
    activations = select(Activation.id).where(Activation.enabled, col(Activation.connection_id).in_(live))
    return live.union_all(activations)
