"""The file importer: Segment-spec messages, one JSON object per line, stored through the same
validation and ingest path as the Tracking API, in transactions of `batch_size` messages."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

import orjson

from store.catalog import spaces
from store.db.store import Store
from store.ingest.ingest import accept

SOURCE_ID = "file-import"


@dataclass
class ImportReport:
    stored: int = 0
    duplicates: int = 0
    dropped: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def import_file(store: Store, space_id: str, path: str, *, batch_size: int = 1000, progress: bool = False) -> ImportReport:
    """Import a JSON-lines file (or stdin for '-') into a space; rejected lines are reported by number."""
    spaces.get_space(store, space_id)
    report = ImportReport()
    with _open(path) as lines:
        for batch in _batches(lines, batch_size, report):
            result, rejected = accept(store, space_id, [raw for _, raw in batch], SOURCE_ID)
            report.stored += result.stored
            report.duplicates += result.duplicates
            report.dropped += result.dropped
            report.rejected.extend((batch[r.index][0], r.message) for r in rejected)
            if progress:
                print(f"\r{report.stored:,} stored, {len(report.rejected):,} rejected", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return report


def _open(path: str) -> TextIO:
    return open(sys.stdin.fileno(), encoding="utf-8", closefd=False) if path == "-" else open(path, encoding="utf-8")


def _batches(lines: TextIO, size: int, report: ImportReport) -> Iterator[list[tuple[int, object]]]:
    batch: list[tuple[int, object]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            batch.append((number, orjson.loads(line)))
        except ValueError as error:
            report.rejected.append((number, f"not valid JSON: {error}"))
            continue
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
