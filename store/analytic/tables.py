"""The analytic store's tables: the columns compiled CQL reads, under the operational store's names,
so one compiled statement runs on either store. JSON documents are kept as their text; the event
properties that definitions read also get typed columns (`typed_columns`), added when a full run
first reads one and filled by the same functions the compiler reads JSON with, so both agree."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
from sqlalchemy import BigInteger, Column, ColumnElement, Double, MetaData, String, Table, column

from backend.cql.compiler import Tables
from backend.cql.dialects.functions import json_kind, json_number, json_string, path_arguments

METADATA = MetaData()
LAYOUT = 4  # raised when a table here changes: a copy in an older layout is made again


def _column(name: str, kind=String, *, optional: bool = False) -> Column:
    """A column; no table has a primary key: nothing is looked up by key one row at a time, and an
    index (DuckDB's) would only slow the bulk inserts and deletes replication makes."""
    return Column(name, kind, nullable=optional)


PROFILE = Table("profile", METADATA, _column("id"), _column("space_id"), _column("collection"),
                _column("merged_into", optional=True))
EVENT = Table("event", METADATA, _column("id", BigInteger), _column("space_id"), _column("profile_id"),
              _column("event", optional=True), _column("timestamp_ms", BigInteger),
              _column("received_at_ms", BigInteger), _column("source_id"), _column("properties"), _column("context"))
TRAIT = Table("trait", METADATA, _column("profile_id"), _column("key"), _column("space_id"),
              _column("value"), _column("trait_class"))
LINK = Table("profile_link", METADATA, _column("user_id"), _column("account_id"),
             _column("space_id"))
IDENTIFIER = Table("identifier", METADATA, _column("id", BigInteger), _column("space_id"), _column("collection"),
                   _column("type"), _column("value"), _column("profile_id"))
# The replicator's own: how far it has copied (appended, the largest value counts; also which
# database and which layout of these tables the copy is of), and the profiles whose rows one batch
# re-copies.
REPLICATION_STATE = Table("replication_state", METADATA, _column("name"), _column("value", BigInteger))
CHANGED_PROFILE = Table("replication_changed_profile", METADATA, _column("profile_id"))
# A computed trait's values as the operational store holds them (`store.analytic.values`): the rows of
# the generation its mark names; a run writes its answer as a new generation beside it, and once the
# run has committed that generation is marked instead. A NULL value is a profile without one.
COMPUTED_VALUE = Table("computed_value", METADATA, _column("computation_id"), _column("generation", BigInteger),
                       _column("profile_id"), _column("value", optional=True))
# The event properties with typed columns, each by its path (as JSON text; `typed_prefix` names its columns).
TYPED_PROPERTY = Table("typed_property", METADATA, _column("path"))

TABLES = Tables(PROFILE, EVENT, TRAIT, LINK, merged_events=True, identifier=IDENTIFIER)


@dataclass(frozen=True)
class DerivedColumn:
    """A column computed from its row's other columns (named unqualified in `expression`)."""

    name: str
    kind: type
    expression: ColumnElement


def typed_prefix(path: tuple[str, ...]) -> str:
    """The prefix of a property's typed columns: named after its path alone, so a column found in the
    table (one added by a copy cut off before it was recorded, say) is always that property's."""
    return "p_" + hashlib.blake2b(orjson.dumps(list(path)), digest_size=8).hexdigest()


def typed_columns(prefix: str, path: tuple[str, ...]) -> list[DerivedColumn]:
    """The kind, number and string of the property at `path`, as the compiler reads them from JSON."""
    properties, arguments = column("properties"), path_arguments(path)
    return [DerivedColumn(f"{prefix}_kind", String, json_kind(properties, *arguments)),
            DerivedColumn(f"{prefix}_number", Double, json_number(properties, *arguments)),
            DerivedColumn(f"{prefix}_string", String, json_string(properties, *arguments))]


def tables(typed: tuple[tuple[tuple[str, ...], str], ...] = ()) -> Tables:
    """The analytic tables, with the event table's typed columns for the properties in `typed`."""
    if not typed:
        return TABLES
    derived = [derived for path, prefix in typed for derived in typed_columns(prefix, path)]
    event = Table("event", MetaData(), *(Column(c.name, c.type) for c in EVENT.columns),
                  *(Column(d.name, d.kind()) for d in derived))
    return Tables(PROFILE, event, TRAIT, LINK, merged_events=True, typed=typed, identifier=IDENTIFIER)


# ClickHouse keeps each table sorted by the columns full runs group and join on.
CLICKHOUSE_ORDER = {"profile": "id", "event": "(space_id, profile_id, timestamp_ms, id)",
                    "trait": "(key, profile_id)", "profile_link": "(account_id, user_id)", "identifier": "(profile_id, id)",
                    "replication_state": "name", "computed_value": "(computation_id, generation, profile_id)",
                    "replication_changed_profile": "profile_id", "typed_property": "path"}
