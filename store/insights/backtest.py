"""A definition tried on the past: the size it would have had at the end of each day of a range, had
it existed, computed over the events stored now as of each day, with its members on the last day.

Each day is computed as a full run computes (`runs.full_result`: the analytic store when there is
one) at the day's last millisecond (UTC), or at the range's end for its last day, reading only
events timestamped until then, so `within` and `between` windows are anchored there. What has no
history is read as it is now: traits (including computed traits' `<key>`s), which identities are
merged, eligibility and the Data Graph's rows; events that arrived late are counted on the day of
their timestamp. A definition that reads entities is refused: its warehouse rows have no past.

A backtest answers within its time budget (`store.db.budget`, SEGMENT_AUDIENCES_BACKTEST_SECONDS)
for the whole range; each day costs what a full run costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from backend.clock import from_ms, to_ms
from store.catalog.audiences import check_audience_type
from store.catalog.definitions import check_definition
from store.catalog.spaces import require_space
from store.compute import runs
from store.compute.computations import Computation
from store.compute.previews import SAMPLE_SIZE, members_with_ids
from store.db.budget import Budget, OverBudget
from store.db.errors import InputValidation
from store.db.store import Store

DAY_MS = 86_400_000
MOST_DAYS = 90


@dataclass(frozen=True)
class Day:
    day: str  # yyyy-mm-dd, UTC
    as_of_ms: int
    size: int


@dataclass(frozen=True)
class Backtest:
    days: list[Day]
    members: list[dict[str, Any]]  # at the last day, at most SAMPLE_SIZE, as a preview shows them


def backtest(store: Store, space_id: str, *, audience_type: str, query: str, start, end) -> Backtest:
    """The sizes from `start` to `end` (datetimes), a day at a time."""
    check_audience_type(audience_type, None)
    analysis = check_definition(query, kind="audience", audience_type=audience_type)
    if analysis.entity_relationships:
        raise InputValidation("A backtest cannot read entity() conditions: the warehouse's rows have no history. "
                              "Preview the definition instead (segment_audiences_create_audience_preview).",
                              field="definition.query")
    moments = _moments(store, to_ms(start), to_ms(end))
    with store.read() as session:
        require_space(session, space_id)
    computation = Computation("backtest", space_id, "audience", "", query, audience_type,
                              {"includeHistoricalData": True}, moments[0], analysis)
    budget, started = Budget.backtest(), time.monotonic()
    days, members = [], []
    for moment in moments:
        left = budget.seconds - (time.monotonic() - started)
        if left <= 0:
            raise OverBudget(budget.what, budget.seconds)
        members = _members(store, replace(computation, as_of_ms=moment), Budget(budget.what, left))
        days.append(Day(from_ms(moment).date().isoformat(), moment, len(members)))
    with store.read() as session:
        return Backtest(days, members_with_ids(session, sorted(members)[:SAMPLE_SIZE]))


def _moments(store: Store, start_ms: int, end_ms: int) -> list[int]:
    """The last millisecond of each UTC day from `start_ms`'s to `end_ms`'s, the last day's cut at `end_ms`."""
    if end_ms <= start_ms:
        raise InputValidation("endTime must be after startTime.", field="endTime")
    if end_ms > to_ms(store.now()):
        raise InputValidation("endTime is in the future: a backtest reads what has happened; end it now at the latest.",
                              field="endTime")
    first, last = start_ms // DAY_MS, (end_ms - 1) // DAY_MS
    if last - first + 1 > MOST_DAYS:
        raise InputValidation(f"That range holds {last - first + 1} days; a backtest answers at most {MOST_DAYS}.",
                              field="startTime")
    return [min((day + 1) * DAY_MS - 1, end_ms) for day in range(first, last + 1)]


def _members(store: Store, computation: Computation, budget: Budget) -> list[str]:
    """The members at the computation's moment, computed where a full run computes them."""
    now = from_ms(computation.as_of_ms)
    full = runs.full_result(store, computation, now, budget)
    if full is not None:
        return [row[0] for row in full.rows]
    with store.read() as session, budget.on(session.connection()):
        return list(session.execute(computation.statement(now)).scalars())
