"""A LINKED audience's matched entity rows, kept from run to run, and the activation events they cause
(`reference/data-graph.md` §2.5, §3).

A run reads, per profile, the entity rows its definition's conditions keep (`backend.cql.matched`),
showing the columns the audience's activations personalize. It then keeps, per member profile, the
rows of its **tracked** relationship: the target entity when the audience has one (a member is then a
(profile, entity row) pair, and the audience's entity size counts them), else each relationship
under the profile that the definition reads. Between runs a tracked row that appears is Entity
Added, one that goes (or whose profile leaves) is Entity Removed, and one whose shown columns or
matched rows under it changed is Entity Values Changed; each goes out once per target row. Audience
Entered / Exited go per profile, carrying the profile's matched rows (`data_graph_entity_context`).

Rows are read and kept only while something sends them (an entity target's, always: its members
are pairs), nested under each tracked row. The first run that keeps them after runs that did not
sends no entity events: it is the baseline the next runs compare with. Values Changed compares only what both runs show, so a
column newly personalized is no change. A resync (`performResync`) is carried out by the audience's
next run, which reads the rows its events carry.
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
from sqlalchemy import bindparam, delete, update
from sqlmodel import Session, col, select

from backend.cql.matched import documents, values_changed
from store.compute import linked
from store.compute.computations import Computation
from store.db.budget import Budget
from store.db.bulk import IN_CHUNK, insert_dicts, select_all, select_in
from store.db.models import Activation, ComputeRun, ComputeState, EntityMembership
from store.db.store import Store
from store.delivery import outbox, routes

ENTITY_TRANSITIONS = ("entity_added", "entity_removed", "entity_changed")


@dataclass
class Extract:
    """What a LINKED run read from the warehouse besides its members: per profile, its matched rows
    as documents (`backend.cql.matched.documents`), and how long enqueueing took."""

    documents: dict[str, dict[str, list[dict]]]
    enqueue_ms: float = 0.0


def extract(store: Store, computation: Computation, now, budget: Budget,
            members: Collection[str] | None = None) -> Extract | None:
    """The matched rows of the members (of every profile when they are not known yet), for a run of a
    LINKED audience that reads entities: nested when something sends them; only the rows under the
    profile for an entity target that sends nothing (its members are pairs); None when nothing needs
    them (a profile target that sends nothing)."""
    if computation.kind != "audience" or computation.graph is None:
        return None
    with store.read() as session:
        sending = bool(routes.sending_routes(session, computation.id))
        columns = personalized_columns(session, computation.id)
    if not sending and computation.target_entity == "profile":
        return None
    names = computation.graph.entity_names()
    with _collector_paused():
        matches = linked.matched(store, computation, now, budget, columns=columns, profile_ids=members,
                                 top_only=not sending)
        return Extract({profile_id: documents(found, names) for profile_id, found in matches.items()})


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused while a run builds its rows: they are hundreds of thousands of
    small dicts with no cycles, and the collections their allocation sets off cost more than building
    them (`bench/linked.py --activation`, a next run at 100k profiles: 9.3 s, and 7.5 s paused)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def forget(session: Session, computation: Computation) -> None:
    """A run that read no rows (nothing sends them): the rows kept before are dropped, as they will
    not be current when something sends again; the run that sends next starts anew (`write`)."""
    state = session.get(ComputeState, computation.id)
    if state is not None and state.entities_kept:
        session.execute(delete(EntityMembership).where(EntityMembership.computation_id == computation.id))
        state.entities_kept = False


def personalized_columns(session: Session, audience_id: str) -> dict[str, list[str]]:
    """The entity columns the audience's activations personalize, by relationship slug."""
    found: dict[str, list[str]] = defaultdict(list)
    for (personalization,) in session.execute(select(Activation.personalization).where(
            Activation.audience_id == audience_id)):
        for entity in (personalization or {}).get("entities") or ():
            found[entity["relationshipSlug"]].extend(entity.get("properties") or ())
    return {slug: list(dict.fromkeys(names)) for slug, names in found.items()}


def tracked(computation: Computation) -> set[str]:
    """The relationships whose rows are kept between runs."""
    if computation.target_entity != "profile":
        return {computation.target_entity}
    return set(computation.analysis.entity_relationships) & set(computation.graph.top if computation.graph else ())


def member_values(session: Session, computation: Computation, extract: Extract, entered: Collection[str],
                  exited: Collection[str] = ()) -> dict[str, str]:
    """The outbox value of each entered or exited profile, as JSON text: an entered profile's matched
    rows as this run read them, an exited one's tracked rows as the runs before kept them."""
    values = {profile_id: orjson.dumps({"entities": extract.documents.get(profile_id, {})}).decode()
              for profile_id in entered}
    kept: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for profile_id, slug, row in select_in(
            session.connection(), "kept entity rows",
            lambda ids: select(EntityMembership.profile_id, EntityMembership.relationship, EntityMembership.row).where(
                EntityMembership.computation_id == bindparam("computation"), col(EntityMembership.exited_at_ms).is_(None),
                col(EntityMembership.profile_id).in_(ids)).order_by(EntityMembership.entity_key),
            sorted(exited), {"computation": computation.id}):
        kept[profile_id][slug].append(orjson.loads(row))
    values.update({profile_id: orjson.dumps({"entities": kept.get(profile_id, {})}).decode() for profile_id in exited})
    return values


