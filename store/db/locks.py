"""Locks that make work happen once, and in turn, when several processes, on several hosts, share one
PostgreSQL database: transaction-scoped advisory locks, released when the transaction ends.

- Batches ingested into one space take its ingest lock, so identity resolution (read the identity
  graph, then change it) never interleaves with another batch's.

- A full run of a computation takes its lock exclusively, and only if no one holds it: a worker that
  finds it taken skips the run (another worker is doing it). A realtime pass takes the locks of the
  computations it recomputes shared, without waiting, so passes over different profiles run side
  by side while no full run of the same computation can interleave with them; a computation whose
  full run holds it is left to a later pass.
- An account recomputed by a realtime pass (for its changed users) is locked exclusively, so two
  passes never recompute one account at once.
- A space's trait keys are locked while a new one is chosen, so two audiences created at once in
  two processes never pick the same key; the first start's Default space is made under a lock too,
  and a space's filters and new subscription groups are counted against their limits under one.

- Every write transaction takes the writes lock shared (`Store.write`); the analytic store's
  replicator takes it exclusively for a moment to read how far committed rows go, knowing that no
  transaction holding a smaller id is still in flight.

Locks are always taken in the order of their keys, so two transactions never wait on each other in
a cycle. On SQLite every write transaction holds the database's write lock from its first statement
(`BEGIN IMMEDIATE`), which already serialises all of this; the functions do nothing there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import text
from sqlmodel import Session


WRITES = "writes"


def key(name: str) -> int:
    """A signed 64-bit advisory lock key for an id."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def try_exclusive(session: Session, name: str) -> bool:
    """Take `name`'s lock for the rest of the transaction if no one holds it; False if someone does."""
    if not _postgresql(session):
        return True
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key(name)}).scalar_one())


def try_shared(session: Session, names: Iterable[str]) -> set[str]:
    """Take the locks of `names` shared for the rest of the transaction where no one holds them
    exclusively, without waiting; returns the names taken (all of them on SQLite)."""
    names = sorted(set(names))
    if not names or not _postgresql(session):
        return set(names)
    keys = [key(name) for name in names]
    taken = session.execute(text("SELECT k, pg_try_advisory_xact_lock_shared(k) FROM unnest(CAST(:keys AS bigint[])) "
                                 "WITH ORDINALITY AS t(k, n) ORDER BY n"), {"keys": keys}).all()
    return {name for name, (_, got) in zip(names, taken) if got}


def shared(session: Session, names: Iterable[str]) -> None:
    """Take the locks of `names` shared for the rest of the transaction, waiting for exclusive holders."""
    _take(session, names, "pg_advisory_xact_lock_shared")


def exclusive(session: Session, names: Iterable[str]) -> None:
    """Take the locks of `names` exclusively for the rest of the transaction, waiting for holders."""
    _take(session, names, "pg_advisory_xact_lock")


def _take(session: Session, names: Iterable[str], function: str) -> None:
    keys = sorted({key(name) for name in names})
    if keys and _postgresql(session):
        session.execute(text(f"SELECT {function}(k) FROM unnest(CAST(:keys AS bigint[])) AS t(k)"), {"keys": keys})
