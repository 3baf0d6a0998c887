"""Compute runs: a computation's new members (or values) diffed against what is stored, and written
back in one transaction together with the `<key>` trait, the run record and the outbox rows.

A run over some profile ids (realtime) touches only those profiles; a run over all of them (initial,
cadence, sweep, schedule, forced) also sets the computation's size. A full run reads the analytic
store when this process has one (`store.analytic.store`): it first copies everything committed, runs
the statement there, and then, inside its transaction, recomputes on the operational store the
profiles that changed since that copy (their events or rows arrived meanwhile), so the result is as
current as a run on the operational store would be. The run records the engine and how far behind
the analytic store was. On SQLite without an analytic store, a full run reads the operational store
the same way, apart from its write transaction (`_read_apart`). A forced run has a time budget
(`store.db.budget`, 600 s by default); one that outlasts it is stopped and recorded as failed. Nothing is sent from here: the
outbox rows wait for the delivery worker: an audience's entries and exits, a computed trait's
changed values (a cleared value goes out as null; a merged-away profile leaves silently). A run that
fails leaves membership and traits as they were, records the failed run, and sets the computation's
status to `Failed` with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from contextlib import nullcontext
from dataclasses import dataclass
from operator import itemgetter

import orjson
from sqlalchemy import Select, bindparam, delete, func, text, union, update
from sqlmodel import Session, col, select

from backend.clock import to_ms
from backend.cql.compiler import CompileError
from store.analytic.replication import Marks, marks_of
from store.analytic.store import FullResult
from store.analytic.values import Settlement
from store.catalog import priority_lists, splits
from store.catalog.audiences import get_audience
from store.compute import computations, entity_members, linked
from store.compute.computations import Computation
from store.db import locks
from store.db.budget import UNLIMITED, Budget, OverBudget
from store.db.bulk import IN_CHUNK, insert_rows, select_all, select_in, upsert_newer_distinct
from store.db.errors import Conflict, DomainError, NotFound
from store.db.ids import new_id
from store.db.models import (
    COMPUTED_TRAIT,
    AnalyticChange,
    Audience,
    ComputedTrait,
    ComputedValue,
    ComputeRun,
    ComputeState,
    Event,
    Membership,
    Profile,
    ProfileLink,
    Trait,
)
from store.db.store import Store
from store.delivery import outbox, routes

logger = logging.getLogger("segment_audiences.runs")
SOURCE_ID = "segment-audiences"
READ_ALL_ABOVE = 20_000  # profiles whose stored values are read in one pass rather than 300 at a time


@dataclass(frozen=True)
class Cadence:
    """How often the background loop recomputes: batch computations, and real-time ones whose
    members change with time alone (window sweeps)."""

    batch_ms: int = 8 * 3_600_000
    sweep_ms: int = 15 * 60_000

    def next_run(self, computation: Computation, now_ms: int) -> int | None:
        if computation.analysis.cadence == "BATCH":
            return now_ms + self.batch_ms
        return now_ms + self.sweep_ms if computation.analysis.reads_clock else None


def run(store: Store, computation_id: str, *, reason: str, cadence: Cadence = Cadence(),
        budget: Budget = UNLIMITED) -> ComputeRun:
    """Compute one audience or computed trait over all its profiles, in its own transaction, waiting
    for a run of it in another process to end first, its statement stopped if it outlasts `budget`.
    Any failure (a definition this engine cannot compute, a database error, the budget spent) is
    recorded, not raised."""
    run_row = _run(store, computation_id, reason, cadence, None, budget)
    assert run_row is not None
    return run_row


def run_if_due(store: Store, computation_id: str, *, reason: str, still_due: Callable[[Session], bool],
               cadence: Cadence = Cadence()) -> ComputeRun | None:
    """`run`, for the background loop: None without running when another process is running the
    computation, or when `still_due` (asked inside the run's transaction, under its lock, where it may
    also take the work, e.g. move a schedule on) finds the work already done."""
    return _run(store, computation_id, reason, cadence, still_due, UNLIMITED)


def _run(store: Store, computation_id: str, reason: str, cadence: Cadence,
         still_due: Callable[[Session], bool] | None, budget: Budget) -> ComputeRun | None:
    with store.read() as session:
        computation = computations.find(session, computation_id)
    if computation is None:
        raise NotFound("computation", computation_id, field="id")
    keeping = _keeps_values(store, computation)
    with store.analytics.values.turn(computation_id) if keeping else nullcontext():
        return _run_computation(store, computation, reason, cadence, still_due, budget, keeping)


def _run_computation(store: Store, computation: Computation, reason: str, cadence: Cadence,
                     still_due: Callable[[Session], bool] | None, budget: Budget, keeping: bool) -> ComputeRun | None:
    started = store.now()
    try:
        reading = time.perf_counter()
        computation = computations.with_data_graph(store, computation)
        full = full_result(store, computation, started, budget, keeping)
        matched = entity_members.extract(store, computation, started, budget,
                                         None if full is None else {row[0] for row in full.rows})
        extract_ms = round((time.perf_counter() - reading) * 1000)
        settlement = None if full is None or full.answer is None else Settlement(full.answer)
        with store.write() as session:
            if still_due is None:
                locks.exclusive(session, [computation.id])
            elif not (locks.try_exclusive(session, computation.id) and still_due(session)):
                return None
            writing = time.perf_counter()
            run_row = apply(session, computation, started, reason, cadence=cadence, full=full, budget=budget,
                            matched=matched, settlement=settlement)
            if matched is not None:
                enqueue_ms = round(matched.enqueue_ms)
                run_row.steps = {"extract": extract_ms, "diff": round((time.perf_counter() - writing) * 1000) - enqueue_ms,
                                 "enqueue": enqueue_ms}
            run_row.finished_at_ms = to_ms(store.now())
        if settlement is not None:
            _settle(store, settlement)
        logger.info("%s run %s of %s in %s: %s, size %d (+%d, -%d) on %s", reason, run_row.id, computation.id,
                    computation.space_id, run_row.status, run_row.size, run_row.entered, run_row.exited, run_row.engine)
        return run_row
    except Exception as error:  # the run's boundary: whatever failed, the computation shows why
        expected = isinstance(error, (CompileError, OverBudget, DomainError))
        logger.warning("%s run of %s in %s failed: %s", reason, computation.id, computation.space_id, error,
                       exc_info=not expected)
        return _record_failure(store, computation, started, reason, error, cadence)


def _settle(store: Store, settlement: Settlement) -> None:
    """Keep a committed run's answer as the analytic store's copy of the values; when that fails the
    run still stands, and the next one brings the copy up to date from the change log."""
    try:
        store.analytics.settle(settlement)
    except Exception:
        logger.warning("the %s store did not keep the values %s's run wrote; its next run brings them up to date",
                       store.analytics.name, settlement.answer.computation_id, exc_info=True)


def _keeps_values(store: Store, computation: Computation) -> bool:
    """Whether a full run of the computation diffs on the analytic store (`store.analytic.values`)."""
    return (computation.kind != "audience" and not computation.reads_entities and store.analytics is not None
            and store.analytics.values is not None)


def states(store: Store, computation_ids: list[str]) -> dict[str, ComputeState]:
    """The compute state of each computation that has one."""
    with store.read() as session:
        found = session.exec(select(ComputeState).where(col(ComputeState.computation_id).in_(computation_ids)))
        return {state.computation_id: state for state in found}


def force_audience_run(store: Store, space_id: str, audience_id: str) -> ComputeRun:
    """Recompute an enabled audience now (any type), whatever its cadence. A disabled audience is
    not computed and sends nothing, so forcing one is a conflict."""
    audience = get_audience(store, space_id, audience_id)
    if not audience.enabled:
        raise Conflict(f"Audience '{audience_id}' is disabled, so it is not computed and sends nothing. Enable it "
                       "with segment_audiences_update_audience_for_space {enabled: true} first; that also "
                       "recomputes it.", field="audienceId")
    return run(store, audience_id, reason="forced", budget=Budget.forced_run())


def full_result(store: Store, computation: Computation, now, budget: Budget = UNLIMITED,
                keeping: bool = False) -> FullResult | None:
    """The computation over every profile, read where a full run reads it: a definition reading
    entities where its warehouse is (`store.compute.linked`), any other on the analytic store, else,
    on SQLite, in a read transaction of its own (`_read_apart`); None on PostgreSQL without an
    analytic store, where a run reads inside its write transaction. `computation` has its Data Graph
    (`computations.with_data_graph`) when it reads entities."""
    if computation.reads_entities:
        full = linked.full_result(store, computation, now, budget)
    else:
        full = _analytic_result(store, computation, now, budget, keeping)
    return full or _read_apart(store, computation, now, budget)


def _analytic_result(store: Store, computation: Computation, now, budget: Budget, keeping: bool) -> FullResult | None:
    """The computation over every profile on the analytic store (only the changed values of a
    computed trait `keeping` its values there), or None without a ready one (or when it fails: the
    run then reads the operational store, which gives the same answer)."""
    if store.analytics is None:
        return None
    try:
        if keeping:
            return computation.changes_on_analytic_store(store.analytics, now, budget)
        return computation.on_analytic_store(store.analytics, now, budget)
    except (CompileError, OverBudget):
        raise
    except Exception:
        logger.warning("the analytic store failed to compute %s; computing on the operational store",
                       computation.id, exc_info=True)
        return None


def _read_apart(store: Store, computation: Computation, now, budget: Budget) -> FullResult | None:
    """On SQLite, the computation over every profile read in a read transaction of its own (one
    snapshot, with how far its rows went), so that the database's write lock is held only while the
    run writes back (bringing the profiles changed since up to date first), and ingest goes on
    meanwhile. None on PostgreSQL, where a full run reads inside its write transaction, holding the
    computation's lock, which orders it with realtime passes, and writers never wait on each other."""
    if store.engine.dialect.name != "sqlite":
        return None
    with store.read() as session:
        marks = marks_of(session)
        with budget.on(session.connection()):
            rows = [tuple(row) for row in session.execute(computation.statement(now))]
    return FullResult(rows, marks, 0, store.engine.dialect.name)


