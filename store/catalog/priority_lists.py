"""Priority lists (`pri_…`): a ranked list of a space's audiences, through whose connections a profile
is delivered only as a member of the highest-ranked audience it is in.

Membership itself is untouched (a profile stays a member of every audience it qualifies for, and its
`<key>` traits say so); what changes is what each audience's connections are sent. At each run of an
audience on a list, decided under the list's lock: an entry or exit is sent only for a profile in no
higher-ranked audience; a profile that enters is sent an exit from the highest lower-ranked audience
it is in (where it was delivered until now), and one that exits is sent an entry there. Creating,
reordering or removing a list (or taking audiences on or off it) sends each audience's connections
the exits and entries the new ranking makes. An audience is on one list at most, lists hold USERS or
ACCOUNTS audiences of one type, and removing an audience that is on a list is a `conflict`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete
from sqlmodel import Session, col, select

from backend.clock import to_ms
from store.catalog import splits
from store.catalog.audiences import require_audience
from store.catalog.spaces import require_space
from store.db import locks
from store.db.bulk import IN_CHUNK, select_in
from store.db.errors import Conflict, InputValidation, NotFound
from store.db.ids import new_id
from store.db.models import Membership, PriorityList, PriorityListEntry
from store.db.store import Store
from store.delivery import outbox, routes

FEWEST_AUDIENCES, MOST_AUDIENCES = 2, 20


@dataclass(frozen=True)
class RankedList:
    row: PriorityList
    audience_ids: list[str]  # highest first


def create_list(store: Store, space_id: str, name: str, audience_ids: list[str]) -> RankedList:
    with store.write() as session:
        require_space(session, space_id)
        _check_audiences(session, space_id, audience_ids, None)
        now = store.now()
        row = PriorityList(id=new_id("pri"), space_id=space_id, name=_name(name), created_at=now, updated_at=now)
        session.add(row)
        locks.exclusive(session, [row.id])
        _rank(session, row.id, audience_ids)
        _rerank(session, space_id, [], audience_ids, row.id, to_ms(now))
        return RankedList(row, audience_ids)


def get_list(store: Store, space_id: str, list_id: str) -> tuple[RankedList, dict[str, int]]:
    """The list and, per audience, how many members its connections are sent (those in no higher one)."""
    with store.read() as session:
        ranked = _require(session, space_id, list_id)
        delivered = _delivered(_open_stays(session, ranked.audience_ids), ranked.audience_ids)
        return ranked, {audience_id: len(delivered[audience_id]) for audience_id in ranked.audience_ids}


def update_list(store: Store, space_id: str, list_id: str, name: str | None,
                audience_ids: list[str] | None) -> tuple[RankedList, int]:
    """A new name and/or ranking (audiences may join or leave); returns the list and how many
    (audience, profile) deliveries the new ranking changed."""
    with store.write() as session:
        ranked = _require(session, space_id, list_id)
        locks.exclusive(session, [list_id])
        row = ranked.row
        if name is not None:
            row.name = _name(name)
        changed = 0
        if audience_ids is not None:
            _check_audiences(session, space_id, audience_ids, list_id)
            session.execute(delete(PriorityListEntry).where(PriorityListEntry.list_id == list_id))
            _rank(session, list_id, audience_ids)
            changed = _rerank(session, space_id, ranked.audience_ids, audience_ids, new_id("prc"), to_ms(store.now()))
        row.updated_at = store.now()
        session.add(row)
        return RankedList(row, audience_ids if audience_ids is not None else ranked.audience_ids), changed


def remove_list(store: Store, space_id: str, list_id: str) -> None:
    with store.write() as session:
        ranked = _require(session, space_id, list_id)
        locks.exclusive(session, [list_id])
        _rerank(session, space_id, ranked.audience_ids, [], new_id("prc"), to_ms(store.now()))
        session.execute(delete(PriorityListEntry).where(PriorityListEntry.list_id == list_id))
        session.delete(ranked.row)


def on_run(session: Session, space_id: str, audience_id: str, entered: Sequence[str], exited: Sequence[str],
           run_id: str, now_ms: int) -> tuple[list[str], list[str]] | None:
    """For a run of an audience on a list: queue the exits and entries it causes in lower-ranked
    audiences, and return the entries and exits the audience's own connections are sent (None when
    it is on no list: all of them)."""
    entry = session.get(PriorityListEntry, audience_id)
    if entry is None or not (entered or exited):
        return None
    locks.exclusive(session, [entry.list_id])
    ranking = _ranking(session, entry.list_id)
    place = ranking.index(audience_id)
    higher, lower = ranking[:place], ranking[place + 1:]
    stays = _open_stays(session, higher + lower, [*entered, *exited])
    above = set().union(*(stays[a] for a in higher))
    sent_entered = [p for p in entered if p not in above]
    sent_exited = [p for p in exited if p not in above]
    below: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"entered": [], "exited": []})
    for transition, profiles in (("exited", sent_entered), ("entered", sent_exited)):
        for profile_id in profiles:
            other = next((a for a in lower if profile_id in stays[a]), None)
            if other is not None:
                below[other][transition].append(profile_id)
    for other, changes in below.items():
        _send(session, space_id, other, changes, run_id, now_ms)
    return sent_entered, sent_exited


def _rerank(session: Session, space_id: str, before: list[str], after: list[str], change_id: str, now_ms: int) -> int:
    """Send each audience's connections what changes between ranking `before` and `after`."""
    audiences = list(dict.fromkeys([*before, *after]))
    stays = _open_stays(session, audiences)
    old, new = _delivered(stays, before), _delivered(stays, after)
    changed = 0
    for audience_id in audiences:
        changes = {"exited": sorted(old[audience_id] - new[audience_id]),
                   "entered": sorted(new[audience_id] - old[audience_id])}
        changed += len(changes["exited"]) + len(changes["entered"])
        _send(session, space_id, audience_id, changes, change_id, now_ms)
    return changed


