"""Activations: which events a connection sends for an audience (entered, exited or both) or a computed
trait (its value changes), enriched with which profile traits (`personalization`) and mapped onto
which destination action.

A computed trait's activation is "Audience Membership Changed" (Identify `traits.<key>: <value>`) or
"All Events" (Track `Trait Computed`), each sent whenever the value changes.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from backend.clock import to_ms
from backend.delivery import adapters
from backend.delivery.adapters import MAX_WEBHOOK_BATCH
from store.catalog import data_graphs, definitions, splits
from store.catalog.destinations import require_connection, require_owner
from store.db.errors import InputValidation, NotFound
from store.db.ids import new_id
from store.db.models import Activation, Connection, DataGraphConfig, Destination
from store.db.pagination import Page, PageRequest, paginate
from store.db.store import Store
from store.delivery import destination_catalog, outbox, owners, routes
from store.delivery.owners import Owner

MEMBERSHIP_TYPES = ("Audience Entered", "Audience Exited", "Audience Membership Changed")
ENTITY_TYPES = ("Entity Added", "Entity Removed", "Entity Values Changed", "All Events")
TRAIT_TYPES = ("Audience Membership Changed", "All Events")


def add_activation(
    store: Store,
    space_id: str,
    audience_id: str,
    connection_id: str,
    *,
    activation_name: str,
    activation_type: str,
    perform_resync: bool,
    personalization: dict[str, Any] | None,
    destination_mapping: dict[str, Any] | None = None,
    display_name: str | None = None,
    enabled: bool | None = None,
    split_group: str | None = None,
) -> Activation:
    personalization = _checked_entities(store, space_id, audience_id, personalization)
    with store.write() as session:
        owner = require_owner(session, space_id, audience_id)
        connection = require_connection(session, space_id, audience_id, connection_id, field="connectionId")
        destination = session.get(Destination, connection.destination_id)
        assert destination is not None
        _check_type(owner, activation_type)
        if not activation_name.strip():
            raise InputValidation("activationName must not be empty.", field="activationName")
        now = store.now()
        activation = Activation(
            id=new_id("act"),
            space_id=space_id,
            audience_id=audience_id,
            connection_id=connection_id,
            activation_type=activation_type,
            activation_name=activation_name,
            display_name=display_name,
            personalization=_check_personalization(owner, activation_type, personalization or {}),
            destination_mapping=_check_mapping(destination, destination_mapping, None),
            enabled=True if enabled is None else enabled,
            perform_resync=perform_resync,
            created_at=now,
            updated_at=now,
            split_group=_check_split_group(session, owner, connection, split_group),
        )
        session.add(activation)
        _resync_if_asked(session, activation, now)
        return activation


def personalization_warnings(store: Store, space_id: str, personalization: dict[str, Any] | None) -> list[str]:
    """Personalization traits no profile of the space has (yet): events leave them out until one does."""
    properties = ((personalization or {}).get("profile") or {}).get("properties") or []
    with store.read() as session:
        unknown = definitions.unknown_traits(session, space_id, properties)
    return [f"personalization.profile.properties: no profile has the trait '{key}' yet, so events leave it "
            f"out{definitions.suggestion(close)}" for key, close in unknown.items()]


def get_activation(store: Store, space_id: str, audience_id: str, activation_id: str) -> Activation:
    with store.read() as session:
        return _require(session, space_id, audience_id, activation_id)


def list_activations(store: Store, space_id: str, audience_id: str, request: PageRequest) -> Page:
    with store.read() as session:
        require_owner(session, space_id, audience_id)
        statement = (
            select(Activation)
            .where(Activation.audience_id == audience_id)
            .order_by(Activation.created_at, Activation.id)
        )
        return paginate(session, statement, request)


def update_activation(
    store: Store,
    space_id: str,
    audience_id: str,
    activation_id: str,
    *,
    activation_name: str | None = None,
    display_name: str | None = None,
    enabled: bool | None = None,
    perform_resync: bool | None = None,
    personalization: dict[str, Any] | None = None,
    destination_mapping: dict[str, Any] | None = None,
    split_group: str | None = None,
) -> Activation:
    """None leaves a field as it is; an empty `activation_name` is ignored and an empty `display_name`
    or `split_group` clears it. A changed group sends the activation the exits and entries it makes
    (`splits.retarget`; only the exits when it is resynced now, which sends every entry anyway)."""
    personalization = _checked_entities(store, space_id, audience_id, personalization)
    with store.write() as session:
        activation = _require(session, space_id, audience_id, activation_id)
        owner = require_owner(session, space_id, audience_id)
        connection = require_connection(session, space_id, audience_id, activation.connection_id)
        destination = session.get(Destination, connection.destination_id)
        assert destination is not None
        aimed = splits.aims(session, audience_id)
        if activation_name:
            activation.activation_name = activation_name
        if display_name is not None:
            activation.display_name = display_name or None
        if enabled is not None:
            activation.enabled = enabled
        if perform_resync is not None:
            activation.perform_resync = perform_resync
        if personalization is not None:
            activation.personalization = _check_personalization(owner, activation.activation_type, personalization)
        if destination_mapping is not None:
            activation.destination_mapping = _check_mapping(
                destination, destination_mapping, activation.destination_mapping
            )
        if split_group is not None:
            activation.split_group = _check_split_group(session, owner, connection, split_group or None)
        activation.updated_at = store.now()
        session.add(activation)
        session.flush()
        resynced = _resync_if_asked(session, activation, activation.updated_at)
        splits.retarget(session, audience_id, aimed, to_ms(activation.updated_at), entries=not resynced)
        return activation


def _check_split_group(session: Session, owner: Owner, connection: Connection, group: str | None) -> str | None:
    """An activation's own split group: one of the audience's split, and its connection's if that has one."""
    if group is None:
        return None
    if owners.is_trait(owner):
        raise InputValidation("splitGroup names a group of an audience's split; a computed trait has none.",
                              field="splitGroup")
    splits.check_target(session, owner.id, group, "splitGroup")
    aimed = connection.connection_settings.get("splitGroup")
    if aimed and aimed != group:
        raise InputValidation(f"Connection '{connection.id}' sends only group '{aimed}'; an activation on it sends "
                              "that group, or omit splitGroup.", field="splitGroup")
    return group


