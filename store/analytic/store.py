"""The analytic store one process owns, and how full runs and previews read it.

`--analytics` (SEGMENT_AUDIENCES_ANALYTICS) chooses it: `duckdb` (the default) is a DuckDB file beside
a SQLite database (named after it, `.duckdb`); `duckdb:PATH` names the file (the way to use DuckDB
with PostgreSQL, where `duckdb` alone means none: processes on several hosts share that database,
and ClickHouse is the analytic store they can share); `clickhouse://user:password@host:8123/database`
is a ClickHouse server (clickhouse-connect); `none` keeps every run on the operational store.

DuckDB lets one process at a time open its file, so the first process to start owns it: it
replicates and computes full runs there. A process that finds the file held waits for it up to
`LOCK_WAIT_SECONDS` (a host restarting a server may start the new process while the old one is still
exiting); if it is still held then, the process logs that the file is owned elsewhere (naming the
process DuckDB names) and computes its full runs on the operational store, as with `none`: the
answers are the same, only slower. Realtime passes always read the operational store.

The file is only a copy, so a damaged one never stops a process: one that cannot be opened or read
(truncated, empty, not a DuckDB file, a block failing its checksum) is logged once with DuckDB's
own words, moved aside (`<file>.damaged-<time>`, with its WAL) and made again from the operational
store; until the new copy has caught up, full runs read the operational store.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import make_url

from backend.cql.compiler import Tables
from store.analytic.engines import AnalyticEngine, ClickHouse, ClickHouseServer, DuckDB
from store.analytic.replication import Marks, Replicator
from store.analytic.tables import tables
from store.analytic.values import Answer, Settlement, ValueCopies
from store.db.budget import UNLIMITED, Budget
from store.db.errors import cause
from store.db.store import Store

logger = logging.getLogger("segment_audiences.analytics")
LOCK_WAIT_SECONDS = 5.0  # how long a process waits for a DuckDB file another process holds
LOCK_RETRY_SECONDS = 0.25


@dataclass(frozen=True)
class FullResult:
    """A full computation's rows from the analytic store, and what that store had copied then."""

    rows: list[tuple]
    marks: Marks
    lag_ms: int
    engine: str
    answer: Answer | None = None  # a computed trait's answer kept in the store: `rows` are its changes


class AnalyticStore:
    """An analytic engine this process owns, kept up to date by its replicator. One catch-up or
    query at a time: the engine's connection is not shared between threads. Until its first
    catch-up has finished (a first copy of a large database takes a while), full runs compute on the
    operational store rather than wait."""

    def __init__(self, store: Store, engine: AnalyticEngine, reopen: Callable[[], AnalyticEngine] | None = None):
        self.engine = engine
        self.replicator = Replicator(store, engine)
        self.values = ValueCopies(store, engine) if engine.keeps_values else None
        self.ready = False
        self._store = store
        self._reopen = reopen
        self._turn = threading.Lock()

    @property
    def name(self) -> str:
        return self.engine.name

    def catch_up(self) -> None:
        with self._turn, self._replacing_when_damaged():
            self.replicator.catch_up()
            self.ready = True

    def tables_for(self, property_paths: Collection[tuple[str, ...]], *, add: bool = True) -> Tables:
        """The analytic tables for a statement reading `property_paths`: with the typed columns of
        those properties, added now for those without when `add` (once the first copy is done)."""
        if not self.ready:
            return tables()
        with self._turn:
            return tables(self.replicator.typed_properties(property_paths, add=add))

    def compute(self, statement, space_id: str, trait_keys: Collection[str] = (), *,
                budget: Budget = UNLIMITED, attached=None) -> FullResult | None:
        """`statement` (compiled over the analytic tables) run, within `budget`, after copying
        everything committed and the computed values of the `trait_keys` it reads; None while the
        first copy is under way. `attached(connection)`, if given, is a context manager that attaches
        to the engine's DuckDB connection what else the statement reads (the warehouse's file) while
        it runs."""
        if not self.ready:
            return None
        with self._turn, self._replacing_when_damaged():
            caught = self.replicator.catch_up()
            self.replicator.copy_computed(space_id, trait_keys)
            with self.engine.attached(attached), budget.around(self.engine.interrupt):
                rows = self.engine.run(statement)
        if not self.ready:  # its file was damaged, and is being made again
            return None
        return FullResult(rows, caught.marks, caught.lag_ms, self.engine.name)

    def compute_changes(self, statement, space_id: str, computation_id: str, key: str,
                        trait_keys: Collection[str] = (), *, budget: Budget = UNLIMITED) -> FullResult | None:
        """`compute`, for a computed trait whose values this store keeps (`values` is not None): the
        rows are only the profiles whose value differs from the copy (`store.analytic.values`); the
        caller holds the computation's `values.turn` until it has settled the answer."""
        if not self.ready:
            return None
        with self._turn, self._replacing_when_damaged():
            caught = self.replicator.catch_up()
            self.replicator.copy_computed(space_id, trait_keys)
            with budget.around(self.engine.interrupt):
                answer = self.values.answer(statement, space_id, computation_id, key, caught.marks)
        if not self.ready:
            return None
        return FullResult(answer.changes, caught.marks, caught.lag_ms, self.engine.name, answer)

    def read_values(self, space_id: str, keys: dict[str, str], build: Callable[[dict[str, int]], object]) -> list[tuple] | None:
        """The rows of `build(generations)`, a statement over the copies of the computations' values
        (computation id -> its key; `store.analytic.values`), each copy brought up to date first and
        named by its generation; None when this store keeps no copies or its first copy is under way."""
        if self.values is None or not self.ready:
            return None
        with ExitStack() as turns:
            for computation_id in sorted(keys):  # in one order, as runs take theirs one at a time
                turns.enter_context(self.values.turn(computation_id))
            with self._turn, self._replacing_when_damaged():
                caught = self.replicator.catch_up()
                rows = self.engine.run(build(self.values.current(space_id, keys, caught.marks)))
        return rows if self.ready else None

    def settle(self, settlement: Settlement) -> None:
        """Make a committed run's answer the copy of its computed trait's values."""
        with self._turn, self._replacing_when_damaged():
            if self.values is not None:
                self.values.settle(settlement)

    def sql(self, statement) -> str:
        return self.engine.sql(statement)

    @contextmanager
    def _replacing_when_damaged(self) -> Iterator[None]:
        """On a damaged file: the file moved aside and a new one started (not ready until it has
        caught up); the error is not raised."""
        try:
            yield
        except Exception as error:
            if self._reopen is None or not damaged(error):
                raise
            logger.error("the analytic store failed to read its file (%s); it is only a copy: moving it aside and "
                         "copying the operational store again", cause(error))
            self.ready = False
            self.engine.close()
            self.engine = self._reopen()
            self.replicator = Replicator(self._store, self.engine)
            self.values = ValueCopies(self._store, self.engine) if self.engine.keeps_values else None

    def close(self) -> None:
        self.engine.close()


