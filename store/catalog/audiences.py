"""Audiences: CQL definitions over profiles (USERS), accounts (ACCOUNTS) or entities (LINKED).

Choices where the Public API is silent, each defended in README "Behaviour notes":
- `status` is `Preparing` until the compute engine has run an enabled audience, `Disabled` when off.
- options: `filterByExternalIds` defaults to user_id, email, android.idfa, ios.idfa;
  `includeAnonymousUsers: true` adds anonymous_id. `includeHistoricalData` defaults to true (the
  builder's default, so a new audience reflects the events already stored) and is forced to true for
  BATCH audiences (Segment includes history for batch audiences). History means all stored events,
  bounded only by the definition's own windows; `backfillEventDataDays`, when given, limits it to
  that many days before creation, and needs history on.
- an update cannot turn a REALTIME audience into a BATCH one or back (Segment: recreate it instead).
- removal is a soft delete: the row, its key and its history stay; it disappears from reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from backend import cql
from backend.clock import to_ms
from store.catalog import data_graphs, definitions
from store.catalog.spaces import require_space
from store.db.errors import Conflict, InputValidation, NotFound
from store.db.ids import new_id
from store.db.models import Audience, AudienceSchedule, PriorityListEntry
from store.db.pagination import Page, PageRequest, paginate
from store.db.store import Store
from store.delivery import outbox

AUDIENCE_TYPES = ("USERS", "ACCOUNTS", "LINKED")
DEFAULT_EXTERNAL_IDS = ["user_id", "email", "android.idfa", "ios.idfa"]


@dataclass(frozen=True)
class Search:
    type: str  # "NAME" | "KEY" | "DEFINITION"
    query: str


@dataclass(frozen=True)
class Sort:
    field: str  # "CREATED_AT" | "NAME" | "UPDATED_AT"
    direction: str  # "ASC" | "DESC"


def create_audience(
    store: Store,
    space_id: str,
    *,
    name: str,
    audience_type: str,
    query: str,
    target_entity: str | None = None,
    definition_type: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    options: dict[str, Any] | None = None,
) -> Audience:
    check_audience_type(audience_type, definition_type)
    analysis = definitions.check_definition(query, kind="audience", audience_type=audience_type)
    if audience_type == "LINKED":
        data_graphs.check_linked_definition(store, space_id, query, target_entity)
    with store.write() as session:
        require_space(session, space_id)
        now = store.now()
        audience_id = new_id("aud")
        key = definitions.reserve_key(session, space_id, name, audience_id, fallback="audience")
        definitions.record_references(session, space_id, audience_id, key, analysis.referenced_traits)
        definitions.record_change(session, space_id, audience_id, query, to_ms(now))
        is_enabled = True if enabled is None else enabled
        audience = Audience(
            id=audience_id,
            space_id=space_id,
            key=key,
            name=definitions.check_name(name),
            description=description,
            enabled=is_enabled,
            audience_type=audience_type,
            query=query,
            target_entity=_target_entity(audience_type, target_entity),
            options=resolve_options(options or {}, {}, analysis),
            status=_status(is_enabled),
            compute_cadence=analysis.cadence,
            cadence_reason=analysis.cadence_reason,
            created_by=store.actor,
            updated_by=store.actor,
            created_at=now,
            updated_at=now,
        )
        session.add(audience)
        return audience


def get_audience(store: Store, space_id: str, audience_id: str) -> Audience:
    with store.read() as session:
        return require_audience(session, space_id, audience_id)


def list_audiences(store: Store, space_id: str, search: Search | None, request: PageRequest) -> Page:
    with store.read() as session:
        require_space(session, space_id)
        statement = _live(space_id).order_by(Audience.created_at, Audience.id)
        if search is not None:
            statement = statement.where(_matches(search))
        return paginate(session, statement, request)


def update_audience(
    store: Store,
    space_id: str,
    audience_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    query: str | None = None,
    target_entity: str | None = None,
    options: dict[str, Any] | None = None,
) -> Audience:
    if query is not None or target_entity is not None:
        current = get_audience(store, space_id, audience_id)
        if current.audience_type == "LINKED":
            data_graphs.check_linked_definition(store, space_id, query or current.query,
                                                target_entity or current.target_entity)
    with store.write() as session:
        audience = require_audience(session, space_id, audience_id)
        analysis = definitions.check_definition(
            query or audience.query, kind="audience", audience_type=audience.audience_type
        )
        if query is not None:
            if analysis.cadence != audience.compute_cadence:
                raise Conflict(
                    f"The new definition would make this {audience.compute_cadence} audience "
                    f"{analysis.cadence} ({analysis.cadence_reason}); an audience cannot switch between "
                    "real-time and batch. Create a new audience with this definition instead.",
                    field="definition.query",
                )
            definitions.record_references(session, space_id, audience.id, audience.key, analysis.referenced_traits)
            if query != audience.query:
                definitions.record_change(session, space_id, audience.id, query, to_ms(store.now()))
            audience.query = query
        if target_entity is not None:
            audience.target_entity = _target_entity(audience.audience_type, target_entity)
        if name is not None:
            audience.name = definitions.check_name(name)
        if description is not None:
            audience.description = description
        if enabled is not None and enabled != audience.enabled:
            audience.enabled = enabled
            audience.status = _status(enabled)
        if options is not None or query is not None:
            audience.options = resolve_options(options or {}, audience.options, analysis)
        if query is not None or options is not None or enabled:
            definitions.request_run(session, audience.id, space_id, to_ms(store.now()))
        audience.updated_by = store.actor
        audience.updated_at = store.now()
        session.add(audience)
        return audience


def remove_audience(store: Store, space_id: str, audience_id: str) -> None:
    with store.write() as session:
        audience = require_audience(session, space_id, audience_id)
        definitions.refuse_removal_if_read(session, space_id, audience.key, f"Audience '{audience_id}'")
        ranked = session.get(PriorityListEntry, audience_id)
        if ranked is not None:
            raise Conflict(f"Audience '{audience_id}' is on priority list '{ranked.list_id}'; take it off with "
                           "segment_audiences_update_priority_list first.", field="id")
        audience.deleted_at = store.now()
        audience.enabled = False
        audience.status = "Disabled"
        definitions.forget_references(session, audience.id)
        outbox.cancel(session, computation_id=audience.id)
        session.add(audience)


def list_consumers(
    store: Store, space_id: str, audience_id: str, search: Search | None, sort: Sort | None, request: PageRequest
) -> Page:
    """The live audiences whose definitions reference this audience's key."""
    with store.read() as session:
        audience = require_audience(session, space_id, audience_id)
        owners = definitions.consumers_of(session, space_id, audience.key)
        statement = _live(space_id).where(col(Audience.id).in_(owners))
        if search is not None:
            statement = statement.where(_matches(search))
        column = {"NAME": Audience.name, "UPDATED_AT": Audience.updated_at}.get(
            sort.field if sort else "", Audience.created_at
        )
        ordered = col(column).desc() if sort and sort.direction == "DESC" else col(column).asc()
        return paginate(session, statement.order_by(ordered, Audience.id), request)


