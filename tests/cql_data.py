"""Profiles for CQL tests, written to a real database the way ingest stores them, and the compiled
statements run against it: so one test can ask both the evaluator and the SQL for an answer.

A `CqlDatabase` is the operational database (SQLite, or PostgreSQL when the suite runs on it) or an
analytic engine (DuckDB, or ClickHouse through chdb) holding the same rows; there, as in a full run,
every property a definition reads gets typed columns first."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import orjson
from sqlalchemy import Engine, delete, insert

from backend.clock import to_ms
from backend.cql import ast, daily, parse
from backend.cql.analysis import walk
from backend.cql.compiler import Scope, Tables, audience_members, trait_values
from backend.cql.daily import Days, counts_by_day
from backend.cql.evaluate import ProfileData
from store.analytic import tables as analytic
from store.analytic.engines import ClickHouse, Chdb, DuckDB
from store.db.database import make_engine
from store.db.models import Event, Profile, ProfileLink, Space, Trait
from store.db.schema import migrate
from tests.databases import on_postgres, session_database_url

TABLES = Tables(Profile.__table__, Event.__table__, Trait.__table__, ProfileLink.__table__)
SPACE = "spa_test"
# The engines CQL tests ask: the operational database, and (once per CI run, on the SQLite pass) the
# analytic engines, which do not depend on the operational database.
ENGINES = ["operational"] if on_postgres() else ["operational", "duckdb", "clickhouse"]


def memory_engine() -> Engine:
    """An empty database with the schema: in memory on SQLite, or one kept for the session on PostgreSQL."""
    engine = make_engine(session_database_url("cql"))
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(insert(Space.__table__), [dict(id=SPACE, slug="test", name="Test", write_key="w",
                                                          access_token_hash="h", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))])
    return engine


class CqlDatabase:
    """One engine's answers to CQL definitions over profiles stored in it."""

    def __init__(self, engine: str):
        self.name = engine
        if engine == "operational":
            self.operational, self.analytic = memory_engine(), None
        else:
            self.operational = None
            self.analytic = DuckDB(":memory:") if engine == "duckdb" else ClickHouse(Chdb())
            self.analytic.create_tables()
        self.typed: dict[tuple[str, ...], str] = {}

    def tables(self, query: str) -> Tables:
        """The tables `query` is compiled over: on an analytic engine, with typed columns (added now
        where missing) for the properties it reads."""
        if self.analytic is None:
            return TABLES
        paths = {node.path for node in walk(parse(query)) if isinstance(node, ast.PropertyRef)}
        new = {path: analytic.typed_prefix(path) for path in sorted(paths - set(self.typed))}
        if new:
            self.analytic.derive(analytic.EVENT, [column for path, prefix in new.items()
                                                  for column in analytic.typed_columns(prefix, path)], fill=True)
            self.typed.update(new)
        return analytic.tables(tuple((path, self.typed[path]) for path in sorted(paths)))

    def store(self, profiles: list[ProfileData], accounts: bool = False) -> list[str]:
        """Replace the stored profiles with `profiles` (accounts with their users when `accounts`)."""
        ids = profile_ids(profiles, accounts)
        rows = profile_rows(ids, profiles, accounts, events_follow_merges=self.analytic is None)
        if self.analytic is None:
            with self.operational.begin() as connection:
                for table in TABLES[:4]:
                    connection.execute(delete(table))
                for table, name in zip(TABLES[:4], ("profile", "event", "trait", "link")):
                    if rows[name]:
                        connection.execute(insert(table), rows[name])
            return ids
        for table, name in zip(analytic.TABLES, ("profile", "event", "trait", "link")):
            columns = [str(column.name) for column in table.columns]
            self.analytic.execute(f"TRUNCATE TABLE {table.name}")
            self.analytic.insert(table, columns, [tuple(row.get(column) for column in columns) for row in rows[name]])
        return ids

    def rows(self, statement) -> list[tuple]:
        if self.analytic is not None:
            return self.analytic.run(statement)
        with self.operational.connect() as connection:
            return [tuple(row) for row in connection.execute(statement)]

    def members(self, query: str, now: datetime, accounts: bool = False, tables: Tables | None = None) -> set[str]:
        """The members by the compiled statement, over `tables` if given (a LINKED graph's)."""
        typed = self.tables(query)
        tables = typed if tables is None else tables._replace(event=typed.event, typed=typed.typed)
        statement = audience_members(parse(query), tables=tables, scope=Scope(SPACE, accounts), now=now)
        return {row[0] for row in self.rows(statement)}

    def sizes_by_day(self, query: str, days: Days, accounts: bool = False) -> list[int] | None:
        """The audience's size at the end of each of `days`, counted in one pass (None when it
        cannot be), reading events until the last day's end."""
        scope = Scope(SPACE, accounts, event_horizon=lambda event: event.c.timestamp_ms <= days.end_ms)
        statement = counts_by_day(parse(query), tables=self.tables(query), scope=scope, days=days)
        return None if statement is None else daily.sizes(self.rows(statement), days)

    def values(self, query: str, now: datetime, accounts: bool = False) -> dict[str, object]:
        statement = trait_values(parse(query), tables=self.tables(query), scope=Scope(SPACE, accounts), now=now)
        return {row[0]: None if row[1] is None else orjson.loads(row[1]) for row in self.rows(statement)}


