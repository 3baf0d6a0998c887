"""Turns CQL text into tokens, each remembering where it started.

Strings may be single- or double-quoted; a backslash before the quote character escapes it and every
other backslash is kept, so `trait('a\\.b')` still carries its escaped dot to the path splitter.
Dates (`2024-01-31`) and ISO-8601 timestamps (`2023-12-07T18:50:00Z`) may stand unquoted.
"""

from __future__ import annotations

import re
from enum import Enum

from backend.cql.errors import CQLError
from backend.syntax import Position, Token


class Kind(Enum):
    IDENT = "identifier"
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    TIMESTAMP = "timestamp"
    OP = "operator"
    PUNCT = "punctuation"
    END = "end of query"


_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w:])"
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = ("==", "!=", ">=", "<=", "=", ">", "<")
_PUNCTUATION = "().,:{}[]"


def tokenize(text: str) -> list[Token]:
    """Split the whole query into tokens, ending with one END token."""
    tokens: list[Token] = []
    index, line, line_start = 0, 1, 0
    while True:
        while index < len(text) and text[index].isspace():
            if text[index] == "\n":
                line, line_start = line + 1, index + 1
            index += 1
        position = Position(line, index - line_start + 1)
        if index >= len(text):
            tokens.append(Token(Kind.END, "", None, position))
            return tokens
        char = text[index]
        if char in "'\"":
            value, end = _read_string(text, index, position)
            tokens.append(Token(Kind.STRING, text[index:end], value, position))
            index = end
            continue
        if match := _DATETIME.match(text, index):
            literal = match.group(0)
            kind = Kind.TIMESTAMP if len(literal) > 10 else Kind.DATE
            tokens.append(Token(kind, literal, literal, position))
            index = match.end()
            continue
        if match := _NUMBER.match(text, index):
            literal = match.group(0)
            value = float(literal) if "." in literal else int(literal)
            tokens.append(Token(Kind.NUMBER, literal, value, position))
            index = match.end()
            continue
        if match := _IDENT.match(text, index):
            tokens.append(Token(Kind.IDENT, match.group(0), match.group(0), position))
            index = match.end()
            continue
        operator = next((op for op in _OPERATORS if text.startswith(op, index)), None)
        if operator:
            tokens.append(Token(Kind.OP, operator, operator, position))
            index += len(operator)
            continue
        if char in _PUNCTUATION:
            tokens.append(Token(Kind.PUNCT, char, char, position))
            index += 1
            continue
        raise CQLError(f"unexpected character {char!r}", position)


def _read_string(text: str, start: int, position: Position) -> tuple[str, int]:
    quote = text[start]
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            chars.append(following if following == quote else char + following)
            index += 2
            continue
        if char == quote:
            return "".join(chars), index + 1
        chars.append(char)
        index += 1
    raise CQLError(f"unterminated string starting with {quote}", position, (quote,))
