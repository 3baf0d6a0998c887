"""Store rows in the Public API's shapes."""

from datetime import datetime
from typing import Any, Optional

from backend import clock
from store.catalog.destination_instances import visible_settings
from store.catalog.destinations import ConnectionView
from store.compute.computations import Computation
from store.db import models as rows
from store.db.pagination import Page, PageRequest
from store.delivery import destination_catalog
from store.delivery.outbox import Health
from tools import models as api


def iso(moment: datetime | None) -> Optional[str]:
    """ISO-8601 UTC with milliseconds and Z, as the Public API writes times."""
    return None if moment is None else clock.iso(moment)


def page_request(pagination: Optional[api.PaginationInput]) -> PageRequest:
    return PageRequest() if pagination is None else PageRequest(pagination.cursor, pagination.count)


def pagination(page: Page) -> api.PaginationOutput:
    return api.PaginationOutput(current=page.current, next=page.next, previous=page.previous, totalEntries=page.total)


def space(row: rows.Space) -> api.Space:
    return api.Space(id=row.id, slug=row.slug, name=row.name)


def audience(row: rows.Audience) -> api.AudienceSummary:
    return api.AudienceSummary(
        id=row.id,
        spaceId=row.space_id,
        name=row.name,
        description=row.description,
        key=row.key,
        enabled=row.enabled,
        definition=api.AudienceDefinition(query=row.query, targetEntity=row.target_entity),
        status=row.status,
        createdBy=row.created_by,
        updatedBy=row.updated_by,
        createdAt=iso(row.created_at),
        updatedAt=iso(row.updated_at),
        audienceType=row.audience_type,
        options=api.AudienceOptions(**_audience_options(row.options)),
    )


def audience_with_lookback(
    row: rows.Audience,
    schedules: Optional[list[rows.AudienceSchedule]] = None,
    state: Optional[rows.ComputeState] = None,
    explanation: Optional[api.Explanation] = None,
) -> api.AudienceWithLookback:
    return api.AudienceWithLookback(
        **audience(row).model_dump(),
        computeCadence=api.ComputeCadence(type=row.compute_cadence),
        size=size(row.audience_type, state.size, state.entity_size) if state is not None and state.last_run_id else None,
        schedules=None if schedules is None else [schedule(item) for item in schedules],
        explain=explanation,
    )


def size(audience_type: str, count: int, entities: int | None = None) -> api.AudienceSize:
    """Users or accounts; a LINKED audience whose members are entity rows counts (profile, entity row)
    pairs, with the profiles as `uniqueCount`."""
    if entities is not None:
        return api.AudienceSize(type="ENTITIES", count=entities, uniqueCount=count)
    return api.AudienceSize(type="ACCOUNTS" if audience_type == "ACCOUNTS" else "USERS", count=count)


def explain(engine: str, sql: str, computation: Computation) -> api.Explanation:
    analysis = computation.analysis
    return api.Explanation(
        engine=engine,
        sql=sql,
        computeCadence=api.ComputeCadence(type=analysis.cadence),
        cadenceReason=analysis.cadence_reason,
        referencedKeys=list(analysis.referenced_traits),
        eventNames=list(analysis.event_names),
        largestWindowHours=analysis.largest_window_hours,
    )


def preview(row: rows.AudiencePreview) -> api.AudiencePreview:
    completed = row.status == "COMPLETED"
    return api.AudiencePreview(
        id=row.id,
        audienceType=row.audience_type,
        definition=api.AudienceDefinition(**row.definition),
        options=api.AudiencePreviewOptions(**row.options),
        status=row.status,
        results=[api.AudiencePreviewResult(**result) for result in row.results or []] if completed else None,
        size=size(row.audience_type, row.size or 0, row.entity_size) if completed else None,
        failureReason=row.failure_reason,
    )


def run(row: rows.ComputeRun) -> api.RunInfo:
    return api.RunInfo(id=row.id, status=row.status, size=row.size, entered=row.entered, exited=row.exited,
                       engine=row.engine, replicationLagMs=row.replication_lag_ms, error=row.error,
                       entitySize=row.entity_size, stepsMs=row.steps)


