"""What the query front ends (CQL and FQL) share: positions in the text, tokens, and errors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in the query text."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}"


@dataclass(frozen=True)
class Token:
    """A piece of query text; `kind` is the language's own token kind, whose `END` member closes
    the text and whose value names it in messages ("end of query")."""

    kind: Enum
    text: str
    value: object
    position: Position

    def describe(self) -> str:
        return self.kind.value if self.kind.name == "END" else repr(self.text)


class QueryError(ValueError):
    """Text in a query language that cannot be accepted, with where it went wrong and what was
    expected there; CQL and FQL each raise their own kind."""

    def __init__(self, message: str, position: Position, expected: tuple[str, ...] = ()):
        self.message = message
        self.position = position
        self.expected = expected
        super().__init__(f"{position}: {message}")
