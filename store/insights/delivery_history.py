"""A destination instance's delivery over time: per hour, how many attempts of its connections and
activations delivered, were to be retried (retried or throttled) or failed for good (failed or
dead-lettered), from the attempts kept; with the targets it sends through."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select as core_select
from sqlmodel import Session, col, select

from store.catalog.destination_instances import require_destination
from store.db.models import Activation, Connection, DeliveryAttempt, Destination
from store.db.store import Store

HOUR_MS = 3_600_000
OUTCOMES = {"delivered": "delivered", "retry": "retrying", "throttled": "retrying", "failed": "dead", "dead": "dead"}


@dataclass(frozen=True)
class Hour:
    start_ms: int
    delivered: int
    retrying: int
    dead: int


def targets_of(session: Session, destination_id: str) -> list[str]:
    """The destination's connections and their activations, by id."""
    connections = list(session.exec(select(Connection.id).where(Connection.destination_id == destination_id)
                                    .order_by(Connection.id)).all())
    activations = session.exec(select(Activation.id).where(col(Activation.connection_id).in_(connections))
                               .order_by(Activation.id)).all()
    return [*connections, *activations]


def delivery_history(store: Store, space_id: str, destination_id: str, end_ms: int,
                     hours: int = 24) -> tuple[Destination, list[str], list[Hour]]:
    """The destination, its targets, and the `hours` hours up to `end_ms`'s hour, oldest first."""
    with store.read() as session:
        destination = require_destination(session, space_id, destination_id)
        targets = targets_of(session, destination_id)
        first = (end_ms // HOUR_MS - hours + 1) * HOUR_MS
        hour = ((DeliveryAttempt.at_ms - first) // HOUR_MS).label("hour")
        rows = session.execute(core_select(hour, DeliveryAttempt.outcome, func.count())
                               .where(col(DeliveryAttempt.target_id).in_(targets), DeliveryAttempt.at_ms >= first)
                               .group_by("hour", DeliveryAttempt.outcome)).all()
    counts = [{"delivered": 0, "retrying": 0, "dead": 0} for _ in range(hours)]
    for hour, outcome, count in rows:
        if 0 <= int(hour) < hours and outcome in OUTCOMES:
            counts[int(hour)][OUTCOMES[outcome]] += count
    return destination, targets, [Hour(first + index * HOUR_MS, **tally) for index, tally in enumerate(counts)]
