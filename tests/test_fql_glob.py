"""`match()` globs: the linear-time matcher agrees with Go's `path.Match` rules (segmentio/glob, with `*`
and `?` matching `/`) on random patterns and texts, and adversarial ones cannot slow it down."""

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.fql import evaluate, matches, parse
from backend.fql.glob import MAX_PATTERN, glob_match


class BadPattern(Exception):
    pass


def reference_match(pattern: str, text: str) -> bool:
    """Go's path.Match, transcribed rule by rule (chunks between stars, each matched at the leftmost
    place it fits), without the '/' exception and with a malformed pattern matching nothing."""
    try:
        _validate(pattern)
        return _go_match(pattern, text)
    except BadPattern:
        return False


def _validate(pattern: str) -> None:
    while pattern:
        _, chunk, pattern = _scan_chunk(pattern)
        while chunk:
            chunk = _skip_item(chunk)


def _go_match(pattern: str, text: str) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and chunk == "":
            return True
        rest = _match_chunk(chunk, text)
        if rest is not None and (rest == "" or pattern):
            text = rest
            continue
        if star:
            for i in range(len(text)):
                rest = _match_chunk(chunk, text[i + 1:])
                if rest is not None:
                    if not pattern and rest:
                        continue
                    text = rest
                    break
            else:
                return False
            continue
        return False
    return text == ""


def _scan_chunk(pattern):
    star = False
    while pattern.startswith("*"):
        pattern, star = pattern[1:], True
    in_range, i = False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            i += 1
        elif c == "[":
            in_range = True
        elif c == "]":
            in_range = False
        elif c == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _skip_item(chunk):
    if chunk[0] == "[":
        chunk = chunk[1:]
        if chunk.startswith("^"):
            chunk = chunk[1:]
        ranges = 0
        while True:
            if chunk.startswith("]") and ranges:
                return chunk[1:]
            _, chunk = _get_esc(chunk)
            if chunk.startswith("-"):
                _, chunk = _get_esc(chunk[1:])
            ranges += 1
    if chunk[0] == "\\":
        if len(chunk) == 1:
            raise BadPattern
        return chunk[2:]
    return chunk[1:]


def _get_esc(chunk):
    if not chunk or chunk[0] in "-]":
        raise BadPattern
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern
    if len(chunk) == 1:
        raise BadPattern
    return chunk[0], chunk[1:]


def _match_chunk(chunk, text):
    while chunk:
        if not text:
            return None
        if chunk[0] == "[":
            char, text, chunk = text[0], text[1:], chunk[1:]
            negated = chunk.startswith("^")
            chunk = chunk[1:] if negated else chunk
            found, ranges = False, 0
            while True:
                if chunk.startswith("]") and ranges:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk.startswith("-"):
                    hi, chunk = _get_esc(chunk[1:])
                found = found or lo <= char <= hi
                ranges += 1
            if found == negated:
                return None
        elif chunk[0] == "?":
            text, chunk = text[1:], chunk[1:]
        else:
            if chunk[0] == "\\":
                chunk = chunk[1:]
            if chunk[0] != text[0]:
                return None
            text, chunk = text[1:], chunk[1:]
    return text


PATTERN_PIECES = st.sampled_from(["a", "b", "/", "*", "?", "[ab]", "[^a]", "[a-c]", "\\*", "\\[", "[", "]", "-",
                                  "[\\]]", "[]", "\\", "[a-]", "[^]", "[!a]", "!", "é"])
TEXTS = st.text(alphabet="ab/c*[]-!é", max_size=12)


@settings(max_examples=3000, deadline=None)
@given(pieces=st.lists(PATTERN_PIECES, max_size=8), text=TEXTS)
def test_the_matcher_agrees_with_go_path_match_rules(pieces, text):
    pattern = "".join(pieces)
    assert glob_match(pattern, text) is reference_match(pattern, text), (pattern, text)


