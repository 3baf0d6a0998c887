"""CQL semantics on the reference's example queries and on each rule decided where it is silent.

Every answer is asked of both the reference evaluator and the compiled SQL on every engine (the
operational database, DuckDB, ClickHouse); they must agree with each other and with the hand-checked
expectation."""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.cql import parse
from backend.cql.errors import CompileError
from backend.cql.evaluate import EventRecord, ProfileData, is_member, trait_value
from tests.cql_data import ENGINES, CqlDatabase, same_value

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
DATABASES = [CqlDatabase(engine) for engine in ENGINES]


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


def event(name, when, source="web", context=None, **properties):
    return EventRecord(name, when, properties, context or {}, source)


def _is_account(query: str, profile: ProfileData) -> bool:
    return bool(profile.users) or query.lstrip().startswith(("ANY", "ALL"))


def member(query, profile):
    """Whether `profile` is a member, as evaluator and SQL both say."""
    expected = is_member(parse(query), profile, NOW)
    accounts = _is_account(query, profile)
    for database in DATABASES:
        [profile_id] = database.store([profile], accounts=accounts)
        actual = profile_id in database.members(query, NOW, accounts=accounts)
        assert actual is expected, f"SQL on {database.name} disagrees"
    return expected


def value(query, profile):
    """The computed-trait value of `profile`, as evaluator and SQL both say."""
    expected = trait_value(parse(query), profile, NOW)
    for database in DATABASES:
        [profile_id] = database.store([profile])
        actual = database.values(query, NOW)[profile_id]
        assert same_value(expected, actual), f"SQL on {database.name} says {actual!r}"
    return expected


BOUGHT_RECENTLY = "event('Shoes Bought').where( property('price') >= 100 ).within(7 days).count() >= 1"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([event("Shoes Bought", ago(days=2), price=120)], True),
        ([event("Shoes Bought", ago(days=2), price=80)], False),
        ([event("Shoes Bought", ago(days=8), price=120)], False),
        ([event("Shoes Bought", ago(days=7), price=100)], True),
        ([event("Shoes Viewed", ago(days=1), price=500)], False),
        ([], False),
    ],
)
def test_the_first_documented_audience(events, expected):
    assert member(BOUGHT_RECENTLY, ProfileData(events)) is expected


FUNNEL = """event('Shoes Bought').where(
property('price') >= trait('avg_spend')
AND
event('Shoes Returned').within(parent: 5 days).count() >= 1
).within(30 days).count() >= 1"""


def test_the_bought_and_returned_funnel_is_measured_from_each_purchase():
    returned_in_time = ProfileData([event("Shoes Bought", ago(days=20), price=90),
                                    event("Shoes Returned", ago(days=17))], {"avg_spend": 50})
    returned_late = ProfileData([event("Shoes Bought", ago(days=20), price=90),
                                 event("Shoes Returned", ago(days=10))], {"avg_spend": 50})
    returned_before = ProfileData([event("Shoes Returned", ago(days=21)),
                                   event("Shoes Bought", ago(days=20), price=90)], {"avg_spend": 50})
    too_cheap = ProfileData([event("Shoes Bought", ago(days=20), price=40),
                             event("Shoes Returned", ago(days=19))], {"avg_spend": 50})
    second_purchase = ProfileData([event("Shoes Bought", ago(days=25), price=10),
                                   event("Shoes Bought", ago(days=12), price=70),
                                   event("Shoes Returned", ago(days=11))], {"avg_spend": 50})
    assert member(FUNNEL, returned_in_time)
    assert not member(FUNNEL, returned_late)
    assert not member(FUNNEL, returned_before)
    assert not member(FUNNEL, too_cheap)
    assert member(FUNNEL, second_purchase)


