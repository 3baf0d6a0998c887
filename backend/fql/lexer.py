"""Turns FQL text into tokens, following Segment's FQL lexer.

Strings are quoted with `'` or `"` and read up to the same quote, with no escape sequences. Numbers
may carry a sign and one decimal point. Field paths are identifiers joined by dots, where a backslash
makes the next character part of the name (`properties.product\\ 1.price`). `and`, `or`, `in` and
`null` are lowercase keywords; `true` and `false` are booleans. Unlike Segment's TypeScript port, a
comparison operator may follow an identifier without a space (`a<3`).
"""

from __future__ import annotations

from enum import Enum

from backend.syntax import Position, Token
from backend.fql.errors import FQLError


class Kind(Enum):
    PATH = "field path"
    STRING = "string"
    NUMBER = "number"
    KEYWORD = "keyword"
    OP = "operator"
    PUNCT = "punctuation"
    END = "end of expression"


KEYWORDS = {"and", "or", "in", "null", "true", "false"}
_OPERATORS = ("!=", ">=", "<=", "=", ">", "<", "!")
_PUNCTUATION = "()[],"
_DIGITS = set("0123456789")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def tokenize(text: str) -> list[Token]:
    """Split the whole expression into tokens, ending with one END token."""
    return _Lexer(text).run()


class _Lexer:
    def __init__(self, text: str):
        self.text = text
        self.index = 0
        self.line = 1
        self.line_start = 0

    def position(self, index: int | None = None) -> Position:
        at = self.index if index is None else index
        return Position(self.line, at - self.line_start + 1)

    def run(self) -> list[Token]:
        tokens: list[Token] = []
        while True:
            self.skip_space()
            if self.index >= len(self.text):
                tokens.append(Token(Kind.END, "", None, self.position()))
                return tokens
            tokens.append(self.next_token())

    def skip_space(self) -> None:
        while self.index < len(self.text) and self.text[self.index] in " \t\r\n":
            if self.text[self.index] == "\n":
                self.line, self.line_start = self.line + 1, self.index + 1
            self.index += 1

    def next_token(self) -> Token:
        char = self.text[self.index]
        start = self.position()
        if char in "'\"":
            return self.string(char, start)
        if char in _DIGITS or (char in "+-" and self.peek(1) in _DIGITS):
            return self.number(start)
        if char in _NAME_CHARS or char == "\\":
            return self.path(start)
        for operator in _OPERATORS:
            if self.text.startswith(operator, self.index):
                self.index += len(operator)
                return Token(Kind.OP, operator, operator, start)
        if char in _PUNCTUATION:
            self.index += 1
            return Token(Kind.PUNCT, char, char, start)
        raise FQLError(f"unexpected character {char!r}", start)

    def peek(self, offset: int) -> str:
        at = self.index + offset
        return self.text[at] if at < len(self.text) else ""

    def string(self, quote: str, start: Position) -> Token:
        end = self.text.find(quote, self.index + 1)
        if end < 0:
            raise FQLError(f"unterminated string: add the closing {quote}", start, (quote,))
        raw = self.text[self.index : end + 1]
        self.index = end + 1
        if "\n" in raw:
            self.line += raw.count("\n")
            self.line_start = self.index - (len(raw) - raw.rfind("\n") - 1)
        return Token(Kind.STRING, raw, raw[1:-1], start)

    def number(self, start: Position) -> Token:
        begin = self.index
        self.index += 1
        seen_point = False
        while self.index < len(self.text):
            char = self.text[self.index]
            if char == "." and not seen_point and self.peek(1) in _DIGITS:
                seen_point = True
            elif char not in _DIGITS:
                break
            self.index += 1
        text = self.text[begin : self.index]
        if self.index < len(self.text) and self.text[self.index] in _NAME_CHARS:
            raise FQLError(f"malformed number {text + self.text[self.index]!r}", start)
        value = float(text) if seen_point else int(text)
        return Token(Kind.NUMBER, text, value, start)

    def path(self, start: Position) -> Token:
        """A dotted field path, or a keyword, or a function name: the parser tells them apart."""
        begin = self.index
        segments: list[str] = []
        current: list[str] = []
        while self.index < len(self.text):
            char = self.text[self.index]
            if char == "\\":
                if self.index + 1 >= len(self.text):
                    raise FQLError("a backslash must be followed by the character it escapes", self.position())
                current.append(self.text[self.index + 1])
                self.index += 2
            elif char in _NAME_CHARS:
                current.append(char)
                self.index += 1
            elif char == "." and current:
                segments.append("".join(current))
                current = []
                self.index += 1
            else:
                break
        if not current:
            raise FQLError("a field path cannot end with '.'", self.position(), ("field name",))
        segments.append("".join(current))
        text = self.text[begin : self.index]
        if len(segments) == 1 and text in KEYWORDS:
            return Token(Kind.KEYWORD, text, text, start)
        return Token(Kind.PATH, text, tuple(segments), start)
