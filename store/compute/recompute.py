"""What the background loop recomputes, and when.

- `process_dirty`: profiles whose events, traits or identity changed since the last pass (marked by
  ingest) are recomputed for every REALTIME audience and computed trait of their space, in dependency
  order, in one transaction that also clears the marks. A computation that fails there is marked
  `Failed` and the others go on; accounts are recomputed for their changed users. A pass claims its
  marks by deleting them first (rows locked by another pass are skipped), so on PostgreSQL several
  workers take different profiles, and a change ingested meanwhile for a profile being recomputed
  waits for the pass to end and then marks it again: it is never absorbed by a mark already taken.
  A batch that finds its profile already marked holds that mark until it commits, so no pass takes
  the mark before the batch's events are visible to it.
- `run_due`: full runs for computations never computed, BATCH computations whose cadence is due,
  REALTIME ones that read the clock (window sweeps), and audiences whose schedules are due (each
  schedule's `nextExecution` then moves on). Each run checks again, under the computation's lock
  (`store.db.locks`), that it is still due, so of several workers only one does it.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict

from sqlalchemy import delete
from sqlmodel import Session, col, select

from backend.clock import to_ms
from store.catalog.schedules import next_execution
from store.compute import computations, runs
from store.compute.runs import Cadence
from store.db import locks
from store.db.models import AudienceSchedule, ComputeState, DirtyProfile, ProfileLink
from store.db.store import Store

logger = logging.getLogger("segment_audiences.recompute")
DIRTY_BATCH = 5_000


def process_dirty(store: Store, limit: int = DIRTY_BATCH) -> int:
    """Recompute REALTIME computations for up to `limit` changed profiles; returns how many."""
    with store.write() as session:
        claimed = select(DirtyProfile.profile_id).limit(limit).with_for_update(skip_locked=True)
        dirty = session.execute(delete(DirtyProfile).where(col(DirtyProfile.profile_id).in_(claimed))
                                .returning(DirtyProfile.space_id, DirtyProfile.profile_id)).all()
        if not dirty:
            return 0
        by_space: dict[str, list[str]] = defaultdict(list)
        for space_id, profile_id in dirty:
            by_space[space_id].append(profile_id)
        now = store.now()
        for space_id, profile_ids in by_space.items():
            _recompute_profiles(session, space_id, profile_ids, now)
        return len(dirty)


def _recompute_profiles(session: Session, space_id: str, profile_ids: list[str], now) -> None:
    computed = {state.computation_id for state in session.exec(
        select(ComputeState).where(ComputeState.space_id == space_id, col(ComputeState.last_run_id).is_not(None)))}
    realtime = [c for c in computations.dependency_order(computations.enabled(session, space_id))
                if c.analysis.cadence == "REALTIME" and c.id in computed]
    locks.shared(session, [computation.id for computation in realtime])
    accounts: list[str] | None = None
    changes = []
    for computation in realtime:
        targets = profile_ids
        if computation.accounts:
            if accounts is None:
                accounts = _accounts_of(session, profile_ids)
                locks.exclusive(session, accounts)
            targets = accounts
        if not targets:
            continue
        try:
            with session.begin_nested():
                changes.append(runs.apply_realtime(session, computation, now, targets))
        except Exception as error:  # one broken computation must not hold back the others
            logger.warning("realtime recompute of %s failed: %s", computation.id, error)
            runs.mark_failed(session, computation, str(error))
    runs.record_realtime(session, changes)


def _accounts_of(session: Session, user_ids: list[str]) -> list[str]:
    rows = session.exec(select(ProfileLink.account_id).where(col(ProfileLink.user_id).in_(user_ids))).all()
    return sorted(set(rows))


def run_due(store: Store, cadence: Cadence = Cadence()) -> int:
    """Run every computation that is due now; returns how many this process ran."""
    now = store.now()
    now_ms = to_ms(now)
    with store.read() as session:
        everything = computations.enabled(session)
        states = {state.computation_id: state for state in session.exec(select(ComputeState))}
        scheduled = {schedule.audience_id for schedule in session.exec(_due_schedules(now))}
    unrun = scheduled - {computation.id for computation in everything}  # disabled audiences
    due = []
    for computation in everything:
        state = states.get(computation.id)
        if state is None or state.last_run_id is None:
            due.append((computation, "initial"))
        elif computation.id in scheduled:
            due.append((computation, "schedule"))
        elif state.next_run_at_ms is not None and state.next_run_at_ms <= now_ms:
            due.append((computation, "cadence" if computation.analysis.cadence == "BATCH" else "sweep"))
    reasons = {computation.id: reason for computation, reason in due}
    ran = 0
    for computation in computations.dependency_order(computation for computation, _ in due):
        reason = reasons[computation.id]
        still_due = functools.partial(_still_due, store=store, computation_id=computation.id, reason=reason, now=now)
        run = runs.run_if_due(store, computation.id, reason=reason, still_due=still_due, cadence=cadence)
        ran += run is not None
        if run is not None and run.status == "FAILED":
            unrun.add(computation.id)
    _advance(store, now, unrun & scheduled)
    return ran


def _due_schedules(now):
    return select(AudienceSchedule).where(col(AudienceSchedule.next_execution).is_not(None),
                                          col(AudienceSchedule.next_execution) <= now)


def _still_due(session: Session, *, store: Store, computation_id: str, reason: str, now) -> bool:
    """Whether the run is still to do, asked under the computation's lock; a schedule's run takes the
    schedule (moves its next execution on) in the same transaction."""
    state = session.get(ComputeState, computation_id)
    if reason == "initial":
        return state is None or state.last_run_id is None
    if reason == "schedule":
        schedules = list(session.exec(_due_schedules(now).where(AudienceSchedule.audience_id == computation_id)))
        _move_on(session, store, schedules)
        return bool(schedules)
    return state is not None and state.next_run_at_ms is not None and state.next_run_at_ms <= to_ms(now)


def _advance(store: Store, now, audience_ids: set[str]) -> None:
    """Move on the due schedules of audiences that did not run them (disabled, or their run failed)."""
    if not audience_ids:
        return
    with store.write() as session:
        due = session.exec(_due_schedules(now).where(col(AudienceSchedule.audience_id).in_(audience_ids)))
        _move_on(session, store, list(due))


def _move_on(session: Session, store: Store, schedules: list[AudienceSchedule]) -> None:
    """Set each schedule's next execution after now."""
    for schedule in schedules:
        schedule.next_execution = next_execution(schedule.strategy, schedule.config, store)
        session.add(schedule)
