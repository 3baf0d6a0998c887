"""Shared helpers for tests that send messages into a store and look at the resulting profiles."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, text

from store.ingest.ingest import accept


def send(store, space_id, *messages, source="tests"):
    """Send raw messages as one batch; every message must be accepted."""
    result, rejected = accept(store, space_id, list(messages), source)
    assert not rejected, rejected
    return result


@contextmanager
def reads_of(store, table: str) -> Iterator[list[str]]:
    """The SELECT statements reading `table` that the store's engine runs inside the block."""
    seen: list[str] = []

    def look(_connection, _cursor, statement, *_):
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", look)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", look)


def rows(store, sql, **params):
    with store.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql), params)]


def profile_of(store, kind, value, collection="users"):
    found = rows(store, "select profile_id from identifier where collection = :c and type = :t and value = :v",
                 c=collection, t=kind, v=value)
    return found[0][0] if found else None


def identifiers_of(store, profile_id):
    return sorted((t, v) for t, v in rows(store, "select type, value from identifier where profile_id = :p", p=profile_id))


def traits_of(store, profile_id):
    import json

    return {k: json.loads(v) for k, v in rows(store, "select key, value from trait where profile_id = :p", p=profile_id)}


def canonical_profiles(store):
    return [r[0] for r in rows(store, "select id from profile where merged_into is null and collection = 'users'")]
