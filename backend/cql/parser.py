"""Recursive-descent parser for CQL (`reference/engine-semantics.md` §1.3).

Precedence, loosest first: `OR`, `AND`, the prefixes `NOT`/`ANY`/`ALL`, then a comparison, which is a
chain (`event(...).where(...).count()`, `trait(...)`, a literal) ended by a comparator call
(`.at_least(3)`) or a sugar operator (`>= 3`). Junction keywords are case-insensitive. The pre-2024
function names (`eq`, `gte`, `is_set`, `contains_one`, ...) are accepted as aliases, and `true`/`false`
are boolean literals (audience membership traits are booleans: `trait('vip') = true`). Whether a node
may stand where it stands (boolean vs scalar, `property()` placement, ...) is decided by `checks`.
"""

from __future__ import annotations

import difflib
import functools
import math
import re

from backend.cql import ast
from backend.cql.errors import CQLError
from backend.cql.lexer import Kind, Token, tokenize

JUNCTIONS = {"AND", "OR", "NOT", "ANY", "ALL"}
SUGAR_OPERATORS = {
    "=": "equals",
    "==": "equals",
    "!=": "differs",
    ">": "greater_than",
    ">=": "at_least",
    "<": "less_than",
    "<=": "at_most",
}
COMPARATOR_ALIASES = {
    "eq": "equals",
    "neq": "differs",
    "gt": "greater_than",
    "gte": "at_least",
    "lt": "less_than",
    "lte": "at_most",
    "is_set": "exists",
    "is_null": "absent",
    "contains_one": "contains",
}
# What each comparator takes between its parentheses.
COMPARATORS = {
    "equals": "value",
    "differs": "value",
    "greater_than": "value",
    "at_least": "value",
    "less_than": "value",
    "at_most": "value",
    "absent": "nothing",
    "exists": "nothing",
    "contains": "values",
    "omits": "value",
    "starts_with": "value",
    "ends_with": "value",
    "one_of": "values",
    "none_of": "values",
    "before_date": "timestamp",
    "after_date": "timestamp",
    "within_last": "duration",
    "within_next": "duration",
    "before_last": "duration",
    "after_next": "duration",
}
STREAM_FILTERS = {"where", "sources", "within", "between", "expires_after"}
REDUCERS = {"count", "sum", "avg", "min", "max", "mode", "first", "last", "unique"}
REDUCER_TYPES = {"min": {"number", "string"}, "max": {"number", "string"}, "mode": {"number", "string", "array"}}
STREAM_EXTRACTORS = {"event", "entity"}
SCALAR_EXTRACTORS = {"trait", "property", "context", "literal"}
UNADDRESSABLE = ('"', "\\")  # in a key (a backslash escaping a dot aside): no JSON path of SQLite or DuckDB reaches it
UNITS = {
    "second": "seconds",
    "seconds": "seconds",
    "hour": "hours",
    "hours": "hours",
    "day": "days",
    "days": "days",
}
KNOWN_FUNCTIONS = sorted(
    set(COMPARATORS) | set(COMPARATOR_ALIASES) | STREAM_FILTERS | REDUCERS | STREAM_EXTRACTORS | SCALAR_EXTRACTORS
)
MAX_DEPTH = 32  # parentheses, NOT/ANY/ALL and nested where() together
MAX_NUMBER = 2**53 - 1  # every whole number a JSON client and a 64-bit database hold exactly
MAX_DURATION_HOURS = 100 * 366 * 24  # a century
_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")
_ESCAPED_DOT = re.compile(r"\\+\.")


@functools.lru_cache(maxsize=1024)
def parse(text: str) -> ast.Node:
    """Parse a whole definition; raises `CQLError` naming the position and what was expected. A tree
    is immutable, so each definition is parsed once per process: a realtime pass asks for the tree of
    every computation it recomputes, twice (to check it and to compile it)."""
    return _Parser(text).definition()


def split_path(name: str) -> tuple[str, ...]:
    """`'a.b\\.c'` → `('a', 'b.c')`: dots traverse nested objects unless escaped with a backslash."""
    return tuple(_ESCAPED_DOT.sub(".", part) for part in _UNESCAPED_DOT.split(name))


