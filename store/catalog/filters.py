"""Space filters: FQL conditions that drop matching events at ingest, before identity resolution.

At most ten per space. The `if` is parsed when a filter is saved, so an invalid one is refused with
its position. When `enabled` or `drop` are not given they default to true: a space filter's only
effect is dropping, so a new filter does what it says unless asked not to. Every drop is counted on
the filter (`dropped_count`, `last_dropped_at`).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Connection, func, select, update
from sqlmodel import Session

from backend import fql
from store.catalog.spaces import require_space
from store.db import locks
from store.db.errors import Conflict, InputValidation, NotFound
from store.db.ids import new_id
from store.db.models import SpaceFilter
from store.db.store import Store

MAX_FILTERS = 10
MAX_NAME = 255


def create_filter(
    store: Store, space_id: str, name: str, condition: str, *, enabled: bool | None, description: str | None, drop: bool | None
) -> SpaceFilter:
    _check(name=name, condition=condition)
    with store.write() as session:
        require_space(session, space_id)
        locks.exclusive(session, [f"filters of {space_id}"])
        count = session.execute(select(func.count()).where(SpaceFilter.space_id == space_id)).scalar_one()
        if count >= MAX_FILTERS:
            raise Conflict(f"space {space_id} already has {MAX_FILTERS} filters, the most allowed; delete one first")
        now = store.now()
        row = SpaceFilter(
            id=new_id("flt"),
            space_id=space_id,
            name=name,
            description=description,
            condition=condition,
            enabled=True if enabled is None else enabled,
            drop=True if drop is None else drop,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        return row


def get_filter(store: Store, filter_id: str) -> SpaceFilter:
    with store.read() as session:
        return _require(session, filter_id)


def list_filters(store: Store, space_id: str, offset: int, count: int) -> tuple[list[SpaceFilter], int]:
    """One page of a space's filters, oldest first, and how many there are in all."""
    with store.read() as session:
        require_space(session, space_id)
        total = session.execute(select(func.count()).where(SpaceFilter.space_id == space_id)).scalar_one()
        statement = (
            select(SpaceFilter)
            .where(SpaceFilter.space_id == space_id)
            .order_by(SpaceFilter.created_at, SpaceFilter.id)
            .offset(offset)
            .limit(count)
        )
        return list(session.execute(statement).scalars()), total


def update_filter(store: Store, filter_id: str, space_id: str | None, changes: dict) -> SpaceFilter:
    """Change the given fields of a filter; fields not given keep their values."""
    _check(name=changes.get("name"), condition=changes.get("condition"))
    with store.write() as session:
        row = _require(session, filter_id)
        if space_id is not None and space_id != row.space_id:
            raise InputValidation(
                f"filter {filter_id} belongs to space {row.space_id}; filters cannot move between spaces",
                field="integrationId",
            )
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = store.now()
        session.add(row)
        return row


def delete_filter(store: Store, filter_id: str) -> None:
    with store.write() as session:
        session.delete(_require(session, filter_id))


def dropping_filters(connection: Connection, space_id: str) -> list[tuple[str, str]]:
    """(id, condition) of the filters that drop events in this space now: enabled, with `drop` set."""
    statement = (
        select(SpaceFilter.id, SpaceFilter.condition)
        .where(SpaceFilter.space_id == space_id, SpaceFilter.enabled.is_(True), SpaceFilter.drop.is_(True))
        .order_by(SpaceFilter.created_at, SpaceFilter.id)
    )
    return list(connection.execute(statement))


def count_drops(connection: Connection, filter_id: str, count: int, now_ms: int) -> None:
    connection.execute(
        update(SpaceFilter)
        .where(SpaceFilter.id == filter_id)
        .values(
            dropped_count=SpaceFilter.dropped_count + count,
            last_dropped_at=datetime.fromtimestamp(now_ms / 1000, timezone.utc),
        )
    )


def _require(session: Session, filter_id: str) -> SpaceFilter:
    row = session.get(SpaceFilter, filter_id)
    if row is None:
        raise NotFound("filter", filter_id, field="id")
    return row


def _check(*, name: str | None, condition: str | None) -> None:
    if name is not None and not name.strip():
        raise InputValidation("name must not be empty", field="name")
    if name is not None and len(name) > MAX_NAME:
        raise InputValidation(f"name must be at most {MAX_NAME} characters", field="name")
    if condition is not None:
        try:
            fql.parse(condition)
        except fql.FQLError as error:
            raise InputValidation(f"if is not valid FQL at {error.position}: {error.message}", field="if") from None