def schedules_by_audience(store: Store, audience_ids: list[str]) -> dict[str, list[AudienceSchedule]]:
    with store.read() as session:
        rows = session.exec(
            select(AudienceSchedule)
            .where(col(AudienceSchedule.audience_id).in_(audience_ids))
            .order_by(AudienceSchedule.created_at, AudienceSchedule.id)
        ).all()
    grouped: dict[str, list[AudienceSchedule]] = {audience_id: [] for audience_id in audience_ids}
    for row in rows:
        grouped[row.audience_id].append(row)
    return grouped


def require_audience(session: Session, space_id: str, audience_id: str) -> Audience:
    require_space(session, space_id)
    audience = session.get(Audience, audience_id)
    if audience is None or audience.space_id != space_id or audience.deleted_at is not None:
        raise NotFound("audience", audience_id, field="id", scope=f"in space '{space_id}'")
    return audience


def _live(space_id: str):
    return select(Audience).where(Audience.space_id == space_id, col(Audience.deleted_at).is_(None))


def _matches(search: Search):
    if search.type == "KEY":
        return col(Audience.key).startswith(search.query, autoescape=True)
    column = Audience.query if search.type == "DEFINITION" else Audience.name
    return col(column).icontains(search.query, autoescape=True)


def check_audience_type(audience_type: str, definition_type: str | None) -> None:
    if audience_type not in AUDIENCE_TYPES:
        raise InputValidation(
            f"audienceType must be one of {', '.join(AUDIENCE_TYPES)}, not '{audience_type}'.", field="audienceType"
        )
    if definition_type is not None and definition_type != audience_type:
        raise InputValidation(
            f"definition.type '{definition_type}' contradicts audienceType '{audience_type}'; "
            "omit definition.type (it is the older form of audienceType).",
            field="definition.type",
        )


def _target_entity(audience_type: str, target_entity: str | None) -> str | None:
    if audience_type == "LINKED":
        return target_entity or "profile"
    if target_entity is not None:
        raise InputValidation(
            "definition.targetEntity applies only to LINKED audiences; omit it for USERS and ACCOUNTS.",
            field="definition.targetEntity",
        )
    return None


def _status(enabled: bool) -> str:
    return "Preparing" if enabled else "Disabled"


def resolve_options(given: dict[str, Any], current: dict[str, Any], analysis: cql.Analysis) -> dict[str, Any]:
    external_ids = list(given.get("filterByExternalIds") or current.get("filterByExternalIds") or DEFAULT_EXTERNAL_IDS)
    if given.get("includeAnonymousUsers") and "anonymous_id" not in external_ids:
        external_ids.append("anonymous_id")
    historical = bool(given.get("includeHistoricalData", current.get("includeHistoricalData", True)))
    if analysis.cadence == "BATCH":
        historical = True
    backfill = given.get("backfillEventDataDays")
    if backfill is not None and not historical:
        raise InputValidation(
            "backfillEventDataDays needs includeHistoricalData: true.", field="options.backfillEventDataDays"
        )
    if backfill is None and historical:
        backfill = current.get("backfillEventDataDays")
    return {
        "includeHistoricalData": historical,
        "filterByExternalIds": list(dict.fromkeys(external_ids)),
        **({"backfillEventDataDays": backfill} if backfill is not None else {}),
    }
