"""The CQL functions (`functions`) and their renderings, one module per engine, as sqlglot keeps one
file per dialect. Importing the package registers every engine's renderings with SQLAlchemy."""

from backend.cql.dialects import clickhouse, duckdb, postgresql, sqlite  # noqa: F401
