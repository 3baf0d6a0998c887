import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend import cql
from backend.cql import ast
from backend.cql.parser import parse, split_path

REFERENCE_AUDIENCES = [
    ("USERS", "event('Shoes Bought').where( property('price') >= 100 ).within(7 days).count() >= 1"),
    ("USERS", "event('Shoes Bought').where( \nproperty('price') >= trait('avg_spend')\nAND \n"
              "event('Shoes Returned').within(parent: 5 days).count() >= 1 \n).within(30 days).count() >= 1"),
    ("USERS", "NOT ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )"),
    ("ACCOUNTS", "ALL ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )"),
    ("ACCOUNTS", "ALL NOT event('Shoes Bought').count() >= 1"),
    ("ACCOUNTS", "ANY event('Shoes Bought').count() >= 1"),
    ("LINKED", "entity('orders').where(entity('order-products').count() >= 1).count() >= 1"),
    ("LINKED", "entity('orders').count() >= 1 OR trait('VIP') = 'true'"),
    ("LINKED", "entity('orders').where(property('total') > 500).count() >= 1"),
    ("USERS", "event('Purchased').count() >= 3"),
    ("LINKED", "entity('owned-accounts').count() > 1"),
    ("USERS", "event('a').where(property('price_usd') > 100).between(7 days, 10 days).count() == 0"),
    ("USERS", "trait('created_at').before_date(2023-12-07T18:50:00Z) AND trait('x').after_date('2023-12-07T18:50:00Z')"),
    ("USERS", "trait('plan').one_of('pro', 'team') AND trait('plan').none_of('free') AND trait('n').contains('shoes','shirts')"),
    ("USERS", "trait('renewal').within_next(7 days) OR trait('seen').within_last(3 hours) OR trait('a').before_last(2 days) OR trait('b').after_next(1 day)"),
    ("USERS", "trait('email').exists() AND trait('phone').absent() AND trait('n').omits('x') AND trait('s').starts_with('a') AND trait('s').ends_with('z')"),
    ("USERS", "event('Page Viewed').where(context('page.url').contains('pricing')).within(24 hours).count() >= 2"),
    ("USERS", "event('a').sources({exclude: 'QgRHeujRJBM9j18yChyC', '/;hSBZDqGDPvXCKHbikPm'}).count() >= 1"),
    ("USERS", "trait('vip') = true AND literal(100) < trait('ltv')"),
    ("USERS", "trait('a').eq(1) AND trait('b').gte(2) AND trait('c').is_set() AND trait('d').contains_one(['x'])"),
]
REFERENCE_TRAITS = [
    "event('Shoes Bought').within(30 days).avg(property('spend'))",
    "event('Shoes Bought').where( property('price') > 100 AND property('brand') = 'My Brand' ).min(property('spend'))",
    "event('Shoes Bought').within(30 days).first(property('spend'))",
    "event('Shoes Bought').within(30 days).mode(property('spend'), 2)",
    "event('Shoes Bought').count()",
    "event('Order').max(property('spend') as string)",
    "event('Order').mode(property('spend') as array, 2)",
    "event('Order').unique(property('sku'))",
    "event('Order').unique(property('sku')).count()",
    "event('Order').last(property('plan'))",
    "event('Session').expires_after(1 hour).count()",
    "event('Order').sum(property('revenue'))",
]


@pytest.mark.parametrize("audience_type,query", REFERENCE_AUDIENCES)
def test_every_reference_audience_query_is_accepted(audience_type, query):
    cql.validate(query, kind="audience", audience_type=audience_type)


@pytest.mark.parametrize("query", REFERENCE_TRAITS)
def test_every_reference_computed_trait_query_is_accepted(query):
    cql.validate(query, kind="computed_trait", audience_type="USERS")


def test_and_binds_tighter_than_or():
    root = parse("trait('a') = 1 OR trait('b') = 2 AND trait('c') = 3")
    assert isinstance(root, ast.Or)
    assert isinstance(root.operands[1], ast.And)


def test_not_applies_to_the_next_condition_only():
    root = parse("NOT trait('a') = 1 AND trait('b') = 2")
    assert isinstance(root, ast.And) and isinstance(root.operands[0], ast.Not)


def test_sugar_operators_become_named_comparators():
    root = parse("event('x').count() >= 3")
    assert isinstance(root, ast.Comparison) and root.comparator == "at_least"
    assert root.arguments[0] == ast.Literal(3, "int", root.arguments[0].position)


def test_escaped_dots_stay_in_the_name():
    assert split_path("a.b\\.c") == ("a", "b.c")
    assert parse("trait('a\\.b') = 1").subject.path == ("a.b",)


@pytest.mark.parametrize(
    "query,line,column,fragment",
    [
        ("event('a').count( >= 3", 1, 19, "expected ')'"),
        ("event('a').cuont() >= 1", 1, 12, "did you mean count()"),
        ("event('a') >= 1", 1, 12, "reduce it before comparing"),
        ("event('a').count() >= 1 AND", 1, 28, "expected an expression"),
        ("event('a').count() >=\n  'x' AND )", 2, 11, "expected an expression"),
        ("trait('a') = 'unterminated", 1, 14, "unterminated string"),
        ("trait('a') = 1 2", 1, 16, "expected AND, OR"),
        ("trait('a') # 1", 1, 12, "unexpected character"),
    ],
)
def test_syntax_errors_name_the_position_and_what_was_expected(query, line, column, fragment):
    with pytest.raises(cql.CQLError) as raised:
        cql.validate(query, kind="audience", audience_type="USERS")
    assert (raised.value.position.line, raised.value.position.column) == (line, column)
    assert fragment in raised.value.message


