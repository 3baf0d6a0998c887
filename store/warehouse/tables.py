"""What the warehouse says of its tables, and how a Data Graph's `table_ref` names one.

A `table_ref` has one to three dotted parts, as the engine names tables: `orders` (the warehouse's own
schema), `shop.orders` (a schema, or a ClickHouse database), `analytics.shop.orders` (DuckDB's
catalog, PostgreSQL's database). Names are matched case-insensitively and reported in the
warehouse's spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Boolean, Column, Double, MetaData, String, Table
from sqlalchemy.types import NullType

from backend.datagraph.types import family
from store.db.errors import InputValidation

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SQL_TYPES = {"number": Double, "string": String, "boolean": Boolean}


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str

    @property
    def family(self) -> str:
        return family(self.type)


@dataclass(frozen=True)
class TableInfo:
    """A warehouse table: where it is (`schema` as statements qualify it), its columns and rows."""

    schema: str | None
    name: str
    columns: tuple[ColumnInfo, ...]
    rows: int | None = None

    def column(self, name: str) -> ColumnInfo | None:
        """The column of that name, matched case-insensitively."""
        wanted = name.lower()
        return next((column for column in self.columns if column.name.lower() == wanted), None)

    def sql_table(self) -> Table:
        """The table as SQLAlchemy Core names it, typed by family (what compiled CQL reads)."""
        return Table(self.name, MetaData(), *(Column(column.name, _SQL_TYPES.get(column.family, NullType)())
                                             for column in self.columns), schema=self.schema)

    def as_dict(self) -> dict:
        return {"name": self.name, "columns": [{"name": c.name, "type": c.type} for c in self.columns],
                "rowCount": self.rows}


def table_name(name: str) -> str:
    """A table name the loader may create: one identifier, letters, digits and `_`."""
    if not TABLE_NAME.match(name or ""):
        raise InputValidation(f"'{name}' is not a table name here: use letters, digits and '_', starting with a "
                              "letter or '_' (it is the table_ref a Data Graph entity names)", field="table")
    return name


def ref_parts(table_ref: str, most: int) -> list[str]:
    """The dotted parts of a table_ref, at most `most` of them."""
    parts = [part.strip().strip('"`') for part in table_ref.split(".")]
    if not 1 <= len(parts) <= most or not all(parts):
        raise InputValidation(f"table_ref '{table_ref}' names a table with 1 to {most} dotted parts here",
                              field="table_ref")
    return parts