def test_segment_specific_rules():
    assert glob_match("a*", "ab/c"), "a star crosses '/' in Segment's glob"
    assert glob_match("a?c", "a/c")
    assert glob_match("[!a]", "!") and glob_match("[!a]", "a"), "'!' is a literal in a class; only '^' negates"
    assert not glob_match("[^a]", "a")
    assert not glob_match("abc\\", "abc"), "a trailing backslash is malformed"
    assert not glob_match("[a", "[a") and not glob_match("[]", "]")
    assert glob_match("x" * MAX_PATTERN, "x" * MAX_PATTERN)
    assert not glob_match("x" * (MAX_PATTERN + 1), "x" * (MAX_PATTERN + 1)), "an overlong pattern matches nothing"


# Backtracking matchers took 19.5 s and 327 s on the reported inputs; the automaton takes milliseconds
# on every input here. The bound sits far from both, so a loaded machine's pauses (one evaluation
# here once took 0.98 s for 36 ms of work) never reach it. Figures are in the README, from bench/.
BACKTRACKING_SECONDS = 5.0


def slowest_evaluation(condition: str, events: list[dict]) -> float:
    node = parse(condition)
    slowest = 0.0
    for event in events:
        started = time.perf_counter()
        matches(node, event)
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


def test_the_reported_freezes_take_milliseconds():
    """Both reproductions froze the process; the bound guards against going back to backtracking,
    it is not the 50 ms target."""
    path_filter = slowest_evaluation("match(context.page.path, '*/*/*/*.png')",
                                     [{"context": {"page": {"path": "/." * 400 + "x"}}}])
    sender_pattern = slowest_evaluation("match(properties.text, properties.pattern)",
                                        [{"properties": {"text": "a" * 500, "pattern": "*a*a*a*a*b"}},
                                         {"properties": {"text": "a" * 16_000, "pattern": "*a" * 2_000 + "*b"}}])
    assert path_filter < BACKTRACKING_SECONDS and sender_pattern < BACKTRACKING_SECONDS


@settings(max_examples=60, deadline=None)
@given(unit=st.sampled_from(["*a", "*?", "?*", "*[a-z]", "*[^b]", "a*", "*\\*", "**a"]),
       repeat=st.integers(1, 2_000), tail=st.sampled_from(["b", "*b", "[b]", "?b", ""]),
       text=st.sampled_from(["a" * 16_000, "ab" * 8_000, "/." * 8_000 + "x", "é" * 16_000]))
def test_adversarial_patterns_cost_time_linear_in_the_text(unit, repeat, tail, text):
    pattern = (unit * repeat + tail)[:MAX_PATTERN]
    started = time.perf_counter()
    glob_match(pattern, text)
    assert time.perf_counter() - started < BACKTRACKING_SECONDS, (unit, repeat, tail)


def test_a_space_filter_is_evaluated_outside_the_write_lock(store, monkeypatch):
    """While one space's filter is being evaluated, another space's batch is stored."""
    from store.catalog import filters, spaces
    from store.ingest import ingest
    from tests.ingest_helpers import rows, send

    slow, fast = (spaces.create_space(store, name).space.id for name in ("Slow", "Fast"))
    filters.create_filter(store, slow, "Bots", "properties.bot = true", enabled=None, description=None, drop=None)
    evaluating, release = threading.Event(), threading.Event()
    real = ingest.fql.matches

    def held(node, document):
        evaluating.set()
        assert release.wait(10), "the other space's batch never got through"
        return real(node, document)

    monkeypatch.setattr(ingest.fql, "matches", held)
    worker = threading.Thread(target=send, args=(store, slow, {"type": "track", "userId": "u", "event": "E"}))
    worker.start()
    assert evaluating.wait(10)
    send(store, fast, {"type": "track", "userId": "v", "event": "E"})
    assert rows(store, "select count(*) from event where space_id = :s", s=fast) == [(1,)]
    release.set()
    worker.join(10)
    assert rows(store, "select count(*) from event where space_id = :s", s=slow) == [(1,)]


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("a*/b", "a/c/b", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[^b-d]", "abc", False),
    ("a?b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("[\\]a]", "]", True),
    ("[x\\-]", "-", True),
    ("[]a]", "]", False),
    ("[x-]", "x", False),
    ("[a-b-c]", "a", False),
    ("[^bc", "a", False),
    ("*x", "xxx", True),
])
def test_the_path_match_cases_segment_s_matchers_are_checked_against(pattern, text, expected):
    assert glob_match(pattern, text) is expected
    assert reference_match(pattern, text) is expected