def _audience_options(options: dict[str, Any]) -> dict[str, Any]:
    shown = dict(options)
    if not shown.get("includeHistoricalData"):
        shown.pop("backfillEventDataDays", None)
    return shown


def schedule(row: rows.AudienceSchedule) -> api.AudienceSchedule:
    return api.AudienceSchedule(
        id=row.id, strategy=row.strategy, config=row.config, nextExecution=iso(row.next_execution)
    )


def computed_trait(row: rows.ComputedTrait) -> api.ComputedTraitSummary:
    return api.ComputedTraitSummary(
        id=row.id,
        spaceId=row.space_id,
        name=row.name,
        description=row.description,
        key=row.key,
        enabled=row.enabled,
        definition=api.TraitDefinition(query=row.query, type=row.definition_type),
        status=row.status,
        createdBy=row.created_by,
        updatedBy=row.updated_by,
        createdAt=iso(row.created_at),
        updatedAt=iso(row.updated_at),
        options=api.TraitOptions(**row.options),
        computeCadence=api.ComputeCadence(type=row.compute_cadence),
    )


def delivery(health: Health) -> api.DeliveryHealth:
    return api.DeliveryHealth(
        pending=health.pending, retrying=health.retrying, delivered=health.delivered,
        deadLettered=health.dead_lettered, lastError=health.last_error,
        lastErrorAt=None if health.last_error_at_ms is None else clock.iso(clock.from_ms(health.last_error_at_ms)),
    )


def destination(row: rows.Destination) -> api.Destination:
    entry = destination_catalog.BY_SLUG[row.slug]
    return api.Destination(id=row.id, name=row.name, enabled=row.enabled, sourceId=row.space_id,
                           metadata=api.DestinationMetadata(id=entry.slug, name=entry.name, slug=entry.slug),
                           settings=visible_settings(row))


def connection(view: ConnectionView, health: Health | None = None) -> api.SimpleDestination:
    entry = destination_catalog.BY_SLUG[view.destination.slug]
    row = view.connection
    return api.SimpleDestination(
        id=row.id,
        name=view.destination.name,
        sourceId=row.space_id,
        enabled=row.enabled,
        createdAt=iso(row.created_at),
        updatedAt=iso(row.updated_at),
        settings=visible_settings(view.destination),
        destinationId=view.destination.id,
        metadata=api.DestinationMetadata(id=entry.slug, name=entry.name, slug=entry.slug),
        idSyncConfiguration=row.id_sync_configuration,
        connectionSettings=row.connection_settings,
        delivery=None if health is None else delivery(health),
    )


def activation(row: rows.Activation, workspace_id: str, health: Health) -> api.ActivationOutput:
    """The activation; `performResync` is true while a requested resync waits or is still going out."""
    return api.ActivationOutput(
        id=row.id,
        enabled=row.enabled,
        workspaceId=workspace_id,
        spaceId=row.space_id,
        audienceId=row.audience_id,
        connectionId=row.connection_id,
        activationType=row.activation_type,
        activationName=row.activation_name,
        displayName=row.display_name,
        personalization=row.personalization,
        destinationMapping=row.destination_mapping,
        performResync=row.perform_resync or health.resync_pending,
        delivery=delivery(health),
        splitGroup=row.split_group,
    )


def catalog_entry(entry: destination_catalog.CatalogEntry) -> dict[str, Any]:
    def fields(items: tuple[destination_catalog.SettingField, ...]) -> list[dict[str, Any]]:
        return [
            {"name": f.name, "label": f.label, "type": f.type, "required": f.required, "description": f.description}
            for f in items
        ]

    return {
        "slug": entry.slug,
        "name": entry.name,
        "description": entry.description,
        "settings": fields(entry.settings),
        "connectionSettings": fields(entry.connection_settings),
        "actions": [
            {"id": a.id, "name": a.name, "description": a.description, "fields": fields(a.fields)} for a in entry.actions
        ],
        "defaultIdSyncConfiguration": [{"externalId": e, "strategy": s} for e, s in entry.default_id_sync],
        "accepts": list(entry.accepts),
    }
