"""Files the warehouse loads: CSV, Parquet or JSON lines, read by DuckDB's own readers, which infer
the column types (`read_csv`, `read_parquet`, `read_json`). The kind is told by the file's suffix."""

from __future__ import annotations

from pathlib import Path

from store.db.errors import InputValidation

READERS = {".csv": "read_csv", ".tsv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet",
           ".jsonl": "read_json", ".ndjson": "read_json", ".json": "read_json"}


def reader_sql(path: str | Path) -> str:
    """The DuckDB table function reading the file, as SQL text."""
    file = Path(path)
    reader = READERS.get(file.suffix.lower())
    if reader is None:
        raise InputValidation(f"'{file.name}' is not a file the warehouse reads: name it .csv, .tsv, .parquet, "
                              ".jsonl, .ndjson or .json", field="file")
    if not file.is_file():
        raise InputValidation(f"there is no file at {file}", field="file")
    return f"{reader}({quoted(str(file.resolve()))})"


def quoted(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """An SQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'