def apply(session: Session, computation: Computation, now, reason: str, *, cadence: Cadence = Cadence(),
          full: FullResult | None = None, budget: Budget = UNLIMITED,
          matched: entity_members.Extract | None = None, settlement: Settlement | None = None) -> ComputeRun:
    """A full run within the caller's transaction (which holds the computation's lock): compute (or
    take `full`, the analytic store's answer, brought up to date), write back (with a LINKED
    audience's `matched` entity rows), record the run and the computation's new size; returns the run.
    A `full` answer kept in the analytic store is written back from its changes, and `settlement`
    records what the caller settles it with once committed."""
    now_ms = to_ms(now)
    state = session.get(ComputeState, computation.id)
    if state is None:  # in the session before the write-back, which keeps some of its fields
        state = ComputeState(computation_id=computation.id, space_id=computation.space_id)
        session.add(state)
        session.flush()
    if settlement is not None:
        run_row, size = _apply_changes(session, computation, now, reason, full, settlement)
    else:
        run_row, size, _ = _compute(session, computation, now, reason, None, full, budget, matched=matched)
    state.size = run_row.size = size
    state.entity_size = run_row.entity_size
    state.error = None
    state.next_run_at_ms = cadence.next_run(computation, now_ms)
    state.last_run_id, state.last_run_at_ms = run_row.id, now_ms
    session.add(run_row)
    session.add(state)
    set_status(session, [computation.id], "Live")
    return run_row


