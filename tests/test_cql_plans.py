"""A compiled definition is about as large in the database's plan as it is in CQL: a stream at nesting
depth d is read by at most d steps of the plan (once for itself, once for each stream it is nested in,
whose rows its derived table is grouped by), however often its value is used. An earlier compiler's
bound sub-selects were copied by PostgreSQL's planner into every use, so a definition nested three
deep planned (and JIT-compiled) into thousands of steps and took minutes."""

import re
from datetime import datetime, timezone

import pytest

from backend.cql import ast, parse
from backend.cql.analysis import children
from backend.cql.compiler import Scope, audience_members
from tests.cql_data import SPACE, TABLES, memory_engine
from tests.plans import table_reads

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
ENGINE = memory_engine()
NESTED = [
    "event('Login').where(event('Returned').sum(property('price')) <= 100)"
    ".where(NOT (event('Returned').within(parent: 3 hours).sources({exclude: 'crm'}).last(property('a.b'))"
    ".within_last(2 hours))).mode(property('brand'), 2).within_last(2 hours)",
    "event('Login').where(NOT (event('Login').sources({exclude: 'crm'}).sum(property('price')).ends_with('0')))"
    ".where(NOT (event('Returned').sources({exclude: 'crm'}).last(property('a.b')).within_next(3 hours)))"
    ".last(property('a.b')).before_date(2026-11-20T10:00:00Z)",
]


def event_reads(query: str) -> int:
    """How many steps of the plan read the event table for `query`'s compiled statement."""
    statement = audience_members(parse(query), tables=TABLES, scope=Scope(SPACE, False), now=NOW)
    with ENGINE.connect() as connection:
        return sum(1 for alias, _ in table_reads(connection, statement) if re.fullmatch(r"e\d+(_\d+)?", alias))


def stream_depths(node, depth: int = 0) -> list[int]:
    """The nesting depth of every stream below `node` (1 for a stream not inside another's `where`)."""
    found = []
    for child in children(node):
        if isinstance(child, ast.Stream):
            found.append(depth + 1)
            found.extend(stream_depths(child, depth + 1))
        else:
            found.extend(stream_depths(child, depth))
    return found


@pytest.mark.parametrize("query", NESTED)
def test_each_event_stream_is_read_once_per_nesting_level(query):
    assert event_reads(query) <= sum(stream_depths(parse(query)))
