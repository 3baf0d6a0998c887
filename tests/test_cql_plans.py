"""A compiled definition is as large in the database's plan as it is in CQL: each event stream is read
by at most one step of the plan however often its value is used. PostgreSQL's planner would otherwise copy a
bound sub-select into every use, so a definition nested three deep planned (and JIT-compiled) into
thousands of steps and took minutes."""

import re
from datetime import datetime, timezone

import pytest

from backend.cql import parse
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


@pytest.mark.parametrize("query", NESTED)
def test_each_event_stream_is_at_most_one_step_of_the_plan(query):
    assert event_reads(query) <= query.count("event(")
