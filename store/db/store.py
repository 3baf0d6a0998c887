"""The handle every service takes: the database, the clock, and who is acting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone

from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from backend.clock import Clock, SystemClock
from store.db import locks
from store.db.database import (analytics_option, attached_warehouse, data_dir, database_url, default_url,
                               ingest_log_file, make_engine, writer)
from store.db.models import IngestLog
from store.db.errors import Conflict
from store.db.group_commit import GroupCommit
from store.db.outage import OutageLog, is_outage
from store.db.schema import migrate

DEFAULT_ACTOR = "segment-audiences"
# PostgreSQL's SQLSTATEs for a transaction that lost a race with a concurrent one: a unique or foreign
# key the other took or removed first, a serialization failure, a deadlock.
LOST_RACE = {"23505", "23503", "40001", "40P01"}


class Store:
    """Opens (and if needed creates) the database at `url` (a SQLAlchemy URL or a SQLite file path);
    services run one transaction per call.
    Files it writes (downloads) go under `data_dir`; `download_base_url` is where this process serves
    them over HTTP, or None when it serves no HTTP (downloads are then file URLs). `analytics` is
    the `--analytics` option (`store.db.database.analytics_option`), which also says where the
    warehouse is (`store.warehouse`)."""

    def __init__(self, url: str | None = None, *, clock: Clock | None = None, actor: str = DEFAULT_ACTOR,
                 analytics: str | None = None):
        self.url = database_url(url) if url else default_url()
        self.data_dir = data_dir(self.url)
        self.download_base_url: str | None = None
        self.analytics_option = analytics_option(analytics)
        self.analytics = None  # the AnalyticStore full runs read (`store.analytic.store`), if any
        self.clock = clock or SystemClock()
        self.actor = actor
        self.engine = make_engine(self.url, attached_warehouse(self.url, self.analytics_option))
        self._writer = writer(self.engine)
        self._write_turn = threading.Lock()
        self.outage = OutageLog()
        self.workspace_id = migrate(self.engine)
        log_file = ingest_log_file(self.url)
        self.log_engine = self.engine if log_file is None else make_engine(f"sqlite:///{log_file}")
        self._log_writer = writer(self.log_engine)  # used only with the log apart
        self._log_turn = threading.Lock()
        if log_file is not None:
            with self._log_writer.begin() as connection:  # under the file's write lock: processes start at once
                IngestLog.__table__.create(connection, checkfirst=True)
        self.log_appends = GroupCommit(self.log_write)  # the Tracking API's requests, one commit for many
        self.write_keys: dict[str, str] = {}  # write key -> space id, as found (`catalog.spaces`)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """One read transaction; a database that cannot be reached is `Unavailable` (`store.db.outage`)."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except DBAPIError as error:
            if not is_outage(error):
                raise
            raise self.outage.failed(error) from error
        self.outage.answered()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction, rolled back on any error.

        On SQLite it holds the database's write lock from its first statement, and writers in this
        process queue on a lock first, so they wait their turn instead of polling SQLite's busy
        handler. On PostgreSQL writers run side by side (what must not interleave takes a
        `store.db.locks` lock), and one that loses a race to a concurrent writer, on a unique or foreign
        key or a deadlock, is a Conflict asking to retry: nothing of it was written. A database that
        cannot be reached is `Unavailable` (`store.db.outage`)."""
        turn = self._write_turn if self.engine.dialect.name == "sqlite" else nullcontext()
        try:
            with turn, Session(self._writer, expire_on_commit=False) as session, session.begin():
                locks.shared(session, [locks.WRITES])
                yield session
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) not in LOST_RACE:
                if is_outage(error):
                    raise self.outage.failed(error) from error
                raise
            raise Conflict("Another request changed the same data at the same moment, so nothing of this one "
                           "was written; retry it.") from error
        self.outage.answered()

    @property
    def log_apart(self) -> bool:
        """Whether the Tracking API's log is a database of its own (beside a SQLite file)."""
        return self.log_engine is not self.engine

    @contextmanager
    def log_write(self) -> Iterator[Session]:
        """One write transaction on the Tracking API's log (`store.ingest.log`): the database's own
        `write`, or, with the log apart, one that waits only for other writes to the log."""
        if not self.log_apart:
            with self.write() as session:
                yield session
            return
        try:
            with self._log_turn, Session(self._log_writer, expire_on_commit=False) as session, session.begin():
                yield session
        except DBAPIError as error:
            if is_outage(error):
                raise self.outage.failed(error) from error
            raise
        self.outage.answered()

    @contextmanager
    def log_read(self) -> Iterator[Session]:
        """One read transaction on the Tracking API's log."""
        if not self.log_apart:
            with self.read() as session:
                yield session
            return
        with Session(self.log_engine, expire_on_commit=False) as session, session.begin():
            yield session

    def now(self) -> datetime:
        """The clock's time in UTC."""
        return self.clock.now().astimezone(timezone.utc)

    def close(self) -> None:
        self.engine.dispose()
        self.log_engine.dispose()