def remove_activation(store: Store, space_id: str, audience_id: str, activation_id: str) -> None:
    with store.write() as session:
        session.delete(_require(session, space_id, audience_id, activation_id))
        outbox.cancel(session, target_id=activation_id)


def _resync_if_asked(session: Session, activation: Activation, now) -> bool:
    """`performResync: true` queues every current member for this activation once it is enabled;
    until then the request stays pending (and `performResync` reads true). A LINKED audience's is
    carried out by its next run (`store.compute.entity_members`), which reads the entity rows the
    events carry from the warehouse. Returns whether it queued them now."""
    if not (activation.perform_resync and activation.enabled):
        return False
    session.flush()
    route = routes.resolve(session, {activation.id}).get(activation.id)
    if route is not None and route.connection.enabled and owners.profile_type(route.owner) != "LINKED":
        outbox.resync(session, route, to_ms(now))
        activation.perform_resync = False
        session.add(activation)
        return True
    return False


def _require(session: Session, space_id: str, audience_id: str, activation_id: str) -> Activation:
    require_owner(session, space_id, audience_id)
    activation = session.get(Activation, activation_id)
    if activation is None or activation.audience_id != audience_id:
        raise NotFound("activation", activation_id, field="id", scope=f"on '{audience_id}'")
    return activation


def _check_type(owner: Owner, activation_type: str) -> None:
    if owners.is_trait(owner):
        allowed = TRAIT_TYPES
    else:
        allowed = MEMBERSHIP_TYPES + (ENTITY_TYPES if owner.audience_type == "LINKED" else ())
    if activation_type not in allowed:
        kind = "a computed trait" if owners.is_trait(owner) else f"a {owners.profile_type(owner)} audience"
        raise InputValidation(
            f"activationType for {kind} must be one of: {', '.join(allowed)}.", field="activationType"
        )


