"""What the background loop recomputes, and when.

- `process_dirty`: profiles whose events, traits or identity changed since the last pass (marked by
  ingest) are recomputed for every REALTIME audience and computed trait of their space, in dependency
  order, in one transaction that also clears the marks. A computation that fails there is marked
  `Failed` and the others go on; accounts are recomputed for their changed users.
- `run_due`: full runs for computations never computed, BATCH computations whose cadence is due,
  REALTIME ones that read the clock (window sweeps), and audiences whose schedules are due (each
  schedule's `nextExecution` then moves on).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import delete
from sqlmodel import Session, col, select

from backend.clock import to_ms
from store import computations, runs
from store.models import AudienceSchedule, ComputeState, DirtyProfile, ProfileLink
from store.runs import Cadence
from store.schedules import next_execution
from store.store import Store

logger = logging.getLogger("segment_audiences.recompute")
DIRTY_BATCH = 5_000


def process_dirty(store: Store, limit: int = DIRTY_BATCH) -> int:
    """Recompute REALTIME computations for up to `limit` changed profiles; returns how many."""
    with store.write() as session:
        dirty = session.exec(select(DirtyProfile.space_id, DirtyProfile.profile_id).limit(limit)).all()
        if not dirty:
            return 0
        by_space: dict[str, list[str]] = defaultdict(list)
        for space_id, profile_id in dirty:
            by_space[space_id].append(profile_id)
        now = store.now()
        for space_id, profile_ids in by_space.items():
            _recompute_profiles(session, space_id, profile_ids, now)
            session.exec(delete(DirtyProfile).where(col(DirtyProfile.profile_id).in_(profile_ids)))
        return len(dirty)


def _recompute_profiles(session: Session, space_id: str, profile_ids: list[str], now) -> None:
    computed = {state.computation_id for state in session.exec(
        select(ComputeState).where(ComputeState.space_id == space_id, col(ComputeState.last_run_id).is_not(None)))}
    realtime = [c for c in computations.dependency_order(computations.enabled(session, space_id))
                if c.analysis.cadence == "REALTIME" and c.id in computed]
    accounts: list[str] | None = None
    for computation in realtime:
        targets = profile_ids
        if computation.accounts:
            accounts = accounts if accounts is not None else _accounts_of(session, profile_ids)
            targets = accounts
        if not targets:
            continue
        try:
            with session.begin_nested():
                runs.apply(session, computation, now, "realtime", targets)
        except Exception as error:  # one broken computation must not hold back the others
            logger.warning("realtime recompute of %s failed: %s", computation.id, error)
            runs.mark_failed(session, computation, str(error))


def _accounts_of(session: Session, user_ids: list[str]) -> list[str]:
    rows = session.exec(select(ProfileLink.account_id).where(col(ProfileLink.user_id).in_(user_ids))).all()
    return sorted(set(rows))


def run_due(store: Store, cadence: Cadence = Cadence()) -> int:
    """Run every computation that is due now; returns how many ran."""
    now = store.now()
    now_ms = to_ms(now)
    with store.read() as session:
        everything = computations.enabled(session)
        states = {state.computation_id: state for state in session.exec(select(ComputeState))}
        schedules = list(session.exec(select(AudienceSchedule).where(
            col(AudienceSchedule.next_execution).is_not(None), col(AudienceSchedule.next_execution) <= now)))
    scheduled = {schedule.audience_id for schedule in schedules}
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
    for computation in computations.dependency_order(computation for computation, _ in due):
        runs.run(store, computation.id, reason=reasons[computation.id], cadence=cadence)
    _advance(store, schedules)
    return len(due)


def _advance(store: Store, schedules: list[AudienceSchedule]) -> None:
    if not schedules:
        return
    with store.write() as session:
        for schedule in schedules:
            row = session.get(AudienceSchedule, schedule.id)
            if row is not None:
                row.next_execution = next_execution(row.strategy, row.config, store)
                session.add(row)
