"""What the background loop recomputes, and when.

- `process_dirty`: profiles whose events, traits or identity changed since the last pass (marked by
  ingest) are recomputed for every REALTIME audience and computed trait of their space, in dependency
  order. Each space with marks due gets one pass per call, in a transaction of its own, over a
  bounded batch: at most `limit` profiles, and fewer the more realtime computations the space has
  (`PASS_WORK` recomputes in all), so no space's pass holds the database for long. A pass claims its
  marks by deleting them first (rows locked by another pass are skipped), so on PostgreSQL several
  workers take different profiles, and a change ingested meanwhile for a profile being recomputed
  waits for the pass to end and then marks it again: it is never absorbed by a mark already taken.
  A batch that finds its profile already marked holds that mark until it commits, so no pass takes
  the mark before the batch's events are visible to it. A computation whose full run is in progress
  (its lock held, in another worker) is not recomputed by the pass: the marks go back, due at once,
  and a later pass recomputes those profiles once the run has committed; so a profile changed while
  a first run reads the events is never left out of it. A computation that fails for some profiles
  fails for those only: the pass retries it over halves of the batch down to single profiles, commits
  the rest, and puts the failed profiles' marks back to be retried with backoff (1 s, doubling, at
  most an hour); the computation is `Failed`, with the reason, while its latest attempt failed for
  some profile, and `Live` again once one succeeds for all it covered. Accounts are recomputed for
  their changed users.
- `run_due`: full runs for computations never computed, BATCH computations whose cadence is due,
  REALTIME ones that read the clock (window sweeps), and audiences whose schedules are due (each
  schedule's `nextExecution` then moves on). Each run checks again, under the computation's lock
  (`store.db.locks`), that it is still due, so of several workers only one does it.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import delete, or_
from sqlmodel import Session, col, select

from backend.clock import to_ms
from store.catalog.schedules import next_execution
from store.compute import computations, runs
from store.compute.computations import Computation
from store.compute.runs import Cadence
from store.db import locks
from store.db.bulk import insert_dicts
from store.db.models import AudienceSchedule, ComputeState, DirtyProfile, ProfileLink
from store.db.store import Store

logger = logging.getLogger("segment_audiences.recompute")
DIRTY_BATCH = 5_000
PASS_WORK = 20_000
RETRY_FIRST_MS = 1_000
RETRY_LAST_MS = 3_600_000


def process_dirty(store: Store, limit: int = DIRTY_BATCH) -> int:
    """One pass for each space with changed profiles due; returns how many profiles were recomputed."""
    now_ms = to_ms(store.now())
    with store.read() as session:
        space_ids = sorted(session.exec(select(DirtyProfile.space_id).where(_due(now_ms)).distinct()))
    return sum(_space_pass(store, space_id, limit) for space_id in space_ids)


def _due(now_ms: int):
    return or_(col(DirtyProfile.retry_at_ms).is_(None), col(DirtyProfile.retry_at_ms) <= now_ms)


@dataclass
class _Outcome:
    """What a pass could not do: profiles to try again (with the failure's backoff, or at once)."""

    failed: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)


def _space_pass(store: Store, space_id: str, limit: int) -> int:
    with store.write() as session:
        now = store.now()
        now_ms = to_ms(now)
        realtime = [c for c in computations.dependency_order(computations.enabled(session, space_id))
                    if c.analysis.cadence == "REALTIME"]
        batch = max(1, min(limit, PASS_WORK // max(1, len(realtime))))
        claimed = (select(DirtyProfile.profile_id).where(DirtyProfile.space_id == space_id, _due(now_ms))
                   .limit(batch).with_for_update(skip_locked=True))
        dirty = session.execute(delete(DirtyProfile).where(col(DirtyProfile.profile_id).in_(claimed)).returning(
            DirtyProfile.profile_id, DirtyProfile.since_ms, DirtyProfile.attempts)).all()
        if dirty:
            outcome = _recompute_profiles(session, realtime, [profile_id for profile_id, _, _ in dirty], now)
            _mark_again(session, space_id, dirty, outcome, now_ms)
        return len(dirty)


def _recompute_profiles(session: Session, realtime: list[Computation], profile_ids: list[str], now) -> _Outcome:
    outcome = _Outcome()
    held = locks.try_shared(session, [computation.id for computation in realtime])
    accounts: dict[str, set[str]] | None = None
    changes, failing = [], set()
    for computation in realtime:
        if computation.id not in held:  # its full run is in progress: after it commits, these profiles again
            outcome.deferred.update(profile_ids)
            continue
        targets = profile_ids
        if computation.accounts:
            if accounts is None:
                accounts = _accounts_of(session, profile_ids)
                locks.exclusive(session, accounts)
            targets = sorted(accounts)
        if not targets:
            continue
        done, failed, error = _apply_isolating_failures(session, computation, now, targets)
        changes.extend(done)
        if failed:
            failing.add(computation.id)
            logger.warning("realtime recompute of %s failed for %d of %d profiles (retried with backoff): %s",
                           computation.id, len(failed), len(targets), error)
            runs.mark_failed(session, computation, error)
            for target in failed:  # an account's mark is its changed users'
                outcome.failed.update(accounts[target] if computation.accounts else {target})
    runs.record_realtime(session, changes, failing=failing)
    return outcome


def _apply_isolating_failures(session: Session, computation: Computation, now,
                              targets: list[str]) -> tuple[list[runs.RealtimeChange], list[str], str]:
    """Recompute `targets`, or, when that fails, each half of them, down to single profiles; returns
    the changes made, the profiles it failed for and the last failure's reason."""
    try:
        with session.begin_nested():
            return [runs.apply_realtime(session, computation, now, targets)], [], ""
    except Exception as error:  # a failure of some profiles must not hold back the others
        if len(targets) == 1:
            return [], list(targets), str(error)
    middle = len(targets) // 2
    left, right = (_apply_isolating_failures(session, computation, now, half)
                   for half in (targets[:middle], targets[middle:]))
    return left[0] + right[0], left[1] + right[1], right[2] or left[2]


def _mark_again(session: Session, space_id: str, dirty, outcome: _Outcome, now_ms: int) -> None:
    """Put back the marks of profiles the pass failed for (retried with backoff) or left for later."""
    rows = []
    for profile_id, since_ms, attempts in dirty:
        if profile_id in outcome.failed:
            wait_ms = min(RETRY_FIRST_MS * 2 ** min(attempts, 32), RETRY_LAST_MS)
            rows.append(dict(profile_id=profile_id, space_id=space_id, since_ms=since_ms, attempts=attempts + 1,
                             retry_at_ms=now_ms + wait_ms))
        elif profile_id in outcome.deferred:
            rows.append(dict(profile_id=profile_id, space_id=space_id, since_ms=since_ms, attempts=attempts,
                             retry_at_ms=None))
    insert_dicts(session.connection(), DirtyProfile.__table__, rows)


def _accounts_of(session: Session, user_ids: list[str]) -> dict[str, set[str]]:
    """The accounts the users belong to, each with those of the users in it."""
    accounts: dict[str, set[str]] = defaultdict(set)
    for user_id, account_id in session.exec(select(ProfileLink.user_id, ProfileLink.account_id).where(
            col(ProfileLink.user_id).in_(user_ids))):
        accounts[account_id].add(user_id)
    return accounts


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
