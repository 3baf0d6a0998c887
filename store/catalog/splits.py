"""Experiment splits of audiences (`spl_…`): an audience's members in deterministic groups
(`backend.splits`), some of them holdouts, which connections may target one at a time.

Each stay keeps the group its profile was in (`membership.split_group`). Creating a split gives the
current stays their groups; a run gives each new stay its group; removing a split leaves the stays'
groups as they were. Changing the percentages moves only
the members whose bucket changed group: their stays end and new ones begin in the new group at the
same moment (as a changed computed-trait value does), and each connection is sent the exits and
entries the move makes for it. Members put in a holdout by a new split are sent an exit wherever they
had been sent; removing a split sends its holdout members an entry wherever a connection sends.
A connection targets a group with `connectionSettings.splitGroup`, and its activations send for that
group too; an activation can also target a group of its own (`splitGroup`), which must be its
connection's group when the connection has one. Aiming a connection or activation at another group
(or at none, or at one where it had none) sends it the exits of the current members it no longer
sends and the entries of those it now does (`retarget`), so its destination holds the new group's
members. A group some connection or activation targets cannot be renamed or removed, nor the split
with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import bindparam, func, update
from sqlmodel import Session, col, select

from backend.clock import to_ms
from backend.splits import Assigned, Group, SplitError, check_groups, group_of
from store.catalog.audiences import require_audience
from store.db import locks
from store.db.bulk import execute_dicts, insert_dicts
from store.db.errors import Conflict, InputValidation, NotFound
from store.db.ids import new_id
from store.db.models import Activation, AudienceSplit, Connection, Membership
from store.db.store import Store
from store.delivery import outbox, routes


@dataclass(frozen=True)
class Split:
    id: str
    audience_id: str
    salt: str
    groups: list[Group]

    def assigned(self, profile_ids: Sequence[str], known: dict[str, str | None] | None = None) -> Assigned:
        """The groups of these profiles: those in `known` as it says, the others by their bucket."""
        known = known or {}
        return Assigned({profile_id: known[profile_id] if profile_id in known else
                         group_of(self.groups, self.salt, profile_id).name for profile_id in profile_ids},
                        frozenset(group.name for group in self.groups if group.holdout))


def split_of(session: Session, audience_id: str) -> Split | None:
    row = session.exec(select(AudienceSplit).where(AudienceSplit.audience_id == audience_id)).first()
    return None if row is None else _split(row)


def create_split(store: Store, space_id: str, audience_id: str, groups: list[Group], salt: str | None) -> AudienceSplit:
    groups = _checked(groups)
    with store.write() as session:
        audience = require_audience(session, space_id, audience_id)
        if (audience.target_entity or "profile") != "profile":
            raise InputValidation("A split groups profiles; this LINKED audience's members are entity rows "
                                  f"('{audience.target_entity}').", field="audienceId")
        locks.exclusive(session, [audience_id])
        if split_of(session, audience_id) is not None:
            raise Conflict(f"Audience '{audience_id}' already has a split; change it with "
                           "segment_audiences_update_audience_split.", field="audienceId")
        now = store.now()
        split_id = new_id("spl")
        row = AudienceSplit(id=split_id, space_id=space_id, audience_id=audience_id, salt=salt or split_id,
                            groups=[_document(group) for group in groups], created_at=now, updated_at=now)
        session.add(row)
        session.flush()
        _regroup(session, audience_id, None, _split(row), to_ms(now), split_id, stays="label")
        return row


def get_split(store: Store, space_id: str, audience_id: str) -> tuple[AudienceSplit, dict[str, int]]:
    """The split and how many current members each group has."""
    with store.read() as session:
        row = _require(session, space_id, audience_id)
        counted = dict(session.exec(select(Membership.split_group, func.count()).where(
            Membership.computation_id == audience_id, col(Membership.exited_at_ms).is_(None))
            .group_by(Membership.split_group)).all())
        return row, {group["name"]: counted.get(group["name"], 0) for group in row.groups}


def update_split(store: Store, space_id: str, audience_id: str, groups: list[Group]) -> tuple[AudienceSplit, int]:
    """New groups (names and percentages); returns the split and how many members changed group."""
    groups = _checked(groups)
    with store.write() as session:
        row = _require(session, space_id, audience_id)
        locks.exclusive(session, [audience_id])
        names = {group.name for group in groups}
        for connection_id, target in _targeting(session, audience_id):
            if target not in names:
                raise Conflict(f"'{connection_id}' sends to group '{target}'; keep the group, or change that "
                               "connection's connectionSettings.splitGroup (or activation's splitGroup) first.",
                               field="groups")
        before = _split(row)
        row.groups = [_document(group) for group in groups]
        row.updated_at = store.now()
        session.add(row)
        session.flush()
        moved = _regroup(session, audience_id, before, _split(row), to_ms(row.updated_at), new_id("spc"),
                         stays="restart")
        return row, moved


def remove_split(store: Store, space_id: str, audience_id: str) -> None:
    with store.write() as session:
        row = _require(session, space_id, audience_id)
        locks.exclusive(session, [audience_id])
        targeting = _targeting(session, audience_id)
        if targeting:
            named = ", ".join(f"'{connection_id}' ('{group}')" for connection_id, group in targeting)
            raise Conflict(f"Connections or activations still send to one group: {named}; remove their splitGroup "
                           "first.", field="audienceId")
        _regroup(session, audience_id, _split(row), None, to_ms(store.now()), new_id("spc"), stays="keep")
        session.delete(row)


def check_target(session: Session, audience_id: str, group: str, field: str) -> None:
    """A connection's or an activation's `splitGroup` must name a group of the audience's split."""
    split = split_of(session, audience_id)
    if split is None:
        raise InputValidation(f"Audience '{audience_id}' has no split; create one with "
                              "segment_audiences_create_audience_split first.", field=field)
    names = [g.name for g in split.groups]
    if group not in names:
        raise InputValidation(f"The split has no group '{group}'; its groups are {', '.join(names)}.", field=field)