@dataclass(frozen=True)
class RealtimeChange:
    """What a realtime pass changed for one computation, recorded by `record_realtime`."""

    computation: Computation
    run: ComputeRun
    size_change: int


@dataclass(frozen=True)
class Precomputed:
    """A computation's rows for some profiles, read before the transaction that writes them back;
    those of the `stale` profiles (changed since) are computed again there."""

    rows: dict[str, list[tuple]]
    stale: frozenset[str]

    def rows_of(self, session: Session, computation: Computation, now, profile_ids: Collection[str]) -> list[tuple]:
        stale = sorted(self.stale.intersection(profile_ids))
        fresh = [tuple(row) for row in computation.rows_for(session, now, stale)] if stale else []
        return [row for profile_id in profile_ids if profile_id not in self.stale
                for row in self.rows.get(profile_id, ())] + fresh


def apply_realtime(session: Session, computation: Computation, now, profile_ids: Collection[str],
                   precomputed: Precomputed | None = None) -> RealtimeChange:
    """Recompute some profiles within the caller's transaction (or take their `precomputed` rows),
    writing their changes back; the computation's own row is left to `record_realtime`."""
    run_row, _, size_change = _compute(session, computation, now, "realtime", profile_ids, precomputed=precomputed)
    return RealtimeChange(computation, run_row, size_change)


