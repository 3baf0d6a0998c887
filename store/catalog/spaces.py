"""Spaces: separate Engage environments, each with its own write key and Profile API token.

The access token is shown once, when the space is created; only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlmodel import Session, select

from store.db import locks
from store.db.errors import NotFound
from store.db.ids import new_id, new_secret
from store.db.models import Space
from store.db.naming import first_free, slug
from store.db.pagination import Page, PageRequest, paginate
from store.db.store import Store

DEFAULT_SPACE_NAME = "Default"


@dataclass(frozen=True)
class NewSpace:
    space: Space
    write_key: str
    access_token: str


def create_space(store: Store, name: str) -> NewSpace:
    with store.write() as session:
        return _create(session, store, name)


def ensure_default_space(store: Store) -> NewSpace | None:
    """Create the "Default" space when the database has none; returns it, with its keys, if it was
    created."""
    with store.write() as session:
        locks.exclusive(session, ["default space"])
        if session.exec(select(Space).limit(1)).first() is not None:
            return None
        return _create(session, store, DEFAULT_SPACE_NAME)


def list_spaces(store: Store, request: PageRequest) -> Page:
    with store.read() as session:
        return paginate(session, select(Space).order_by(Space.created_at, Space.id), request)


def get_space(store: Store, space_id: str) -> Space:
    with store.read() as session:
        return require_space(session, space_id)


def new_access_token(store: Store, space_id: str) -> str:
    """Issue a new Profile API access token for a space; the old one stops working."""
    token = new_secret("sat")
    with store.write() as session:
        space = require_space(session, space_id)
        space.access_token_hash = _digest(token)
        session.add(space)
    return token


def require_space(session: Session, space_id: str) -> Space:
    space = session.get(Space, space_id)
    if space is None:
        raise NotFound("space", space_id, field="spaceId")
    return space


def _create(session: Session, store: Store, name: str) -> NewSpace:
    taken = set(session.exec(select(Space.slug)).all())
    write_key = secrets.token_urlsafe(24)
    access_token = new_secret("sat")
    space = Space(
        id=new_id("spa"),
        slug=first_free(slug(name, "space"), taken.__contains__, separator="-"),
        name=name,
        write_key=write_key,
        access_token_hash=_digest(access_token),
        created_at=store.now(),
    )
    session.add(space)
    session.flush()
    return NewSpace(space, write_key, access_token)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def space_for_write_key(store: Store, write_key: str) -> str | None:
    """The id of the space whose Tracking API write key this is, if any. A key found is remembered
    (`store.write_keys`): a space and its write key never change nor go away, and every Tracking API
    request asks. A key not found is looked for again next time, so a new space's key works at once."""
    if not write_key:
        return None
    if write_key in store.write_keys:
        return store.write_keys[write_key]
    with store.read() as session:
        space_id = session.exec(select(Space.id).where(Space.write_key == write_key)).first()
    if space_id is not None:
        store.write_keys[write_key] = space_id
    return space_id
