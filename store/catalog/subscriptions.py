"""Messaging subscriptions: the subscription state of each contact vector (email, phone number, push
token) in a space, globally and per subscription group (email only, at most 25 groups per space).

Keys are checked per type and failures are reported per key, never failing the whole request:
INVALID_EMAIL, INVALID_PHONE_NUMBER (E.164, e.g. +14155550100), INVALID_PUSH_TOKEN, MISSING_STATUS,
GROUPS_NOT_SUPPORTED (groups on a non-email key), INVALID_GROUP_NAME, TOO_MANY_GROUPS, and
GLOBAL_STATE_NOT_SUBSCRIBED (subscribing to a group while not globally subscribed).

States are written by upserts, so two requests replacing one key at once (from two servers) both
succeed and the later one's state stays; a new group is created under the space's lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, func, select

from store.catalog.spaces import require_space
from store.db import locks
from store.db.bulk import upsert_newer
from store.db.ids import new_id
from store.db.models import GroupSubscription, MessagingSubscription, SubscriptionGroup
from store.db.store import Store

MAX_GROUPS = 25
MAX_GROUP_NAME = 75
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class Outcome:
    """One key's result: `errors` empty means success."""

    key: str
    type: str
    status: str | None = None
    updated_at: Any = None
    groups: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)


def replace_subscriptions(store: Store, space_id: str, requests: list[dict[str, Any]]) -> list[Outcome]:
    with store.write() as session:
        require_space(session, space_id)
        return [_replace_one(session, store, space_id, request) for request in requests]


def query_subscriptions(store: Store, space_id: str, requests: list[dict[str, Any]]) -> list[Outcome]:
    with store.read() as session:
        require_space(session, space_id)
        return [_query_one(session, space_id, request["key"], request["type"]) for request in requests]


def _replace_one(session: Session, store: Store, space_id: str, request: dict[str, Any]) -> Outcome:
    key, kind = request["key"], request["type"]
    status, groups = request.get("status"), request.get("groups") or []
    outcome = Outcome(key=key, type=kind)
    if error := _key_error(key, kind):
        outcome.errors.append(error)
        return outcome
    if status is None and not groups:
        outcome.errors.append({"code": "MISSING_STATUS", "message": "Give a status, groups, or both."})
        return outcome
    if groups and kind != "EMAIL":
        outcome.errors.append({"code": "GROUPS_NOT_SUPPORTED", "message": "Subscription groups apply to EMAIL only."})
        return outcome
    stored = session.get(MessagingSubscription, (space_id, kind, key))
    global_status = status or (stored.status if stored else None)
    if any(g["status"] == "SUBSCRIBED" for g in groups) and global_status != "SUBSCRIBED":
        outcome.errors.append(
            {"code": "GLOBAL_STATE_NOT_SUBSCRIBED", "message": "Subscribe the key globally before subscribing it to a group."}
        )
        return outcome
    group_rows = []
    for group in groups:
        row, error = _group(session, space_id, group["name"])
        if error:
            outcome.errors.append(error)
            return outcome
        group_rows.append((row, group["status"]))
    now = store.now()
    connection = session.connection()
    if status is not None or stored is None:
        upsert_newer(connection, MessagingSubscription.__table__,
                     [dict(space_id=space_id, type=kind, key=key, status=global_status, updated_at=now)],
                     ("space_id", "type", "key"), "updated_at")
    upsert_newer(connection, GroupSubscription.__table__,
                 [dict(space_id=space_id, type=kind, key=key, group_id=row.id, status=group_status, updated_at=now)
                  for row, group_status in group_rows], ("space_id", "type", "key", "group_id"), "updated_at")
    session.expire_all()
    return _query_one(session, space_id, key, kind)


def _query_one(session: Session, space_id: str, key: str, kind: str) -> Outcome:
    outcome = Outcome(key=key, type=kind)
    if error := _key_error(key, kind):
        outcome.errors.append(error)
        return outcome
    stored = session.get(MessagingSubscription, (space_id, kind, key))
    if stored is None:
        return outcome
    outcome.status, outcome.updated_at = stored.status, stored.updated_at
    rows = session.exec(
        select(GroupSubscription, SubscriptionGroup)
        .join(SubscriptionGroup)
        .where(GroupSubscription.space_id == space_id, GroupSubscription.type == kind, GroupSubscription.key == key)
        .order_by(SubscriptionGroup.name)
    ).all()
    outcome.groups = [
        {"id": group.id, "name": group.name, "status": membership.status, "updatedAt": membership.updated_at}
        for membership, group in rows
    ]
    return outcome


def _group(session: Session, space_id: str, name: str) -> tuple[SubscriptionGroup | None, dict[str, str] | None]:
    if not name or name != name.strip() or len(name) > MAX_GROUP_NAME:
        return None, {
            "code": "INVALID_GROUP_NAME",
            "message": f"Group names are 1 to {MAX_GROUP_NAME} characters with no leading or trailing spaces.",
        }
    existing = _named_group(session, space_id, name)
    if existing is None:
        locks.exclusive(session, [f"subscription groups of {space_id}"])
        existing = _named_group(session, space_id, name)  # another server may have made it meanwhile
    if existing is not None:
        return existing, None
    count = session.scalar(select(func.count()).select_from(SubscriptionGroup).where(SubscriptionGroup.space_id == space_id))
    if (count or 0) >= MAX_GROUPS:
        return None, {"code": "TOO_MANY_GROUPS", "message": f"A space has at most {MAX_GROUPS} subscription groups."}
    group = SubscriptionGroup(id=new_id("grp"), space_id=space_id, name=name)
    session.add(group)
    session.flush()
    return group, None


def _named_group(session: Session, space_id: str, name: str) -> SubscriptionGroup | None:
    return session.exec(
        select(SubscriptionGroup).where(SubscriptionGroup.space_id == space_id, SubscriptionGroup.name == name)
    ).first()


def _key_error(key: str, kind: str) -> dict[str, str] | None:
    if kind == "EMAIL" and not _EMAIL.match(key):
        return {"code": "INVALID_EMAIL", "message": "Email is not valid"}
    if kind in ("SMS", "WHATSAPP") and not _E164.match(key):
        return {"code": "INVALID_PHONE_NUMBER", "message": "Phone number must be in E.164 format, e.g. +14155550100"}
    if kind in ("IOS_PUSH", "ANDROID_PUSH") and not key.strip():
        return {"code": "INVALID_PUSH_TOKEN", "message": "Push token must not be empty"}
    return None