def record_realtime(session: Session, changes: list[RealtimeChange], *, failing: Collection[str] = (),
                    unchanged: Collection[str] = ()) -> None:
    """Record a realtime pass's runs and size changes, and make the computations `Live` again (those it
    changed and those it found `unchanged`) but those `failing` for some profile (a computation yet
    to have its first run is left to it). Every pass writes the same few rows (one per computation),
    so this comes last, in the order of the ids, each an increment: concurrent passes (on
    PostgreSQL) hold those row locks only until they commit, and never in a cycle."""
    ids = sorted({change.computation.id for change in changes} | set(unchanged))
    ran = set(session.exec(select(ComputeState.computation_id).where(
        col(ComputeState.computation_id).in_(ids), col(ComputeState.last_run_id).is_not(None))))
    for change in sorted(changes, key=lambda change: change.computation.id):
        computation_id = change.computation.id
        if not (change.run.entered or change.run.exited):
            continue
        session.add(change.run)
        if computation_id in ran:  # else its first run, still to come, sets its size and status
            change.run.size = session.execute(update(ComputeState).where(
                ComputeState.computation_id == computation_id).values(
                size=ComputeState.size + change.size_change, last_run_id=change.run.id,
                last_run_at_ms=change.run.started_at_ms).returning(ComputeState.size)).scalar_one()
    live = [computation_id for computation_id in ids if computation_id in ran and computation_id not in failing]
    if live:
        session.execute(update(ComputeState).where(col(ComputeState.computation_id).in_(live),
                                                   col(ComputeState.error).is_not(None)).values(error=None))
        set_status(session, live, "Live")


def _compute(session: Session, computation: Computation, now, reason: str, profile_ids: Collection[str] | None,
             full: FullResult | None = None, budget: Budget = UNLIMITED,
             precomputed: Precomputed | None = None,
             matched: entity_members.Extract | None = None) -> tuple[ComputeRun, int, int]:
    """Compute and write back members or values; returns the run, the size (a full run's) and the
    change in size."""
    now_ms = to_ms(now)
    run_row = ComputeRun(id=new_id("run"), space_id=computation.space_id, computation_id=computation.id,
                         reason=reason, status="COMPLETED", started_at_ms=now_ms, finished_at_ms=now_ms)
    if precomputed is not None:
        rows = precomputed.rows_of(session, computation, now, profile_ids)
        run_row.engine = session.get_bind().dialect.name
    elif full is None:
        with budget.on(session.connection()):
            statement = computation.statement(now) if profile_ids is None else computation.restricted(now)
            rows = [tuple(row) for row in session.execute(statement, {"profile_ids": list(profile_ids or ())})]
        run_row.engine = session.get_bind().dialect.name
    else:
        rows = _brought_up_to_date(session, computation, now, full)
        run_row.engine, run_row.replication_lag_ms = full.engine, full.lag_ms
    if computation.kind == "audience":
        size, size_change = _apply_audience(session, computation, rows, run_row, profile_ids, matched)
    else:
        size, size_change = _apply_trait(session, computation, rows, run_row, profile_ids)
    return run_row, size, size_change


def _brought_up_to_date(session: Session, computation: Computation, now, full: FullResult) -> list[tuple]:
    """The analytic store's rows, with the profiles changed since its copy recomputed here (not for
    a computation reading entities, which the operational store may not hold: `store.compute.linked`)."""
    if computation.graph is not None:
        return full.rows
    changed, fresh = _recomputed(session, computation, now, full.marks)
    if not changed:
        return full.rows
    return [row for row in full.rows if row[0] not in changed] + fresh


def _recomputed(session: Session, computation: Computation, now, marks: Marks) -> tuple[set[str], list[tuple]]:
    """The profiles changed since `marks`, and their rows computed here."""
    changed = changed_since(session, marks, accounts=computation.accounts)
    return changed, [tuple(row) for chunk in _chunks(sorted(changed)) for row in computation.rows_for(session, now, chunk)]