def groups_of(row: AudienceSplit) -> list[Group]:
    return [Group(g["name"], g["percentage"], g["holdout"]) for g in row.groups]


def _regroup(session: Session, audience_id: str, before: Split | None, after: Split | None, now_ms: int,
             change_id: str, *, stays: Literal["label", "restart", "keep"]) -> int:
    """Send each route the exits and entries that going from the groups of `before` to those of
    `after` (None: no split) makes, and record it on the open stays of the members who changed group:
    `label` them with their new group (a new split), `restart` them (end each and begin another in the
    new group), or `keep` them as they were (a removed split: the stays keep the group they had).
    Returns how many members changed group."""
    found = session.exec(select(Membership.profile_id, Membership.split_group, Membership.space_id).where(
        Membership.computation_id == audience_id, col(Membership.exited_at_ms).is_(None))).all()
    old = (before.assigned([p for p, _, _ in found], {p: g for p, g, _ in found}) if before
           else Assigned({p: None for p, _, _ in found}, frozenset()))
    new = after.assigned([p for p, _, _ in found]) if after else Assigned({p: None for p, _, _ in found}, frozenset())
    moved = sorted(p for p, _, _ in found if old.of[p] != new.of[p])
    if not moved:
        return 0
    space_id = found[0][2]
    connection = session.connection()
    if stays == "label":
        execute_dicts(connection, "regroup stays", lambda: update(Membership).where(
            Membership.computation_id == bindparam("audience"), col(Membership.exited_at_ms).is_(None),
            Membership.profile_id == bindparam("profile")).values(split_group=bindparam("group")),
            [{"audience": audience_id, "profile": p, "group": new.of[p]} for p in moved])
    elif stays == "restart":
        execute_dicts(connection, "end moved stays", lambda: update(Membership).where(
            Membership.computation_id == bindparam("audience"), col(Membership.exited_at_ms).is_(None),
            Membership.profile_id == bindparam("profile")).values(exited_at_ms=bindparam("at"),
                                                                  exited_run_id=bindparam("change")),
            [{"audience": audience_id, "profile": p, "at": now_ms, "change": change_id} for p in moved])
        insert_dicts(connection, Membership.__table__, [
            dict(space_id=space_id, computation_id=audience_id, profile_id=p, entered_at_ms=now_ms,
                 entered_run_id=change_id, split_group=new.of[p]) for p in moved])
    for route in routes.sending_routes(session, audience_id):
        target = route.split_group
        exits = [p for p in moved if old.sends(target, p) and not new.sends(target, p)]
        entries = [p for p in moved if new.sends(target, p) and not old.sends(target, p)]
        outbox.enqueue(session, space_id, audience_id, [route], {"exited": exits}, change_id, now_ms, split=old)
        outbox.enqueue(session, space_id, audience_id, [route], {"entered": entries}, change_id, now_ms, split=new)
    return len(moved)


