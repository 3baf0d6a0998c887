"""What each console page shows, read through the same store services the tools call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from backend.clock import to_ms
from store.catalog import audiences, computed_traits, destinations, spaces as spaces_catalog
from store.catalog.destination_instances import require_destination
from store.compute import computations, runs
from store.db.models import Audience, ComputedTrait, ComputeRun, Connection, Destination, PriorityList
from store.db.pagination import PageRequest
from store.db.store import Store
from store.delivery import outbox
from store.insights import alerts, backtest as backtests, delivery_history, overlap as overlaps, size_history

MOST_ROWS = 1_000
RUNS_SHOWN = 50


def spaces(store: Store) -> list[Any]:
    return list(spaces_catalog.list_spaces(store, PageRequest(count=MOST_ROWS)).items)


def space(store: Store, space_id: str) -> dict[str, Any]:
    """A space's audiences and computed traits (with their sizes), destinations (with their delivery
    health), alerts and priority lists."""
    space_row = spaces_catalog.get_space(store, space_id)
    audience_rows = list(audiences.list_audiences(store, space_id, None, PageRequest(count=MOST_ROWS)).items)
    trait_rows = list(computed_traits.list_computed_traits(store, space_id, PageRequest(count=MOST_ROWS)).items)
    states = runs.states(store, [row.id for row in [*audience_rows, *trait_rows]])
    with store.read() as session:
        destination_rows = list(session.exec(select(Destination).where(Destination.space_id == space_id)
                                             .order_by(Destination.created_at, Destination.id)))
        targets = {d.id: delivery_history.targets_of(session, d.id) for d in destination_rows}
        lists = list(session.exec(select(PriorityList).where(PriorityList.space_id == space_id)
                                  .order_by(PriorityList.created_at)))
    health = outbox.health_of(store, [t for ids in targets.values() for t in ids])
    return {"space": space_row, "audiences": audience_rows, "traits": trait_rows, "states": states,
            "destinations": [(d, outbox.combined([health[t] for t in targets[d.id]])) for d in destination_rows],
            "alerts": alerts.list_alerts(store, space_id), "lists": lists}


def computation(store: Store, space_id: str, computation_id: str, days: int) -> dict[str, Any]:
    """An audience's or computed trait's size history over `days` days, runs, definition with its
    explanation, consumers and connections."""
    if computation_id.startswith("tra_"):
        row: Audience | ComputedTrait = computed_traits.get_computed_trait(store, space_id, computation_id)
        computation_row = computations.for_trait(row)
        consumers: list[Audience] = []
    else:
        row = audiences.get_audience(store, space_id, computation_id)
        computation_row = computations.for_audience(row)
        consumers = list(audiences.list_consumers(store, space_id, computation_id, None, None,
                                                  PageRequest(count=MOST_ROWS)).items)
    now = store.now()
    history = size_history.size_history(store, space_id, computation_id, now - timedelta(days=days), now, "DAY")
    engine, sql = computations.explain(store, computation_row)
    with store.read() as session:
        run_rows = list(session.exec(select(ComputeRun).where(ComputeRun.computation_id == computation_id)
                                     .order_by(col(ComputeRun.started_at_ms).desc()).limit(RUNS_SHOWN)))
    connections = list(destinations.list_connections(store, space_id, computation_id, PageRequest(count=MOST_ROWS)).items)
    health = outbox.connection_health(store, [view.connection.id for view in connections])
    return {"space_id": space_id, "row": row, "history": history, "runs": run_rows, "engine": engine, "sql": sql,
            "consumers": consumers, "connections": [(view, health[view.connection.id]) for view in connections],
            "days": days}


def destination(store: Store, space_id: str, destination_id: str) -> dict[str, Any]:
    """A destination's delivery per hour over the last day, its current health and dead letters."""
    found, targets, hours = delivery_history.delivery_history(store, space_id, destination_id, to_ms(store.now()))
    health = outbox.health_of(store, targets)
    with store.read() as session:
        owners = dict(session.exec(select(Connection.id, Connection.audience_id)
                                   .where(Connection.destination_id == destination_id)).all())
    return {"space_id": space_id, "destination": found, "hours": hours, "health": outbox.combined(list(health.values())),
            "owners": owners}


def redrive(store: Store, space_id: str, destination_id: str) -> int:
    """Put the destination's dead letters back in the queue; returns how many."""
    with store.read() as session:
        require_destination(session, space_id, destination_id)
        targets = delivery_history.targets_of(session, destination_id)
    return sum(outbox.redrive(store, target_id=target_id, space_id=space_id) for target_id in targets)


def overlap(store: Store, space_id: str, audience_ids: list[str]) -> dict[str, Any]:
    """The matrix of the chosen audiences' intersections (None until two are chosen)."""
    choices = list(audiences.list_audiences(store, space_id, None, PageRequest(count=MOST_ROWS)).items)
    found = overlaps.overlap(store, space_id, audience_ids) if len(audience_ids) >= 2 else None
    matrix = None
    if found is not None:
        between = {frozenset((p.first, p.second)): p.intersection for p in found.pairs}
        matrix = [[found.sizes[a] if a == b else between[frozenset((a, b))] for b in audience_ids] for a in audience_ids]
    return {"space_id": space_id, "choices": choices, "chosen": audience_ids, "overlap": found, "matrix": matrix}


def backtest(store: Store, space_id: str, audience_type: str, query: str, days: int) -> backtests.Backtest:
    now = store.now()
    return backtests.backtest(store, space_id, audience_type=audience_type, query=query,
                              start=now - timedelta(days=days - 1), end=now)
