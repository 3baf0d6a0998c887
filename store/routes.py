"""Where an audience's changes go: its enabled activations and sending connections, each resolved to
the destination instance, the adapter configuration and the Segment calls it sends.

An activation sends what its type asks for ("Audience Membership Changed" as Identify, the others as
Track). A connection sends by itself only to a classic destination (one without actions), with
Identify when `connectionSettings.sendIdentify` is true or unset and Track when `sendTrack` is true.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from backend.delivery.adapters import Target
from store import catalog
from store.models import Activation, Audience, Connection, Destination

TRANSITIONS_BY_ACTIVATION = {
    "Audience Entered": ("entered",),
    "Audience Exited": ("exited",),
    "Audience Membership Changed": ("entered", "exited"),
    "All Events": ("entered", "exited"),
}
BOTH = ("entered", "exited")


@dataclass(frozen=True)
class Route:
    target_kind: str  # activation | connection
    target_id: str
    audience: Audience
    connection: Connection
    destination: Destination
    activation: Activation | None = None

    @property
    def entry(self) -> catalog.CatalogEntry:
        return catalog.BY_SLUG[self.destination.slug]

    @property
    def transitions(self) -> tuple[str, ...]:
        if self.activation is None:
            return BOTH
        return TRANSITIONS_BY_ACTIVATION.get(self.activation.activation_type, ())

    @property
    def call_types(self) -> tuple[str, ...]:
        """The Segment calls sent per identity: "identify", "track" or both."""
        if self.activation is not None:
            return ("identify",) if self.activation.activation_type == "Audience Membership Changed" else ("track",)
        if self.entry.actions:
            return ()
        settings = self.connection.connection_settings
        return tuple(kind for kind, wanted in (("identify", settings.get("sendIdentify", True)),
                                               ("track", settings.get("sendTrack", False))) if wanted)

    def target(self) -> Target:
        mapping = (self.activation.destination_mapping if self.activation else None) or {}
        return Target(
            slug=self.destination.slug,
            destination_id=self.destination.id,
            settings=self.destination.settings,
            action_id=mapping.get("actionId"),
            action_settings=mapping.get("settings") or {},
            requests_per_second=self.entry.requests_per_second,
            max_in_flight=self.entry.max_in_flight,
        )


def sending_routes(session: Session, audience_id: str) -> list[Route]:
    """The enabled targets of an audience that send something: connections, then activations, each
    oldest first."""
    connections = session.exec(
        select(Connection.id).where(Connection.audience_id == audience_id, Connection.enabled)
        .order_by(Connection.created_at, Connection.id)).all()
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
        select(Connection, Destination, Audience)
        .join(Destination, Destination.id == Connection.destination_id)
        .join(Audience, Audience.id == Connection.audience_id)
        .where(col(Connection.id).in_(connection_ids))
    ).all()
    by_connection = {connection.id: (connection, destination, audience) for connection, destination, audience in found}
    routes = {}
    for target_id in target_ids:
        activation = activations.get(target_id)
        key = activation.connection_id if activation else target_id
        if key in by_connection:
            connection, destination, audience = by_connection[key]
            kind = "activation" if activation else "connection"
            routes[target_id] = Route(kind, target_id, audience, connection, destination, activation)
    return routes


def enabled_target_ids():
    """A selectable of every target id whose rows may be sent now: enabled activations on enabled
    connections, and enabled connections, of audiences that are not deleted."""
    live = select(Connection.id).join(Audience, Audience.id == Connection.audience_id).where(
        Connection.enabled, col(Audience.deleted_at).is_(None))
    activations = select(Activation.id).where(Activation.enabled, col(Activation.connection_id).in_(live))
    return live.union_all(activations)