def test_a_parent_property_reference_compares_child_to_parent():
    query = ("event('Product Added').where(event('Order Completed').where(property('sku') = property(parent: 'sku'))"
             ".within(parent: 1 days).count() = 0).count() >= 1")
    abandoned = ProfileData([event("Product Added", ago(hours=5), sku="A"), event("Order Completed", ago(hours=4), sku="B")])
    bought = ProfileData([event("Product Added", ago(hours=5), sku="A"), event("Order Completed", ago(hours=4), sku="A")])
    assert member(query, abandoned)
    assert not member(query, bought)


def test_not_and_trait_conditions():
    query = "NOT ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )"
    assert member(query, ProfileData([], {"total_spend": 500}))
    assert not member(query, ProfileData([event("Shoes Bought", ago(days=1))], {"total_spend": 500}))
    assert member(query, ProfileData([event("Shoes Bought", ago(days=1))], {"total_spend": 100}))


def account(*users, traits=None):
    return ProfileData((), traits or {}, users)


def test_account_quantifiers():
    buyer = ProfileData([event("Shoes Bought", ago(days=1))], {"total_spend": 300})
    idle = ProfileData([], {"total_spend": 300})
    mixed, all_buyers, nobody = account(buyer, idle), account(buyer, buyer), account(idle)
    any_bought = "ANY event('Shoes Bought').count() >= 1"
    all_bought = "ALL ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )"
    none_bought = "ALL NOT event('Shoes Bought').count() >= 1"
    assert (member(any_bought, mixed), member(all_bought, mixed), member(none_bought, mixed)) == (True, False, False)
    assert (member(any_bought, all_buyers), member(all_bought, all_buyers)) == (True, True)
    assert (member(any_bought, nobody), member(none_bought, nobody)) == (False, True)
    assert not member(all_bought, account()) and not member(none_bought, account())


def test_unquantified_account_conditions_read_account_traits_and_all_user_events():
    users = (ProfileData([event("Login", ago(days=1))]), ProfileData([event("Login", ago(days=2))]))
    assert member("event('Login').count() >= 2 AND trait('plan') = 'enterprise'", account(*users, traits={"plan": "enterprise"}))


def test_entities_compile_only_over_a_data_graph():
    with pytest.raises(CompileError, match="reads a Data Graph"):
        DATABASES[0].members("entity('orders').count() >= 1", NOW)
    assert not is_member(parse("entity('orders').count() >= 1"), ProfileData(), NOW)


SPENDS = ProfileData([
    event("Shoes Bought", ago(days=40), spend=500, brand="My Brand", price=150),
    event("Shoes Bought", ago(days=20), spend=30, brand="My Brand", price=120),
    event("Shoes Bought", ago(days=10), spend=60, brand="Other", price=130),
    event("Shoes Bought", ago(days=5), spend=30, brand="My Brand", price=90),
])


def test_the_documented_computed_traits():
    assert value("event('Shoes Bought').within(30 days).avg(property('spend'))", SPENDS) == 40
    assert value("event('Shoes Bought').where( property('price') > 100 AND property('brand') = 'My Brand' )"
                 ".min(property('spend'))", SPENDS) == 30
    assert value("event('Shoes Bought').within(30 days).first(property('spend'))", SPENDS) == 30
    assert value("event('Shoes Bought').within(30 days).mode(property('spend'), 2)", SPENDS) == "30"
    assert value("event('Shoes Bought').within(30 days).mode(property('spend'), 3)", SPENDS) is None


def test_reducers_on_mixed_and_missing_values():
    profile = ProfileData([event("E", ago(hours=n), v=v) for n, v in enumerate([3, "x", None, 10, True, "b", "b", "a", "a"])])
    assert value("event('E').count()", profile) == 9
    assert value("event('E').sum(property('v'))", profile) == 13
    assert value("event('E').avg(property('v'))", profile) == 6.5
    assert value("event('E').max(property('v'))", profile) == 10
    assert value("event('E').max(property('v') as string)", profile) == "x"
    assert value("event('E').mode(property('v'), 2)", profile) == "a"
    assert value("event('E').unique(property('v'))", profile) == ["10", "3", "a", "b", "true", "x"]
    assert value("event('E').unique(property('v')).count()", profile) == 6
    assert value("event('E').first(property('v'))", profile) == "a"
    assert value("event('E').last(property('v'))", profile) == 3
    assert value("event('None').avg(property('v'))", profile) is None
    assert value("event('None').sum(property('v'))", profile) == 0