def open_analytic_store(store: Store, option: str | None,
                        lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> AnalyticStore | None:
    """The analytic store `option` names for this process, or None (`none`, an in-memory database,
    or a DuckDB file another process still holds after `lock_wait_seconds`)."""
    option = (option or "duckdb").strip()
    if option == "none":
        return None
    if option.startswith("clickhouse"):
        logger.info("analytic store: ClickHouse at %s", make_url(option).render_as_string(hide_password=True))
        return AnalyticStore(store, ClickHouse(ClickHouseServer(option)))
    path = option.removeprefix("duckdb").removeprefix(":") or _beside_sqlite(store)
    if path is None:
        return None

    def reopen() -> DuckDB:
        aside = _move_aside(path)
        logger.warning("the damaged analytic store is kept as %s; a new one is made at %s", aside, path)
        return DuckDB(path)

    try:
        analytics = _opened_once_free(store, path, reopen, time.monotonic() + lock_wait_seconds)
    except Exception as error:
        if _locked(error):
            logger.warning("the analytic store %s is in use by another process (%s); this process computes full "
                           "runs on the operational store", path, cause(error))
            return None
        if not damaged(error):
            raise
        logger.error("the analytic store %s cannot be opened (%s); it is only a copy of the operational store",
                     path, cause(error))
        analytics = AnalyticStore(store, reopen(), reopen)
    logger.info("analytic store: DuckDB at %s", path)
    return analytics


def _opened_once_free(store: Store, path: str, reopen: Callable[[], DuckDB], deadline: float) -> AnalyticStore:
    """The DuckDB file opened, tried again while another process holds it until `deadline`."""
    while True:
        engine = None
        try:
            engine = DuckDB(path)
            return AnalyticStore(store, engine, reopen)
        except Exception as error:
            if engine is not None:
                engine.close()  # its file may be renamed next: no connection may keep DuckDB's instance open
            if not _locked(error) or time.monotonic() >= deadline:
                raise
        time.sleep(LOCK_RETRY_SECONDS)


def _locked(error: BaseException) -> bool:
    return "Could not set lock on file" in str(getattr(error, "orig", None) or error)


def damaged(error: BaseException) -> bool:
    """Whether DuckDB failed because its file is damaged (not locked, not a statement it refused)."""
    original = getattr(error, "orig", None) or error
    if not type(original).__module__.lstrip("_").startswith("duckdb") or _locked(original):
        return False
    kind = type(original).__name__
    return kind in {"IOException", "InternalException", "FatalException"} or "Corrupt" in str(original)


def _move_aside(path: str) -> str:
    """Rename a damaged file (and its WAL) out of the way; returns the new name."""
    aside = f"{path}.damaged-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}"
    for suffix in ("", ".wal"):
        if Path(path + suffix).exists():
            os.replace(path + suffix, aside + suffix)
    return aside


def _beside_sqlite(store: Store) -> str | None:
    if not store.url.startswith("sqlite"):
        return None
    database = make_url(store.url).database
    return None if not database or database == ":memory:" else str(Path(database).with_suffix(".duckdb"))