def timed_enqueue(extract: Extract | None, *args, **kwargs) -> int:
    """`outbox.enqueue`, its time counted in the run's enqueue step."""
    started = time.perf_counter()
    queued = outbox.enqueue(*args, **kwargs)
    if extract is not None:
        extract.enqueue_ms += (time.perf_counter() - started) * 1000
    return queued


def write(session: Session, computation: Computation, run_row: ComputeRun, members: set[str],
          extract: Extract) -> int:
    """Diff the tracked rows of the members against those kept, write the difference, queue Entity
    Added / Removed / Values Changed; returns how many tracked rows the members have. On the first run
    since something sends again (the runs before kept nothing) the rows are kept and no event goes
    out for them: they are the baseline later runs are compared with, as an activation without
    `performResync` sends only what changes after it is added. (On the audience's first run every row
    is added, as every member enters.)"""
    state = session.get(ComputeState, computation.id)
    baseline = state is not None and state.last_run_id is not None and not state.entities_kept
    kept_slugs = tracked(computation)
    with _collector_paused():
        current = {(profile_id, slug, row["id"]): row for profile_id in members
                   for slug, rows in extract.documents.get(profile_id, {}).items() if slug in kept_slugs
                   for row in rows}
        texts = {key: orjson.dumps(row).decode() for key, row in current.items()}
        stored = {(profile_id, slug, key): (row_id, row) for row_id, profile_id, slug, key, row in select_all(
            session.connection(), "kept entity rows of a computation",
            lambda: select(EntityMembership.id, EntityMembership.profile_id, EntityMembership.relationship,
                           EntityMembership.entity_key, EntityMembership.row).where(
                EntityMembership.computation_id == bindparam("computation"),
                col(EntityMembership.exited_at_ms).is_(None)),
            {"computation": computation.id})}
    added = sorted(current.keys() - stored.keys())
    removed = sorted(stored.keys() - current.keys())
    different = [key for key in current.keys() & stored.keys() if texts[key] != stored[key][1]]  # texts: most are equal
    changed = sorted(key for key in different if values_changed(orjson.loads(stored[key][1]), current[key]))
    now_ms = run_row.started_at_ms
    closing = [stored[key][0] for key in removed]
    for start in range(0, len(closing), IN_CHUNK):
        session.execute(update(EntityMembership).where(col(EntityMembership.id).in_(closing[start:start + IN_CHUNK]))
                        .values(exited_at_ms=now_ms, exited_run_id=run_row.id))
    for key in different:  # kept as this run saw it (columns shown since included), sent only if `changed`
        session.execute(update(EntityMembership).where(EntityMembership.id == stored[key][0]).values(row=texts[key]))
    insert_dicts(session.connection(), EntityMembership.__table__, [
        dict(space_id=computation.space_id, computation_id=computation.id, profile_id=profile_id, relationship=slug,
             entity_key=key, row=texts[(profile_id, slug, key)], entered_at_ms=now_ms, entered_run_id=run_row.id)
        for profile_id, slug, key in added])
    transitions = {"entity_added": [(key, current[key]) for key in added],
                   "entity_removed": [(key, orjson.loads(stored[key][1])) for key in removed],
                   "entity_changed": [(key, current[key]) for key in changed]}
    if not baseline:
        _enqueue(session, computation, run_row, extract, transitions)
    _resync(session, computation, run_row, extract, members, current)
    if state is not None:
        state.entities_kept = True
    return len(current)


def sending_now(session: Session, computation: Computation) -> list[routes.Route]:
    """The audience's sending routes but those with a resync pending, which its run sends everything
    to instead (`write`)."""
    return [route for route in routes.sending_routes(session, computation.id) if not _resync_pending(route)]


def _resync_pending(route: routes.Route) -> bool:
    return route.activation is not None and route.activation.perform_resync


def _enqueue(session: Session, computation: Computation, run_row: ComputeRun, extract: Extract,
             transitions: dict[str, list]) -> None:
    started = time.perf_counter()
    targets = [route for route in sending_now(session, computation)
               if any(transition in ENTITY_TRANSITIONS for transition in route.transitions)]
    if targets and any(transitions.values()):
        outbox.enqueue_entities(session, computation.space_id, computation.id, targets, transitions, run_row.id,
                                run_row.started_at_ms)
    extract.enqueue_ms += (time.perf_counter() - started) * 1000


def _resync(session: Session, computation: Computation, run_row: ComputeRun, extract: Extract, members: set[str],
            current: dict[tuple[str, str, str], dict]) -> None:
    """Carry out the resyncs asked of the audience's activations (`performResync`): every member
    entered, and every tracked row added, with the rows this run read."""
    started = time.perf_counter()
    pending = [route for route in routes.sending_routes(session, computation.id) if _resync_pending(route)]
    for route in pending:
        outbox.enqueue(session, computation.space_id, computation.id, [route], {"entered": sorted(members)},
                       run_row.id, run_row.started_at_ms, member_values(session, computation, extract, members))
        outbox.enqueue_entities(session, computation.space_id, computation.id, [route],
                                {"entity_added": sorted(current.items())}, run_row.id, run_row.started_at_ms)
        session.execute(update(Activation).where(Activation.id == route.activation.id).values(perform_resync=False))
    extract.enqueue_ms += (time.perf_counter() - started) * 1000
