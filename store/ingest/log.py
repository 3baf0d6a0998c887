"""The durable log between acknowledging a Tracking API request and processing its messages.

The Tracking API appends each accepted request here, committed before it answers `200`; the
processor (`store.ingest.processor`) takes a space's oldest requests and stores their messages, and
marks them consumed in the same transaction, so an acknowledged message is stored exactly once
whatever stops the process, and a space's requests are stored in the order they were acknowledged.

Where the log is a table of the database itself (PostgreSQL), consuming requests deletes them. Beside
a SQLite file the log is a file of its own (`Store.log_apart`), so that acknowledging never waits for
the database's single writer: consuming then records the space's last stored position in the
database (`ingest_position`), and the requests up to it are deleted from the log afterwards
(`forget`). Positions there only grow (SQLite AUTOINCREMENT, and one writer at a time).
"""

from __future__ import annotations

import functools
import threading
from contextlib import nullcontext
from dataclasses import dataclass

from sqlalchemy import delete, func, insert
from sqlmodel import Session, col, select

from store.db.bulk import dialect_insert
from store.db.models import IngestLog, IngestPosition

MOST_REQUESTS = 1_000  # looked at per turn: a turn's messages are bounded by the caller, requests by this
appended = threading.Event()  # set after every append in this process, so its processor wakes at once


@dataclass(frozen=True)
class Backlog:
    """A space's messages acknowledged and not yet processed, and when the oldest was received."""

    messages: int
    oldest_received_ms: int | None


def append(store, space_id: str, source_id: str, kind: str, body: bytes, messages: int, received_at_ms: int) -> int:
    """Keep a request's body (committed when this returns, with the requests appended at the same
    moment: `store.log_appends` is a group commit); its position in the log."""
    row = {"space_id": space_id, "source_id": source_id, "kind": kind, "body": body, "messages": messages,
           "received_at_ms": received_at_ms}
    position = store.log_appends.submit(
        lambda session: session.connection().execute(_append_statement(), row).scalar_one())
    appended.set()
    return position


@functools.cache
def _append_statement():
    """The insert `append` runs, built once: building it for every request took a third of an append's CPU."""
    return insert(IngestLog.__table__).returning(IngestLog.__table__.c.id)


def spaces_waiting(store) -> list[str]:
    """The spaces with requests in the log, the one waiting longest first."""
    with store.log_read() as session:
        rows = session.execute(select(IngestLog.space_id, func.min(IngestLog.id).label("first"))
                               .group_by(IngestLog.space_id).order_by("first")).all()
    return [space_id for space_id, _ in rows]


def oldest(session: Session, store, space_id: str, most_messages: int) -> list[IngestLog]:
    """A space's oldest requests not yet consumed, in order, holding at most `most_messages` messages
    (or the first request, if it alone holds more). `session` is the transaction that will store them."""
    after = _position(session, space_id) if store.log_apart else 0
    with store.log_read() if store.log_apart else nullcontext(session) as reading:
        positions, total = [], 0
        for position, messages in reading.execute(
                select(IngestLog.id, IngestLog.messages).where(IngestLog.space_id == space_id, IngestLog.id > after)
                .order_by(IngestLog.id).limit(MOST_REQUESTS)):
            if positions and total + messages > most_messages:
                break
            positions.append(position)
            total += messages
        if not positions:
            return []
        return list(reading.exec(select(IngestLog).where(col(IngestLog.id).in_(positions)).order_by(IngestLog.id)))


def unconsumed(session: Session, store, space_id: str, requests: list[IngestLog]) -> bool:
    """Whether `requests`, read in an earlier transaction, are still waiting (no other processor
    stored them since), as `session` sees the log."""
    if store.log_apart:
        return _position(session, space_id) < requests[0].id
    ids = [request.id for request in requests]
    return session.execute(select(func.count(IngestLog.id)).where(col(IngestLog.id).in_(ids))).scalar_one() == len(ids)


def consumed(session: Session, store, space_id: str, requests: list[IngestLog]) -> None:
    """Mark `requests` (in order) stored, in the transaction that stored them."""
    if not store.log_apart:
        session.execute(delete(IngestLog).where(col(IngestLog.id).in_([request.id for request in requests])))
        return
    last = requests[-1].id
    stored = dialect_insert(session.connection(), IngestPosition.__table__).values(space_id=space_id, position=last)
    session.execute(stored.on_conflict_do_update(index_elements=["space_id"], set_={"position": last}))


def forget(store, space_id: str) -> None:
    """With the log apart, delete the space's requests that are stored (after their transaction)."""
    if not store.log_apart:
        return
    with store.read() as session:
        position = _position(session, space_id)
    if position:
        with store.log_write() as session:
            session.execute(delete(IngestLog).where(IngestLog.space_id == space_id, IngestLog.id <= position))


def backlog(store, space_id: str) -> Backlog:
    after = 0
    if store.log_apart:
        with store.read() as session:
            after = _position(session, space_id)
    with store.log_read() as session:
        messages, oldest_ms = session.execute(
            select(func.coalesce(func.sum(IngestLog.messages), 0), func.min(IngestLog.received_at_ms))
            .where(IngestLog.space_id == space_id, IngestLog.id > after)).one()
    return Backlog(int(messages), oldest_ms)


def _position(session: Session, space_id: str) -> int:
    return session.execute(select(IngestPosition.position).where(IngestPosition.space_id == space_id)
                           ).scalar_one_or_none() or 0

