"""The analytic store's tables: the columns compiled CQL reads, under the operational store's names,
so one compiled statement runs on either store. JSON documents are kept as their text."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table

from backend.cql.compiler import Tables

METADATA = MetaData()
LAYOUT = 2  # raised when a table here changes: a copy in an older layout is made again


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
IDENTIFIER = Table("identifier", METADATA, _column("id", BigInteger), _column("space_id"), _column("type"),
                   _column("profile_id"))
# The replicator's own: how far it has copied (appended, the largest value counts; also which
# database and which layout of these tables the copy is of), and the profiles whose rows one batch
# re-copies.
REPLICATION_STATE = Table("replication_state", METADATA, _column("name"), _column("value", BigInteger))
CHANGED_PROFILE = Table("replication_changed_profile", METADATA, _column("profile_id"))

TABLES = Tables(PROFILE, EVENT, TRAIT, LINK, merged_events=True)

# ClickHouse keeps each table sorted by the columns full runs group and join on.
CLICKHOUSE_ORDER = {"profile": "id", "event": "(space_id, profile_id, timestamp_ms, id)",
                    "trait": "(key, profile_id)", "profile_link": "(account_id, user_id)", "identifier": "(profile_id, id)",
                    "replication_state": "name", "replication_changed_profile": "profile_id"}