def suggestion(name: str) -> str:
    """A 'did you mean' hint for an unknown function name, or an empty string."""
    close = difflib.get_close_matches(name.lower(), KNOWN_FUNCTIONS, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}()?" if close else ""


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    # token helpers

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def at(self, text: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind in (Kind.PUNCT, Kind.OP) and token.text == text

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind is Kind.IDENT and token.text.upper() in words

    def expect(self, text: str) -> Token:
        if not self.at(text):
            self.fail(f"expected {text!r}", (text,))
        return self.advance()

    def enter(self) -> None:
        """One level deeper; refuses a definition nested beyond MAX_DEPTH."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"definitions may nest at most {MAX_DEPTH} levels deep (parentheses, NOT, ANY/ALL and "
                      "where() together)")

    def fail(self, wanted: str, expected: tuple[str, ...] = ()) -> None:
        token = self.peek()
        raise CQLError(f"{wanted} but found {token.describe()}", token.position, expected)

    # grammar

    def definition(self) -> ast.Node:
        if self.peek().kind is Kind.END:
            self.fail("expected an expression such as event('Order Completed').count() >= 1")
        node = self.or_expression()
        if self.peek().kind is not Kind.END:
            self.fail("expected AND, OR or the end of the query", ("AND", "OR"))
        return node

    def or_expression(self) -> ast.Node:
        self.enter()
        position = self.peek().position
        operands = [self.and_expression()]
        while self.at_keyword("OR"):
            self.advance()
            operands.append(self.and_expression())
        self.depth -= 1
        return operands[0] if len(operands) == 1 else ast.Or(tuple(operands), position)

    def and_expression(self) -> ast.Node:
        position = self.peek().position
        operands = [self.prefixed()]
        while self.at_keyword("AND"):
            self.advance()
            operands.append(self.prefixed())
        return operands[0] if len(operands) == 1 else ast.And(tuple(operands), position)

    def prefixed(self) -> ast.Node:
        token = self.peek()
        if self.at_keyword("NOT", "ANY", "ALL"):
            self.advance()
            self.enter()
            operand = self.prefixed()
            self.depth -= 1
            if token.text.upper() == "NOT":
                return ast.Not(operand, token.position)
            return ast.Quantified(token.text.upper(), operand, token.position)
        if self.at("("):
            self.advance()
            inner = self.or_expression()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> ast.Node:
        subject = self.chain()
        token = self.peek()
        if isinstance(subject, ast.Stream) and token.kind is Kind.OP:
            raise CQLError(
                f"{subject.source}('{subject.name}') is a stream; reduce it before comparing, "
                f"for example {subject.source}('{subject.name}').count() {token.text} …",
                token.position,
                tuple(sorted(REDUCERS)),
            )
        if isinstance(subject, (ast.Comparison, ast.Stream)):
            return subject
        if token.kind is Kind.OP:
            self.advance()
            argument = self.scalar_argument()
            return ast.Comparison(subject, SUGAR_OPERATORS[token.text], (argument,), token.position)
        return subject

    def chain(self) -> ast.Node:
        token = self.peek()
        if token.kind in (Kind.STRING, Kind.NUMBER, Kind.DATE, Kind.TIMESTAMP) or self.at_boolean():
            return self.comparator_tail(self.literal())
        if token.kind is not Kind.IDENT or token.text.upper() in JUNCTIONS:
            self.fail("expected an expression such as event('…'), trait('…') or a literal")
        if token.text in STREAM_EXTRACTORS:
            return self.stream_chain()
        return self.comparator_tail(self.scalar_extractor())

    def stream_chain(self) -> ast.Node:
        name_token = self.advance()
        self.expect("(")
        stream = ast.Stream(name_token.text, self.string("a name in quotes"), (), name_token.position)
        self.expect(")")
        while self.at(".") and self.peek(1).kind is Kind.IDENT:
            self.advance()
            method = self.advance()
            if method.text in STREAM_FILTERS:
                stream = ast.Stream(stream.source, stream.name, (*stream.filters, self.stream_filter(method)), stream.position)
            elif method.text in REDUCERS:
                return self.comparator_tail(self.reduction(stream, method))
            elif method.text in COMPARATORS or method.text in COMPARATOR_ALIASES:
                raise CQLError(
                    f"{method.text}() cannot follow {stream.source}('{stream.name}') directly; "
                    "reduce the stream first, for example .count()",
                    method.position,
                    tuple(sorted(REDUCERS)),
                )
            else:
                self.unknown_function(method)
        return stream

    def stream_filter(self, method: Token) -> ast.StreamFilter:
        self.expect("(")
        if method.text == "where":
            result: ast.StreamFilter = ast.Where(self.or_expression(), method.position)
        elif method.text == "sources":
            result = ast.Sources(self.source_exclusions(), method.position)
        elif method.text == "within":
            parent = self.parent_prefix()
            result = ast.Within(self.duration(), parent, method.position)
        elif method.text == "between":
            start = self.duration()
            self.expect(",")
            result = ast.Between(start, self.duration(), method.position)
        else:
            result = ast.ExpiresAfter(self.duration(), method.position)
        self.expect(")")
        return result

    def source_exclusions(self) -> tuple[str, ...]:
        self.expect("{")
        if not self.at_word("exclude"):
            self.fail("expected 'exclude'", ("exclude",))
        self.advance()
        self.expect(":")
        bracketed = self.at("[")
        if bracketed:
            self.advance()
        ids = [self.string("a source id in quotes")]
        while self.at(","):
            self.advance()
            ids.append(self.string("a source id in quotes"))
        if bracketed:
            self.expect("]")
        self.expect("}")
        return tuple(ids)

    def reduction(self, stream: ast.Stream, method: Token) -> ast.Reduction:
        self.expect("(")
        reducer = method.text
        if reducer == "count":
            self.expect(")")
            return ast.Reduction(stream, "count", None, None, None, method.position)
        argument = self.event_property()
        as_type = None
        if self.at_word("as"):
            as_token = self.advance()
            allowed = REDUCER_TYPES.get(reducer)
            if not allowed:
                raise CQLError(f"{reducer}() does not take 'as'; only min, max and mode do", as_token.position)
            type_token = self.peek()
            if type_token.kind is not Kind.IDENT or type_token.text not in allowed:
                self.fail(f"expected one of {', '.join(sorted(allowed))} after 'as'", tuple(sorted(allowed)))
            as_type = self.advance().text
        min_frequency = None
        if reducer == "mode":
            self.expect(",")
            min_frequency = self.integer("the minimum frequency")
        self.expect(")")
        if reducer == "unique" and self.at(".") and self.peek(1).text == "count":
            self.advance()
            self.advance()
            self.expect("(")
            self.expect(")")
            reducer = "unique_count"
        return ast.Reduction(stream, reducer, argument, as_type, min_frequency, method.position)

    def event_property(self) -> ast.PropertyRef | ast.ContextRef:
        token = self.peek()
        if token.kind is Kind.IDENT and token.text in ("property", "context"):
            node = self.scalar_extractor()
            assert isinstance(node, (ast.PropertyRef, ast.ContextRef))
            return node
        self.fail("expected property('…') or context('…')", ("property", "context"))
        raise AssertionError("unreachable")

    def scalar_extractor(self) -> ast.Scalar:
        token = self.advance()
        if token.text not in SCALAR_EXTRACTORS:
            self.index -= 1
            self.unknown_function(token)
        self.expect("(")
        if token.text == "literal":
            node: ast.Scalar = self.literal()
        elif token.text == "property":
            parent = self.parent_prefix()
            node = ast.PropertyRef(self.path(), parent, token.position)
        elif token.text == "context":
            node = ast.ContextRef(self.path(), token.position)
        else:
            node = ast.TraitRef(self.path(), token.position)
        self.expect(")")
        return node

    def comparator_tail(self, subject: ast.Scalar) -> ast.Node:
        if not (self.at(".") and self.peek(1).kind is Kind.IDENT):
            return subject
        self.advance()
        method = self.advance()
        name = COMPARATOR_ALIASES.get(method.text, method.text)
        if name not in COMPARATORS:
            if name in REDUCERS or name in STREAM_FILTERS:
                raise CQLError(
                    f"{name}() applies to event('…') or entity('…') streams, not to a single value",
                    method.position,
                )
            self.unknown_function(method)
        self.expect("(")
        arguments = self.comparator_arguments(COMPARATORS[name])
        self.expect(")")
        return ast.Comparison(subject, name, arguments, method.position)

    def comparator_arguments(self, shape: str) -> tuple:
        if shape == "nothing":
            return ()
        if shape == "duration":
            return (self.duration(),)
        if shape == "timestamp":
            token = self.peek()
            if token.kind not in (Kind.STRING, Kind.DATE, Kind.TIMESTAMP):
                self.fail("expected an ISO-8601 timestamp such as 2023-12-07T18:50:00Z")
            return (self.literal(),)
        if shape == "value":
            return (self.scalar_argument(),)
        bracketed = self.at("[")
        if bracketed:
            self.advance()
        values = [self.scalar_argument()]
        while self.at(","):
            self.advance()
            values.append(self.scalar_argument())
        if bracketed:
            self.expect("]")
        return tuple(values)

    def scalar_argument(self) -> ast.Scalar:
        token = self.peek()
        if token.kind in (Kind.STRING, Kind.NUMBER, Kind.DATE, Kind.TIMESTAMP) or self.at_boolean():
            return self.literal()
        if token.kind is Kind.IDENT and token.text in SCALAR_EXTRACTORS:
            return self.scalar_extractor()
        self.fail("expected a literal, trait('…'), property('…') or context('…')")
        raise AssertionError("unreachable")

    # leaves

    def literal(self) -> ast.Literal:
        token = self.peek()
        kinds = {Kind.STRING: "string", Kind.DATE: "date", Kind.TIMESTAMP: "timestamp"}
        if token.kind is Kind.NUMBER:
            self.check_number(token)
            self.advance()
            return ast.Literal(token.value, "float" if isinstance(token.value, float) else "int", token.position)
        if token.kind in kinds:
            self.advance()
            return ast.Literal(token.value, kinds[token.kind], token.position)
        if self.at_boolean():
            self.advance()
            return ast.Literal(token.text == "true", "boolean", token.position)
        self.fail("expected a literal (a number, a 'string', a date or a timestamp)")
        raise AssertionError("unreachable")

    def string(self, what: str) -> str:
        token = self.peek()
        if token.kind is not Kind.STRING:
            self.fail(f"expected {what}")
        self.advance()
        return str(token.value)

    def path(self) -> tuple[str, ...]:
        token = self.peek()
        name = self.string("a name in quotes")
        path = split_path(name)
        if not all(path):
            raise CQLError(f"{name!r} is not a valid name: it is empty or has an empty segment", token.position)
        if any(character in part for part in path for character in UNADDRESSABLE):
            raise CQLError(f"{name!r} is not a valid name: a double quote or a backslash in a name is something the "
                           "JSON paths of SQLite and DuckDB cannot address", token.position)
        return path

    def integer(self, what: str) -> int:
        token = self.peek()
        if token.kind is not Kind.NUMBER or not isinstance(token.value, int):
            self.fail(f"expected a whole number for {what}")
        self.check_number(token)
        self.advance()
        return int(token.value)  # type: ignore[arg-type]

    def check_number(self, token: Token) -> None:
        value = token.value
        if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_NUMBER:  # type: ignore[arg-type]
            raise CQLError(f"numbers may be at most {MAX_NUMBER} in size", token.position)

    def duration(self) -> ast.Duration:
        position = self.peek().position
        amount = self.integer("the duration")
        unit = self.peek()
        if unit.kind is not Kind.IDENT or unit.text.lower() not in UNITS:
            self.fail("expected a time unit (hours or days)", ("hours", "days"))
        self.advance()
        duration = ast.Duration(amount, UNITS[unit.text.lower()], position)
        if duration.hours > MAX_DURATION_HOURS:
            raise CQLError(f"a duration may be at most 100 years ({MAX_DURATION_HOURS} hours)", position)
        return duration

    def parent_prefix(self) -> bool:
        if self.at_word("parent") and self.at(":", 1):
            self.advance()
            self.advance()
            return True
        return False

    def at_boolean(self) -> bool:
        return self.at_word("true") or self.at_word("false")

    def at_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind is Kind.IDENT and token.text == word

    def unknown_function(self, token: Token) -> None:
        raise CQLError(f"unknown function {token.text}(){suggestion(token.text)}", token.position)
