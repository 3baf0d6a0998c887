"""The proof of the compiler: on random profiles and random definitions drawn from the grammar, the
compiled SQL and the reference evaluator agree on every profile, on every engine."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backend.clock import from_ms, to_ms
from backend.cql import CQLError, validate
from backend.cql.daily import Days
from backend.cql.evaluate import EventRecord, ProfileData, is_member, trait_value
from backend.cql.parser import parse
from tests.cql_data import ENGINES, CqlDatabase, same_value

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
DAYS = Days(to_ms(NOW) // 86_400_000 - 4, 5, to_ms(NOW))  # the four days before NOW's, and NOW's until NOW
NAMES = ["Bought", "Returned", "Login"]
PROPERTIES = ["price", "brand", "a.b"]

NUMBERS_STORED = st.integers(-3, 120) | st.sampled_from([0, 1, 2, 30, 100, 2.5, 30.0, 100.0, -0.5])
VALUES = NUMBERS_STORED | st.none() | st.booleans() | NUMBERS_STORED | st.sampled_from(
    ["", "a", "b", "ab", "30", " 7", "2.50", "1e2", "true", "My Brand", "2026-11-20T10:00:00Z", "2026-11-22",
     "2026-11-21T23:30:00-01:00", "2026-11-22T13:00", "2026-02-30", "not a date"]) | st.just({"b": 1}) | st.just([1, "a"])
PROPERTY_MAPS = st.fixed_dictionaries({}, optional={"price": VALUES, "brand": VALUES, "a": VALUES | st.just({"b": 2})})
MINUTES_AGO = (st.integers(0, 60 * 24 * 12) | st.integers(0, 12).map(lambda hours: hours * 60)
               | st.integers(0, 12).map(lambda days: days * 24 * 60))
EVENTS = st.builds(
    EventRecord,
    name=st.sampled_from(["Bought", "Bought", "Returned", "Login"]),
    timestamp=MINUTES_AGO.map(lambda minutes: NOW - timedelta(minutes=minutes)),
    properties=PROPERTY_MAPS,
    context=st.sampled_from([{}, {"page": {"url": "https://x.io/pricing"}}, {"page": {"url": "/a"}}]),
    source_id=st.sampled_from(["web", "crm"]),
)
TRAITS = st.dictionaries(st.sampled_from(["plan", "spend", "vip"]), VALUES, max_size=3)
USERS = st.builds(ProfileData, events=st.lists(EVENTS, min_size=1, max_size=10), traits=TRAITS)
ACCOUNTS = st.builds(ProfileData, traits=TRAITS, users=st.lists(USERS, max_size=3))

LITERALS = st.sampled_from(["0", "1", "2", "30", "100", "2.5", "'30'", "'a'", "'b'", "'true'", "''", "'My Brand'",
                            "'2026-11-20'", "2026-11-20T10:00:00Z"])
UNITS = st.sampled_from(["days", "hours"])


def comparator(subject: str):
    return st.one_of(
        st.tuples(st.sampled_from(["=", "!=", ">", ">=", "<", "<="]), LITERALS).map(lambda t: f"{subject} {t[0]} {t[1]}"),
        st.sampled_from([".absent()", ".exists()", ".contains('a', '3')", ".omits('a')", ".starts_with('2')",
                         ".ends_with('0')", ".one_of('a', 30, 'true')", ".none_of('b', 2.5)",
                         ".before_date(2026-11-20T10:00:00Z)", ".after_date('2026-11-21')"]).map(subject.__add__),
        st.tuples(st.sampled_from(["within_last", "within_next", "before_last", "after_next"]), st.integers(0, 3), UNITS)
        .map(lambda t: f"{subject}.{t[0]}({t[1]} {t[2]})"),
    )


def properties(parent: bool = False):
    prefix = "parent: " if parent else ""
    return st.sampled_from(PROPERTIES).map(lambda name: f"property({prefix}'{name}')")


def junction(conditions):
    return st.one_of(
        st.tuples(conditions, st.sampled_from(["AND", "OR"]), conditions).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        conditions.map(lambda c: f"NOT ({c})"),
    )


def stream(depth: int, nested: bool = False):
    filters = [st.tuples(st.integers(1, 9), UNITS).map(lambda t: f".within({t[0]} {t[1]})"),
               st.tuples(st.integers(0, 3), st.integers(3, 9)).map(lambda t: f".between({t[0]} days, {t[1]} days)"),
               st.just(".sources({exclude: 'crm'})")]
    if nested:
        filters.append(st.tuples(st.integers(1, 48)).map(lambda t: f".within(parent: {t[0]} hours)"))
    if depth > 0:
        filters.append(where(depth - 1).map(lambda c: f".where({c})"))
    return st.tuples(st.sampled_from(NAMES), st.lists(st.one_of(filters), max_size=2)).map(
        lambda t: f"event('{t[0]}')" + "".join(t[1]))


def reduction(depth: int, nested: bool = False):
    return st.one_of(
        st.tuples(stream(depth, nested), st.sampled_from([">= 1", "= 0", ">= 2", "<= 1"])).map(lambda t: f"{t[0]}.count() {t[1]}"),
        st.tuples(stream(depth, nested), st.sampled_from(["sum", "avg", "min", "max"]), properties()).flatmap(
            lambda t: comparator(f"{t[0]}.{t[1]}({t[2]})")),
        st.tuples(stream(depth, nested), st.sampled_from(["first", "last"]), properties()).flatmap(
            lambda t: comparator(f"{t[0]}.{t[1]}({t[2]})")),
        st.tuples(stream(depth, nested), properties(), st.sampled_from(["", " as number"]), st.integers(1, 2)).flatmap(
            lambda t: comparator(f"{t[0]}.mode({t[1]}{t[2]}, {t[3]})")),
    )


def where(depth: int):
    leaves = st.one_of(
        properties().flatmap(comparator),
        st.just("context('page.url')").flatmap(comparator),
        st.sampled_from(["plan", "spend"]).map(lambda k: f"trait('{k}')").flatmap(comparator),
        st.tuples(properties(), st.sampled_from(["=", ">=", "<", "!="]), properties(parent=True))
        .map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        reduction(depth, nested=True),
    )
    return st.one_of(leaves, junction(leaves))


def audience(depth: int = 1):
    leaves = st.one_of(reduction(depth), st.sampled_from(["plan", "spend", "vip", "a.b"]).map(
        lambda k: f"trait('{k}')").flatmap(comparator))
    return st.one_of(leaves, junction(leaves), junction(junction(leaves)))


def additive_stream():
    """A stream with a window or none, maybe a `where` on the event's properties, maybe a source excluded."""
    windows = st.one_of(st.just(""), st.tuples(st.integers(1, 9), UNITS).map(lambda t: f".within({t[0]} {t[1]})"),
                        st.tuples(st.integers(0, 3), st.integers(3, 9)).map(lambda t: f".between({t[0]} days, {t[1]} days)"))
    wheres = st.one_of(st.just(""), properties().flatmap(comparator).map(lambda c: f".where({c})"))
    return st.tuples(st.sampled_from(NAMES), windows, wheres, st.sampled_from(["", ".sources({exclude: 'crm'})"])).map(
        lambda t: f"event('{t[0]}'){t[1]}{t[2]}{t[3]}")