def _apply_changes(session: Session, computation: Computation, now, reason: str, full: FullResult,
                   settlement: Settlement) -> tuple[ComputeRun, int]:
    """A computed trait's full run from the analytic store's changes (`store.analytic.values`): the
    profiles it names, and those changed since its copy (recomputed here), diffed against the stored
    values as a realtime pass diffs; returns the run and the size, counted from the stored values."""
    now_ms = to_ms(now)
    run_row = ComputeRun(id=new_id("run"), space_id=computation.space_id, computation_id=computation.id,
                         reason=reason, status="COMPLETED", started_at_ms=now_ms, finished_at_ms=now_ms,
                         engine=full.engine, replication_lag_ms=full.lag_ms)
    changed, fresh = _recomputed(session, computation, now, full.marks)
    rows = [row for row in full.rows if row[0] not in changed] + fresh
    _apply_trait(session, computation, rows, run_row, {row[0] for row in full.rows} | changed)
    found = {profile_id: value for profile_id, value in fresh if value is not None}
    settlement.recomputed = {profile_id: found.get(profile_id) for profile_id in changed}
    settlement.change_seq = _position(session, full.marks)
    run_row.profiles = full.answer.profiles
    return run_row, _stored_count(session, computation)


def _position(session: Session, marks: Marks) -> int:
    """The log position the stored values are up to date with once this transaction commits: on
    SQLite, where no other transaction commits meanwhile, the last one; on PostgreSQL, where one may
    have taken a smaller position and commit later, the marks' (the next run re-copies the profiles
    changed after them)."""
    if session.get_bind().dialect.name != "sqlite":
        return marks.change_seq
    return session.execute(select(func.coalesce(func.max(AnalyticChange.seq), 0))).scalar_one()


def _stored_count(session: Session, computation: Computation) -> int:
    """How many profiles hold a value of the computed trait (through `ix_trait_computed`)."""
    trait = Trait.__table__
    return session.execute(select(func.count()).select_from(trait).where(
        trait.c.space_id == computation.space_id, trait.c.key == computation.key, text(COMPUTED_TRAIT))).scalar_one()


def changed_since(session: Session, marks: Marks, *, accounts: bool = False) -> set[str]:
    """Profiles with events or rows committed after `marks` (and, for ACCOUNTS, their accounts)."""
    changed_ids = union(select(Event.profile_id).where(Event.id > marks.event_id),
                        select(AnalyticChange.profile_id).where(AnalyticChange.seq > marks.change_seq))
    changed = set(session.execute(changed_ids).scalars())
    if accounts:
        linked = select(ProfileLink.account_id).where(col(ProfileLink.user_id).in_(changed_ids.scalar_subquery()))
        changed |= set(session.execute(linked).scalars())
    return changed