def profile_ids(profiles: list[ProfileData], accounts: bool = False) -> list[str]:
    return [f"{'acc' if accounts else 'use'}_{index}" for index in range(len(profiles))]


def profile_rows(ids: list[str], profiles: list[ProfileData], accounts: bool,
                 events_follow_merges: bool) -> dict[str, list[dict]]:
    """The profile, event, trait and link rows of `profiles` (accounts with their users).

    Each profile has had another merged into it. The operational store moves a merged profile's
    events to the profile it merged into; the analytic store keeps them where they were ingested
    (`events_follow_merges` False), so there every other event still names the merged profile."""
    rows: dict[str, list] = {"profile": [], "event": [], "trait": [], "link": []}
    for profile_id, profile in zip(ids, profiles):
        _add_profile(rows, profile_id, profile, "accounts" if accounts else "users", events_follow_merges)
        for index, user in enumerate(profile.users):
            user_id = f"use_{profile_id}_{index}"
            _add_profile(rows, user_id, user, "users", events_follow_merges)
            rows["link"].append(dict(user_id=user_id, account_id=profile_id, space_id=SPACE, created_at_ms=0))
    return rows


def _add_profile(rows: dict, profile_id: str, profile: ProfileData, collection: str, events_follow_merges: bool) -> None:
    merged_id = f"{profile_id}_merged"
    for row_id, merged_into in ((profile_id, None), (merged_id, profile_id)):
        rows["profile"].append(dict(id=row_id, space_id=SPACE, collection=collection, created_at_ms=0,
                                    first_message_id="m", first_source_id="web", merged_into=merged_into))
    for index, event in enumerate(profile.events):
        owner = merged_id if index % 2 and not events_follow_merges else profile_id
        rows["event"].append(dict(
            id=len(rows["event"]) + 1, space_id=SPACE, profile_id=owner, message_id=f"m{len(rows['event'])}",
            type="track", event=event.name, timestamp_ms=to_ms(event.timestamp), received_at_ms=0,
            source_id=event.source_id, properties=orjson.dumps(event.properties).decode(),
            context=orjson.dumps(event.context).decode(), external_ids="[]"))
    for key, value in profile.traits.items():
        if value is not None:
            rows["trait"].append(dict(profile_id=profile_id, key=key, space_id=SPACE, value=orjson.dumps(value).decode(),
                                      trait_class="custom", source_id="web", updated_at_ms=0))


def same_value(expected: object, actual: object) -> bool:
    """Equal as JSON values, floats within rounding (SQL and Python add in different orders)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-6)
    return expected == actual
