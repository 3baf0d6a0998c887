"""Which warehouse a process's configuration names (`store.warehouse.warehouses`): the DuckDB file
beside the analytic store's, the operational database's `warehouse` schema, or ClickHouse."""

from __future__ import annotations

from pathlib import Path

from store.db.database import attached_warehouse, sqlite_file
from store.db.errors import InputValidation
from store.warehouse.warehouses import SCHEMA, ClickHouseWarehouse, DuckDBWarehouse, OperationalWarehouse, Warehouse


def warehouse_of(store) -> Warehouse:
    """The warehouse of `store` under its `--analytics` option. ClickHouse's is reached through the
    process's analytic store, which must be open."""
    option = store.analytics_option
    if option.startswith("clickhouse"):
        engine = getattr(store.analytics, "engine", None)
        if engine is None or engine.name != "clickhouse":
            raise InputValidation("The warehouse is ClickHouse, which this process has not opened as its analytic "
                                  "store; run the command with --analytics set to the ClickHouse URL.")
        return ClickHouseWarehouse(engine.client, own_tables=engine.own_tables())
    path = duckdb_warehouse_path(store.url, option)
    if path is not None:
        return DuckDBWarehouse(path)
    if store.url.startswith("sqlite") and sqlite_file(store.url) is None:
        raise InputValidation("The warehouse needs a database file: an in-memory SQLite database has no place for "
                              "entity tables.")
    return OperationalWarehouse(store)


def own_warehouse_settings(store) -> dict[str, str]:
    """Where a `warehouse` destination without a `url` writes: this warehouse, so an activation's table
    sits beside the entity tables (the DuckDB warehouse file, the attached SQLite file, or PostgreSQL's
    `warehouse` schema). ClickHouse's tables are the user's own, written by its own tools."""
    option = store.analytics_option
    if option.startswith("clickhouse"):
        raise InputValidation("This warehouse is ClickHouse, which a warehouse destination does not write to; give "
                              "the destination a url (a DuckDB, SQLite or PostgreSQL database).", field="settings.url")
    path = duckdb_warehouse_path(store.url, option)
    if path is not None:
        return {"url": f"duckdb:///{path}"}
    file = attached_warehouse(store.url, option)
    if file is not None:
        return {"url": f"sqlite:///{file}"}
    if store.url.startswith("sqlite"):
        raise InputValidation("An in-memory database has no warehouse; give the destination a url.", field="settings.url")
    return {"url": store.url, "schema": SCHEMA}


def duckdb_warehouse_path(url: str, option: str) -> Path | None:
    """The DuckDB warehouse file: `<analytic store>.warehouse.duckdb` when full runs use DuckDB
    (`duckdb:PATH`, or `duckdb` beside a SQLite file), else None."""
    if option.startswith("duckdb:"):
        return Path(option.removeprefix("duckdb:")).with_suffix(".warehouse.duckdb")
    file = sqlite_file(url)
    if option == "duckdb" and file is not None:
        return file.with_suffix(".warehouse.duckdb")
    return None
