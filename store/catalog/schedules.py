"""Audience run schedules: PERIODIC (a fixed interval, UTC) or SPECIFIC_DAYS (weekdays and hours in a
time zone), with `nextExecution` computed by `backend.schedules`. Segment allows schedules only on
LINKED audiences; here every audience type may have them."""

from __future__ import annotations

from datetime import timezone
from typing import Any

from sqlmodel import Session, select

from backend.schedules import PERIODIC_INTERVALS, is_timezone, next_periodic, next_specific_days
from store.catalog.audiences import require_audience
from store.db.errors import InputValidation, NotFound
from store.db.ids import new_id
from store.db.models import AudienceSchedule
from store.db.store import Store

STRATEGIES = ("PERIODIC", "SPECIFIC_DAYS")


def add_schedule(store: Store, space_id: str, audience_id: str, strategy: str, config: dict[str, Any]) -> AudienceSchedule:
    config = _check(strategy, config)
    with store.write() as session:
        require_audience(session, space_id, audience_id)
        now = store.now()
        schedule = AudienceSchedule(
            id=new_id("sch"),
            audience_id=audience_id,
            strategy=strategy,
            config=config,
            next_execution=next_execution(strategy, config, store),
            created_at=now,
            updated_at=now,
        )
        session.add(schedule)
        return schedule


def list_schedules(store: Store, space_id: str, audience_id: str) -> list[AudienceSchedule]:
    with store.read() as session:
        require_audience(session, space_id, audience_id)
        statement = (
            select(AudienceSchedule)
            .where(AudienceSchedule.audience_id == audience_id)
            .order_by(AudienceSchedule.created_at, AudienceSchedule.id)
        )
        return list(session.exec(statement).all())


def get_schedule(store: Store, space_id: str, audience_id: str, schedule_id: str) -> AudienceSchedule:
    with store.read() as session:
        return _require(session, space_id, audience_id, schedule_id)


def update_schedule(
    store: Store,
    space_id: str,
    audience_id: str,
    schedule_id: str,
    strategy: str | None,
    config: dict[str, Any] | None,
) -> AudienceSchedule:
    with store.write() as session:
        schedule = _require(session, space_id, audience_id, schedule_id)
        new_strategy = strategy or schedule.strategy
        if new_strategy != schedule.strategy and config is None:
            raise InputValidation(
                f"Changing the strategy to {new_strategy} needs a matching config.", field="config"
            )
        schedule.config = _check(new_strategy, config if config is not None else schedule.config)
        schedule.strategy = new_strategy
        schedule.next_execution = next_execution(new_strategy, schedule.config, store)
        schedule.updated_at = store.now()
        session.add(schedule)
        return schedule


def remove_schedule(store: Store, space_id: str, audience_id: str, schedule_id: str) -> None:
    with store.write() as session:
        session.delete(_require(session, space_id, audience_id, schedule_id))


def next_execution(strategy: str, config: dict[str, Any], store: Store):
    after = store.clock.now()
    if strategy == "PERIODIC":
        upcoming = next_periodic(config["interval"], after)
    else:
        upcoming = next_specific_days(config["days"], config["hours"], config["timezone"], after)
    return upcoming.astimezone(timezone.utc)


def _require(session: Session, space_id: str, audience_id: str, schedule_id: str) -> AudienceSchedule:
    require_audience(session, space_id, audience_id)
    schedule = session.get(AudienceSchedule, schedule_id)
    if schedule is None or schedule.audience_id != audience_id:
        raise NotFound("schedule", schedule_id, field="scheduleId", scope=f"on audience '{audience_id}'")
    return schedule


def _check(strategy: str, config: dict[str, Any]) -> dict[str, Any]:
    if strategy not in STRATEGIES:
        raise InputValidation(f"strategy must be PERIODIC or SPECIFIC_DAYS, not '{strategy}'.", field="strategy")
    if strategy == "PERIODIC":
        interval = config.get("interval")
        if set(config) != {"interval"} or interval not in PERIODIC_INTERVALS:
            raise InputValidation(
                f"A PERIODIC schedule takes config {{interval}} with interval one of {', '.join(PERIODIC_INTERVALS)}.",
                field="config.interval",
            )
        return {"interval": interval}
    days, hours, tz_name = config.get("days"), config.get("hours"), config.get("timezone")
    if set(config) != {"days", "hours", "timezone"}:
        raise InputValidation(
            "A SPECIFIC_DAYS schedule takes config {days, hours, timezone}.", field="config"
        )
    if not days or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
        raise InputValidation("config.days lists weekdays 0 (Sunday) to 6 (Saturday).", field="config.days")
    if not hours or not all(isinstance(h, int) and 0 <= h <= 23 for h in hours):
        raise InputValidation("config.hours lists hours 0 to 23.", field="config.hours")
    if not isinstance(tz_name, str) or not is_timezone(tz_name):
        raise InputValidation(
            f"config.timezone '{tz_name}' is not an IANA time zone such as America/New_York.", field="config.timezone"
        )
    return {"days": sorted(set(days)), "hours": sorted(set(hours)), "timezone": tz_name}
