"""The one error every stage of the CQL front end raises: a message anchored to a line and column."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in the query text."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}"


class CQLError(ValueError):
    """A definition that cannot be accepted, with where it went wrong and what was expected there."""

    def __init__(self, message: str, position: Position, expected: tuple[str, ...] = ()):
        self.message = message
        self.position = position
        self.expected = expected
        super().__init__(f"{position}: {message}")