@pytest.mark.parametrize(
    "kind,audience_type,query,fragment",
    [
        ("audience", "USERS", "event('a').count()", "value, not a condition"),
        ("audience", "USERS", "trait('a')", "value, not a condition"),
        ("computed_trait", "USERS", "event('a').count() >= 1", "must reduce an event stream"),
        ("audience", "USERS", "ANY event('a').count() >= 1", "only valid in ACCOUNTS"),
        ("audience", "USERS", "entity('orders').count() >= 1", "only valid in LINKED"),
        ("audience", "USERS", "property('price') > 1", "only valid inside where"),
        ("audience", "USERS", "event('a').within(parent: 2 days).count() >= 1", "nested in another event"),
        ("audience", "USERS", "event('a').where(property(parent: 'x') = 1).count() >= 1", "property(parent"),
        ("audience", "USERS", "event('a').within(7 days).within(3 days).count() >= 1", "one time window"),
        ("audience", "USERS", "event('a').between(10 days, 7 days).count() >= 1", "shorter duration before"),
        ("audience", "USERS", "trait('a') > 'x'", "compares numbers"),
        ("audience", "USERS", "trait('a').before_date('yesterday')", "ISO-8601"),
        ("audience", "USERS", "event('a').expires_after(1 hour).count() >= 1", "only valid in computed traits"),
        ("computed_trait", "USERS", "event('a').expires_after(5 seconds).count()", "30 minutes to 90 days"),
        ("audience", "USERS", "event('a').unique(property('x')) = 1", "returns a list"),
        ("audience", "ACCOUNTS", "ANY ANY event('a').count() >= 1", "cannot be nested"),
        ("audience", "USERS", "event('a').count(property('x')) >= 1", "expected ')'"),
        ("audience", "USERS", "event('a').sum(property('x') as string) >= 1", "does not take 'as'"),
    ],
)
def test_semantic_errors_are_rejected_with_a_reason(kind, audience_type, query, fragment):
    with pytest.raises(cql.CQLError) as raised:
        cql.validate(query, kind=kind, audience_type=audience_type)
    assert fragment in raised.value.message


def test_at_most_fifty_primary_expressions():
    fifty = " AND ".join(f"trait('t{i}') = 1" for i in range(50))
    cql.validate(fifty, kind="audience", audience_type="USERS")
    with pytest.raises(cql.CQLError, match="at most 50"):
        cql.validate(fifty + " AND trait('one_more') = 1", kind="audience", audience_type="USERS")


@pytest.mark.parametrize(
    "query,cadence",
    [
        ("event('a').within(7 days).count() >= 1", "REALTIME"),
        ("event('a').where(event('b').within(parent: 1 days).count() >= 1).count() >= 1", "BATCH"),
        ("event('a').between(7 days, 10 days).count() >= 1", "BATCH"),
    ],
)
def test_cadence_follows_the_batch_only_features(query, cadence):
    assert cql.validate(query, kind="audience", audience_type="USERS").cadence == cadence


def test_analysis_reports_references_and_largest_window():
    analysis = cql.validate(
        "trait('vip') = true AND event('a').within(3 days).count() >= 1 AND event('b').within(10 days).count() >= 1",
        kind="audience",
        audience_type="USERS",
    )
    assert analysis.referenced_traits == ("vip",)
    assert analysis.event_names == ("a", "b")
    assert analysis.largest_window_hours == 240


GRAMMAR_PIECES = st.sampled_from(
    ["event('a')", ".count()", ">=", "1", "AND", "OR", "NOT", "(", ")", ".where(", "property('p')", "trait('t')",
     "=", "'x'", ".within(", "7 days", ",", "parent:", ".sum(", ".mode(", "ANY", "ALL", "2024-01-01", ".", "\\", "'"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(GRAMMAR_PIECES, max_size=25).map(" ".join))
def test_parser_never_crashes_on_grammar_fragments(text):
    _accepts_or_explains(text)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_parser_never_crashes_on_arbitrary_text(text):
    _accepts_or_explains(text)


def _accepts_or_explains(text):
    for kind in ("audience", "computed_trait"):
        try:
            cql.validate(text, kind=kind, audience_type="ACCOUNTS")
        except cql.CQLError as error:
            assert error.position.line >= 1 and error.position.column >= 1
            assert error.message


@pytest.mark.parametrize("name", ['a"', "a\\\\\\\\b", 'order."total"'])
def test_a_name_no_engine_can_address_is_refused_where_it_is_written(name):
    query = f"event('Order Completed').where(property('{name}') = 1).count() >= 1"
    with pytest.raises(cql.CQLError) as refused:
        cql.parse(query)
    assert "double quote or a backslash" in refused.value.message
    assert refused.value.position.column == query.index("property(") + len("property(") + 1