def aims(session: Session, audience_id: str) -> dict[str, str | None]:
    """The group each of the audience's sending routes aims at (None: every group), when it has a
    split; `retarget` compares them after a change."""
    if session.exec(select(AudienceSplit.id).where(AudienceSplit.audience_id == audience_id)).first() is None:
        return {}
    return {route.target_id: route.split_group for route in routes.sending_routes(session, audience_id)}


def retarget(session: Session, audience_id: str, aimed_before: dict[str, str | None], now_ms: int, *,
             entries: bool = True) -> int:
    """Send each route of the audience whose group differs from `aimed_before` (from `aims`, before
    the change) the exits of the current members it no longer sends and, when `entries`, the entries
    of those it now sends (not when it is being resynced anyway); returns the rows queued."""
    if not aimed_before:  # the audience had no split
        return 0
    changed = [route for route in routes.sending_routes(session, audience_id)
               if route.target_id in aimed_before and aimed_before[route.target_id] != route.split_group]
    if not changed:
        return 0
    members, assigned = outbox.current_members(session, audience_id)
    change_id, queued = new_id("spc"), 0
    for route in changed:
        before, after = aimed_before[route.target_id], route.split_group
        exits = sorted(p for p in members if assigned.sends(before, p) and not assigned.sends(after, p))
        arrivals = sorted(p for p in members if entries and assigned.sends(after, p) and not assigned.sends(before, p))
        queued += outbox.enqueue(session, route.owner.space_id, audience_id, [route],
                                 {"exited": exits, "entered": arrivals}, change_id, now_ms, split=assigned,
                                 only_its_group=False)
    return queued


def _targeting(session: Session, audience_id: str) -> list[tuple[str, str]]:
    """The connections and activations of the audience that target one group, with the group."""
    found = session.exec(select(Connection.id, Connection.connection_settings)
                         .where(Connection.audience_id == audience_id).order_by(Connection.id)).all()
    aimed = session.exec(select(Activation.id, Activation.split_group).where(
        Activation.audience_id == audience_id, col(Activation.split_group).is_not(None)).order_by(Activation.id)).all()
    return [*((connection_id, settings["splitGroup"]) for connection_id, settings in found
              if settings.get("splitGroup")), *aimed]


def _require(session: Session, space_id: str, audience_id: str) -> AudienceSplit:
    require_audience(session, space_id, audience_id)
    row = session.exec(select(AudienceSplit).where(AudienceSplit.audience_id == audience_id)).first()
    if row is None:
        raise NotFound("audience split", audience_id, field="audienceId", scope="for that audience")
    return row


def _checked(groups: list[Group]) -> list[Group]:
    try:
        return check_groups(groups)
    except SplitError as error:
        raise InputValidation(str(error), field=error.field) from error


def _split(row: AudienceSplit) -> Split:
    return Split(row.id, row.audience_id, row.salt, groups_of(row))


def _document(group: Group) -> dict:
    return {"name": group.name, "percentage": group.percentage, "holdout": group.holdout}
