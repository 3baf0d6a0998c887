"""The external ids of many profiles at once, grouped by type, oldest first: what delivery payloads
choose from (ID sync) and what downloads write."""

from __future__ import annotations

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from store.db.bulk import select_in
from store.db.models import Identifier

ExternalIds = dict[str, list[str]]  # type -> values, oldest first
FOREVER_MS = 2**62


def by_profile(session: Session, profile_ids: list[str], before_ms: int = FOREVER_MS,
               collection: str = "users") -> dict[str, ExternalIds]:
    """Each profile's identifiers (of users, or of accounts) added before `before_ms` (all of them by
    default), with the types in alphabetical order; profiles without any are left out."""
    rows = select_in(
        session.connection(), "external ids by profile",
        lambda ids: select(Identifier.profile_id, Identifier.type, Identifier.value).where(
            Identifier.collection == bindparam("collection"), Identifier.created_at_ms < bindparam("before_ms"),
            col(Identifier.profile_id).in_(ids)).order_by(Identifier.profile_id, Identifier.type,
                                                          Identifier.created_at_ms, Identifier.id),
        profile_ids, {"collection": collection, "before_ms": before_ms})
    found: dict[str, ExternalIds] = {}
    for profile_id, kind, value in rows:
        found.setdefault(profile_id, {}).setdefault(kind, []).append(value)
    return found
