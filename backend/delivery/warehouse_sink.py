"""The warehouse destination's writes: an activation's events as rows of a table named by its
`activationName`, in a database given by a SQLAlchemy URL (DuckDB, SQLite or PostgreSQL).

The columns are those Segment's warehouse presets write for a Linked activation
(`reference/data-graph.md` §3.5): `event_name`, `user_id`, `audience_key`, `entity_context` (the
`data_graph_entity_context` as JSON text), `personas_computation_key`, `personas_computation_id`,
`personas_computation_run_id`, `personas_activation_id`, with `message_id` (the primary key),
`received_at`, `anonymous_id`, and `properties` (the event's other properties, personalized traits
among them, as JSON text). The table is created on the first write. A row whose `message_id` is there
already is skipped, so a retried delivery writes nothing twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Column, Engine, MetaData, Table, Text, create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from backend.delivery import policy

COLUMNS = ("message_id", "event_name", "user_id", "anonymous_id", "received_at", "audience_key", "entity_context",
           "personas_computation_key", "personas_computation_id", "personas_computation_run_id",
           "personas_activation_id", "properties")
_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class SqlWrite:
    """Rows for one table of one database."""

    url: str
    schema: str | None
    table: str
    rows: tuple[dict[str, Any], ...]


def rows_of(events: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Each Track event as a row of the preset's columns (Identify events carry no table row)."""
    found = []
    for event in events:
        properties = dict(event.get("properties") or {})
        context = properties.pop("data_graph_entity_context", None)
        personas = (event.get("context") or {}).get("personas") or {}
        found.append({
            "message_id": event["messageId"], "event_name": event.get("event") or event.get("type"),
            "user_id": event.get("userId"), "anonymous_id": event.get("anonymousId"),
            "received_at": event.get("receivedAt"), "audience_key": properties.get("audience_key"),
            "entity_context": None if context is None else orjson.dumps(context).decode(),
            "personas_computation_key": personas.get("computation_key"),
            "personas_computation_id": personas.get("computation_id"),
            "personas_computation_run_id": personas.get("computation_run_id"),
            "personas_activation_id": personas.get("event_emitter_id"),
            "properties": orjson.dumps(properties).decode(),
        })
    return tuple(found)


def write(call: SqlWrite, elapsed_ms: Callable[[], int]) -> policy.Outcome:
    """Append the rows in one transaction (creating the table first if it is missing). A database that
    cannot be reached (or is held by another writer) is retried; any other failure is not."""
    try:
        engine = _engine(call.url)
        table = Table(call.table, MetaData(), Column("message_id", Text, primary_key=True),
                      *(Column(name, Text) for name in COLUMNS[1:]), schema=call.schema)
        with engine.begin() as connection:
            table.create(connection, checkfirst=True)
            insert = (sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert)(table)
            connection.execute(insert.on_conflict_do_nothing(index_elements=["message_id"]), list(call.rows))
    except OperationalError as error:
        return policy.Outcome("retry", None, elapsed_ms(), f"the warehouse cannot be written now: {error.orig}")
    except (SQLAlchemyError, ValueError) as error:
        return policy.Outcome("failed", None, elapsed_ms(), f"the warehouse refused the rows: {error}")
    return policy.Outcome("delivered", None, elapsed_ms())


def _engine(url: str) -> Engine:
    with _LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = create_engine(url, poolclass=NullPool)  # holds no file (DuckDB's) between writes
        return _ENGINES[url]
