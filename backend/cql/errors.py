"""The errors of the query front ends: a message anchored to a line and column of the text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in the query text."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}"


class QueryError(ValueError):
    """Text in a query language that cannot be accepted, with where it went wrong and what was
    expected there; CQL and FQL each raise their own kind."""

    def __init__(self, message: str, position: Position, expected: tuple[str, ...] = ()):
        self.message = message
        self.position = position
        self.expected = expected
        super().__init__(f"{position}: {message}")


class CQLError(QueryError):
    """A CQL definition that cannot be accepted."""