@pytest.mark.parametrize(
    ("condition", "traits", "expected"),
    [
        ("trait('a') = 5", {"a": "5"}, True),
        ("trait('a') = 'true'", {"a": True}, True),
        ("trait('a') != 'x'", {}, False),
        ("trait('a') != 'x'", {"a": "y"}, True),
        ("trait('a').absent()", {}, True),
        ("trait('a').exists()", {"a": 0}, True),
        ("trait('a') > 3", {"a": "4"}, True),
        ("trait('a') > 3", {"a": "four"}, False),
        ("trait('a').contains('sho', 'shi')", {"a": "t-shirts"}, True),
        ("trait('a').contains('sho')", {"a": 5}, False),
        ("trait('a').omits('sho')", {}, True),
        ("trait('a').starts_with('ab')", {"a": "abc"}, True),
        ("trait('a').ends_with('bc')", {"a": "abc"}, True),
        ("trait('a').one_of('x', 2)", {"a": 2.0}, True),
        ("trait('a').none_of('x', 2)", {"a": "y"}, True),
        ("trait('a').none_of('x', 2)", {}, False),
        ("trait('a').before_date(2023-12-07T18:50:00Z)", {"a": "2023-12-07T18:49:59Z"}, True),
        ("trait('a').after_date('2023-12-07')", {"a": "2023-12-07T00:00:01+00:00"}, True),
        ("trait('a').after_date('2023-12-07')", {"a": "not a date"}, False),
        ("trait('a').within_last(7 days)", {"a": "2026-11-15T00:00:00Z"}, True),
        ("trait('a').within_last(7 days)", {"a": "2026-11-14T23:59:59Z"}, False),
        ("trait('a').within_last(2 hours)", {"a": "2026-11-22T10:30:00Z"}, True),
        ("trait('a').within_next(1 days)", {"a": "2026-11-23T23:00:00Z"}, True),
        ("trait('a').before_last(30 days)", {"a": "2026-10-23"}, True),
        ("trait('a').after_next(30 days)", {"a": "2026-12-21"}, False),
        ("trait('a.b') = 1", {"a": {"b": 1}}, True),
    ],
)
def test_comparators(condition, traits, expected):
    assert member(condition, ProfileData([], traits)) is expected


def test_between_keeps_both_ends():
    query = "event('Visit').between(7 days, 10 days).count() >= 1"
    assert member(query, ProfileData([event("Visit", ago(days=7))]))
    assert member(query, ProfileData([event("Visit", ago(days=10))]))
    assert not member(query, ProfileData([event("Visit", ago(days=6))]))
    assert not member(query, ProfileData([event("Visit", ago(days=10, seconds=1))]))


def test_sources_exclude_drops_events_from_those_sources():
    query = "event('Visit').sources({exclude: 'crm', 'import'}).count() >= 1"
    assert not member(query, ProfileData([event("Visit", ago(days=1), source="crm")]))
    assert member(query, ProfileData([event("Visit", ago(days=1), source="web")]))


def test_context_inside_where():
    query = "event('Page Viewed').where(context('page.url').contains('/pricing')).count() >= 1"
    assert member(query, ProfileData([event("Page Viewed", ago(hours=1), context={"page": {"url": "https://x.io/pricing"}})]))
    assert not member(query, ProfileData([event("Page Viewed", ago(hours=1), context={"page": {"url": "https://x.io/"}})]))