def _checked_entities(store: Store, space_id: str, audience_id: str, personalization: dict[str, Any] | None) -> dict[str, Any] | None:
    """`personalization` with a LINKED audience's `entities` checked against the space's Data Graph (a
    USERS or ACCOUNTS audience's are refused by `_check_personalization`)."""
    entities = (personalization or {}).get("entities")
    if not entities:
        return personalization
    with store.read() as session:
        linked = owners.profile_type(require_owner(session, space_id, audience_id)) == "LINKED"
        has_graph = session.get(DataGraphConfig, space_id) is not None
    if not linked:
        return personalization
    if not has_graph:
        raise InputValidation(f"personalization.entities reads the Data Graph, and space '{space_id}' has none; set "
                              "one with segment_audiences_update_data_graph first.", field="personalization.entities")
    return {**personalization, "entities": data_graphs.check_personalized_entities(store, space_id, entities)}


def _check_personalization(owner: Owner, activation_type: str, given: dict[str, Any]) -> dict[str, Any]:
    profile = given.get("profile") or {}
    properties = list(dict.fromkeys(profile.get("properties") or []))
    mapping = profile.get("mapping") or {}
    unknown = [trait for trait in mapping if trait not in properties]
    if unknown:
        raise InputValidation(
            f"personalization.profile.mapping renames '{unknown[0]}', which is not in profile.properties.",
            field="personalization.profile.mapping",
        )
    entities = given.get("entities")
    if entities and owners.profile_type(owner) != "LINKED":
        raise InputValidation(
            "personalization.entities applies only to LINKED audiences; use profile.properties for "
            f"this {owners.profile_type(owner)} {'computed trait' if owners.is_trait(owner) else 'audience'}.",
            field="personalization.entities",
        )
    sync_changes = given.get("syncEntityPropertyChanges")
    if sync_changes and activation_type != "Audience Membership Changed":
        raise InputValidation(
            "syncEntityPropertyChanges applies only to 'Audience Membership Changed' activations.",
            field="personalization.syncEntityPropertyChanges",
        )
    result: dict[str, Any] = {"profile": {"properties": properties, **({"mapping": mapping} if mapping else {})}}
    if entities:
        result["entities"] = entities
    if sync_changes is not None:
        result["syncEntityPropertyChanges"] = sync_changes
    return result


def _check_mapping(
    destination: Destination, mapping: dict[str, Any] | None, current: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Check `actionId` and `settings` against the catalog; once set, the action cannot change
    (Segment ignores a different one). An action destination whose only action needs no settings
    (Pendula) gets that action when the mapping is omitted."""
    entry = destination_catalog.BY_SLUG[destination.slug]
    if mapping is None:
        if current is not None or not entry.actions:
            return current
        if len(entry.actions) == 1 and not any(f.required for f in entry.actions[0].fields):
            return {"actionId": entry.actions[0].id, "settings": {}}
        raise InputValidation(
            f"{entry.name} sends through an action: give destinationMapping {{actionId, settings}} with one of "
            f"{', '.join(a.id for a in entry.actions)} (see segment_audiences_list_supported_destinations_from_audience).",
            field="destinationMapping",
        )
    if not entry.actions:
        raise InputValidation(
            f"{entry.name} has no actions; it is configured with connectionSettings, so omit destinationMapping.",
            field="destinationMapping",
        )
    action_id = current["actionId"] if current else mapping.get("actionId")
    action = next((a for a in entry.actions if a.id == action_id), None)
    if action is None:
        raise InputValidation(
            f"Unknown actionId '{action_id}' for {entry.name}; use one of "
            f"{', '.join(a.id for a in entry.actions)} (see segment_audiences_list_supported_destinations_from_audience).",
            field="destinationMapping.actionId",
        )
    settings = destination_catalog.check_fields(mapping.get("settings") or {}, action.fields, "destinationMapping.settings", require=True)
    for name, value in settings.items():
        unsupported = adapters.unsupported_directives(value)
        if unsupported:
            raise InputValidation(
                f"destinationMapping.settings.{name} uses {', '.join(sorted(set(unsupported)))}: only "
                '{"@path": "$.a.b[0]"} and literal values are supported here; compute the value in a trait instead.',
                field=f"destinationMapping.settings.{name}")
    batch_size = settings.get("batchSize")
    if batch_size is not None and not 1 <= batch_size <= MAX_WEBHOOK_BATCH:
        raise InputValidation(f"batchSize must be 1 to {MAX_WEBHOOK_BATCH}.", field="destinationMapping.settings.batchSize")
    return {"actionId": action.id, "settings": settings}
