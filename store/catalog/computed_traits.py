"""Computed traits: a CQL reducer over each profile's (or account's) events, stored as trait `<key>`.

Status is `Computing` until first computed (computed traits have no `Preparing` in the Public API),
then `Live` or `Failed`, and `Disabled` when off; removal is a soft delete
that keeps the key reserved. Options are the Public API's TraitOptions, stored as given.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from backend.clock import to_ms
from store.catalog import definitions
from store.catalog.spaces import require_space
from store.db.errors import InputValidation, NotFound
from store.db.ids import new_id
from store.db.models import ComputedTrait
from store.db.pagination import Page, PageRequest, paginate
from store.db.store import Store
from store.delivery import outbox

TRAIT_TYPES = ("USERS", "ACCOUNTS")


def create_computed_trait(
    store: Store,
    space_id: str,
    *,
    name: str,
    query: str,
    definition_type: str,
    description: str | None = None,
    enabled: bool | None = None,
    options: dict[str, Any] | None = None,
) -> ComputedTrait:
    analysis = _check(query, definition_type)
    with store.write() as session:
        require_space(session, space_id)
        now = store.now()
        trait_id = new_id("tra")
        key = definitions.reserve_key(session, space_id, name, trait_id, fallback="trait")
        definitions.record_references(session, space_id, trait_id, key, analysis.referenced_traits)
        definitions.record_change(session, space_id, trait_id, query, to_ms(now))
        is_enabled = True if enabled is None else enabled
        trait = ComputedTrait(
            id=trait_id,
            space_id=space_id,
            key=key,
            name=definitions.check_name(name),
            description=description,
            enabled=is_enabled,
            query=query,
            definition_type=definition_type,
            options={k: v for k, v in (options or {}).items() if v is not None},
            status=_status(is_enabled),
            compute_cadence=analysis.cadence,
            cadence_reason=analysis.cadence_reason,
            created_by=store.actor,
            updated_by=store.actor,
            created_at=now,
            updated_at=now,
        )
        session.add(trait)
        return trait


def get_computed_trait(store: Store, space_id: str, trait_id: str) -> ComputedTrait:
    with store.read() as session:
        return require_computed_trait(session, space_id, trait_id)


def list_computed_traits(store: Store, space_id: str, request: PageRequest) -> Page:
    with store.read() as session:
        require_space(session, space_id)
        statement = (
            select(ComputedTrait)
            .where(ComputedTrait.space_id == space_id, col(ComputedTrait.deleted_at).is_(None))
            .order_by(ComputedTrait.created_at, ComputedTrait.id)
        )
        return paginate(session, statement, request)


def update_computed_trait(
    store: Store,
    space_id: str,
    trait_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    query: str | None = None,
    definition_type: str | None = None,
) -> ComputedTrait:
    with store.write() as session:
        trait = require_computed_trait(session, space_id, trait_id)
        if query is not None or definition_type is not None:
            new_type = definition_type or trait.definition_type
            analysis = _check(query or trait.query, new_type)
            definitions.record_references(session, space_id, trait.id, trait.key, analysis.referenced_traits)
            if query is not None and query != trait.query:
                definitions.record_change(session, space_id, trait.id, query, to_ms(store.now()))
            trait.query, trait.definition_type = query or trait.query, new_type
            trait.compute_cadence, trait.cadence_reason = analysis.cadence, analysis.cadence_reason
        if name is not None:
            trait.name = definitions.check_name(name)
        if description is not None:
            trait.description = description
        if enabled is not None and enabled != trait.enabled:
            trait.enabled = enabled
            trait.status = _status(enabled)
        if query is not None or definition_type is not None or enabled:
            definitions.request_run(session, trait.id, space_id, to_ms(store.now()))
        trait.updated_by = store.actor
        trait.updated_at = store.now()
        session.add(trait)
        return trait


def remove_computed_trait(store: Store, space_id: str, trait_id: str) -> None:
    with store.write() as session:
        trait = require_computed_trait(session, space_id, trait_id)
        definitions.refuse_removal_if_read(session, space_id, trait.key, f"Computed trait '{trait_id}'")
        trait.deleted_at = store.now()
        trait.enabled = False
        trait.status = "Disabled"
        definitions.forget_references(session, trait.id)
        outbox.cancel(session, computation_id=trait.id)
        session.add(trait)


def require_computed_trait(session: Session, space_id: str, trait_id: str) -> ComputedTrait:
    require_space(session, space_id)
    trait = session.get(ComputedTrait, trait_id)
    if trait is None or trait.space_id != space_id or trait.deleted_at is not None:
        raise NotFound("computed trait", trait_id, field="id", scope=f"in space '{space_id}'")
    return trait


def _check(query: str, definition_type: str):
    if definition_type not in TRAIT_TYPES:
        raise InputValidation(
            f"definition.type must be USERS or ACCOUNTS, not '{definition_type}'.", field="definition.type"
        )
    return definitions.check_definition(query, kind="computed_trait", audience_type=definition_type)


def _status(enabled: bool) -> str:
    """The status of a computed trait not computed since it was created or switched on."""
    return "Computing" if enabled else "Disabled"
