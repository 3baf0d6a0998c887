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
  their changed users. On SQLite, where a write transaction holds the database's write lock, a pass
  reads ahead: the batch's rows are computed in a read transaction first, and the write transaction
  skips the computations whose rows are what is stored already and writes back the rest. A profile
  changed again since its rows were read is left to the next pass (its mark stays), or, once passes
  have left it for 30 s (however long it waited behind a backlog before), recomputed in the write
  transaction. The background loop runs the passes of several spaces at once (`server.worker`).
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
from datetime import datetime

from sqlalchemy import delete, or_
from sqlmodel import Session, col, select

from backend.clock import to_ms
from store.analytic.replication import Marks, marks_of
from store.catalog.schedules import next_execution
from store.compute import computations, runs
from store.compute.computations import Computation
from store.compute.runs import Cadence
from store.db import locks
from store.db.bulk import IN_CHUNK, insert_dicts
from store.db.models import (
    AudienceSchedule,
    ComputeState,
    DirtyProfile,
    Membership,
    ProfileLink,
    Trait,
)
from store.db.store import Store

logger = logging.getLogger("segment_audiences.recompute")
DIRTY_BATCH = 5_000
PASS_WORK = 20_000
RETRY_FIRST_MS = 1_000
RETRY_LAST_MS = 3_600_000
STALE_PATIENCE_MS = 30_000


def process_dirty(store: Store, limit: int = DIRTY_BATCH) -> int:
    """One pass for each space with changed profiles due; returns how many profiles were recomputed."""
    return sum(space_pass(store, space_id, limit) for space_id in spaces_due(store))


def spaces_due(store: Store) -> list[str]:
    """The spaces with changed profiles due for a pass."""
    now_ms = to_ms(store.now())
    with store.read() as session:
        return sorted(session.exec(select(DirtyProfile.space_id).where(_due(now_ms)).distinct()))


def _due(now_ms: int):
    return or_(col(DirtyProfile.retry_at_ms).is_(None), col(DirtyProfile.retry_at_ms) <= now_ms)


@dataclass
class _Outcome:
    """What a pass could not do: profiles to try again (with the failure's backoff, or at once), and
    those of them left because they changed while the pass read them ahead."""

    failed: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)
    changed_meanwhile: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _ReadAhead:
    """A pass's profiles and most of their rows, read before its write transaction, and how far the
    rows read went (`Marks`)."""

    now: datetime
    profile_ids: list[str]
    marks: Marks
    rows: dict[str, tuple[Computation, dict[str, list[tuple]]]]  # id → as defined then, its rows by profile

    def rows_of(self, computation: Computation) -> dict[str, list[tuple]] | None:
        """The computation's rows by profile, if they were read, and under the definition it has now."""
        defined, rows = self.rows.get(computation.id, (None, None))
        return rows if defined == computation else None


def space_pass(store: Store, space_id: str, limit: int = DIRTY_BATCH) -> int:
    """One pass over a bounded batch of the space's changed profiles; returns how many."""
    ahead = _read_ahead(store, space_id, limit) if store.engine.dialect.name == "sqlite" else None
    if ahead is not None and not ahead.profile_ids:
        return 0
    with store.write() as session:
        now = store.now() if ahead is None else ahead.now
        now_ms = to_ms(now)
        realtime = _realtime(session, space_id)
        claimed = select(DirtyProfile.profile_id).where(DirtyProfile.space_id == space_id, _due(now_ms))
        if ahead is None:
            claimed = claimed.limit(_batch(limit, realtime)).with_for_update(skip_locked=True)
        else:
            claimed = claimed.where(col(DirtyProfile.profile_id).in_(ahead.profile_ids))
        dirty = session.execute(delete(DirtyProfile).where(col(DirtyProfile.profile_id).in_(claimed)).returning(
            DirtyProfile.profile_id, DirtyProfile.since_ms, DirtyProfile.attempts, DirtyProfile.deferred_since_ms)
            .execution_options(synchronize_session=False)).all()  # no marks are loaded as objects to update
        if not dirty:
            return 0
        stale, later = _stale(session, ahead, dirty, now_ms)
        targets = [profile_id for profile_id, *_ in dirty if profile_id not in later]
        outcome = _recompute_profiles(session, realtime, targets, now, ahead, stale) if targets else _Outcome()
        outcome.deferred.update(later)
        outcome.changed_meanwhile.update(later)
        _mark_again(session, space_id, dirty, outcome, now_ms)
        return len(targets)