def _apply_audience(session: Session, computation: Computation, rows: list[tuple], run_row: ComputeRun,
                    profile_ids, matched: entity_members.Extract | None = None) -> tuple[int, int]:
    """Write the membership diff (and a LINKED audience's `matched` entity rows); returns the size (for
    a full run) and the change in size."""
    members = {row[0] for row in rows}
    if matched is not None and computation.target_entity != "profile":  # a member has a row of the target
        members = {profile_id for profile_id in members
                   if matched.documents.get(profile_id, {}).get(computation.target_entity)}
    current = dict(_restricted(
        session, "current members with their split groups",
        lambda: select(Membership.profile_id, Membership.split_group).where(
            Membership.computation_id == bindparam("computation"), col(Membership.exited_at_ms).is_(None)),
        Membership.profile_id, profile_ids, computation=computation.id))
    entered, exited = sorted(members - current.keys()), sorted(current.keys() - members)
    now_ms = run_row.started_at_ms
    split = splits.split_of(session, computation.id) if entered or exited else None
    assigned = None if split is None else split.assigned([*entered, *exited], {p: current[p] for p in exited})
    for chunk in _chunks(exited):
        session.execute(update(Membership).where(
            Membership.computation_id == computation.id, col(Membership.exited_at_ms).is_(None),
            col(Membership.profile_id).in_(chunk)).values(exited_at_ms=now_ms, exited_run_id=run_row.id))
    connection = session.connection()
    insert_rows(connection, Membership.__table__, ("profile_id", "split_group"),
                [(profile_id, None if assigned is None else assigned.of[profile_id]) for profile_id in entered],
                dict(space_id=computation.space_id, computation_id=computation.id, entered_at_ms=now_ms,
                     entered_run_id=run_row.id))
    gone = _merged_away(session, exited)
    exited = [profile_id for profile_id in exited if profile_id not in gone]
    _write_traits(session, computation, {**{p: "true" for p in entered}, **{p: "false" for p in exited}}, now_ms)
    if entered or exited:
        values = None if matched is None else entity_members.member_values(session, computation, matched, entered,
                                                                            exited)
        targets = routes.sending_routes(session, computation.id) if matched is None \
            else entity_members.sending_now(session, computation)
        ranked = priority_lists.on_run(session, computation.space_id, computation.id, entered, exited, run_row.id,
                                       now_ms)
        sent_entered, sent_exited = ranked or (entered, exited)
        entity_members.timed_enqueue(matched, session, computation.space_id, computation.id, targets,
                                     {"entered": sent_entered, "exited": sent_exited}, run_row.id, now_ms, values,
                                     assigned)
    if matched is not None:
        pairs = entity_members.write(session, computation, run_row, members, matched)
        run_row.entity_size = pairs if computation.target_entity != "profile" else None
    elif computation.graph is not None and profile_ids is None:
        entity_members.forget(session, computation)
    run_row.profiles = len(members) if profile_ids is None else len(profile_ids)
    run_row.entered, run_row.exited = len(entered), len(exited) + len(gone)
    return len(members), run_row.entered - run_row.exited


def _apply_trait(session: Session, computation: Computation, rows: list[tuple], run_row: ComputeRun,
                 profile_ids) -> tuple[int, int]:
    """Write changed values; `entered` counts values set or changed, `exited` values cleared."""
    # in the profiles' order, which is their rows' order in each index: a million go in 2.5 times as fast
    values = {profile_id: value for profile_id, value in sorted(rows, key=itemgetter(0)) if value is not None}
    current = _stored_values(session, computation, profile_ids)
    changed = {profile_id: value for profile_id, value in values.items()
               if value != current.get(profile_id) and not _same_value(value, current.get(profile_id))}
    cleared = sorted(current.keys() - values.keys())
    now_ms = run_row.started_at_ms
    _write_traits(session, computation, changed, now_ms)
    for chunk in _chunks(cleared):
        session.execute(delete(Trait).where(Trait.key == computation.key, col(Trait.profile_id).in_(chunk)))
    _write_value_history(session, computation.id, changed, [p for p in changed if p in current] + cleared, now_ms)
    gone = _merged_away(session, cleared)
    sent = {**changed, **{profile_id: None for profile_id in cleared if profile_id not in gone}}
    if sent:
        outbox.enqueue(session, computation.space_id, computation.id, routes.sending_routes(session, computation.id),
                       {"changed": sorted(sent)}, run_row.id, now_ms, sent)
    run_row.profiles = len(rows)
    run_row.entered, run_row.exited = len(changed), len(cleared)
    gained = sum(profile_id not in current for profile_id in changed)
    return len(values), gained - len(cleared)


def _stored_values(session: Session, computation: Computation, profile_ids) -> dict[str, str]:
    """The computed trait's stored values: of some profiles by their keys (of more than
    `READ_ALL_ABOVE`, all of them, filtered), or of every profile through `ix_trait_computed`, whose
    condition is repeated word for word so that SQLite and PostgreSQL use it (without it a full run
    read every trait of every profile)."""
    trait = Trait.__table__
    fixed = {"key": computation.key, "trait_class": "computed_trait"}

    def of_key() -> Select:
        return select(trait.c.profile_id, trait.c.value).where(trait.c.key == bindparam("key"),
                                                               trait.c.trait_class == bindparam("trait_class"))

    if profile_ids is None or len(profile_ids) > READ_ALL_ABOVE:
        stored = dict(select_all(session.connection(), "all current computed values", lambda: of_key().where(
            trait.c.space_id == bindparam("space"), text(COMPUTED_TRAIT)), {**fixed, "space": computation.space_id}))
        return stored if profile_ids is None else {p: stored[p] for p in profile_ids if p in stored}
    return dict(_restricted(session, "current computed values", of_key, trait.c.profile_id, profile_ids, **fixed))


