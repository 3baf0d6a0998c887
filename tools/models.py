"""Pydantic models of the Public API objects that several tool modules share (`reference/public-api.md`):
the results `tools/shapes.py` builds, and the inputs more than one tool takes. A model only one tool
module uses lives in that module.

Field names are the API's camelCase names, so schemas and results read exactly like Segment's.
Input objects forbid unknown fields, so a misspelt field is reported instead of silently ignored.
"""

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

AudienceType = Literal["USERS", "ACCOUNTS", "LINKED"]
TraitType = Literal["USERS", "ACCOUNTS"]
SpaceId = Annotated[str, Field(min_length=1, max_length=255, description="Space id (spa_…).")]


def resource_id(description: str) -> Any:
    return Annotated[str, Field(min_length=1, max_length=255, description=description)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# inputs


class PaginationInput(Input):
    cursor: Optional[str] = Field(None, description="pagination.next (or .previous) of the last page.")
    count: int = Field(200, ge=1, le=1000)


class AudienceDefinitionInput(Input):
    query: str = Field(min_length=1, description="CQL, e.g. event('Order Completed').count() >= 1.")
    targetEntity: Optional[str] = Field(None, description="LINKED: profile (default) or a top entity('…') slug, its rows the members.")
    type: Optional[AudienceType] = Field(None, description="Older form of audienceType; must equal it.")


# outputs


class Output(BaseModel):
    pass


Warnings = Annotated[Optional[list[str]], Field(
    description="Addition to the Public API: what was accepted but looks wrong, e.g. a trait no profile has.")]


class PaginationOutput(Output):
    current: str
    next: Optional[str] = None
    previous: Optional[str] = None
    totalEntries: Optional[int] = None


class Space(Output):
    id: str
    slug: str
    name: str


class AudienceDefinition(Output):
    query: str
    targetEntity: Optional[str] = None


class AudienceOptions(Output):
    includeHistoricalData: Optional[bool] = None
    filterByExternalIds: list[str]
    backfillEventDataDays: Optional[int] = None


class ComputeCadence(Output):
    type: Literal["BATCH", "REALTIME"]


class AudienceSize(Output):
    type: Literal["ACCOUNTS", "ENTITIES", "USERS"]
    count: Optional[int] = None
    uniqueCount: Optional[int] = None


class PeriodicConfigOutput(Output):
    interval: str


class SpecificDaysConfigOutput(Output):
    days: list[int]
    hours: list[int]
    timezone: str


class AudienceSchedule(Output):
    id: str
    strategy: Literal["PERIODIC", "SPECIFIC_DAYS"]
    config: PeriodicConfigOutput | SpecificDaysConfigOutput | None
    nextExecution: Optional[str] = None


class AudienceSummary(Output):
    id: str
    spaceId: str
    name: str
    description: Optional[str] = None
    key: str
    enabled: bool
    definition: AudienceDefinition | None
    status: Optional[str] = None
    createdBy: str
    updatedBy: str
    createdAt: str
    updatedAt: str
    audienceType: AudienceType
    options: Optional[AudienceOptions] = None


class Explanation(Output):
    """How segment-audiences computes a definition (an addition to the Public API's shape)."""

    engine: str = Field(description="What full runs compute on: duckdb, clickhouse, sqlite or postgresql.")
    sql: str = Field(description="The compiled SQL full runs send it, values inlined.")
    computeCadence: ComputeCadence
    cadenceReason: str
    referencedKeys: list[str] = Field(description="Audience or trait keys read with trait('<key>').")
    eventNames: list[str]
    largestWindowHours: Optional[float] = None


class AudienceWithLookback(AudienceSummary):
    computeCadence: ComputeCadence
    size: Optional[AudienceSize] = None
    schedules: Optional[list[AudienceSchedule]] = None
    explain: Optional[Explanation] = None


class TraitDefinition(Output):
    query: str
    type: TraitType


class TraitOptions(Output):
    includeHistoricalData: Optional[bool] = None
    includeAnonymousUsers: Optional[bool] = None
    backfillDurationDays: Optional[int] = None


class ComputedTraitSummary(Output):
    id: str
    spaceId: str
    name: str
    description: Optional[str] = None
    key: str
    enabled: bool
    definition: TraitDefinition | None
    status: Optional[str] = None
    createdBy: str
    updatedBy: str
    createdAt: str
    updatedAt: str
    options: Optional[TraitOptions] = None
    computeCadence: Optional[ComputeCadence] = Field(None, description="Extra: BATCH or REALTIME.")


class IdSyncConfiguration(Output):
    externalId: str
    strategy: str
    mapTo: Optional[str] = None


class DestinationMetadata(Output):
    id: str
    name: str
    slug: str


class DeliveryHealth(Output):
    """Extra (not in the Public API): how delivery to this target is going."""

    pending: int = Field(description="Rows waiting for their first attempt.")
    retrying: int = Field(description="Rows that failed at least once and will be retried.")
    delivered: int
    deadLettered: int = Field(description="Rows given up on; re-drive them with `segment-audiences deliveries redrive`.")
    lastError: Optional[str] = None
    lastErrorAt: Optional[str] = None


class Destination(Output):
    """A destination instance of the space (the Public API's Destination; secrets show as ********)."""

    id: str = Field(description="The instance id (dst_…), given as destination.id to add_destination_to_audience.")
    name: str
    enabled: bool
    metadata: DestinationMetadata = Field(description="The catalog entry: id and slug are the metadataId.")
    settings: dict[str, Any]
    sourceId: str = Field(description="The space whose events feed it.")


class SimpleDestination(Output):
    id: str
    name: Optional[str] = None
    sourceId: str
    enabled: bool
    createdAt: str
    updatedAt: str
    settings: dict[str, Any]
    destinationId: str
    metadata: Optional[DestinationMetadata] = None
    idSyncConfiguration: Optional[list[IdSyncConfiguration]] = None
    connectionSettings: Optional[dict[str, Any]] = None
    delivery: Optional[DeliveryHealth] = None


class ProfilePersonalizationOutput(Output):
    properties: list[str]
    mapping: Optional[dict[str, str]] = None


class EntityPersonalizationOutput(Output):
    properties: list[str]
    relationshipSlug: str


class PersonalizationOutput(Output):
    profile: ProfilePersonalizationOutput
    entities: Optional[list[EntityPersonalizationOutput]] = None
    syncEntityPropertyChanges: Optional[bool] = None


class DestinationMapping(Output):
    actionId: str
    settings: Optional[dict[str, Any]] = None


class ActivationOutput(Output):
    id: str
    enabled: bool
    workspaceId: str
    spaceId: str
    audienceId: str
    connectionId: str
    activationType: str
    activationName: str
    displayName: Optional[str] = None
    personalization: PersonalizationOutput
    destinationMapping: Optional[DestinationMapping] = None
    performResync: Optional[bool] = None
    delivery: Optional[DeliveryHealth] = None
    splitGroup: Optional[str] = None


class Status(Output):
    status: str


class ExternalIdOutput(Output):
    type: str
    id: str


class AudiencePreviewResult(Output):
    id: str = Field(description="The profile (use_…) or account (acc_…) id; with an entity target, the entity row's "
                                "primary-key value.")
    externalIds: Optional[list[ExternalIdOutput]] = Field(None, description="The profile's external ids.")
    entities: Optional[dict[str, list[dict[str, Any]]]] = Field(
        None, description="LINKED: the matched entity rows (EntityDetails: id, idProperty, relationshipSlug, properties, "
                          "entities one level deeper) by relationship slug, at most 10 per relationship and level.")
    idProperty: Optional[str] = Field(None, description="Entity target: the primary-key column.")
    relationshipSlug: Optional[str] = Field(None, description="Entity target: the relationship of the row.")
    properties: Optional[dict[str, Any]] = Field(None, description="Entity target: the row's columns shown.")
    profiles: Optional[list[dict[str, str]]] = Field(None, description="Entity target: profiles linked to the row "
                                                                       "(at most 10), as {id}.")
    profilesTruncated: Optional[bool] = None


class AudiencePreviewOptions(Output):
    filterByExternalIds: Optional[list[str]] = None
    includeHistoricalData: Optional[bool] = None
    backfillEventDataDays: Optional[int] = None


class AudiencePreview(Output):
    id: str
    audienceType: Literal["ACCOUNTS", "LINKED", "USERS"]
    definition: AudienceDefinition
    options: AudiencePreviewOptions
    status: Literal["RUNNING", "COMPLETED", "FAILED"]
    results: Optional[list[AudiencePreviewResult]] = None
    size: Optional[AudienceSize] = None
    failureReason: Optional[str] = None


class RunInfo(Output):
    id: str = Field(description="The run id (run_…).")
    status: Literal["COMPLETED", "FAILED"]
    size: int = Field(description="Members after the run.")
    entered: int
    exited: int
    engine: Optional[str] = Field(None, description="Where it computed: duckdb, clickhouse, sqlite or postgresql.")
    replicationLagMs: Optional[int] = Field(None, description="How far behind the analytic store was when it started.")
    error: Optional[str] = None
    entitySize: Optional[int] = Field(None, description="LINKED with an entity target: the (profile, entity row) "
                                                        "members after the run; size then counts profiles.")
    stepsMs: Optional[dict[str, int]] = Field(None, description="LINKED: milliseconds per step (extract from the "
                                                                "warehouse, diff, enqueue events).")