def test_lists_may_hold_field_paths():
    event = {"type": "track", "event": "Clicked"}
    assert matches(parse('"track" in [event, type]'), event)
    assert matches(parse('"Clicked" in [event, "x", 1]'), event)
    assert not matches(parse('"identify" in [event, type]'), event)


def test_one_evaluation_reads_a_bounded_amount_of_text(monkeypatch):
    many = parse(" or ".join([f"match(properties.t, '*{n}')" for n in range(199)] + ["match(properties.t, '*!')"]))
    assert matches(many, {"properties": {"t": "a" * 100 + "!"}}), "small texts: every call runs"
    assert not matches(many, {"properties": {"t": "a" * 32_000 + "!"}}), \
        "the budget ran out before the last call could match: no match, and the filter keeps the event"
    ran = []
    monkeypatch.setattr(evaluate, "glob_match", lambda pattern, text: ran.append((pattern, text)) or glob_match(pattern, text))
    long_patterns = parse(" or ".join(f"match(properties.t, '{'*a' * 2000}{n}')" for n in range(200)))
    assert not matches(long_patterns, {"properties": {"t": "a" * 32_000}})
    assert 0 < len(ran) < 200
    assert sum(len(text) * (1 + len(pattern) // 1024) for pattern, text in ran) <= evaluate.MATCH_BUDGET


@pytest.mark.parametrize(("condition", "event", "expected"), [
    ('properties.value = true', {"properties": {"value": True}}, True),
    ('properties.value = false', {"properties": {"value": True}}, False),
    ('properties.value = "x"', {"properties": {"value": "y"}}, False),
    ('properties.value != "x"', {"properties": {"value": "y"}}, True),
    ('properties.value < 10', {"properties": {"value": 5}}, True),
    ('properties.value >= 10', {"properties": {"value": 10}}, True),
    ('contains(properties.value, "b")', {"properties": {"value": "abc"}}, True),
    ('!contains(properties.value, "b")', {"properties": {"value": "xyz"}}, True),
    ('match(properties.value, "x*")', {"properties": {"value": "xabc"}}, True),
    ('!match(properties.value, "x*")', {"properties": {"value": "xabc"}}, False),
    ('match(properties.value, "*x")', {"properties": {"value": "abcx"}}, True),
    ('properties.value != null', {"properties": {"value": None}}, False),
    ('properties.value = null', {"properties": {}}, True),
    ('type = "track" or type = "identify"', {"type": "group"}, False),
    ('event = "Page Viewed" and (properties.name = "Catalog" or properties.name = "Home")',
     {"event": "Page Viewed", "properties": {"name": "Home"}}, True),
    ('event = "Page Viewed" and context.ip = "1.1.1.1"', {"event": "Page Viewed"}, False),
    # Dialect difference: Segment's FQL (Go, tsub) is strictly typed, so a string never equals or
    # orders against a number; the Actions subscription validator compares them loosely.
    ('properties.value = 123', {"properties": {"value": "123"}}, False),
    ('properties.value < 10', {"properties": {"value": "5"}}, False),
])
def test_the_subscription_conditions_segment_s_builder_writes(condition, event, expected):
    assert matches(parse(condition), event) is expected
