"""Compute tools: preview an audience definition before saving it, and force an audience to run now."""

from typing import Annotated, Optional

from pydantic import BaseModel, Field

from store.catalog import definitions
from store.compute import previews, runs
from store.db.store import Store
from tools import shapes
from tools.models import (AudienceDefinitionInput, AudiencePreview, AudienceType, Input, Output, RunInfo,
                          SpaceId, Warnings, resource_id)
from tools.registry import read, write


class PreviewOptionsInput(Input):
    filterByExternalIds: Optional[list[str]] = Field(
        None, min_length=1, description="Members need one of these id types (default user_id, email, android.idfa, ios.idfa)."
    )
    backfillEventDataDays: Optional[int] = Field(None, ge=1, le=36_500, description="Days of history (default all).")


class AudiencePreviewIdentifier(Output):
    id: str


class PreviewIdOutput(BaseModel):
    audiencePreview: AudiencePreviewIdentifier
    warnings: Warnings = None


class PreviewOutput(BaseModel):
    audiencePreview: AudiencePreview


class RunOutput(BaseModel):
    run: RunInfo


def create_audience_preview(
    store: Store,
    spaceId: SpaceId,
    audienceType: Annotated[AudienceType, Field(description="Members are profiles, accounts or (LINKED) entities.")],
    definition: Annotated[AudienceDefinitionInput, Field(description="As for create_audience.")],
    options: Optional[PreviewOptionsInput] = None,
) -> PreviewIdOutput:
    """Start computing how many profiles a definition would hold, saving nothing; CQL mistakes are
    reported here. Returns {audiencePreview: {id: prv_…}} at once: poll
    segment_audiences_get_audience_preview until COMPLETED (size, up to 100 members) or FAILED
    (failureReason). Unknown trait keys and event names are named in `warnings`, as create_audience
    names them."""
    row = previews.create_preview(
        store,
        spaceId,
        audience_type=audienceType,
        query=definition.query,
        target_entity=definition.targetEntity,
        options=options.model_dump(exclude_none=True) if options else None,
    )
    warnings = definitions.definition_warnings(store, spaceId, definition.query, kind="audience",
                                               audience_type=audienceType)
    return PreviewIdOutput(audiencePreview=AudiencePreviewIdentifier(id=row.id), warnings=warnings or None)


def get_audience_preview(store: Store, spaceId: SpaceId, id: Annotated[str, resource_id("Preview id (prv_…).")]) -> PreviewOutput:
    """Get a preview: status RUNNING, then COMPLETED with size.count and results (up to 100 members,
    each {id, externalIds}; LINKED: matched `entities`), or FAILED with failureReason. Call again while it is RUNNING."""
    return PreviewOutput(audiencePreview=shapes.preview(previews.get_preview(store, spaceId, id)))


def force_execute_audience_run(
    store: Store, spaceId: SpaceId, audienceId: Annotated[str, resource_id("Audience id (aud_…).")]
) -> RunOutput:
    """Recompute an audience now, whatever its cadence, and wait. Returns {run: {id: run_…, status,
    size, entered, exited, engine, error?}}; changes go to the connected destinations. A FAILED run keeps
    the previous members."""
    return RunOutput(run=shapes.run(runs.force_audience_run(store, spaceId, audienceId)))


TOOLS = [
    write("create_audience_preview", "Create audience preview", create_audience_preview),
    read("get_audience_preview", "Get audience preview", get_audience_preview),
    write("force_execute_audience_run", "Force audience run", force_execute_audience_run),
]
