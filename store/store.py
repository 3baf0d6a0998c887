"""The handle every service takes: the database, the clock, and who is acting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from sqlmodel import Session

from backend.clock import Clock, SystemClock
from store.database import data_dir, database_url, default_url, make_engine, writer
from store.schema import migrate

DEFAULT_ACTOR = "segment-audiences"


class Store:
    """Opens (and if needed creates) the database at `url` (a SQLAlchemy URL or a SQLite file path);
    services run one transaction per call.
    Files it writes (downloads) go under `data_dir`; `download_base_url` is where this process serves
    them over HTTP, or None when it serves no HTTP (downloads are then file URLs)."""

    def __init__(self, url: str | None = None, *, clock: Clock | None = None, actor: str = DEFAULT_ACTOR):
        self.url = database_url(url) if url else default_url()
        self.data_dir = data_dir(self.url)
        self.download_base_url: str | None = None
        self.clock = clock or SystemClock()
        self.actor = actor
        self.engine = make_engine(self.url)
        self._writer = writer(self.engine)
        self._write_turn = threading.Lock()
        self.workspace_id = migrate(self.engine)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction holding the write lock from its first statement; rolled back on any error.
        Writers in this process queue on a lock first, so they wait their turn instead of polling
        SQLite's busy handler; other processes still meet at the database's own lock."""
        with self._write_turn, Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    def now(self) -> datetime:
        """The clock's time in UTC."""
        return self.clock.now().astimezone(timezone.utc)

    def close(self) -> None:
        self.engine.dispose()
