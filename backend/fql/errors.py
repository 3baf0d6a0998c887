"""The error the FQL front end raises: a message anchored to a line and column of the `if` text."""

from __future__ import annotations

from backend.cql.errors import Position


class FQLError(ValueError):
    """An `if` expression that cannot be accepted, with where it went wrong and what was expected."""

    def __init__(self, message: str, position: Position, expected: tuple[str, ...] = ()):
        self.message = message
        self.position = position
        self.expected = expected
        super().__init__(f"{position}: {message}")