def _delivered(stays: dict[str, set[str]], ranking: list[str]) -> dict[str, set[str]]:
    """Who each audience's connections hold under `ranking`: an audience not on it, all its members;
    one on it, those in no audience above it."""
    delivered = {audience_id: set(members) for audience_id, members in stays.items()}
    taken: set[str] = set()
    for audience_id in ranking:
        delivered[audience_id] = stays[audience_id] - taken
        taken |= stays[audience_id]
    return delivered


def _send(session: Session, space_id: str, audience_id: str, changes: dict[str, list[str]], run_id: str,
          now_ms: int) -> None:
    """Queue these changes for the audience's connections (to its split's groups, if it has one)."""
    profiles = [*changes["entered"], *changes["exited"]]
    targets = routes.sending_routes(session, audience_id) if profiles else []
    if not targets:
        return
    split = splits.split_of(session, audience_id)
    assigned = None
    if split is not None:
        known = dict(select_in(session.connection(), "open stays' split groups", lambda ids: select(
            Membership.profile_id, Membership.split_group).where(
            Membership.computation_id == bindparam("audience"), col(Membership.exited_at_ms).is_(None),
            col(Membership.profile_id).in_(ids)), profiles, {"audience": audience_id}))
        assigned = split.assigned(profiles, known)
    outbox.enqueue(session, space_id, audience_id, targets, changes, run_id, now_ms, split=assigned)


def _open_stays(session: Session, audience_ids: list[str], profile_ids: Collection[str] | None = None) -> dict[str, set[str]]:
    """Each audience's current members (only among `profile_ids`, if given)."""
    stays: dict[str, set[str]] = {audience_id: set() for audience_id in audience_ids}
    if not audience_ids:
        return stays
    statement = select(Membership.computation_id, Membership.profile_id).where(
        col(Membership.computation_id).in_(audience_ids), col(Membership.exited_at_ms).is_(None))
    if profile_ids is None:
        found = session.exec(statement).all()
    else:
        ids = list(profile_ids)
        found = [row for start in range(0, len(ids), IN_CHUNK)
                 for row in session.exec(statement.where(col(Membership.profile_id).in_(ids[start:start + IN_CHUNK])))]
    for audience_id, profile_id in found:
        stays[audience_id].add(profile_id)
    return stays


def _check_audiences(session: Session, space_id: str, audience_ids: list[str], list_id: str | None) -> None:
    if len(set(audience_ids)) != len(audience_ids):
        raise InputValidation("audienceIds names an audience twice; rank each once.", field="audienceIds")
    if not FEWEST_AUDIENCES <= len(audience_ids) <= MOST_AUDIENCES:
        raise InputValidation(f"A priority list ranks {FEWEST_AUDIENCES} to {MOST_AUDIENCES} audiences "
                              f"(got {len(audience_ids)}).", field="audienceIds")
    types = set()
    for index, audience_id in enumerate(audience_ids):
        audience = require_audience(session, space_id, audience_id)
        if audience.audience_type == "LINKED":
            raise InputValidation(f"Audience '{audience_id}' is LINKED; a priority list ranks USERS or ACCOUNTS "
                                  "audiences.", field=f"audienceIds[{index}]")
        types.add(audience.audience_type)
        entry = session.get(PriorityListEntry, audience_id)
        if entry is not None and entry.list_id != list_id:
            raise Conflict(f"Audience '{audience_id}' is already on priority list '{entry.list_id}'; an audience is "
                           "on one list at most.", field=f"audienceIds[{index}]")
    if len(types) > 1:
        raise InputValidation("A priority list ranks audiences of one type (USERS or ACCOUNTS), not both.",
                              field="audienceIds")


def _rank(session: Session, list_id: str, audience_ids: list[str]) -> None:
    session.add_all([PriorityListEntry(audience_id=audience_id, list_id=list_id, rank=rank)
                     for rank, audience_id in enumerate(audience_ids)])
    session.flush()


def _ranking(session: Session, list_id: str) -> list[str]:
    return list(session.exec(select(PriorityListEntry.audience_id).where(PriorityListEntry.list_id == list_id)
                             .order_by(PriorityListEntry.rank)).all())


def _require(session: Session, space_id: str, list_id: str) -> RankedList:
    require_space(session, space_id)
    row = session.get(PriorityList, list_id)
    if row is None or row.space_id != space_id:
        raise NotFound("priority list", list_id, field="id", scope=f"in space '{space_id}'")
    return RankedList(row, _ranking(session, list_id))


def _name(name: str) -> str:
    if not name.strip():
        raise InputValidation("A priority list needs a name.", field="name")
    return name.strip()