def additive():
    """A count, sum or average of a stream compared: what a backtest counts in one pass."""
    return st.one_of(
        st.tuples(additive_stream(), st.sampled_from([">= 1", "= 0", ">= 2", "<= 1"])).map(
            lambda t: f"{t[0]}.count() {t[1]}"),
        st.tuples(additive_stream(), st.sampled_from(["sum", "avg"]), properties()).flatmap(
            lambda t: comparator(f"{t[0]}.{t[1]}({t[2]})")),
    )


def additive_audience():
    leaves = st.one_of(additive(), st.sampled_from(["plan", "spend"]).map(lambda k: f"trait('{k}')").flatmap(comparator))
    return st.one_of(leaves, junction(leaves), junction(junction(leaves)))


TRAIT_DEFINITIONS = st.tuples(
    stream(1),
    st.sampled_from(["count()", "sum(property('price'))", "avg(property('price'))", "min(property('price'))",
                     "max(property('brand') as string)", "min(property('a') as string)", "mode(property('brand'), 2)",
                     "mode(property('price') as number, 1)", "first(property('price'))", "last(property('a'))",
                     "unique(property('brand'))", "unique(property('price')).count()"]),
    st.sampled_from(["", ".expires_after(3 hours)", ".expires_after(1800 seconds)"]),
).map(lambda t: f"{t[0]}{t[2]}.{t[1]}")