def _stale(session: Session, ahead: _ReadAhead | None, dirty, now_ms: int) -> tuple[frozenset[str], set[str]]:
    """The read-ahead profiles changed since their rows were read: those to recompute in the write
    transaction (left for later by passes for at least `STALE_PATIENCE_MS`), and those left to the
    next pass (which reads them ahead again), so that a write transaction rarely computes anything
    itself. How long a mark waited behind a busy space's backlog does not count."""
    if ahead is None:
        return frozenset(), set()
    changed = runs.changed_since(session, ahead.marks) & {profile_id for profile_id, *_ in dirty}
    waited = {profile_id for profile_id, _, _, deferred_since_ms in dirty
              if deferred_since_ms is not None and deferred_since_ms <= now_ms - STALE_PATIENCE_MS}
    return frozenset(changed & waited), changed - waited


def _realtime(session: Session, space_id: str) -> list[Computation]:
    return [computation for computation in computations.dependency_order(computations.enabled(session, space_id))
            if computation.analysis.cadence == "REALTIME"]


def _batch(limit: int, realtime: list[Computation]) -> int:
    return max(1, min(limit, PASS_WORK // max(1, len(realtime))))


def _read_ahead(store: Store, space_id: str, limit: int) -> _ReadAhead:
    """On SQLite, where a write transaction holds the database's write lock: the batch's rows of every
    computation that reads no other realtime computation's key (nor accounts), computed in a read
    transaction first, so that the write transaction only recomputes the profiles changed since and
    writes back; ingest into every space goes on meanwhile."""
    now = store.now()
    with store.read() as session:
        realtime = _realtime(session, space_id)
        profile_ids = list(session.exec(select(DirtyProfile.profile_id).where(
            DirtyProfile.space_id == space_id, _due(to_ms(now))).limit(_batch(limit, realtime))))
        marks = marks_of(session)
        keys = {computation.key for computation in realtime}
        rows: dict[str, tuple[Computation, dict[str, list[tuple]]]] = {}
        for computation in realtime if profile_ids else ():
            if computation.accounts or keys.intersection(computation.analysis.referenced_traits):
                continue
            by_profile: dict[str, list[tuple]] = defaultdict(list)
            rows[computation.id] = (computation, by_profile)
            for row in computation.rows_for(session, now, profile_ids):
                by_profile[row[0]].append(tuple(row))
    return _ReadAhead(now, profile_ids, marks, rows)


def _recompute_profiles(session: Session, realtime: list[Computation], profile_ids: list[str], now,
                        ahead: _ReadAhead | None, stale: frozenset[str]) -> _Outcome:
    outcome = _Outcome()
    held = locks.try_shared(session, [computation.id for computation in realtime])
    unchanged = _already_stored(session, realtime, ahead, profile_ids, stale) if ahead else set()
    accounts: dict[str, set[str]] | None = None
    changes, failing = [], set()
    for computation in realtime:
        if computation.id not in held:  # its full run is in progress: after it commits, these profiles again
            outcome.deferred.update(profile_ids)
            continue
        if computation.id in unchanged:
            continue
        targets = profile_ids
        if computation.accounts:
            if accounts is None:
                accounts = _accounts_of(session, profile_ids)
                locks.exclusive(session, accounts)
            targets = sorted(accounts)
        if not targets:
            continue
        read = ahead.rows_of(computation) if ahead else None
        precomputed = None if read is None else runs.Precomputed(read, stale)
        done, failed, error = _apply_isolating_failures(session, computation, now, targets, precomputed)
        changes.extend(done)
        if failed:
            failing.add(computation.id)
            logger.warning("realtime recompute of %s failed for %d of %d profiles (retried with backoff): %s",
                           computation.id, len(failed), len(targets), error)
            runs.mark_failed(session, computation, error)
            for target in failed:  # an account's mark is its changed users'
                outcome.failed.update(accounts[target] if computation.accounts else {target})
    runs.record_realtime(session, changes, failing=failing, unchanged=unchanged & held)
    return outcome


def _already_stored(session: Session, realtime: list[Computation], ahead: _ReadAhead, profile_ids: list[str],
                    stale: frozenset[str]) -> set[str]:
    """The read-ahead computations whose rows for the profiles are what is stored already: nothing to
    write for them. Most computations of a busy space are, for most changes (an event that is not
    theirs), so the write transaction reads them all in two statements and skips them."""
    if stale.intersection(profile_ids):
        return set()
    read = [computation for computation in realtime if ahead.rows_of(computation) is not None]
    audiences = {computation.id: computation for computation in read if computation.kind == "audience"}
    traits = {computation.key: computation for computation in read if computation.kind != "audience"}
    stored: dict[str, dict[str, object]] = defaultdict(dict)
    for start in range(0, len(profile_ids), IN_CHUNK):
        chunk = profile_ids[start:start + IN_CHUNK]
        if audiences:
            members = select(Membership.computation_id, Membership.profile_id).where(
                col(Membership.computation_id).in_(sorted(audiences)), col(Membership.exited_at_ms).is_(None),
                col(Membership.profile_id).in_(chunk))
            for computation_id, profile_id in session.execute(members):
                stored[computation_id][profile_id] = True
        if traits:
            for key, profile_id, value in session.execute(select(Trait.key, Trait.profile_id, Trait.value).where(
                    col(Trait.key).in_(sorted(traits)), Trait.trait_class == "computed_trait",
                    col(Trait.profile_id).in_(chunk))):
                stored[traits[key].id][profile_id] = value
    targets = set(profile_ids)
    same = set()
    for computation in read:
        rows = ahead.rows_of(computation)
        if computation.kind == "audience":
            computed = {profile_id: True for profile_id in rows if profile_id in targets}
        else:
            computed = {profile_id: found[0][1] for profile_id, found in rows.items()
                        if profile_id in targets and found[0][1] is not None}
        if computed == stored.get(computation.id, {}):
            same.add(computation.id)
    return same


def _apply_isolating_failures(session: Session, computation: Computation, now, targets: list[str],
                              precomputed: runs.Precomputed | None) -> tuple[list[runs.RealtimeChange], list[str], str]:
    """Recompute `targets`, or, when that fails, each half of them, down to single profiles; returns
    the changes made, the profiles it failed for and the last failure's reason."""
    try:
        with session.begin_nested():
            return [runs.apply_realtime(session, computation, now, targets, precomputed)], [], ""
    except Exception as error:  # a failure of some profiles must not hold back the others
        if len(targets) == 1:
            return [], list(targets), str(error)
    middle = len(targets) // 2
    left, right = (_apply_isolating_failures(session, computation, now, half, precomputed)
                   for half in (targets[:middle], targets[middle:]))
    return left[0] + right[0], left[1] + right[1], right[2] or left[2]


def _mark_again(session: Session, space_id: str, dirty, outcome: _Outcome, now_ms: int) -> None:
    """Put back the marks of profiles the pass failed for (retried with backoff) or left for later."""
    rows = []
    for profile_id, since_ms, attempts, deferred_since_ms in dirty:
        mark = dict(profile_id=profile_id, space_id=space_id, since_ms=since_ms, attempts=attempts, retry_at_ms=None,
                    deferred_since_ms=None)
        if profile_id in outcome.failed:
            wait_ms = min(RETRY_FIRST_MS * 2 ** min(attempts, 32), RETRY_LAST_MS)
            rows.append(mark | dict(attempts=attempts + 1, retry_at_ms=now_ms + wait_ms))
        elif profile_id in outcome.changed_meanwhile:
            rows.append(mark | dict(deferred_since_ms=now_ms if deferred_since_ms is None else deferred_since_ms))
        elif profile_id in outcome.deferred:
            rows.append(mark)
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
