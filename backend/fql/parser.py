"""Recursive-descent parser from FQL text to the syntax tree.

Precedence, loosest first: `or`, `and`, comparisons (`=`, `!=`, `<`, `<=`, `>`, `>=`, `in`), then
unary `!`, which applies to the operand right after it (`!contains(a, 'b')`, `!( x = 1 )`). The whole
text `all` matches every event. Functions are checked by name and number of arguments here, so an
`if` that would fail at run time is rejected when the filter is saved.
"""

from __future__ import annotations

from backend.fql.ast import Binary, Call, ListOf, Literal, MatchAll, Node, Not, Path
from backend.fql.errors import FQLError
from backend.fql.lexer import Kind, Token, tokenize

ARITY = {
    "contains": 2,
    "length": 1,
    "lowercase": 1,
    "uppercase": 1,
    "snakecase": 1,
    "kebabcase": 1,
    "titlecase": 1,
    "typeof": 1,
    "match": 2,
    "bool": 1,
    "string": 1,
    "number": 1,
}
MAX_DEPTH = 32
_COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
_CONSTANTS = {"null": None, "true": True, "false": False}


def parse(text: str) -> Node:
    """Parse one `if` expression; raises FQLError with the position of the first problem."""
    if text.strip() == "all":
        return MatchAll()
    return _Parser(tokenize(text)).run()


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.depth = 0
        self.tokens = tokens
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, kind: Kind, *texts: str) -> bool:
        token = self.current
        return token.kind is kind and (not texts or token.text in texts)

    def expect(self, kind: Kind, text: str) -> Token:
        if not self.at(kind, text):
            raise self.error(f"expected {text!r}", (text,))
        return self.advance()

    def enter(self) -> None:
        """One level deeper (a parenthesis or a '!'); refuses what would nest beyond MAX_DEPTH."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expressions may nest at most {MAX_DEPTH} levels deep (parentheses and '!')")

    def error(self, message: str, expected: tuple[str, ...] = ()) -> FQLError:
        return FQLError(f"{message}, found {self.current.describe()}", self.current.position, expected)

    def run(self) -> Node:
        if self.at(Kind.END):
            raise self.error("expected an expression", ("expression",))
        node = self.disjunction()
        if not self.at(Kind.END):
            raise self.error("expected 'and', 'or' or the end of the expression", ("and", "or", "end"))
        return node

    def disjunction(self) -> Node:
        self.enter()
        node = self.conjunction()
        while self.at(Kind.KEYWORD, "or"):
            self.advance()
            node = Binary("or", node, self.conjunction())
        self.depth -= 1
        return node

    def conjunction(self) -> Node:
        node = self.comparison()
        while self.at(Kind.KEYWORD, "and"):
            self.advance()
            node = Binary("and", node, self.comparison())
        return node

    def comparison(self) -> Node:
        left = self.unary()
        if self.at(Kind.OP, *_COMPARISONS):
            operator = self.advance().text
            return Binary(operator, left, self.unary())
        if self.at(Kind.KEYWORD, "in"):
            self.advance()
            return Binary("in", left, self.unary())
        return left

    def unary(self) -> Node:
        if self.at(Kind.OP, "!"):
            self.advance()
            self.enter()
            node = Not(self.unary())
            self.depth -= 1
            return node
        return self.operand()

    def operand(self) -> Node:
        token = self.current
        if token.kind in (Kind.STRING, Kind.NUMBER):
            self.advance()
            return Literal(token.value)
        if token.kind is Kind.KEYWORD and token.text in _CONSTANTS:
            self.advance()
            return Literal(_CONSTANTS[token.text])
        if self.at(Kind.PUNCT, "("):
            self.advance()
            node = self.disjunction()
            self.expect(Kind.PUNCT, ")")
            return node
        if self.at(Kind.PUNCT, "["):
            return self.list_literal()
        if token.kind is Kind.PATH:
            self.advance()
            if self.at(Kind.PUNCT, "("):
                return self.call(token)
            return Path(token.value)
        raise self.error("expected a value, a field path, a function call or '('", ("value", "field", "("))

    def list_literal(self) -> Literal | ListOf:
        """A list of values and field paths (`"track" in [event, type]`, as Segment's matchers allow)."""
        self.expect(Kind.PUNCT, "[")
        items: list[Literal | Path] = []
        while not self.at(Kind.PUNCT, "]"):
            node = self.operand()
            if not isinstance(node, (Literal, Path)):
                raise FQLError("lists may only hold values and field paths", self.tokens[self.index - 1].position,
                               ("value", "field"))
            items.append(node)
            if not self.at(Kind.PUNCT, "]"):
                self.expect(Kind.PUNCT, ",")
        self.advance()
        if all(isinstance(item, Literal) for item in items):
            return Literal([item.value for item in items])
        return ListOf(tuple(items))

    def call(self, name: Token) -> Call:
        function = name.text
        if function not in ARITY:
            known = ", ".join(sorted(ARITY))
            raise FQLError(f"unknown function {function!r}; FQL functions are {known}", name.position, tuple(sorted(ARITY)))
        self.expect(Kind.PUNCT, "(")
        arguments: list[Node] = []
        while not self.at(Kind.PUNCT, ")"):
            arguments.append(self.disjunction())
            if not self.at(Kind.PUNCT, ")"):
                self.expect(Kind.PUNCT, ",")
        self.advance()
        if len(arguments) != ARITY[function]:
            raise FQLError(
                f"{function}() takes {ARITY[function]} argument(s), got {len(arguments)}", name.position
            )
        return Call(function, tuple(arguments))
