"""Profiles for CQL tests, written to a real database the way ingest stores them, and the compiled
statements run against it: so one test can ask both the evaluator and the SQL for an answer."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import orjson
from sqlalchemy import Engine, delete, insert

from backend.clock import to_ms
from backend.cql import parse
from backend.cql.compiler import Scope, Tables, audience_members, trait_values
from backend.cql.evaluate import ProfileData
from store.database import make_engine
from store.models import Event, Profile, ProfileLink, Space, Trait
from store.schema import migrate
from tests.databases import session_database_url

TABLES = Tables(Profile.__table__, Event.__table__, Trait.__table__, ProfileLink.__table__)
SPACE = "spa_test"


def memory_engine() -> Engine:
    """An empty database with the schema: in memory on SQLite, or one kept for the session on PostgreSQL."""
    engine = make_engine(session_database_url("cql"))
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(insert(Space.__table__), [dict(id=SPACE, slug="test", name="Test", write_key="w",
                                                          access_token_hash="h", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))])
    return engine


def profile_ids(profiles: list[ProfileData], accounts: bool = False) -> list[str]:
    return [f"{'acc' if accounts else 'use'}_{index}" for index in range(len(profiles))]


def store_profiles(engine: Engine, profiles: list[ProfileData], accounts: bool = False) -> list[str]:
    """Replace the database's profiles with `profiles` (accounts with their users when `accounts`)."""
    ids = profile_ids(profiles, accounts)
    rows: dict[str, list] = {"profile": [], "event": [], "trait": [], "link": []}
    for profile_id, profile in zip(ids, profiles):
        _add_profile(rows, profile_id, profile, "accounts" if accounts else "users")
        for index, user in enumerate(profile.users):
            user_id = f"use_{profile_id}_{index}"
            _add_profile(rows, user_id, user, "users")
            rows["link"].append(dict(user_id=user_id, account_id=profile_id, space_id=SPACE, created_at_ms=0))
    with engine.begin() as connection:
        for table in TABLES:
            connection.execute(delete(table))
        for table, name in zip(TABLES, ("profile", "event", "trait", "link")):
            if rows[name]:
                connection.execute(insert(table), rows[name])
    return ids


def _add_profile(rows: dict, profile_id: str, profile: ProfileData, collection: str) -> None:
    rows["profile"].append(dict(id=profile_id, space_id=SPACE, collection=collection, created_at_ms=0,
                                first_message_id="m", first_source_id="web"))
    for event in profile.events:
        rows["event"].append(dict(
            space_id=SPACE, profile_id=profile_id, message_id=f"m{len(rows['event'])}", type="track",
            event=event.name, timestamp_ms=to_ms(event.timestamp), received_at_ms=0,
            source_id=event.source_id, properties=orjson.dumps(event.properties).decode(),
            context=orjson.dumps(event.context).decode(), external_ids="[]"))
    for key, value in profile.traits.items():
        if value is not None:
            rows["trait"].append(dict(profile_id=profile_id, key=key, space_id=SPACE, value=orjson.dumps(value).decode(),
                                      trait_class="custom", source_id="web", updated_at_ms=0))


def sql_members(engine: Engine, query: str, now: datetime, accounts: bool = False) -> set[str]:
    statement = audience_members(parse(query), tables=TABLES, scope=Scope(SPACE, accounts), now=now)
    with engine.connect() as connection:
        return {row[0] for row in connection.execute(statement)}


def sql_values(engine: Engine, query: str, now: datetime, accounts: bool = False) -> dict[str, object]:
    statement = trait_values(parse(query), tables=TABLES, scope=Scope(SPACE, accounts), now=now)
    with engine.connect() as connection:
        return {row[0]: None if row[1] is None else orjson.loads(row[1]) for row in connection.execute(statement)}


def same_value(expected: object, actual: object) -> bool:
    """Equal as JSON values, floats within rounding (SQL and Python add in different orders)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-6)
    return expected == actual
