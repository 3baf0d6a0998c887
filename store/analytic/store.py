"""The analytic store one process owns, and how full runs and previews read it.

`--analytics` (SEGMENT_AUDIENCES_ANALYTICS) chooses it: `duckdb` (the default) is a DuckDB file beside
a SQLite database (named after it, `.duckdb`); `duckdb:PATH` names the file (the way to use DuckDB
with PostgreSQL, where `duckdb` alone means none: processes on several hosts share that database,
and ClickHouse is the analytic store they can share); `clickhouse://user:password@host:8123/database`
is a ClickHouse server (clickhouse-connect); `none` keeps every run on the operational store.

DuckDB lets one process at a time open its file, so the first process to start owns it: it
replicates and computes full runs there. Any other process sharing the operational database logs
that the file is owned elsewhere and computes its full runs on the operational store, as with
`none`: the answers are the same, only slower. Realtime passes always read the operational store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from backend.cql.compiler import Tables
from store.analytic.engines import AnalyticEngine, ClickHouse, ClickHouseServer, DuckDB
from store.analytic.replication import Marks, Replicator
from store.analytic.tables import tables
from store.db.store import Store

logger = logging.getLogger("segment_audiences.analytics")


@dataclass(frozen=True)
class FullResult:
    """A full computation's rows from the analytic store, and what that store had copied then."""

    rows: list[tuple]
    marks: Marks
    lag_ms: int
    engine: str


class AnalyticStore:
    """An analytic engine this process owns, kept up to date by its replicator. One catch-up or
    query at a time: the engine's connection is not shared between threads. Until its first
    catch-up has finished (a first copy of a large database takes a while), full runs compute on the
    operational store rather than wait."""

    def __init__(self, store: Store, engine: AnalyticEngine):
        self.engine = engine
        self.replicator = Replicator(store, engine)
        self.ready = False
        self._turn = threading.Lock()

    @property
    def name(self) -> str:
        return self.engine.name

    def catch_up(self) -> None:
        with self._turn:
            self.replicator.catch_up()
            self.ready = True

    def tables_for(self, property_paths: Collection[tuple[str, ...]], *, add: bool = True) -> Tables:
        """The analytic tables for a statement reading `property_paths`: with the typed columns of
        those properties, added now for those without when `add` (once the first copy is done)."""
        if not self.ready:
            return tables()
        with self._turn:
            return tables(self.replicator.typed_properties(property_paths, add=add))

    def compute(self, statement, space_id: str, trait_keys: Collection[str] = ()) -> FullResult | None:
        """`statement` (compiled over the analytic tables) run after copying everything committed and
        the computed values of the `trait_keys` it reads; None while the first copy is under way."""
        if not self.ready:
            return None
        with self._turn:
            caught = self.replicator.catch_up()
            self.replicator.copy_computed(space_id, trait_keys)
            rows = self.engine.run(statement)
        return FullResult(rows, caught.marks, caught.lag_ms, self.engine.name)

    def sql(self, statement) -> str:
        return self.engine.sql(statement)

    def close(self) -> None:
        self.engine.close()


def open_analytic_store(store: Store, option: str | None) -> AnalyticStore | None:
    """The analytic store `option` names for this process, or None (`none`, an in-memory database,
    or a DuckDB file another process owns)."""
    option = (option or "duckdb").strip()
    if option == "none":
        return None
    if option.startswith("clickhouse"):
        logger.info("analytic store: ClickHouse at %s", make_url(option).render_as_string(hide_password=True))
        return AnalyticStore(store, ClickHouse(ClickHouseServer(option)))
    path = option.removeprefix("duckdb").removeprefix(":") or _beside_sqlite(store)
    if path is None:
        return None
    try:
        engine = DuckDB(path)
    except Exception as error:  # duckdb.IOException: the file is open for writing in another process
        logger.warning("the analytic store %s is in use by another process (%s); this process computes full "
                       "runs on the operational store", path, error)
        return None
    logger.info("analytic store: DuckDB at %s", path)
    return AnalyticStore(store, engine)


def _beside_sqlite(store: Store) -> str | None:
    if not store.url.startswith("sqlite"):
        return None
    database = make_url(store.url).database
    return None if not database or database == ":memory:" else str(Path(database).with_suffix(".duckdb"))
