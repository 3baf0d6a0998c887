"""An audience definition's size at the end of each of several consecutive days, in one pass over the
events instead of one computation per day (what a backtest asks).

It applies when every reduction the definition reads per profile counts, sums or averages an event
stream whose filters each decide on one event alone, and nothing else reads the clock (no
`expires_after`, parent windows or relative date comparisons) or an account's users (`ANY`/`ALL`):

- An event counts for the days from the first whose end is at or after its timestamp (plus the
  window's near edge, for `between`) until the first whose window has moved past it. Each event is
  a +1 (or its value, for a sum) on the day it enters and a -1 on the day it leaves, per profile.
- Those changes, summed per profile in day order, are the profile's values after each of them; the
  condition evaluated with the values after and before each change says whether the profile
  entered (+1) or left (-1) then. A day's several changes add up to the difference between its
  first state and its last, so their order within the day does not matter.
- A day's size is then the number of profiles that satisfy the condition with no events counted
  (read before each profile's first change), plus every change up to that day.

Sums added and taken away may keep a residue of floating-point rounding; a sum with no event left
in its window is exactly 0, as computed directly. Traits are read as they are now.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (BigInteger, ColumnElement, Float, Select, and_, case, cast, func, literal, not_, null, or_, select,
                        union_all)

from backend.clock import from_ms
from backend.cql import ast
from backend.cql.analysis import walk
from backend.cql.compiler import Compiler, Frame, Scope, Tables, profile_level, shareable, span_ms
from backend.cql.sqlvalues import NumberValue

DAY_MS = 86_400_000
ADDITIVE = ("count", "sum", "avg")
CLOCK_COMPARATORS = ("within_last", "within_next", "before_last", "after_next")
NUMBER_ZERO = cast(literal(0.0), Float)
COUNTED_ZERO = cast(literal(0), BigInteger)


@dataclass(frozen=True)
class Days:
    """`count` consecutive UTC days from day number `first` (days since the epoch), each ending at
    its last millisecond but the last, which ends at `end_ms`."""

    first: int
    count: int
    end_ms: int

    def moments(self) -> list[int]:
        return [(self.first + index + 1) * DAY_MS - 1 for index in range(self.count - 1)] + [self.end_ms]

    def first_at_or_after(self, moment: ColumnElement) -> ColumnElement:
        """The index of the first day ending at or after `moment` (`count` for none)."""
        index = cast(moment // DAY_MS, BigInteger) - self.first
        clamped = case((index < 0, 0), (index > self.count - 1, self.count - 1), else_=index)
        return case((moment > self.end_ms, self.count), else_=clamped)


def counts_by_day(root: ast.Node, *, tables: Tables, scope: Scope, days: Days) -> Select | None:
    """`(day, change, satisfied)` rows: how the audience's size changed on each day index, and how
    many profiles satisfy it with no events counted (summed over all rows; a profile with no events
    at all has a row of day NULL). None when the definition is not of the shape counted in one pass."""
    if not countable(root):
        return None
    reductions = list(dict.fromkeys(profile_level(root)))
    compiler = Compiler(tables, from_ms(days.end_ms), scope)
    frame = compiler.top_frame()
    if not reductions:  # traits alone: the same size every day
        holds = _condition(compiler, root, frame, {})
        return compiler.profiles(select(null().label("day"), literal(0).label("change"),
                                        func.sum(holds).label("satisfied")), frame)
    changes = _changes(compiler, reductions, days)
    frame.joins.append((changes, changes.c.k0 == frame.owner))
    after = _condition(compiler, root, frame, {node: _after(changes, index, node) for index, node in enumerate(reductions)})
    before = _condition(compiler, root, frame, {node: _before(changes, index, node)
                                                for index, node in enumerate(reductions)})
    before_any = or_(changes.c.place.is_(None), changes.c.place == 1)
    counted = select(changes.c.k.label("day"), func.sum(after - before).label("change"),
                     func.sum(case((before_any, before), else_=0)).label("satisfied"))
    return compiler.profiles(counted, frame).group_by(changes.c.k)


def sizes(rows, days: Days) -> list[int]:
    """Each day's size from `counts_by_day`'s rows."""
    size = sum(int(satisfied or 0) for _, _, satisfied in rows)
    change = {int(day): int(count or 0) for day, count, _ in rows if day is not None}
    found = []
    for index in range(days.count):
        size += change.get(index, 0)
        found.append(size)
    return found


def countable(root: ast.Node) -> bool:
    """Whether `counts_by_day` counts the definition in one pass."""
    if any(node.reducer not in ADDITIVE or not shareable(node) for node in profile_level(root)):
        return False
    for node in walk(root):
        if isinstance(node, ast.Quantified) or (isinstance(node, ast.Comparison) and node.comparator in CLOCK_COMPARATORS):
            return False
    return True


def _window(stream: ast.Stream) -> tuple[int, int | None]:
    """How long ago (near, far; far None for ever) an event may be, at a day's end, to count then."""
    near, far = 0, None
    for step in stream.filters:
        if isinstance(step, ast.Within):
            far = span_ms(step.duration) if far is None else min(far, span_ms(step.duration))
        elif isinstance(step, ast.Between):
            near = max(near, span_ms(step.start))
            far = span_ms(step.end) if far is None else min(far, span_ms(step.end))
    return near, far


