"""An audience's or computed trait's size over time, read from the stays it keeps.

Membership history keeps one row per stay (`entered_at_ms`, `exited_at_ms`), a computed trait one
row per value held (`from_ms`, `until_ms`), so any past size is a count. The range is cut into
buckets of an hour or a day (UTC, the range widened to whole buckets); each bucket says how many
stays began and ended in it and the size at its end. It is answered with two grouped counts and one
count before the range, however many buckets there are. The definition changes and the runs in the
range come with it, so a jump in size lines up with its cause.

For one group of an audience's experiment split, the stays are those kept in that group (a move
between groups ends one stay and begins another). For a computed trait, the size is the profiles
that hold a value; a value that changes ends one
stay and begins another at the same moment, so it counts as one exit and one entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select

from backend.clock import to_ms
from store.catalog.audiences import require_audience
from store.catalog.computed_traits import require_computed_trait
from store.db.errors import InputValidation
from store.db.models import ComputedValue, ComputeRun, DefinitionChange, Membership
from store.db.store import Store

BUCKET_MS = {"HOUR": 3_600_000, "DAY": 86_400_000}
MOST_BUCKETS = 2_000
MOST_RUNS = 200


@dataclass(frozen=True)
class Bucket:
    start_ms: int
    size: int  # at the bucket's end
    entered: int
    exited: int


@dataclass(frozen=True)
class RunMark:
    id: str
    reason: str
    status: str
    started_at_ms: int
    size: int
    entered: int
    exited: int


@dataclass(frozen=True)
class Change:
    changed_at_ms: int
    query: str


@dataclass(frozen=True)
class SizeHistory:
    granularity: str
    start_ms: int
    end_ms: int
    buckets: list[Bucket]
    changes: list[Change]  # the definitions set in the range, oldest first
    runs: list[RunMark]  # the newest MOST_RUNS in the range, oldest first
    runs_truncated: bool


def size_history(store: Store, space_id: str, computation_id: str, start, end, granularity: str,
                 split_group: str | None = None) -> SizeHistory:
    """Sizes per bucket of `granularity` (HOUR or DAY) from `start` to `end` (datetimes), of one
    group of an audience's split if `split_group` is given (its stays in that group)."""
    width = BUCKET_MS[granularity]
    start_ms = to_ms(start) // width * width
    end_ms = -(-to_ms(end) // width) * width
    if end_ms <= start_ms:
        raise InputValidation("endTime must be after startTime.", field="endTime")
    if (end_ms - start_ms) // width > MOST_BUCKETS:
        raise InputValidation(f"That range holds {(end_ms - start_ms) // width} {granularity.lower()}s; at most "
                              f"{MOST_BUCKETS} buckets are answered: use DAY or a shorter range.", field="startTime")
    with store.read() as session:
        if computation_id.startswith("tra_"):
            if split_group is not None:
                raise InputValidation("splitGroup applies to an audience's split, not a computed trait.",
                                      field="splitGroup")
            require_computed_trait(session, space_id, computation_id)
            table = ComputedValue.__table__
            began, ended = table.c.from_ms, table.c.until_ms
        else:
            require_audience(session, space_id, computation_id)
            table = Membership.__table__
            began, ended = table.c.entered_at_ms, table.c.exited_at_ms
        mine = table.c.computation_id == computation_id
        if split_group is not None:
            mine = and_(mine, table.c.split_group == split_group)
        before = session.execute(select(func.count()).select_from(table).where(
            mine, began < start_ms, or_(ended.is_(None), ended >= start_ms))).scalar_one()
        entered = _per_bucket(session, table, mine, began, start_ms, end_ms, width)
        exited = _per_bucket(session, table, mine, ended, start_ms, end_ms, width)
        runs = session.execute(
            select(ComputeRun.id, ComputeRun.reason, ComputeRun.status, ComputeRun.started_at_ms, ComputeRun.size,
                   ComputeRun.entered, ComputeRun.exited)
            .where(ComputeRun.computation_id == computation_id, ComputeRun.started_at_ms >= start_ms,
                   ComputeRun.started_at_ms < end_ms)
            .order_by(ComputeRun.started_at_ms.desc(), ComputeRun.id.desc()).limit(MOST_RUNS + 1)).all()
        changes = session.execute(
            select(DefinitionChange.changed_at_ms, DefinitionChange.query)
            .where(DefinitionChange.computation_id == computation_id, DefinitionChange.changed_at_ms >= start_ms,
                   DefinitionChange.changed_at_ms < end_ms)
            .order_by(DefinitionChange.changed_at_ms, DefinitionChange.id)).all()
    buckets, size = [], before
    for index in range((end_ms - start_ms) // width):
        size += entered.get(index, 0) - exited.get(index, 0)
        buckets.append(Bucket(start_ms + index * width, size, entered.get(index, 0), exited.get(index, 0)))
    marks = [RunMark(*row) for row in reversed(runs[:MOST_RUNS])]
    return SizeHistory(granularity, start_ms, end_ms, buckets, [Change(*row) for row in changes], marks,
                       len(runs) > MOST_RUNS)


def _per_bucket(session, table, mine, moment, start_ms: int, end_ms: int, width: int) -> dict[int, int]:
    """How many of the computation's stays have `moment` in each bucket, by bucket index."""
    index = (moment - start_ms) // width
    rows = session.execute(select(index.label("bucket"), func.count()).select_from(table)
                           .where(mine, and_(moment >= start_ms, moment < end_ms)).group_by("bucket"))
    return {int(bucket): count for bucket, count in rows}