def _write_value_history(session: Session, computation_id: str, changed: dict[str, str], closed: list[str],
                         now_ms: int) -> None:
    """Close the values of `closed` (those that changed or were cleared; a profile's first value has
    none to close), and open the new ones."""
    for chunk in _chunks(closed):
        session.execute(update(ComputedValue).where(
            ComputedValue.computation_id == computation_id, col(ComputedValue.until_ms).is_(None),
            col(ComputedValue.profile_id).in_(chunk)).values(until_ms=now_ms))
    insert_rows(session.connection(), ComputedValue.__table__, ("profile_id", "value"), list(changed.items()),
                dict(computation_id=computation_id, from_ms=now_ms))


def _same_value(value: str, stored: str | None) -> bool:
    """Whether two JSON texts hold the same value (`1` and `1.0`). Most values a run computes are
    unchanged, so the caller compares the texts first and decodes only those that differ."""
    return orjson.loads(value) == (None if stored is None else orjson.loads(stored))


def _write_traits(session: Session, computation: Computation, values: dict[str, str], now_ms: int) -> None:
    trait_class = "audience" if computation.kind == "audience" else "computed_trait"
    upsert_newer_distinct(session.connection(), Trait.__table__, ("profile_id", "value"), list(values.items()),
                          ("profile_id", "key"), "updated_at_ms",
                          dict(key=computation.key, space_id=computation.space_id, trait_class=trait_class,
                               source_id=SOURCE_ID, updated_at_ms=now_ms))


def _merged_away(session: Session, profile_ids: list[str]) -> set[str]:
    return {profile_id for (profile_id,) in _restricted(
        session, "merged away", lambda: select(Profile.id).where(col(Profile.merged_into).is_not(None)),
        Profile.id, profile_ids)}


def _restricted(session: Session, name: str, build, column, ids: Collection[str] | None, **fixed) -> list[tuple]:
    """Rows of `build()`, all of them, or only those whose `column` is in `ids` (asked in chunks).
    Every value `build()` binds besides the ids is a named `bindparam` given in `fixed`."""
    if ids is None:
        return select_all(session.connection(), f"all {name}", build, fixed)
    return select_in(session.connection(), name, lambda placeholders: build().where(col(column).in_(placeholders)),
                     ids, fixed)


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[start:start + IN_CHUNK] for start in range(0, len(items), IN_CHUNK)]


def mark_failed(session: Session, computation: Computation, error: str) -> ComputeState:
    """Status `Failed` with the reason; the members and values stay as they were."""
    state = session.get(ComputeState, computation.id) or ComputeState(computation_id=computation.id,
                                                                       space_id=computation.space_id)
    state.error = error
    session.add(state)
    set_status(session, [computation.id], "Failed")
    return state


def set_status(session: Session, computation_ids: list[str], status: str) -> None:
    """Set the status of those of the computations that are enabled, writing only rows it changes."""
    for model, prefix in ((Audience, "aud_"), (ComputedTrait, "tra_")):
        ids = [computation_id for computation_id in computation_ids if computation_id.startswith(prefix)]
        if ids:
            session.execute(update(model).where(col(model.id).in_(ids), col(model.enabled).is_(True),
                                                col(model.status) != status).values(status=status)
                            .execution_options(synchronize_session="fetch"))


def _record_failure(store: Store, computation: Computation, started, reason: str, error: Exception,
                    cadence: Cadence) -> ComputeRun:
    now_ms = to_ms(started)
    with store.write() as session:
        run_row = ComputeRun(id=new_id("run"), space_id=computation.space_id, computation_id=computation.id,
                             reason=reason, status="FAILED", started_at_ms=now_ms, finished_at_ms=to_ms(store.now()),
                             error=str(error))
        state = mark_failed(session, computation, str(error))
        state.last_run_id, state.last_run_at_ms = run_row.id, now_ms
        state.next_run_at_ms = cadence.next_run(computation, now_ms)
        session.add(run_row)
        return run_row