def _changes(compiler: Compiler, reductions: list[ast.Reduction], days: Days):
    """A row per event entering or leaving a window: its profile (k0), day index (k), its change to
    each reduction (d…), each reduction's running value after it in the profile's rows in day order
    (vd…), and its place among the profile's rows (1 for the first); a sum or average has a count of
    the values it adds (n…, vn…) beside it."""
    frame = compiler.top_frame()
    rows = compiler.candidates(sorted({node.stream.name for node in reductions}), frame)
    events = compiler.event_frame(rows, 1, frame.account)
    conditions = [_condition_on_event(compiler, node, rows, events) for node in reductions]
    parts = [_parts(compiler, node, condition, events) for node, condition in zip(reductions, conditions)]
    columns = [f"{letter}{index}" for index, part in enumerate(parts) for letter in "dn"[:len(part)]]
    branches = []
    for near, far in dict.fromkeys(_window(node.stream) for node in reductions):
        mine = [_window(node.stream) == (near, far) for node in reductions]
        values = [value if in_window else zero for part, in_window in zip(parts, mine) for value, zero in part]
        kept = or_(*(condition for condition, in_window in zip(conditions, mine) if in_window))
        if far is not None:
            kept = and_(kept, rows.c.ts >= days.moments()[0] - far)
        enters = days.first_at_or_after(rows.c.ts + near)
        if far is None:  # what entered before the first day enters on it, and stays: one row per profile
            before = rows.c.ts + near <= days.moments()[0]
            branches.append(select(rows.c.k0, literal(0).label("k"), *(func.sum(value).label(name)
                                                                       for value, name in zip(values, columns)))
                            .where(kept, before).group_by(rows.c.k0))
            kept = and_(kept, not_(before))
        branches.append(select(rows.c.k0, enters.label("k"),
                               *(value.label(name) for value, name in zip(values, columns))).where(kept))
        if far is not None:
            leaves = days.first_at_or_after(rows.c.ts + far + 1)
            branches.append(select(rows.c.k0, leaves.label("k"),
                                   *((-value).label(name) for value, name in zip(values, columns)))
                            .where(kept, rows.c.ts + far + 1 <= days.end_ms))
    moves = union_all(*branches).subquery(compiler.name("w"))
    in_order = {"partition_by": moves.c.k0, "order_by": moves.c.k, "rows": (None, 0)}
    running = [func.sum(moves.c[name]).over(**in_order).label(f"v{name}") for name in columns]
    place = func.row_number().over(**in_order).label("place")
    return select(moves, *running, place).subquery(compiler.name("w"))


def _condition_on_event(compiler: Compiler, node: ast.Reduction, rows, events: Frame) -> ColumnElement:
    """Whether a candidate event is one the reduction reads: its name and filters, its window aside."""
    conditions = [rows.c.event == node.stream.name]
    for step in node.stream.filters:
        if isinstance(step, ast.Where):
            conditions.append(compiler.boolean(step.condition, events))
        elif isinstance(step, ast.Sources):
            conditions.append(compiler.row_step(step, rows))
    return and_(*conditions)


def _parts(compiler: Compiler, node: ast.Reduction, condition: ColumnElement,
           events: Frame) -> list[tuple[ColumnElement, ColumnElement]]:
    """What one event adds to the reduction: 1 for a count; for a sum or average, its value and 1 if
    it has one. Each with the 0 that rows for other reductions hold, all of one type per kind
    (ClickHouse unions integers of different widths, or integers and floats, into neither)."""
    if node.reducer == "count":
        return [(_counted(condition), COUNTED_ZERO)]
    number = compiler.scalar(node.argument, events).plain_number()
    holds = and_(condition, number.is_not(None))
    return [(cast(case((holds, number), else_=0.0), Float), NUMBER_ZERO), (_counted(holds), COUNTED_ZERO)]


def _counted(condition: ColumnElement) -> ColumnElement:
    return cast(case((condition, 1), else_=0), BigInteger)


def _after(changes, index: int, node: ast.Reduction) -> NumberValue:
    return _value(node, changes.c[f"vd{index}"], changes.c.get(f"vn{index}"))


def _before(changes, index: int, node: ast.Reduction) -> NumberValue:
    counted = changes.c.get(f"vn{index}")
    return _value(node, changes.c[f"vd{index}"] - changes.c[f"d{index}"],
                  None if counted is None else counted - changes.c[f"n{index}"])


def _value(node: ast.Reduction, total: ColumnElement, counted: ColumnElement | None) -> NumberValue:
    """A reduction's value from its running total (and, for a sum, how many values it holds)."""
    if node.reducer == "count":
        return NumberValue(func.coalesce(total, 0))
    if node.reducer == "sum":
        return NumberValue(case((func.coalesce(counted, 0) == 0, 0), else_=total), real=True)
    return NumberValue(case((func.coalesce(counted, 0) == 0, null()), else_=cast(total, Float) / counted), real=True)


def _condition(compiler: Compiler, root: ast.Node, frame: Frame, values: dict) -> ColumnElement:
    """1 where `root` holds with its reductions read as `values`, else 0."""
    frame.shared = dict(values)
    return case((compiler.boolean(root, frame), 1), else_=0)