def test_expires_after_keeps_only_the_latest_live_session():
    query = "event('Click').expires_after(1 hour).count()"
    session = [event("Click", ago(hours=5)), event("Click", ago(minutes=50)), event("Click", ago(minutes=10))]
    assert value(query, ProfileData(session)) == 2
    assert value(query, ProfileData([event("Click", ago(hours=2))])) == 0
    assert value(query, ProfileData([event("Click", ago(hours=1))])) == 0
    assert value(query, ProfileData([event("Click", ago(minutes=100)), event("Click", ago(minutes=40))])) == 1
    assert value(query, ProfileData([event("Click", ago(minutes=99)), event("Click", ago(minutes=40))])) == 2


def test_mode_ties_go_to_the_alphabetically_first_value():
    ties = ProfileData([event("E", ago(hours=n), v=v) for n, v in enumerate(["b", "a", "b", "a", "c"])])
    assert value("event('E').mode(property('v'), 2)", ties) == "a"
    assert value("event('E').mode(property('v'), 3)", ties) is None


def test_text_order_is_by_code_point_on_every_database():
    """Upper case before lower case and `_` between them, as SQLite's BINARY and PostgreSQL's "C"
    order text, whatever the database's locale would say."""
    mixed = ProfileData([event("E", ago(hours=n), v=v) for n, v in enumerate(["b", "_", "B", "a", "b", "B", "_", "a"])])
    assert value("event('E').mode(property('v'), 2)", mixed) == "B"
    assert value("event('E').min(property('v') as string)", mixed) == "B"
    assert value("event('E').max(property('v') as string)", mixed) == "b"
    assert value("event('E').unique(property('v'))", mixed) == ["B", "_", "a", "b"]


def test_a_child_event_at_the_parent_time_is_not_after_it():
    query = "event('E').where(event('F').within(parent: 1 hours).count() >= 1).count() >= 1"
    assert not member(query, ProfileData([event("E", ago(hours=2)), event("F", ago(hours=2))]))
    assert member(query, ProfileData([event("E", ago(hours=2)), event("F", ago(hours=1))]))
    assert not member(query, ProfileData([event("E", ago(hours=2)), event("F", ago(minutes=59))]))


VALUES = st.none() | st.booleans() | st.integers(-5, 500) | st.floats(-1e6, 1e6) | st.sampled_from(
    ["", "a", "b", "30", "My Brand", "2026-11-20T10:00:00Z", "2026-11-20", "not a date"])
EVENTS = st.builds(
    EventRecord,
    name=st.sampled_from(["Shoes Bought", "Shoes Returned", "Login"]),
    timestamp=st.integers(0, 60 * 24 * 40).map(lambda minutes: NOW - timedelta(minutes=minutes)),
    properties=st.dictionaries(st.sampled_from(["price", "spend", "brand", "sku"]), VALUES, max_size=4),
    context=st.just({}),
    source_id=st.sampled_from(["web", "crm"]),
)
PROFILES = st.builds(ProfileData, events=st.lists(EVENTS, max_size=8),
                     traits=st.dictionaries(st.sampled_from(["avg_spend", "total_spend", "plan"]), VALUES, max_size=3))
QUERIES = [BOUGHT_RECENTLY, FUNNEL, "NOT ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )",
           "event('Shoes Bought').where(property('brand').one_of('My Brand', 30) OR property('sku').absent())"
           ".between(1 days, 20 days).count() = 0",
           "trait('plan').within_last(3 days) OR trait('plan').none_of('a', 'b')"]
TRAITS = ["event('Shoes Bought').within(30 days).avg(property('spend'))",
          "event('Shoes Bought').max(property('price') as string)",
          "event('Shoes Bought').mode(property('brand'), 2)",
          "event('Login').expires_after(2 hours).unique(property('sku')).count()"]


@settings(max_examples=300, deadline=None)
@given(profile=PROFILES, query=st.sampled_from(QUERIES), trait=st.sampled_from(TRAITS))
def test_any_data_evaluates_without_error(profile, query, trait):
    assert is_member(parse(query), profile, NOW) in (True, False)
    trait_value(parse(trait), profile, NOW)
