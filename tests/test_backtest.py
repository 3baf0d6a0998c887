"""Backtests: a definition's size at the end of past days, checked against the reference evaluator
given, for each day, the events timestamped until then; on the operational store, DuckDB and ClickHouse."""

import random
from datetime import datetime, time, timedelta

import pytest

from backend.cql.evaluate import EventRecord, ProfileData, is_member
from backend.cql.parser import parse
from store.analytic.engines import ClickHouse, Chdb, DuckDB
from store.analytic.store import AnalyticStore
from store.insights import backtest
from tests.conftest import NOW
from tests.ingest_helpers import send

pytestmark = pytest.mark.anyio
DEFINITIONS = [
    "event('Bought').within(3 days).count() >= 2",
    "event('Bought').where(property('price') > 50).count() >= 1 AND trait('plan') = 'pro'",
    "event('Bought').between(1 days, 4 days).sum(property('price')) > 100 OR event('Viewed').within(12 hours).count() >= 1",
    "NOT event('Bought').within(2 days).count() >= 1",
    "event('Bought').within(4 days).avg(property('price')) >= 50 AND event('Viewed').count() <= 1",
    "event('Bought').within(3 days).max(property('price')) > 80 OR trait('plan') = 'free'",
]


@pytest.fixture
def shoppers(store, space_id):
    """30 users and 3 anonymous visitors with events over the past 9 days; each user's (known)
    profile data as the evaluator reads it."""
    chance = random.Random(29)
    known = {}
    for index in range(33):
        user = f"user-{index}" if index < 30 else None
        anonymous = f"anon-{index}"
        traits = {"plan": chance.choice(["pro", "free"])}
        events = [EventRecord(chance.choice(["Bought", "Bought", "Viewed"]),
                              NOW - timedelta(minutes=chance.randrange(9 * 24 * 60)),
                              {"price": chance.randrange(101)}) for _ in range(chance.randrange(7))]
        who = {"userId": user} if user else {"anonymousId": anonymous}
        send(store, space_id, {"type": "identify", **who, "traits": traits, "timestamp": NOW.isoformat()},
             *({"type": "track", **who, "event": e.name, "properties": e.properties,
                "timestamp": e.timestamp.isoformat()} for e in events))
        if user:
            known[user] = ProfileData(events=events, traits=traits)
    return known


def expected_size(query: str, known: dict[str, ProfileData], as_of: datetime) -> int:
    definition = parse(query)
    return sum(is_member(definition, ProfileData(events=[e for e in profile.events if e.timestamp <= as_of],
                                                 traits=profile.traits), as_of)
               for profile in known.values())


async def backtested(call, space_id, query: str, days: int = 6) -> dict:
    return (await call.ok("backtest_audience", spaceId=space_id, audienceType="USERS", definition={"query": query},
                          startTime=(NOW - timedelta(days=days)).isoformat(), endTime=NOW.isoformat()))["backtest"]


@pytest.mark.parametrize("query", DEFINITIONS)
async def test_each_days_size_is_what_the_reference_evaluator_finds_as_of_that_day(store, space_id, call, shoppers, query):
    found = await backtested(call, space_id, query)

    assert [day["day"] for day in found["days"]] == [(NOW - timedelta(days=n)).date().isoformat() for n in range(6, -1, -1)]
    assert found["days"][-1]["asOf"] == NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sizes = [day["size"] for day in found["days"]]
    assert sizes == [expected_size(query, shoppers, datetime.fromisoformat(day["asOf"])) for day in found["days"]]
    assert len(set(sizes)) > 1


