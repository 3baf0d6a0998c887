"""Audience schedule tools: when an audience recomputes, PERIODIC or on SPECIFIC_DAYS."""

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, Field

from store.catalog import schedules
from store.db.store import Store
from tools import shapes
from tools.models import AudienceSchedule, Input, SpaceId, Status, resource_id
from tools.registry import read, remove, write


Interval = Literal["15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"]


class PeriodicConfig(Input):
    interval: Interval = Field(description="Aligned to midnight UTC.")


class SpecificDaysConfig(Input):
    days: list[int] = Field(min_length=1, description="0 = Sunday … 6.")
    hours: list[int] = Field(min_length=1, description="0 … 23, local.")
    timezone: str = Field(min_length=1, description="IANA, e.g. America/New_York.")


AudienceIdParam = resource_id("Audience id (aud_…).")
ScheduleId = resource_id("Schedule id (sch_…).")
Strategy = Literal["PERIODIC", "SPECIFIC_DAYS"]
Config = Union[PeriodicConfig, SpecificDaysConfig]
CONFIG_HELP = (
    "{interval} for PERIODIC, {days, hours, timezone} for SPECIFIC_DAYS."
)


class ScheduleOutput(BaseModel):
    audienceSchedule: AudienceSchedule


class SchedulesOutput(BaseModel):
    audienceSchedules: list[AudienceSchedule]


def add_audience_schedule_to_audience(
    store: Store,
    spaceId: SpaceId,
    id: AudienceIdParam,
    config: Annotated[Config, Field(description=CONFIG_HELP)],
    strategy: Annotated[Strategy, Field(description="Must match config.")],
) -> ScheduleOutput:
    """Add a run schedule (any audience type; Segment allows LINKED only). PERIODIC runs on multiples of
    the interval since midnight UTC; SPECIFIC_DAYS at the hours of the weekdays in the time zone,
    DST-correct. Returns {audienceSchedule} (sch_…) with nextExecution (UTC)."""
    row = schedules.add_schedule(store, spaceId, id, strategy, config.model_dump())
    return ScheduleOutput(audienceSchedule=shapes.schedule(row))


def get_audience_schedule_from_space_and_audience(
    store: Store, spaceId: SpaceId, id: AudienceIdParam, scheduleId: ScheduleId
) -> ScheduleOutput:
    """Get one schedule of an audience, with its nextExecution."""
    return ScheduleOutput(audienceSchedule=shapes.schedule(schedules.get_schedule(store, spaceId, id, scheduleId)))


def list_audience_schedules_from_space_and_audience(
    store: Store, spaceId: SpaceId, id: AudienceIdParam
) -> SchedulesOutput:
    """List every schedule of an audience (no pagination), oldest first."""
    rows = schedules.list_schedules(store, spaceId, id)
    return SchedulesOutput(audienceSchedules=[shapes.schedule(row) for row in rows])


def update_audience_schedule_for_audience(
    store: Store,
    spaceId: SpaceId,
    id: AudienceIdParam,
    scheduleId: ScheduleId,
    config: Annotated[Optional[Config], Field(description=CONFIG_HELP)] = None,
    strategy: Annotated[Optional[Strategy], Field(description="Needs a matching config.")] = None,
) -> ScheduleOutput:
    """Change a schedule's strategy and/or config; nextExecution is recomputed."""
    row = schedules.update_schedule(store, spaceId, id, scheduleId, strategy, config.model_dump() if config else None)
    return ScheduleOutput(audienceSchedule=shapes.schedule(row))


def remove_audience_schedule_from_audience(
    store: Store, spaceId: SpaceId, id: AudienceIdParam, scheduleId: ScheduleId
) -> Status:
    """Remove a schedule from an audience. Returns {status: SUCCESS}."""
    schedules.remove_schedule(store, spaceId, id, scheduleId)
    return Status(status="SUCCESS")


TOOLS = [
    write("add_audience_schedule_to_audience", "Add audience schedule", add_audience_schedule_to_audience),
    read("get_audience_schedule_from_space_and_audience", "Get audience schedule", get_audience_schedule_from_space_and_audience),
    read("list_audience_schedules_from_space_and_audience", "List audience schedules", list_audience_schedules_from_space_and_audience),
    write("update_audience_schedule_for_audience", "Update audience schedule", update_audience_schedule_for_audience, idempotent=True),
    remove("remove_audience_schedule_from_audience", "Remove audience schedule", remove_audience_schedule_from_audience),
]
