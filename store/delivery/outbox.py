"""The outbox: transitions waiting for delivery, claimed by workers under a lease, and what became of
each (delivered, retried, dead-lettered, cancelled).

A row is claimable when it is pending, due, not leased by a live worker, its target is enabled, and
no earlier row for the same target and profile is still pending, so each destination sees a
profile's entries and exits in order. Rows of a disabled target wait (nothing is lost); rows of a
removed activation, connection or audience are cancelled.

Each claim leases its rows under a fresh token. The worker extends the lease while it still sends
(a heartbeat), and an outcome is written only for rows that still carry the worker's token and are
still pending: a late outcome from a worker that lost its lease is dropped and logged, so it can
never turn a delivered row back to pending or dead-letter it. Error texts are stored with every
destination secret masked.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, bindparam, case, func, literal_column, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from backend.clock import to_ms
from backend.delivery import adapters, policy
from backend.delivery.sender import Job, Lease
from backend.splits import Assigned
from store.db.bulk import execute_dicts, insert_dicts, select_in
from store.db.errors import InputValidation
from store.db.ids import new_id
from store.db.models import Activation, AudienceSplit, DeliveryAttempt, Membership, OutboxMessage, Trait
from store.db.store import Store
from store.delivery import owners, payloads, routes
from store.delivery.routes import Route
from store.warehouse.location import own_warehouse_settings

MESSAGE_NAMESPACE = uuid.UUID("6f1c2b1e-6a53-4d0e-9d1b-0b7f3c2a9e41")
LEASE_MS = 60_000
MAX_LINKED_EVENT_BYTES = 32 * 1024
logger = logging.getLogger("segment_audiences.outbox")


def message_id(target_id: str, profile_id: str, transition: str, run_id: str) -> str:
    """A stable message id for one delivery, the same on every retry."""
    return str(uuid.uuid5(MESSAGE_NAMESPACE, f"{target_id}|{profile_id}|{transition}|{run_id}"))


def enqueue(session: Session, space_id: str, computation_id: str, targets: Sequence[Route],
            changes: dict[str, Sequence[str]], run_id: str, now_ms: int,
            values: dict[str, str | None] | None = None, split: Assigned | None = None,
            only_its_group: bool = True) -> int:
    """One pending row per (target, transition it takes, changed profile); returns how many. A
    computed trait's "changed" rows carry the profile's new value (JSON text, None when cleared). An
    audience with a split sends each target only the profiles of its group (`split`: every group's
    but the holdouts' for a target of none; unless not `only_its_group`, when the caller has chosen
    the profiles: a target that changed group is sent the exits of its old group's), and each row
    carries its profile's group."""
    values = values or {}
    rows = [dict(space_id=space_id, computation_id=computation_id, target_kind=route.target_kind,
                 target_id=route.target_id, profile_id=profile_id, transition=transition, run_id=run_id,
                 message_id=message_id(route.target_id, profile_id, transition, run_id),
                 created_at_ms=now_ms, state="pending", attempts=0, next_attempt_at_ms=now_ms,
                 value=values.get(profile_id), split_group=split.of.get(profile_id) if split else None)
            for route in targets for transition in route.transitions for profile_id in changes.get(transition, ())
            if split is None or not only_its_group or split.sends(route.split_group, profile_id)]
    insert_dicts(session.connection(), OutboxMessage.__table__, rows)
    return len(rows)


def enqueue_entities(session: Session, space_id: str, computation_id: str, targets: Sequence[Route],
                     changes: dict[str, Sequence[tuple[tuple[str, str, str], dict[str, Any]]]], run_id: str,
                     now_ms: int) -> int:
    """One pending row per (target, entity transition it takes, entity row): `changes` maps a
    transition (entity_added, entity_removed, entity_changed) to ((profile, relationship, primary key),
    row document) pairs; the row carries the relationship and the document. Returns how many."""
    rows = [dict(space_id=space_id, computation_id=computation_id, target_kind=route.target_kind,
                 target_id=route.target_id, profile_id=profile_id, transition=transition, run_id=run_id,
                 message_id=message_id(route.target_id, f"{profile_id}|{slug}|{key}", transition, run_id),
                 created_at_ms=now_ms, state="pending", attempts=0, next_attempt_at_ms=now_ms,
                 value=orjson.dumps({"relationship": slug, "row": document}).decode())
            for route in targets for transition in route.transitions
            for (profile_id, slug, key), document in changes.get(transition, ())]
    insert_dicts(session.connection(), OutboxMessage.__table__, rows)
    return len(rows)


def resync(session: Session, route: Route, now_ms: int) -> int:
    """Queue an entry for every current member of the route's audience, or the current value of every
    profile that has one for a computed trait (a full resync or a new connection's backfill); its
    rows carry a run id starting `rsy_`. (A LINKED audience's resync is its next run's:
    `store.compute.entity_members`.) An audience with a split sends the route only its group's members."""
    owner = route.owner
    if route.is_trait:
        values = dict(session.exec(select(Trait.profile_id, Trait.value).where(
            Trait.space_id == owner.space_id, Trait.key == owner.key, Trait.trait_class == "computed_trait")).all())
        return enqueue(session, owner.space_id, owner.id, [route], {"changed": sorted(values)}, new_id("rsy"),
                       now_ms, values)
    if "entered" not in route.transitions:
        return 0
    members, assigned = current_members(session, owner.id)
    return enqueue(session, owner.space_id, owner.id, [route], {"entered": sorted(members)}, new_id("rsy"), now_ms,
                   split=assigned)


def current_members(session: Session, audience_id: str) -> tuple[list[str], Assigned | None]:
    """The audience's current members, and their split groups when it has a split."""
    members = dict(session.exec(select(Membership.profile_id, Membership.split_group).where(
        Membership.computation_id == audience_id, col(Membership.exited_at_ms).is_(None))).all())
    split = session.exec(select(AudienceSplit.groups).where(AudienceSplit.audience_id == audience_id)).first()
    assigned = None if split is None else Assigned(members, frozenset(g["name"] for g in split if g["holdout"]))
    return list(members), assigned


def cancel(session: Session, *, target_id: str | None = None, computation_id: str | None = None) -> None:
    """Cancel the pending rows of a removed target, audience or computed trait."""
    where = OutboxMessage.target_id == target_id if target_id else OutboxMessage.computation_id == computation_id
    session.execute(update(OutboxMessage).where(where, _pending(OutboxMessage))
                    .values(state="cancelled", lease_owner=None, lease_until_ms=None))


@dataclass
class Claim:
    """Rows (in order) that go out together under `lease`, and the job that sends them; `error` when
    the rows cannot be sent at all (a destination missing a setting)."""

    rows: list[OutboxMessage]
    job: Job | None
    lease: Lease
    error: str | None = None
    outcome: policy.Outcome | None = None
    secrets: tuple[str, ...] = ()


def _pending(row) -> ColumnElement:
    """`state = 'pending'` with the state written into the SQL: a bound value would hide from the
    planner that the indexes of pending rows (`ix_outbox_pending`, `ix_outbox_claim`) apply."""
    return row.state == literal_column("'pending'")


def _waiting(now_ms: int) -> tuple:
    """Pending rows whose time has come, not leased."""
    return (_pending(OutboxMessage), OutboxMessage.next_attempt_at_ms <= now_ms,
            or_(col(OutboxMessage.lease_until_ms).is_(None), OutboxMessage.lease_until_ms < now_ms))


def _due(now_ms: int) -> tuple:
    """Waiting rows of an enabled target."""
    return (*_waiting(now_ms), col(OutboxMessage.target_id).in_(routes.enabled_target_ids()))


def _claimable(now_ms: int) -> tuple:
    """Due rows that are the first pending row of their target and profile. The check is a sub-select
    per candidate, which PostgreSQL cannot turn into a join: as a join, a planner whose statistics are
    from a near-empty outbox (the first minute after a fresh start) compared every candidate with every
    pending row of the target; as a sub-select it is one lookup in `ix_outbox_pending`."""
    first = aliased(OutboxMessage)
    return (*_due(now_ms),
            OutboxMessage.id == select(func.min(first.id)).where(
                first.target_id == OutboxMessage.target_id, first.profile_id == OutboxMessage.profile_id,
                _pending(first)).scalar_subquery())


def due_targets(store: Store, running: Collection[str] = ()) -> set[str]:
    """The enabled activations and connections, other than those in `running`, with rows due and not
    leased (each is delivered in its own lane). One short lookup per target: the rows of a running
    lane, however many, are not read. Cheaper than the claim's test: a row held back behind an earlier
    one of its profile still counts, and its lane finds nothing to claim yet."""
    with store.read() as session:
        return set(session.connection().execute(_due_targets_statement(),
                                                 {"now_ms": to_ms(store.now()), "running": list(running)}).scalars())


@functools.cache
def _due_targets_statement() -> Select:
    """`due_targets`'s statement, built once: the delivery supervisor runs it ten times a second, and
    building it took more of the delivery process than running it."""
    targets = routes.enabled_target_ids().subquery()
    has_due = select(OutboxMessage.id).where(OutboxMessage.target_id == targets.c.id,
                                             *_waiting(bindparam("now_ms"))).exists()
    return select(targets.c.id).where(col(targets.c.id).not_in(bindparam("running", expanding=True)), has_due)


def pass_size(store: Store, target_id: str, rounds: int = 8, most: int = 500) -> int:
    """How many rows one pass of a target's lane claims: its requests in flight `rounds` times over
    (at most `most`), so a slow or stuck lane holds few rows and a busy one claims in steps that
    interleave with other work."""
    with store.read() as session:
        route = routes.resolve(session, {target_id}).get(target_id)
    if route is None:
        return 100
    target = route.target()
    return max(1, min(most, target.max_in_flight * adapters.group_size(target) * rounds))


def claimable_ids(now_ms: int, limit: int, target_id: str | None = None) -> Select:
    """The ids of the first `limit` claimable rows (of one target, if given), in the order they fell
    due, locked; on PostgreSQL rows another worker has locked are skipped, so workers take different rows."""
    statement = select(OutboxMessage.id).where(*_claimable(now_ms))
    if target_id is not None:
        statement = statement.where(OutboxMessage.target_id == target_id)
    return (statement.order_by(OutboxMessage.next_attempt_at_ms, OutboxMessage.id).limit(limit)
            .with_for_update(skip_locked=True))


def claim(store: Store, owner: str, limit: int, lease_ms: int = LEASE_MS, target_id: str | None = None) -> list[Claim]:
    """Lease up to `limit` claimable rows (of one target, if given) to `owner` under a fresh token,
    build their payloads if not built yet, and group them into jobs. Only the leasing and the storing
    of new payloads hold the write lock; payloads are built in between, from a read."""
    now_ms = to_ms(store.now())
    lease = Lease(f"{owner}:{uuid.uuid4().hex[:12]}", now_ms + lease_ms, lease_ms)
    with store.write() as session:
        candidates = session.exec(claimable_ids(now_ms, limit, target_id)).all()
        if not candidates:
            return []
        session.execute(update(OutboxMessage).where(
            col(OutboxMessage.id).in_(candidates),
            or_(col(OutboxMessage.lease_until_ms).is_(None), OutboxMessage.lease_until_ms < now_ms),
        ).values(lease_owner=lease.token, lease_until_ms=lease.until_ms))
        rows = list(session.exec(select(OutboxMessage).where(
            col(OutboxMessage.id).in_(candidates), OutboxMessage.lease_owner == lease.token).order_by(OutboxMessage.id)))
    with store.read() as session:
        found = routes.resolve(session, {row.target_id for row in rows})
        unbuilt = [row for row in rows if row.payload is None]
        built = payloads.build(session, unbuilt, found)
    if built:
        _store_payloads(store, unbuilt, built, lease)
    return _group(rows, found, lease, lambda: own_warehouse_settings(store))


def _store_payloads(store: Store, rows: list[OutboxMessage], built: dict[int, list], lease: Lease) -> None:
    """Keep each row's events, built once, so every retry sends the same bytes."""
    for row in rows:
        if row.id in built:
            row.payload = orjson.dumps(built[row.id]).decode()
    with store.write() as session:
        execute_dicts(session.connection(), "store payloads",
                      lambda: update(OutboxMessage.__table__).where(
                          OutboxMessage.__table__.c.id == bindparam("b_id"),
                          OutboxMessage.__table__.c.lease_owner == bindparam("b_token"))
                      .values(payload=bindparam("b_payload")),
                      [{"b_id": row.id, "b_token": lease.token, "b_payload": row.payload}
                       for row in rows if row.id in built])


def heartbeat(store: Store, leases: Sequence[Lease], lease_ms: int = LEASE_MS) -> tuple[dict[str, int], int]:
    """Extend the leases of rows still being sent; returns each lease's new end by token (0 for a
    lease that holds no row any more: it ran out and another worker took its rows, so nothing more
    may be sent under it) and the time of the extension."""
    now_ms = to_ms(store.now())
    ends = {}
    with store.write() as session:
        for lease in leases:
            held = session.execute(update(OutboxMessage).where(
                OutboxMessage.lease_owner == lease.token, _pending(OutboxMessage),
            ).values(lease_until_ms=now_ms + lease_ms)).rowcount
            ends[lease.token] = now_ms + lease_ms if held else 0
    return ends, now_ms


def _group(rows: list[OutboxMessage], found: dict[str, Route], lease: Lease,
           own_warehouse: Callable[[], dict[str, str]]) -> list[Claim]:
    """The leased rows as jobs, one per request; a row whose request cannot be built (or whose LINKED
    event is too large) is a claim without a job, saying why. A warehouse destination without a
    `url` writes to `own_warehouse()`."""
    by_target: dict[str, list[OutboxMessage]] = {}
    for row in rows:
        by_target.setdefault(row.target_id, []).append(row)
    claims = []
    for target_id, group in by_target.items():
        route = found.get(target_id)
        if route is None:
            claims.append(Claim(group, None, lease, "its activation or connection no longer exists"))
            continue
        target = route.target()
        if target.slug == "warehouse" and not target.settings.get("url"):
            try:
                target = replace(target, settings={**target.settings, **own_warehouse()})
            except InputValidation as error:
                claims.extend(Claim([row], None, lease, error.message) for row in group)
                continue
        secrets = tuple(adapters.secret_forms(target))
        if owners.profile_type(route.owner) == "LINKED":
            largest = {row.id: _largest_event(row) for row in group}
            claims.extend(Claim([row], None, lease, f"not sent: an event of {largest[row.id]} bytes is over the "
                                f"{MAX_LINKED_EVENT_BYTES // 1024} KB a LINKED audience's event may have (as Segment, "
                                "it is dropped, not cut); personalize fewer entity columns", secrets=secrets)
                          for row in group if largest[row.id] > MAX_LINKED_EVENT_BYTES)
            group = [row for row in group if largest[row.id] <= MAX_LINKED_EVENT_BYTES]
        size = adapters.group_size(target)
        for start in range(0, len(group), size):
            part = group[start:start + size]
            try:
                events = [event for row in part for event in orjson.loads(row.payload or "[]")]
                claims.append(Claim(part, Job(target, adapters.calls(target, events), lease), lease, secrets=secrets))
            except Exception as error:  # a row's boundary: a request that cannot be built fails that row only
                claims.append(Claim(part, None, lease, f"cannot build the request: {type(error).__name__}: {error}",
                                    secrets=secrets))
    return claims


def _largest_event(row: OutboxMessage) -> int:
    return max((len(orjson.dumps(event)) for event in orjson.loads(row.payload or "[]")), default=0)


def record(store: Store, claims: Sequence[Claim]) -> Counter:
    """Write back what happened to each claimed row that still carries its claim's lease token, and
    log one attempt per row sent; returns the number of rows per outcome kind. Rows whose lease was
    lost are left to the worker holding them now."""
    now_ms = to_ms(store.now())
    counts: Counter = Counter()
    with store.write() as session:
        held = _still_held(session, claims)
        updates: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        dead: dict[tuple[str, str], tuple[int, str]] = {}
        for item in claims:
            outcome = item.outcome or policy.Outcome("failed", error=item.error)
            error = scrub(outcome.error, item.secrets)
            for row in item.rows:
                if (row.id, item.lease.token) not in held:
                    logger.warning("dropped a late outcome (%s) for outbox row %s: its lease was lost", outcome.kind,
                                   row.id)
                    counts["stale"] += 1
                    continue
                change = _after(row, outcome, error, now_ms)
                kind = "dead" if change["state"] == "dead" else outcome.kind
                counts[kind] += 1
                if kind == "dead":
                    dead[(row.space_id, row.target_id)] = (dead.get((row.space_id, row.target_id), (0, ""))[0] + 1,
                                                           error or "")
                updates.append({"b_id": row.id, **change})
                if kind != "released":
                    attempts.append(dict(outbox_id=row.id, space_id=row.space_id, target_id=row.target_id,
                                         message_id=row.message_id, at_ms=now_ms, latency_ms=outcome.latency_ms,
                                         outcome=kind, status=outcome.status, error=error))
        table = OutboxMessage.__table__
        execute_dicts(session.connection(), "record delivery",
                      lambda: update(table).where(table.c.id == bindparam("b_id")).values(
                          {name: bindparam(name) for name in _CHANGED}), updates)
        insert_dicts(session.connection(), DeliveryAttempt.__table__, attempts)
        _hold_back_while_paused(session, claims, now_ms)
    for (space_id, target_id), (rows, last_error) in dead.items():
        logger.error("%s: %d delivery(ies) to %s dead-lettered: %s", space_id, rows, target_id, last_error[:300])
    return counts


def _hold_back_while_paused(session: Session, claims: Sequence[Claim], now_ms: int) -> None:
    """A destination that answered with a Retry-After gets nothing before then: its target's other
    queued rows wait as well, so its lane does not claim them only to find itself paused."""
    until: dict[str, int] = {}
    for item in claims:
        outcome = item.outcome
        if outcome is not None and outcome.kind == "throttled" and outcome.retry_after_ms:
            target_id = item.rows[0].target_id
            until[target_id] = max(until.get(target_id, 0), now_ms + outcome.retry_after_ms)
    for target_id, until_ms in until.items():
        session.execute(update(OutboxMessage).where(
            OutboxMessage.target_id == target_id, _pending(OutboxMessage),
            OutboxMessage.next_attempt_at_ms < until_ms,
            or_(col(OutboxMessage.lease_until_ms).is_(None), OutboxMessage.lease_until_ms < now_ms),
        ).values(next_attempt_at_ms=until_ms))


def _still_held(session: Session, claims: Sequence[Claim]) -> set[tuple[int, str]]:
    """(row id, lease token) of the claimed rows that are pending and still leased under that token."""
    ids = [row.id for item in claims for row in item.rows]
    found = select_in(session.connection(), "held outbox rows",
                      lambda placeholders: select(OutboxMessage.id, OutboxMessage.lease_owner).where(
                          OutboxMessage.state == bindparam("state"), col(OutboxMessage.id).in_(placeholders)),
                      ids, {"state": "pending"})
    return {(row_id, token) for row_id, token in found}


def scrub(text: str | None, secrets: Sequence[str]) -> str | None:
    """`text` with every secret form replaced by a mask (longest first, so no part of one survives)."""
    if text is None:
        return None
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


_CHANGED = ("state", "attempts", "next_attempt_at_ms", "lease_owner", "lease_until_ms", "first_attempt_at_ms",
            "last_attempt_at_ms", "delivered_at_ms", "last_status", "last_error")


def _after(row: OutboxMessage, outcome: policy.Outcome, error: str | None, now_ms: int) -> dict[str, Any]:
    """The row's new state after `outcome` (released rows only lose their lease)."""
    change = {name: getattr(row, name) for name in _CHANGED}
    change.update(lease_owner=None, lease_until_ms=None)
    if outcome.kind == "released":
        return change
    first = row.first_attempt_at_ms or now_ms
    change.update(first_attempt_at_ms=first, last_attempt_at_ms=now_ms, last_status=outcome.status)
    if outcome.kind == "delivered":
        change.update(state="delivered", attempts=row.attempts + 1, delivered_at_ms=now_ms, last_error=None)
        return change
    change["last_error"] = error
    if outcome.kind == "throttled":
        wait = outcome.retry_after_ms or 0
    elif outcome.kind == "retry":
        change["attempts"] = row.attempts + 1
        wait = policy.backoff_ms(change["attempts"])
    else:
        change.update(state="dead", attempts=row.attempts + 1)
        return change
    if now_ms + wait > first + policy.RETRY_WINDOW_MS:
        change["state"] = "dead"
    else:
        change["next_attempt_at_ms"] = now_ms + wait
    return change


@dataclass(frozen=True)
class Health:
    pending: int = 0
    retrying: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    resync_pending: bool = False
    last_error: str | None = None
    last_error_at_ms: int | None = None


def health(session: Session, target_ids: Sequence[str]) -> dict[str, Health]:
    """Delivery counts per target: pending (never tried), retrying (tried, still pending), delivered,
    dead-lettered; whether a resync is still going out; and the newest error."""
    if not target_ids:
        return {}
    counts: dict[str, Counter] = {target_id: Counter() for target_id in target_ids}
    tried = (OutboxMessage.attempts > literal_column("0")).label("tried")  # one expression, not two binds
    grouped = session.exec(
        select(OutboxMessage.target_id, OutboxMessage.state, tried,
               func.max(case((col(OutboxMessage.run_id).startswith("rsy_"), 1), else_=0)), func.count())
        .where(col(OutboxMessage.target_id).in_(target_ids))
        .group_by(OutboxMessage.target_id, OutboxMessage.state, tried)
    ).all()
    resyncing = set()
    for target_id, state, tried, has_resync, count in grouped:
        name = ("retrying" if tried else "pending") if state == "pending" else state
        counts[target_id][name] += count
        if state == "pending" and has_resync:
            resyncing.add(target_id)
    result = {}
    for target_id in target_ids:
        error = session.exec(
            select(DeliveryAttempt.error, DeliveryAttempt.at_ms)
            .where(DeliveryAttempt.target_id == target_id, col(DeliveryAttempt.error).is_not(None))
            .order_by(col(DeliveryAttempt.id).desc()).limit(1)
        ).first()
        c = counts[target_id]
        result[target_id] = Health(c["pending"], c["retrying"], c["delivered"], c["dead"], target_id in resyncing,
                                   *(error or (None, None)))
    return result


def health_of(store: Store, target_ids: Sequence[str]) -> dict[str, Health]:
    with store.read() as session:
        return health(session, target_ids)


def connection_health(store: Store, connection_ids: Sequence[str]) -> dict[str, Health]:
    """Delivery health per connection, counting its own rows and those of all its activations."""
    with store.read() as session:
        owners = dict(session.exec(select(Activation.id, Activation.connection_id)
                                   .where(col(Activation.connection_id).in_(connection_ids))).all())
        parts = health(session, [*connection_ids, *owners])
    return {connection_id: combined([parts[connection_id],
                                     *(parts[a] for a, owner in owners.items() if owner == connection_id)])
            for connection_id in connection_ids}


def combined(parts: Sequence[Health]) -> Health:
    """The health of several targets together: their counts summed, the newest error."""
    newest = max(parts, key=lambda h: h.last_error_at_ms or -1, default=Health())
    return Health(sum(h.pending for h in parts), sum(h.retrying for h in parts), sum(h.delivered for h in parts),
                  sum(h.dead_lettered for h in parts), any(h.resync_pending for h in parts), newest.last_error,
                  newest.last_error_at_ms)


def dead_letters(store: Store, space_id: str | None = None, target_id: str | None = None,
                 limit: int = 100) -> list[OutboxMessage]:
    with store.read() as session:
        statement = select(OutboxMessage).where(OutboxMessage.state == "dead")
        if space_id:
            statement = statement.where(OutboxMessage.space_id == space_id)
        if target_id:
            statement = statement.where(OutboxMessage.target_id == target_id)
        return list(session.exec(statement.order_by(OutboxMessage.id).limit(limit)))


def redrive(store: Store, *, ids: Sequence[int] = (), target_id: str | None = None, space_id: str | None = None) -> int:
    """Put dead-lettered rows back in the queue with a fresh retry window; returns how many."""
    conditions = [OutboxMessage.state == "dead"]
    if ids:
        conditions.append(col(OutboxMessage.id).in_(list(ids)))
    if target_id:
        conditions.append(OutboxMessage.target_id == target_id)
    if space_id:
        conditions.append(OutboxMessage.space_id == space_id)
    now_ms = to_ms(store.now())
    with store.write() as session:
        result = session.execute(update(OutboxMessage).where(and_(*conditions)).values(
            state="pending", attempts=0, first_attempt_at_ms=None, next_attempt_at_ms=now_ms,
            lease_owner=None, lease_until_ms=None))
        return result.rowcount