def as_of(profile: ProfileData, moment: datetime) -> ProfileData:
    """The profile (and its users) with only the events timestamped until `moment`."""
    return replace(profile, events=[e for e in profile.events if e.timestamp <= moment],
                   users=[as_of(user, moment) for user in profile.users])


def _valid(query: str, kind: str, audience_type: str = "USERS") -> bool:
    try:
        validate(query, kind=kind, audience_type=audience_type)
    except CQLError:
        return False
    return True


@pytest.fixture(scope="module", params=ENGINES)
def database(request):
    return CqlDatabase(request.param)


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.function_scoped_fixture])


@SETTINGS
@given(profiles=st.lists(USERS, min_size=1, max_size=4), query=audience())
def test_audience_members_agree(database, profiles, query):
    assume(_valid(query, "audience"))
    ids = database.store(profiles)
    expected = {profile_id for profile_id, profile in zip(ids, profiles) if is_member(parse(query), profile, NOW)}
    assert database.members(query, NOW) == expected, query


@SETTINGS
@given(profiles=st.lists(USERS, min_size=1, max_size=4), query=additive_audience())
def test_sizes_by_day_agree_with_each_days_members(database, profiles, query):
    assume(_valid(query, "audience"))
    database.store(profiles)
    found = database.sizes_by_day(query, DAYS)
    assume(found is not None)
    expected = [sum(is_member(parse(query), as_of(profile, moment), moment) for profile in profiles)
                for moment in map(from_ms, DAYS.moments())]
    assert found == expected, query


@SETTINGS
@given(accounts=st.lists(ACCOUNTS, min_size=1, max_size=3), query=additive_audience())
def test_account_sizes_by_day_agree_with_each_days_members(database, accounts, query):
    assume(_valid(query, "audience", "ACCOUNTS"))
    database.store(accounts, accounts=True)
    found = database.sizes_by_day(query, DAYS, accounts=True)
    assume(found is not None)
    expected = [sum(is_member(parse(query), as_of(account, moment), moment) for account in accounts)
                for moment in map(from_ms, DAYS.moments())]
    assert found == expected, query


@SETTINGS
@given(profiles=st.lists(USERS, min_size=1, max_size=4), query=TRAIT_DEFINITIONS)
def test_computed_trait_values_agree(database, profiles, query):
    assume(_valid(query, "computed_trait"))
    ids = database.store(profiles)
    actual = database.values(query, NOW)
    for profile_id, profile in zip(ids, profiles):
        expected = trait_value(parse(query), profile, NOW)
        assert same_value(expected, actual[profile_id]), (query, profile_id, expected, actual[profile_id])


@SETTINGS
@given(accounts=st.lists(ACCOUNTS, min_size=1, max_size=3), quantifier=st.sampled_from(["ANY", "ALL", "ALL NOT", ""]),
       query=audience(depth=0))
def test_account_audience_members_agree(database, accounts, quantifier, query):
    query = f"{quantifier} ({query})" if quantifier else query
    assume(_valid(query, "audience", "ACCOUNTS"))
    ids = database.store(accounts, accounts=True)
    expected = {account_id for account_id, account in zip(ids, accounts) if is_member(parse(query), account, NOW)}
    assert database.members(query, NOW, accounts=True) == expected, query
