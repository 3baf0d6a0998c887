"""What kind of value a warehouse column holds, from the type its engine names it by: the families
CQL compares entity columns in (`number`, `string`, `boolean`, `date`, `timestamp`), or `other`
(lists, structs, blobs), which a definition cannot compare.

Names are read as DuckDB, PostgreSQL, ClickHouse and SQLite (declared types, by SQLite's affinity
rules) write them; ClickHouse's `Nullable(…)` and `LowCardinality(…)` wrappers are looked through.
"""

from __future__ import annotations

import re

FAMILIES = ("number", "string", "boolean", "date", "timestamp", "other")
_WRAPPERS = re.compile(r"^(nullable|lowcardinality)\((.*)\)$")
_NUMBER = ("int", "float", "double", "real", "decimal", "numeric", "number", "serial", "money")
_STRING = ("char", "text", "string", "clob", "uuid", "enum", "json")


def family(type_name: str) -> str:
    """The family of a column type name (`BIGINT`, `character varying`, `Nullable(Int64)`, `TIMESTAMP WITH TIME ZONE`)."""
    name = type_name.strip().lower()
    while (wrapped := _WRAPPERS.match(name)) is not None:
        name = wrapped.group(2).strip()
    if name.endswith("[]") or name.startswith(("array", "list", "struct", "map", "tuple", "union")):
        return "other"
    if name in ("bool", "boolean"):
        return "boolean"
    if name.startswith("timestamp") or name.startswith("datetime"):
        return "timestamp"
    if name.startswith("date"):
        return "date"
    if name.startswith(("time", "interval", "blob", "bytea", "binary", "varbinary", "bit")):
        return "other"
    if any(part in name for part in _STRING):
        return "string"
    if any(part in name for part in _NUMBER):
        return "number"
    return "other" if name else "string"  # SQLite: a column declared without a type holds what it is given
