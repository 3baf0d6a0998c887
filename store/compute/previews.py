"""Audience previews: a definition computed once, in the background, for its size and a sample of up
to 100 members, without saving an audience or touching any membership.

A preview reads history the way a saved audience with `includeHistoricalData` would (Segment offers
previews only for audiences that use historical data), measured from the preview's creation. It has a
time budget (`store.db.budget`, 60 s by default): one that takes longer is stopped and ends `FAILED`,
its `failureReason` naming the budget.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, col, select

from backend.cql.matched import Matches, entity_details, paths
from store.catalog import data_graphs, definitions
from store.catalog.audiences import check_audience_type, resolve_options
from store.catalog.spaces import require_space
from store.compute import computations, linked
from store.db.budget import Budget
from store.db.errors import DomainError, NotFound
from store.db.ids import new_id
from store.db.models import AudiencePreview, Identifier
from store.db.store import Store

logger = logging.getLogger("segment_audiences.previews")
SAMPLE_SIZE = 100
PER_LEVEL = 10  # matched rows shown per relationship and level, as Segment's Entity Explorer
MAX_PREVIEW_ROWS = 3_000


def create_preview(store: Store, space_id: str, *, audience_type: str, query: str, target_entity: str | None,
                   options: dict[str, Any] | None) -> AudiencePreview:
    check_audience_type(audience_type, None)
    analysis = definitions.check_definition(query, kind="audience", audience_type=audience_type)
    if audience_type == "LINKED":
        data_graphs.check_linked_definition(store, space_id, query, target_entity)
    resolved = resolve_options({**(options or {}), "includeHistoricalData": True}, {}, analysis)
    definition = {"query": query} | ({"targetEntity": target_entity} if target_entity else {})
    with store.write() as session:
        require_space(session, space_id)
        preview = AudiencePreview(id=new_id("prv"), space_id=space_id, audience_type=audience_type,
                                  definition=definition, options=resolved, status="RUNNING", created_at=store.now())
        session.add(preview)
        return preview


def get_preview(store: Store, space_id: str, preview_id: str) -> AudiencePreview:
    with store.read() as session:
        require_space(session, space_id)
        preview = session.get(AudiencePreview, preview_id)
        if preview is None or preview.space_id != space_id:
            raise NotFound("audience preview", preview_id, field="id", scope=f"in space '{space_id}'")
        return preview


def run_pending(store: Store) -> int:
    """Compute every RUNNING preview; returns how many finished."""
    with store.read() as session:
        pending = list(session.exec(select(AudiencePreview).where(AudiencePreview.status == "RUNNING")))
    for preview in pending:
        _run(store, preview)
    return len(pending)


def _run(store: Store, preview: AudiencePreview) -> None:
    computation = computations.for_preview(preview)
    budget = Budget.preview()
    try:
        now = store.now()
        if computation.reads_entities:
            computation = computations.with_data_graph(store, computation)
            analytic = linked.full_result(store, computation, now, budget)
        else:
            analytic = computation.on_analytic_store(store.analytics, now, budget) if store.analytics else None
        with store.read() as session:
            if analytic is None:
                with budget.on(session.connection()):
                    members = sorted(session.execute(computation.statement(now)).scalars())
            else:
                members = sorted(row[0] for row in analytic.rows)
        if computation.reads_entities:
            outcome = _linked_outcome(store, computation, now, budget, members)
        else:
            with store.read() as session:
                results = members_with_ids(session, members[:SAMPLE_SIZE])
            outcome = {"status": "COMPLETED", "size": len(members), "results": results}
    except Exception as error:  # a preview's boundary: the agent reads the reason from failureReason
        logger.warning("preview %s failed: %s", preview.id, error)
        outcome = {"status": "FAILED", "failure_reason": str(error)}
    with store.write() as session:
        row = session.get(AudiencePreview, preview.id)
        for name, value in outcome.items():
            setattr(row, name, value)
        session.add(row)


def _linked_outcome(store: Store, computation, now, budget: Budget, members: list[str]) -> dict[str, Any]:
    """A LINKED preview's size and sample with their matched entities (`backend.cql.matched`): per
    profile, the rows that qualified it (at most 10 per relationship and level); with an entity
    target, the target's rows instead, each with the rows one level under it and its profiles. Past
    Segment's 3,000 matched rows it fails, as Segment's does."""
    target = computation.target_entity
    if target == "profile":
        sample = members[:SAMPLE_SIZE]
        matches = linked.matched(store, computation, now, budget, columns={}, profile_ids=sample) if sample else {}
        _within_limit(matches.values())
        with store.read() as session:
            results = members_with_ids(session, sample)
        for result in results:
            result["entities"] = entity_details(matches.get(result["id"], {}), PER_LEVEL)
        return {"status": "COMPLETED", "size": len(members), "results": results}
    matches = linked.matched(store, computation, now, budget, columns={}, profile_ids=members) if members else {}
    rows: dict[str, dict[str, Any]] = {}
    profiles: dict[str, list[str]] = defaultdict(list)
    for profile_id in members:
        for key, row in matches.get(profile_id, {}).get(target, {}).items():
            rows.setdefault(str(key), row)
            profiles[str(key)].append(profile_id)
    sample = sorted(rows)[:SAMPLE_SIZE]
    _within_limit([{target: {key: rows[key] for key in sample}}])
    results = [{**entity_details({target: {key: rows[key]}}, PER_LEVEL)[target][0],
                "profiles": [{"id": profile_id} for profile_id in profiles[key][:PER_LEVEL]],
                "profilesTruncated": len(profiles[key]) > PER_LEVEL} for key in sample]
    unique = {profile_id for found in profiles.values() for profile_id in found}
    return {"status": "COMPLETED", "size": len(unique), "entity_size": sum(map(len, profiles.values())),
            "results": results}


def _within_limit(matches: Iterable[Matches]) -> None:
    rows = sum(len(paths(found)) for found in matches)
    if rows > MAX_PREVIEW_ROWS:
        raise DomainError(f"the preview's sample matched {rows} entity rows, more than the {MAX_PREVIEW_ROWS:,} a "
                          "preview may bring back (as Segment's); narrow the entity conditions")


def members_with_ids(session: Session, profile_ids: list[str]) -> list[dict[str, Any]]:
    """Each profile as a preview shows it: `{id, externalIds: [{type, id}]}`."""
    external: dict[str, list[dict[str, str]]] = defaultdict(list)
    identifiers = session.exec(select(Identifier.profile_id, Identifier.type, Identifier.value)
                               .where(col(Identifier.profile_id).in_(profile_ids))
                               .order_by(Identifier.profile_id, Identifier.id))
    for profile_id, kind, value in identifiers:
        external[profile_id].append({"type": kind, "id": value})
    return [{"id": profile_id, "externalIds": external[profile_id]} for profile_id in profile_ids]
