"""FQL: Segment's worked examples, the strict runtime rules, glob matching and parser robustness."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.fql import FQLError, matches, parse

EXAMPLE_EVENT = {
    "event": "Button Clicked",
    "type": "track",
    "context": {"library": {"name": "analytics.js", "version": "1.0"}},
    "properties": {"features": ["discounts", "dark-mode"]},
}


def check(text: str, event: dict = EXAMPLE_EVENT) -> bool:
    return matches(parse(text), event)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("event = 'Button Clicked'", True),
        ("context.path.path = '/login'", False),
        ("type = 'identify' or type = 'track'", True),
        ("match( context.library.version, '1.*' )", True),
        ("type = 'track' and ( event = 'Click' or match( event, 'Button *' ) )", True),
        ("!contains( context.library.name, 'js' )", False),
        ("'dark-mode' in properties.features", True),
        ("'blink' in properties.features", False),
    ],
)
def test_the_eight_documented_examples(text, expected):
    assert check(text) is expected


def test_all_matches_every_event():
    assert check("all", {})
    assert check("  all  ", {"type": "identify"})


def test_double_quoted_strings_and_negated_groups():
    assert check('type = "track"')
    assert check("!( type in ['track', 'identify'] )") is False
    assert check("!( type in ['page'] )") is True


def test_equality_is_strict_about_types():
    event = {"properties": {"n": 1, "s": "1", "b": True, "f": 1.0}}
    assert check("properties.n = 1", event)
    assert not check("properties.s = 1", event)
    assert check("properties.s != 1", event)
    assert not check("properties.b = 1", event)
    assert check("properties.f = 1", event)
    assert check("properties.missing = null", event)
    assert not check("properties.n = null", event)


def test_lists_and_objects_compare_in_order():
    event = {"properties": {"list": [1, 2], "object": {"a": 1, "b": 2}}}
    assert check("properties.list = [1, 2]", event)
    assert not check("properties.list = [2, 1]", event)
    assert check("properties.object != properties.list", event)


def test_ordering_needs_numbers_on_both_sides():
    event = {"properties": {"price": 10, "text": "10"}}
    assert check("properties.price > 9.5", event)
    assert check("properties.price <= 10", event)
    assert not check("properties.text > 9", event)
    assert not check("properties.missing < 1", event)
    assert check("properties.price>=-3", event)


def test_a_bare_field_is_true_only_when_it_holds_true():
    assert check("properties.enabled", {"properties": {"enabled": True}})
    assert not check("properties.enabled", {"properties": {"enabled": "true"}})
    assert not check("properties.enabled", {"properties": {}})


def test_a_non_boolean_result_never_matches():
    assert not check("properties.name", {"properties": {"name": "x"}})
    assert not check("lowercase(event)", EXAMPLE_EVENT)


def test_not_treats_null_as_false_and_other_types_as_no_match():
    assert check("!properties.missing", {})
    assert not check("!properties.name", {"properties": {"name": "x"}})


def test_in_is_strict_and_false_for_non_lists():
    event = {"properties": {"code": 1, "tag": None}}
    assert check("properties.code in [1, 2]", event)
    assert not check("properties.code in ['1']", event)
    assert not check("properties.tag in ['a']", event)
    assert check("properties.tag in ['a', null]", event)
    assert not check("'a' in properties.code", event)


def test_functions_follow_their_null_defaults():
    assert not check("contains(properties.x, 'a')", {})
    assert check("length(properties.x) = 0", {})
    assert check("lowercase(properties.x) = null", {})
    assert check("typeof(properties.x) = 'null'", {})
    assert not check("match(properties.x, '*')", {})


def test_length_counts_list_items_and_string_bytes():
    event = {"properties": {"a": "a", "kana": "ア", "list": [1, 2, 3], "object": {"k": 1}}}
    assert check("length(properties.a) = 1", event)
    assert check("length(properties.kana) = 3", event)
    assert check("length(properties.list) = 3", event)
    assert not check("length(properties.object) = 1", event)
    assert not check("length(properties.object) != 1 and length(properties.object) < 1", event)


def test_typeof_names_every_json_type():
    event = {"p": {"s": "x", "n": 1.5, "b": False, "l": [], "o": {}}}
    for field, name in [("s", "string"), ("n", "number"), ("b", "bool"), ("l", "list"), ("o", "object")]:
        assert check(f"typeof(p.{field}) = '{name}'", event)


def test_case_conversions():
    event = {"p": {"t": "test String"}}
    assert check("uppercase(p.t) = 'TEST STRING'", event)
    assert check("snakecase(p.t) = 'test_string'", event)
    assert check("kebabcase(p.t) = 'test-string'", event)
    assert check("titlecase(p.t) = 'Test String'", event)


def test_conversions():
    event = {"p": {"n": "42", "t": "TRUE", "x": 7}}
    assert check("number(p.n) = 42", event)
    assert check("bool(p.t)", event)
    assert check("string(p.x) = '7'", event)
    assert check("number(p.missing) = null", event)


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("Button Clicked", "Button *", True),
        ("ab/c", "a*", True),
        ("abc", "a?c", True),
        ("abc", "a?", False),
        ("bat", "[bc]at", True),
        ("rat", "[bc]at", False),
        ("d", "[a-f]", True),
        ("x", "[^a-f]", True),
        ("a", "[!a-f]", True),
        ("!", "[!a-f]", True),
        ("a*b", "a\\*b", True),
        ("axb", "a\\*b", False),
        ("Abc", "abc", False),
        ("abc", "[abc", False),
    ],
)
def test_glob_match_is_full_case_sensitive_and_false_when_malformed(text, pattern, expected):
    assert matches(parse(f"match(p, '{pattern}')"), {"p": text}) is expected


def test_escaped_characters_in_paths():
    event = {"properties": {"product 1": {"price": 5}, "a.b": True}}
    assert check("properties.product\\ 1.price = 5", event)
    assert check("properties.a\\.b", event)


def test_list_elements_by_index():
    assert check("properties.features.1 = 'dark-mode'")


def test_multi_line_expression():
    assert check("type = 'track'\n  and event = 'Button Clicked'")


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("event = ", 1, 9, "expected a value"),
        ("type = 'track' and", 1, 19, "expected a value"),
        ("foo(event)", 1, 1, "unknown function 'foo'"),
        ("contains(event)", 1, 1, "takes 2 argument"),
        ("event = 'x", 1, 9, "unterminated string"),
        ("type = 'a'\n or # ", 2, 5, "unexpected character"),
        ("(type = 'a'", 1, 12, "expected ')'"),
        ("type 'a'", 1, 6, "expected 'and', 'or'"),
        ("", 1, 1, "expected an expression"),
    ],
)
def test_invalid_expressions_name_the_position(text, line, column, fragment):
    with pytest.raises(FQLError) as raised:
        parse(text)
    assert (raised.value.position.line, raised.value.position.column) == (line, column)
    assert fragment in raised.value.message


_FRAGMENTS = st.sampled_from(
    ["event", "properties.x", "'s'", '"d"', "1", "-2.5", "null", "true", "and", "or", "in", "!", "=", "!=",
     "<", ">=", "(", ")", "[", "]", ",", "contains", "match", "length", "all", "\\", ".", " ", "\n", "#", "'"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=14).map(" ".join) | st.text(max_size=40))
def test_the_parser_never_crashes(text):
    try:
        node = parse(text)
    except FQLError as error:
        assert error.position.line >= 1 and error.position.column >= 1
    else:
        assert matches(node, EXAMPLE_EVENT) in (True, False)
