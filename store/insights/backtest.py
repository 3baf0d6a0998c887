"""A definition tried on the past: the size it would have had at the end of each day of a range, had
it existed, computed over the events stored now as of each day, with its members on the last day.

Each day is the definition computed at the day's last millisecond (UTC), or at the range's end for
its last day, reading only events timestamped until then, so `within` and `between` windows are
anchored there. All days are counted in one statement on the analytic store when there is one, else
on the operational store: in one pass over the events when the definition counts, sums or averages
event streams (`backend.cql.daily`), else as each day's statement counted (a count per day). The
last day's first members are read in a second statement. What has no
history is read as it is now: traits (including computed traits' `<key>`s), which identities are
merged, eligibility and the Data Graph's rows; events that arrived late are counted on the day of
their timestamp. A definition that reads entities is refused: its warehouse rows have no past.

Each of the two statements answers within the backtest's time budget (`store.db.budget`,
SEGMENT_AUDIENCES_BACKTEST_SECONDS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Select, func, literal, select, union_all

from backend import cql
from backend.clock import from_ms, to_ms
from backend.cql import daily
from backend.cql.compiler import Tables
from backend.cql.daily import Days
from store.catalog.audiences import check_audience_type
from store.catalog.definitions import check_definition
from store.catalog.spaces import require_space
from store.compute.computations import TABLES, Computation
from store.compute.previews import SAMPLE_SIZE, members_with_ids
from store.db.budget import Budget
from store.db.errors import InputValidation
from store.db.store import Store

DAY_MS = 86_400_000
MOST_DAYS = 90
FIRST_REACHES = (1_000, 10_000)  # how many profiles, first by id, the last day's members are first looked for among


@dataclass(frozen=True)
class Day:
    day: str  # yyyy-mm-dd, UTC
    as_of_ms: int
    size: int


@dataclass(frozen=True)
class Backtest:
    days: list[Day]
    members: list[dict[str, Any]]  # the last day's first SAMPLE_SIZE by id, as a preview shows them


def backtest(store: Store, space_id: str, *, audience_type: str, query: str, start, end) -> Backtest:
    """The sizes from `start` to `end` (datetimes), a day at a time."""
    check_audience_type(audience_type, None)
    analysis = check_definition(query, kind="audience", audience_type=audience_type)
    if analysis.entity_relationships:
        raise InputValidation("A backtest cannot read entity() conditions: the warehouse's rows have no history. "
                              "Preview the definition instead (segment_audiences_create_audience_preview).",
                              field="definition.query")
    days = _days(store, to_ms(start), to_ms(end))
    moments = days.moments()
    with store.read() as session:
        require_space(session, space_id)
    computation = Computation("backtest", space_id, "audience", "", query, audience_type,
                              {"includeHistoricalData": True}, moments[0], analysis)
    budget = Budget.backtest()
    sizes = _sizes(store, computation, days, budget)
    last = replace(computation, as_of_ms=moments[-1])
    members = _first_members(store, last, budget)
    with store.read() as session:
        return Backtest([Day(from_ms(moment).date().isoformat(), moment, size)
                         for moment, size in zip(moments, sizes)], members_with_ids(session, members))


def _days(store: Store, start_ms: int, end_ms: int) -> Days:
    """The UTC days from `start_ms`'s to `end_ms`'s, the last day's cut at `end_ms`."""
    if end_ms <= start_ms:
        raise InputValidation("endTime must be after startTime.", field="endTime")
    if end_ms > to_ms(store.now()):
        raise InputValidation("endTime is in the future: a backtest reads what has happened; end it now at the latest.",
                              field="endTime")
    first, last = start_ms // DAY_MS, (end_ms - 1) // DAY_MS
    if last - first + 1 > MOST_DAYS:
        raise InputValidation(f"That range holds {last - first + 1} days; a backtest answers at most {MOST_DAYS}.",
                              field="startTime")
    return Days(first, last - first + 1, min(end_ms, (last + 1) * DAY_MS - 1))


def _sizes(store: Store, computation: Computation, days: Days, budget: Budget) -> list[int]:
    """Each day's size: counted in one pass where the definition allows, else each day counted."""
    if daily.countable(cql.parse(computation.query)):
        return daily.sizes(_run(store, computation, budget,
                                lambda tables: computation.counts_by_day(days, analytic=tables)), days)
    counted = dict(_run(store, computation, budget, lambda tables: _each_day_counted(computation, days, tables)))
    return [counted[index] for index in range(days.count)]


def _each_day_counted(computation: Computation, days: Days, tables: Tables | None) -> Select:
    """One statement of `(day index, members)` rows: each day's definition counted where it runs."""
    return union_all(*(select(literal(index).label("day"), func.count()).select_from(
        replace(computation, as_of_ms=moment).statement(from_ms(moment), analytic=tables).subquery())
        for index, moment in enumerate(days.moments())))


def _first_members(store: Store, day: Computation, budget: Budget) -> list[str]:
    """The first SAMPLE_SIZE members by id on `day`: computed for the first profiles by id alone, on
    the operational store (as a realtime pass computes a few profiles, through its indexes), while
    that finds enough; else for every profile."""
    for reach in FIRST_REACHES:
        with store.read() as session, budget.on(session.connection()):
            chosen = list(session.scalars(_first_profiles(day, reach)))
            found = sorted(row[0] for row in day.rows_for(session, from_ms(day.as_of_ms), chosen))
        if len(found) >= SAMPLE_SIZE or len(chosen) < reach:
            return found[:SAMPLE_SIZE]
    return [row[0] for row in _run(store, day, budget, lambda tables: _first_of_all_members(day, tables))]


def _first_profiles(day: Computation, reach: int) -> Select:
    """The space's first `reach` profile ids: merged and other-collection ones too, which the
    statement leaves out, so they are a prefix of all the ids it could answer."""
    profile = TABLES.profile
    return select(profile.c.id).where(profile.c.space_id == day.space_id).order_by(profile.c.id).limit(reach)


def _first_of_all_members(day: Computation, tables: Tables | None) -> Select:
    members = day.statement(from_ms(day.as_of_ms), analytic=tables).subquery()
    first = list(members.c)[0]
    return select(first).order_by(first).limit(SAMPLE_SIZE)


def _run(store: Store, computation: Computation, budget: Budget, build: Callable[[Tables | None], Select]) -> list:
    """`build`'s statement run on the analytic store when there is a ready one, else on the
    operational store in a read transaction, within `budget`."""
    analytics = store.analytics
    if analytics is not None:
        tables = analytics.tables_for(computation.analysis.property_paths)
        found = analytics.compute(build(tables), computation.space_id, computation.analysis.referenced_traits,
                                  budget=budget)
        if found is not None:
            return found.rows
    with store.read() as session, budget.on(session.connection()):
        return [tuple(row) for row in session.execute(build(None))]