@pytest.mark.parametrize("query", [
    "event('Bought').within(3 days).count() >= 1",
    "event('Bought').between(1 days, 4 days).sum(property('price')) > 0",
    "event('Bought').within(12 hours).count() >= 1",
])
async def test_events_on_the_edges_of_days_and_windows_count_as_the_reference_evaluator_says(store, space_id, call,
                                                                                              query):
    day_ends = [datetime.combine((NOW - timedelta(days=n)).date(), time.max, NOW.tzinfo).replace(microsecond=999000)
                for n in range(1, 7)]
    edges = [moment + offset for end in day_ends for moment in (end, end - timedelta(hours=12), end - timedelta(days=1),
                                                                 end - timedelta(days=3), end - timedelta(days=4))
             for offset in (timedelta(0), timedelta(milliseconds=1), -timedelta(milliseconds=1))]
    people = {f"edge-{index}": [EventRecord("Bought", moment, {"price": 1})] for index, moment in enumerate(sorted(set(edges)))}
    people["adds-up-to-a-rounding"] = [EventRecord("Bought", NOW - timedelta(days=days, hours=5), {"price": price})
                                       for days, price in ((6, 0.1), (5, 0.2))]
    known = {}
    for user, events in people.items():
        send(store, space_id, *({"type": "track", "userId": user, "event": "Bought", "properties": event.properties,
                                 "timestamp": event.timestamp.isoformat(timespec="milliseconds")} for event in events))
        known[user] = ProfileData(events=events, traits={})

    found = await backtested(call, space_id, query)

    sizes = [day["size"] for day in found["days"]]
    assert sizes == [expected_size(query, known, datetime.fromisoformat(day["asOf"])) for day in found["days"]]


async def test_the_members_on_the_last_day_come_with_their_identifiers(store, space_id, call, shoppers):
    query = DEFINITIONS[0]
    found = await backtested(call, space_id, query, days=1)

    expected = {user for user, profile in shoppers.items() if is_member(parse(query), profile, NOW)}
    assert {member["externalIds"][0]["id"] for member in found["members"]} == expected
    assert len(found["members"]) == found["days"][-1]["size"]


@pytest.mark.parametrize("reaches", [(), (2, 5), (1000,)])
def test_the_members_shown_are_the_first_by_id_however_far_they_are_looked_for(store, space_id, shoppers,
                                                                                 monkeypatch, reaches):
    def members(**changes):
        for name, value in changes.items():
            monkeypatch.setattr(backtest, name, value)
        return [member["id"] for member in backtest.backtest(store, space_id, audience_type="USERS", query=DEFINITIONS[0],
                                                             start=NOW - timedelta(days=1), end=NOW).members]

    everyone = members(SAMPLE_SIZE=1000, FIRST_REACHES=())
    shown = members(SAMPLE_SIZE=3, FIRST_REACHES=reaches)

    assert len(everyone) > 3 and everyone == sorted(everyone)
    assert shown == everyone[:3]


@pytest.mark.parametrize("engine", ["duckdb", "clickhouse"])
def test_a_backtest_on_the_analytic_store_gives_the_same_sizes(tmp_path, store, space_id, shoppers, engine):
    def sizes():
        return {query: [day.size for day in backtest.backtest(store, space_id, audience_type="USERS", query=query,
                                                               start=NOW - timedelta(days=6), end=NOW).days]
                for query in DEFINITIONS}

    operational = sizes()
    analytic = DuckDB(str(tmp_path / "analytic.duckdb")) if engine == "duckdb" else ClickHouse(Chdb())
    store.analytics = AnalyticStore(store, analytic)
    try:
        store.analytics.catch_up()
        on_the_analytic_store = sizes()
    finally:
        store.analytics.close()
        store.analytics = None

    assert on_the_analytic_store == operational and all(any(found) for found in operational.values())


@pytest.mark.parametrize(("arguments", "field"), [
    ({"startTime": (NOW - timedelta(days=100)).isoformat()}, "startTime"),
    ({"endTime": (NOW + timedelta(hours=1)).isoformat()}, "endTime"),
    ({"startTime": NOW.isoformat(), "endTime": (NOW - timedelta(days=1)).isoformat()}, "endTime"),
    ({"definition": {"query": "event('Bought').count( >= 1"}}, "definition.query"),
])
async def test_a_backtest_names_what_is_wrong_with_its_arguments(store, space_id, call, arguments, field):
    given = {"spaceId": space_id, "audienceType": "USERS", "definition": {"query": "event('Bought').count() >= 1"},
             "startTime": (NOW - timedelta(days=3)).isoformat(), "endTime": NOW.isoformat(), **arguments}

    error = await call.error("backtest_audience", **given)

    assert error["field"] == field
